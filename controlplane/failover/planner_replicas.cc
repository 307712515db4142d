#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "controlplane/failover/internal/planner_util.h"
#include "controlplane/failover/planner.h"

namespace dash::controlplane {
namespace {

using internal::CheckKnownNode;
using internal::CheckNodeIdField;
using internal::CheckShard;
using internal::CheckUsable;
using internal::FindReplicaOf;
using internal::Finish;
using internal::MutableShard;
using internal::ReplicaOf;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

}  // namespace

absl::StatusOr<PlacementChange> PlanAddReplica(const Placement& placement,
                                               const v1::AddReplicaRequest& request) {
  DASH_RETURN_IF_ERROR(CheckNodeIdField("node_id", request.node_id()));
  DASH_RETURN_IF_ERROR(CheckShard(placement, request.shard(), request.expected_epoch()));
  DASH_RETURN_IF_ERROR(CheckKnownNode(placement, "node_id", request.node_id()));
  const ShardEntry& shard = *FindShard(placement, request.shard());
  if (FindReplica(shard, request.node_id()) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node_id: ", request.node_id(), " is already a replica of shard ", request.shard()));
  }
  DASH_RETURN_IF_ERROR(CheckUsable(placement, request.node_id()));
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  ReplicaEntry* replica = entry->add_replicas();
  replica->set_node_id(request.node_id());
  replica->set_role(v1::REPLICA_ROLE_FOLLOWER);
  replica->set_in_sync(false);  // Until it has caught up.
  replica->set_health(v1::NODE_HEALTH_HEALTHY);
  entry->set_epoch(shard.epoch() + 1);
  change.add_shards_changed(request.shard());
  change.add_summary(absl::StrCat("shard ", request.shard(), ": added replica ", request.node_id(),
                                  ", epoch ", shard.epoch(), " -> ", shard.epoch() + 1));
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanRemoveReplica(const Placement& placement,
                                                  const v1::RemoveReplicaRequest& request) {
  DASH_ASSIGN_OR_RETURN(
      const ReplicaOf found,
      FindReplicaOf(placement, request.shard(), request.expected_epoch(), request.node_id()));
  const ShardEntry& shard = *found.shard;
  if (shard.leader_node_id() == request.node_id()) {
    return absl::FailedPreconditionError(absl::StrCat("node_id: ", request.node_id(),
                                                      " leads shard ", request.shard(),
                                                      "; transfer leadership first"));
  }
  if (shard.transfer_to() == request.node_id()) {
    return absl::FailedPreconditionError(absl::StrCat("node_id: leadership of shard ",
                                                      request.shard(), " is being transferred to ",
                                                      request.node_id()));
  }
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  auto* replicas = entry->mutable_replicas();
  for (int i = 0; i < replicas->size(); ++i) {
    if (replicas->Get(i).node_id() == request.node_id()) {
      replicas->DeleteSubrange(i, 1);
      break;
    }
  }
  std::string move_note;
  if (entry->moving_from() == request.node_id() || entry->moving_to() == request.node_id()) {
    move_note = absl::StrCat(" (ends the move ", entry->moving_from(), " -> ",
                             entry->moving_to().empty() ? "?" : entry->moving_to(), ")");
    entry->clear_moving_from();
    entry->clear_moving_to();
  }
  entry->set_epoch(shard.epoch() + 1);
  change.add_shards_changed(request.shard());
  change.add_summary(absl::StrCat("shard ", request.shard(), ": removed replica ",
                                  request.node_id(), ", epoch ", shard.epoch(), " -> ",
                                  shard.epoch() + 1, move_note));
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanMoveReplica(const Placement& placement,
                                                const v1::MoveReplicaRequest& request) {
  DASH_RETURN_IF_ERROR(CheckNodeIdField("from_node_id", request.from_node_id()));
  DASH_RETURN_IF_ERROR(CheckNodeIdField("to_node_id", request.to_node_id()));
  if (request.from_node_id() == request.to_node_id()) {
    return absl::InvalidArgumentError("to_node_id: same as from_node_id");
  }
  DASH_RETURN_IF_ERROR(CheckShard(placement, request.shard(), request.expected_epoch()));
  DASH_RETURN_IF_ERROR(CheckKnownNode(placement, "from_node_id", request.from_node_id()));
  DASH_RETURN_IF_ERROR(CheckKnownNode(placement, "to_node_id", request.to_node_id()));
  const ShardEntry& shard = *FindShard(placement, request.shard());
  if (FindReplica(shard, request.from_node_id()) == nullptr) {
    return absl::NotFoundError(absl::StrCat("from_node_id: ", request.from_node_id(),
                                            " is not a replica of shard ", request.shard()));
  }
  if (shard.leader_node_id() == request.from_node_id()) {
    return absl::FailedPreconditionError(absl::StrCat("from_node_id: ", request.from_node_id(),
                                                      " leads shard ", request.shard(),
                                                      "; transfer leadership first"));
  }
  if (!shard.moving_from().empty() || !shard.moving_to().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", request.shard(), ": a move ", shard.moving_from(), " -> ",
                     shard.moving_to().empty() ? "?" : shard.moving_to(), " is in progress"));
  }
  if (FindReplica(shard, request.to_node_id()) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "to_node_id: ", request.to_node_id(), " is already a replica of shard ", request.shard()));
  }
  DASH_RETURN_IF_ERROR(CheckUsable(placement, request.to_node_id()));
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  ReplicaEntry* replica = entry->add_replicas();
  replica->set_node_id(request.to_node_id());
  replica->set_role(v1::REPLICA_ROLE_FOLLOWER);
  replica->set_in_sync(false);
  replica->set_health(v1::NODE_HEALTH_HEALTHY);
  entry->set_moving_from(request.from_node_id());
  entry->set_moving_to(request.to_node_id());
  entry->set_epoch(shard.epoch() + 1);
  change.add_shards_changed(request.shard());
  change.add_summary(absl::StrCat("shard ", request.shard(), ": moving replica ",
                                  request.from_node_id(), " -> ", request.to_node_id(), ", epoch ",
                                  shard.epoch(), " -> ", shard.epoch() + 1));
  return Finish(placement, std::move(change));
}

}  // namespace dash::controlplane
