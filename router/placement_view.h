// What the router core needs of placement: the latest table, a refresh after
// a stale-epoch answer, and a wait for the next table. PlacementCache (fed by
// the control plane's watch stream) implements it; tests give a table of
// their own. Implementations are thread-safe.
#ifndef DASH_ROUTER_PLACEMENT_VIEW_H_
#define DASH_ROUTER_PLACEMENT_VIEW_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dash/v1/placement.pb.h"

namespace dash::router {

class PlacementView {
 public:
  virtual ~PlacementView() = default;
  // The latest table; UNAVAILABLE until one arrived.
  virtual absl::StatusOr<std::shared_ptr<const v1::Placement>> Get() const = 0;
  // Asks for the table now, waiting at most `timeout`; keeps the current one
  // if that fails.
  virtual void Refresh(absl::Duration timeout) = 0;
  // Waits until a table newer than `version` arrived or `deadline` passed;
  // true if one did.
  virtual bool WaitForNewer(uint64_t version, absl::Time deadline) const = 0;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_PLACEMENT_VIEW_H_
