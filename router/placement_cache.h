// The router's view of placement: the latest table pushed by the control
// plane's WatchPlacement stream, refreshed on demand when a node answers that
// the router's epoch is stale. While the control plane is unreachable the last
// table is kept and used. Thread-safe.
#ifndef DASH_ROUTER_PLACEMENT_CACHE_H_
#define DASH_ROUTER_PLACEMENT_CACHE_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/security.h"
#include "dash/v1/placement.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "router/placement_view.h"

namespace dash::router {

class PlacementCache final : public PlacementView {
 public:
  // Calls the control plane with `security`'s TLS identity.
  explicit PlacementCache(std::string controlplane,
                          const Security& security = *Security::Insecure());
  ~PlacementCache() override;

  void Start();
  // The latest table; UNAVAILABLE until one arrived.
  absl::StatusOr<std::shared_ptr<const v1::Placement>> Get() const override;
  // Asks the control plane for the table now (after a stale-epoch answer),
  // waiting at most `timeout`; keeps the cached one if that fails.
  void Refresh(absl::Duration timeout) override;
  // Waits until a table arrived or `timeout` passed.
  bool WaitForPlacement(absl::Duration timeout) const;
  // Waits until a table newer than `version` arrived or `deadline` passed;
  // true if one did.
  bool WaitForNewer(uint64_t version, absl::Time deadline) const override;

 private:
  void WatchLoop();
  void Store(v1::Placement placement);

  const std::string controlplane_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::Placement> placement_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread watch_thread_;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_PLACEMENT_CACHE_H_
