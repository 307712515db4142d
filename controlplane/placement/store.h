// Durable storage of the placement table.
//
// The control plane keeps exactly one table; the store holds the latest
// version that was persisted. Save() returns only once the table is durable
// (synced), because callers publish a version only after it is persisted: a
// version a node or router has seen must survive a crash of the control plane.
//
// PlacementStore is the narrow interface the control plane's core talks to;
// OpenRocksPlacementStore() is the RocksDB implementation (one DB per data
// directory, key "placement" -> serialized dash.v1.Placement).
//
// Thread-safety: implementations are thread-safe.
#ifndef DASH_CONTROLPLANE_PLACEMENT_STORE_H_
#define DASH_CONTROLPLANE_PLACEMENT_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dash/v1/placement.pb.h"

namespace dash::controlplane {

class PlacementStore {
 public:
  virtual ~PlacementStore() = default;

  // The stored table, or nullopt when none was ever saved. DATA_LOSS when the
  // stored bytes do not parse.
  virtual absl::StatusOr<std::optional<v1::Placement>> Load() = 0;

  // Replaces the stored table durably (synced before returning).
  virtual absl::Status Save(const v1::Placement& placement) = 0;
};

// Opens (creating if needed) the RocksDB store in `dir`. UNAVAILABLE when the
// directory cannot be opened (e.g. another process holds its lock).
absl::StatusOr<std::unique_ptr<PlacementStore>> OpenRocksPlacementStore(const std::string& dir);

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_PLACEMENT_STORE_H_
