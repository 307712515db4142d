// Helpers shared by the planner's files (planner_*.cc); not part of its API.
// Each edits or checks a placement table the way every Plan* function does:
// find or change an entry, check a request's fields, seal a PlacementChange.
//
// Thread-safety: functions of their arguments only.
#ifndef DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_UTIL_H_
#define DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "controlplane/failover/planner.h"
#include "dash/v1/placement.pb.h"

namespace dash::controlplane::internal {

// Mutable lookups; nullptr when absent.
v1::NodeEntry* MutableNode(v1::Placement* placement, const std::string& node_id);
v1::ShardEntry* MutableShard(v1::Placement* placement, uint32_t shard);
v1::ReplicaEntry* MutableReplica(v1::ShardEntry* shard, const std::string& node_id);

// Whether the node is registered and HEALTHY.
bool IsHealthy(const v1::Placement& placement, const std::string& node_id);
// Whether the node is registered and marked draining.
bool IsDraining(const v1::Placement& placement, const std::string& node_id);
// "HEALTHY", "UNHEALTHY" or "UNSPECIFIED", for summary lines.
const char* HealthName(v1::NodeHealth health);

// Canonical order (rule: nodes by id, shards by number, replicas by node id),
// so that equal tables serialize identically whatever order the edits came in.
void Normalize(v1::Placement* placement);

// Seals `change`: normalizes its table and bumps the version iff the table
// differs from `before` (a change that changed nothing is no version), and
// sorts shards_changed.
v1::PlacementChange Finish(const v1::Placement& before, v1::PlacementChange change);

// `placement` unchanged, with `summary` as its one line (none when empty).
v1::PlacementChange NoChange(const v1::Placement& placement, std::string summary);

// Makes `new_leader` the shard's leader (in sync, no lag) and every other
// replica a follower, clears transfer_to and bumps the epoch. Returns the
// summary line, ending in " (why)" unless `why` is empty.
std::string ChangeLeader(v1::ShardEntry* shard, const std::string& new_leader,
                         const std::string& why);

// The checks every operation on a shard starts with: INVALID_ARGUMENT when
// `shard` is out of range, UNAVAILABLE before the cluster is created,
// NOT_FOUND when the table lacks it, FAILED_PRECONDITION when expected_epoch
// is non-zero and not the shard's epoch.
absl::Status CheckShard(const v1::Placement& placement, uint32_t shard, uint64_t expected_epoch);

// INVALID_ARGUMENT "<field>: <problem>" unless `node_id` is 1-64 characters
// of [A-Za-z0-9_.-].
absl::Status CheckNodeIdField(const std::string& field, const std::string& node_id);

// NOT_FOUND "<field>: no node ... is registered" for an unknown node.
absl::Status CheckKnownNode(const v1::Placement& placement, const std::string& field,
                            const std::string& node_id);

// The node may receive a new replica or leadership: healthy, not draining
// (FAILED_PRECONDITION otherwise).
absl::Status CheckUsable(const v1::Placement& placement, const std::string& node_id);

// A shard and one of its replicas, checked the way every operation on a
// named replica starts: a valid and known node_id, a shard at the expected
// epoch, and the node among the shard's replicas (NOT_FOUND otherwise).
// Both point into the table passed to FindReplicaOf.
struct ReplicaOf {
  const v1::ShardEntry* shard;
  const v1::ReplicaEntry* replica;
};
absl::StatusOr<ReplicaOf> FindReplicaOf(const v1::Placement& placement, uint32_t shard_id,
                                        uint64_t expected_epoch, const std::string& node_id);

}  // namespace dash::controlplane::internal

#endif  // DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_UTIL_H_
