#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "controlplane/failover/internal/planner_util.h"
#include "controlplane/failover/planner.h"

namespace dash::controlplane {
namespace {

using internal::ChangeLeader;
using internal::CheckShard;
using internal::CheckUsable;
using internal::FindReplicaOf;
using internal::Finish;
using internal::IsDraining;
using internal::IsHealthy;
using internal::MutableReplica;
using internal::MutableShard;
using internal::NoChange;
using internal::ReplicaOf;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

}  // namespace

std::optional<std::string> ChooseTransferTarget(const Placement& placement, const ShardEntry& shard,
                                                const ReportMap& reports) {
  const ReplicaEntry* best = nullptr;
  for (const ReplicaEntry& replica : shard.replicas()) {
    if (replica.node_id() == shard.leader_node_id() || replica.role() == v1::REPLICA_ROLE_LEADER) {
      continue;
    }
    if (!replica.in_sync()) continue;
    if (!IsHealthy(placement, replica.node_id()) || IsDraining(placement, replica.node_id())) {
      continue;
    }
    auto report = reports.find({shard.shard(), replica.node_id()});
    if (report != reports.end() && report->second.diverged()) continue;
    if (best == nullptr) {
      best = &replica;
      continue;
    }
    // Higher (epoch, lsn) wins; on a tie the smaller node id, whatever the
    // order the replicas are listed in.
    const auto key = std::make_tuple(replica.last_epoch(), replica.last_lsn());
    const auto best_key = std::make_tuple(best->last_epoch(), best->last_lsn());
    if (key > best_key || (key == best_key && replica.node_id() < best->node_id())) {
      best = &replica;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->node_id();
}

absl::StatusOr<PlacementChange> PlanTransferStart(const Placement& placement,
                                                  const v1::TransferLeaderRequest& request) {
  DASH_ASSIGN_OR_RETURN(
      const ReplicaOf found,
      FindReplicaOf(placement, request.shard(), request.expected_epoch(), request.node_id()));
  const ShardEntry& shard = *found.shard;
  if (shard.leader_node_id() == request.node_id()) {
    return NoChange(placement, absl::StrCat("shard ", request.shard(), ": ", request.node_id(),
                                            " is already leader"));
  }
  DASH_RETURN_IF_ERROR(CheckUsable(placement, request.node_id()));
  if (!shard.transfer_to().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", request.shard(), ": a transfer to ",
                                                      shard.transfer_to(), " is in progress"));
  }
  if (!IsHealthy(placement, shard.leader_node_id())) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", request.shard(), ": leader ",
                                                      shard.leader_node_id(),
                                                      " is unhealthy; use failover or promote"));
  }
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  entry->set_transfer_to(request.node_id());
  change.add_summary(absl::StrCat("shard ", request.shard(), ": transferring leadership ",
                                  shard.leader_node_id(), " -> ", request.node_id(),
                                  " (writes paused)"));
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanTransferFinish(const Placement& placement, uint32_t shard,
                                                   const std::string& target) {
  DASH_RETURN_IF_ERROR(CheckShard(placement, shard, 0));
  const ShardEntry& entry = *FindShard(placement, shard);
  if (entry.transfer_to() != target || FindReplica(entry, target) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, ": the transfer to ", target, " was abandoned"));
  }
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* mutable_entry = MutableShard(change.mutable_placement(), shard);
  const std::string old_leader = entry.leader_node_id();
  change.add_summary(ChangeLeader(mutable_entry, target, "transfer"));
  // The old leader paused writes and the target caught up: their logs match.
  ReplicaEntry* old = MutableReplica(mutable_entry, old_leader);
  if (old != nullptr) old->set_in_sync(true);
  change.add_shards_changed(shard);
  return Finish(placement, std::move(change));
}

PlacementChange PlanTransferAbandon(const Placement& placement, uint32_t shard) {
  const ShardEntry* entry = FindShard(placement, shard);
  if (entry == nullptr || entry->transfer_to().empty()) return NoChange(placement, "");
  PlacementChange change;
  *change.mutable_placement() = placement;
  MutableShard(change.mutable_placement(), shard)->clear_transfer_to();
  change.add_summary(absl::StrCat("shard ", shard, ": transfer to ", entry->transfer_to(),
                                  " abandoned; ", entry->leader_node_id(), " resumes writes"));
  return Finish(placement, std::move(change));
}

}  // namespace dash::controlplane
