// The table lookups declared in planner.h. The Plan* functions live in one
// file per operation family: planner_membership.cc (registration, creation,
// drain marks), planner_failover.cc, planner_transfer.cc, planner_replicas.cc
// and planner_tick.cc; their shared helpers in internal/planner_util.h.
#include "controlplane/failover/planner.h"

namespace dash::controlplane {
namespace {

using v1::NodeEntry;
using v1::Placement;
using v1::ReplicaEntry;
using v1::ShardEntry;

}  // namespace

const NodeEntry* FindNode(const Placement& placement, const std::string& node_id) {
  for (const NodeEntry& node : placement.nodes()) {
    if (node.node_id() == node_id) return &node;
  }
  return nullptr;
}

const ShardEntry* FindShard(const Placement& placement, uint32_t shard) {
  for (const ShardEntry& entry : placement.shards()) {
    if (entry.shard() == shard) return &entry;
  }
  return nullptr;
}

const ReplicaEntry* FindReplica(const ShardEntry& shard, const std::string& node_id) {
  for (const ReplicaEntry& replica : shard.replicas()) {
    if (replica.node_id() == node_id) return &replica;
  }
  return nullptr;
}

}  // namespace dash::controlplane
