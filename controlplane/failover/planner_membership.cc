#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "controlplane/failover/internal/planner_util.h"
#include "controlplane/failover/planner.h"

namespace dash::controlplane {
namespace {

using internal::CheckKnownNode;
using internal::CheckNodeIdField;
using internal::Finish;
using internal::MutableNode;
using internal::MutableReplica;
using internal::NoChange;
using internal::Normalize;
using v1::NodeEntry;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

}  // namespace

Placement NewPlacement(uint32_t shard_count, uint32_t replication_factor) {
  Placement placement;
  placement.set_version(1);
  placement.set_shard_count(shard_count);
  placement.set_replication_factor(replication_factor);
  placement.set_created(false);
  return placement;
}

absl::Status ValidateNodeId(const std::string& node_id) {
  return CheckNodeIdField("node_id", node_id);
}

PlacementChange PlanCreation(const Placement& placement) {
  if (placement.created()) return NoChange(placement, "");
  std::vector<std::string> nodes;
  for (const NodeEntry& node : placement.nodes()) {
    if (node.health() == v1::NODE_HEALTH_HEALTHY && !node.draining()) {
      nodes.push_back(node.node_id());
    }
  }
  const uint32_t rf = placement.replication_factor();
  if (rf == 0 || nodes.size() < rf) return NoChange(placement, "");
  std::sort(nodes.begin(), nodes.end());
  const size_t n = nodes.size();

  PlacementChange change;
  Placement* after = change.mutable_placement();
  *after = placement;
  after->clear_shards();
  after->set_created(true);
  for (uint32_t s = 0; s < placement.shard_count(); ++s) {
    ShardEntry* shard = after->add_shards();
    shard->set_shard(s);
    shard->set_epoch(1);
    shard->set_leader_node_id(nodes[s % n]);
    std::vector<std::string> names;
    for (uint32_t i = 0; i < rf; ++i) {
      ReplicaEntry* replica = shard->add_replicas();
      replica->set_node_id(nodes[(s + i) % n]);
      replica->set_role(i == 0 ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
      // Every log is empty at creation, so every replica is trivially in sync.
      replica->set_in_sync(true);
      replica->set_health(v1::NODE_HEALTH_HEALTHY);
      names.push_back(replica->node_id());
    }
    std::sort(names.begin(), names.end());
    change.add_shards_changed(s);
    change.add_summary(absl::StrCat("shard ", s, ": created with replicas ",
                                    absl::StrJoin(names, ","), ", leader ", nodes[s % n],
                                    ", epoch 1"));
  }
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanRegister(const Placement& placement,
                                             const v1::RegisterNodeRequest& request) {
  DASH_RETURN_IF_ERROR(ValidateNodeId(request.node_id()));
  if (request.address().empty()) return absl::InvalidArgumentError("address: required");

  PlacementChange change;
  Placement* after = change.mutable_placement();
  *after = placement;
  NodeEntry* node = MutableNode(after, request.node_id());
  if (node == nullptr) {
    node = after->add_nodes();
    node->set_node_id(request.node_id());
    change.add_summary(
        absl::StrCat("node ", request.node_id(), ": registered at ", request.address()));
  } else if (node->address() != request.address()) {
    change.add_summary(absl::StrCat("node ", request.node_id(), ": address ", node->address(),
                                    " -> ", request.address()));
  }
  node->set_address(request.address());
  if (node->health() != v1::NODE_HEALTH_HEALTHY) {
    if (node->health() == v1::NODE_HEALTH_UNHEALTHY) {
      change.add_summary(absl::StrCat("node ", request.node_id(), ": UNHEALTHY -> HEALTHY"));
    }
    node->set_health(v1::NODE_HEALTH_HEALTHY);
  }
  for (ShardEntry& shard : *after->mutable_shards()) {
    ReplicaEntry* replica = MutableReplica(&shard, request.node_id());
    if (replica != nullptr) replica->set_health(v1::NODE_HEALTH_HEALTHY);
  }
  Normalize(after);
  PlacementChange created = PlanCreation(*after);
  if (created.placement().created() && !after->created()) {
    *after = created.placement();
    for (uint32_t s : created.shards_changed()) change.add_shards_changed(s);
    for (const std::string& line : created.summary()) change.add_summary(line);
  }
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanDrainMark(const Placement& placement,
                                              const v1::DrainNodeRequest& request) {
  DASH_RETURN_IF_ERROR(CheckNodeIdField("node_id", request.node_id()));
  DASH_RETURN_IF_ERROR(CheckKnownNode(placement, "node_id", request.node_id()));
  PlacementChange change;
  *change.mutable_placement() = placement;
  NodeEntry* node = MutableNode(change.mutable_placement(), request.node_id());
  const bool draining = !request.undrain();
  if (node->draining() != draining) {
    node->set_draining(draining);
    change.add_summary(
        absl::StrCat("node ", request.node_id(), draining ? ": draining" : ": undrained"));
  }
  return Finish(placement, std::move(change));
}

}  // namespace dash::controlplane
