#include "controlplane/failover/internal/planner_util.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace dash::controlplane::internal {
namespace {

using v1::NodeEntry;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

constexpr size_t kMaxNodeIdLength = 64;

// Why `node_id` is not a valid node id, or "" when it is.
std::string NodeIdProblem(const std::string& node_id) {
  if (node_id.empty()) return "required";
  if (node_id.size() > kMaxNodeIdLength) {
    return absl::StrCat("longer than ", kMaxNodeIdLength, " characters");
  }
  for (char c : node_id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return absl::StrCat("\"", node_id, "\" has a character outside [A-Za-z0-9_.-]");
  }
  return "";
}

}  // namespace

NodeEntry* MutableNode(Placement* placement, const std::string& node_id) {
  for (NodeEntry& node : *placement->mutable_nodes()) {
    if (node.node_id() == node_id) return &node;
  }
  return nullptr;
}

ShardEntry* MutableShard(Placement* placement, uint32_t shard) {
  for (ShardEntry& entry : *placement->mutable_shards()) {
    if (entry.shard() == shard) return &entry;
  }
  return nullptr;
}

ReplicaEntry* MutableReplica(ShardEntry* shard, const std::string& node_id) {
  for (ReplicaEntry& replica : *shard->mutable_replicas()) {
    if (replica.node_id() == node_id) return &replica;
  }
  return nullptr;
}

bool IsHealthy(const Placement& placement, const std::string& node_id) {
  const NodeEntry* node = FindNode(placement, node_id);
  return node != nullptr && node->health() == v1::NODE_HEALTH_HEALTHY;
}

bool IsDraining(const Placement& placement, const std::string& node_id) {
  const NodeEntry* node = FindNode(placement, node_id);
  return node != nullptr && node->draining();
}

const char* HealthName(v1::NodeHealth health) {
  switch (health) {
    case v1::NODE_HEALTH_HEALTHY:
      return "HEALTHY";
    case v1::NODE_HEALTH_UNHEALTHY:
      return "UNHEALTHY";
    default:
      return "UNSPECIFIED";
  }
}

void Normalize(Placement* placement) {
  auto* nodes = placement->mutable_nodes();
  std::sort(nodes->begin(), nodes->end(),
            [](const NodeEntry& a, const NodeEntry& b) { return a.node_id() < b.node_id(); });
  auto* shards = placement->mutable_shards();
  std::sort(shards->begin(), shards->end(),
            [](const ShardEntry& a, const ShardEntry& b) { return a.shard() < b.shard(); });
  for (ShardEntry& shard : *shards) {
    auto* replicas = shard.mutable_replicas();
    std::sort(replicas->begin(), replicas->end(), [](const ReplicaEntry& a, const ReplicaEntry& b) {
      return a.node_id() < b.node_id();
    });
  }
}

PlacementChange Finish(const Placement& before, PlacementChange change) {
  Placement* after = change.mutable_placement();
  Normalize(after);
  after->set_version(before.version());
  Placement canonical_before = before;
  Normalize(&canonical_before);
  if (!google::protobuf::util::MessageDifferencer::Equals(canonical_before, *after)) {
    after->set_version(before.version() + 1);
  }
  std::sort(change.mutable_shards_changed()->begin(), change.mutable_shards_changed()->end());
  return change;
}

PlacementChange NoChange(const Placement& placement, std::string summary) {
  PlacementChange change;
  *change.mutable_placement() = placement;
  if (!summary.empty()) change.add_summary(std::move(summary));
  return change;
}

std::string ChangeLeader(ShardEntry* shard, const std::string& new_leader, const std::string& why) {
  const std::string old_leader = shard->leader_node_id();
  const uint64_t old_epoch = shard->epoch();
  shard->set_leader_node_id(new_leader);
  shard->set_epoch(old_epoch + 1);
  shard->clear_transfer_to();
  for (ReplicaEntry& replica : *shard->mutable_replicas()) {
    if (replica.node_id() == new_leader) {
      replica.set_role(v1::REPLICA_ROLE_LEADER);
      replica.set_in_sync(true);
      replica.clear_lag();  // A leader trails nobody.
    } else {
      replica.set_role(v1::REPLICA_ROLE_FOLLOWER);
    }
  }
  std::string line = absl::StrCat("shard ", shard->shard(), ": leader ",
                                  old_leader.empty() ? "(none)" : old_leader, " -> ", new_leader,
                                  ", epoch ", old_epoch, " -> ", old_epoch + 1);
  if (!why.empty()) absl::StrAppend(&line, " (", why, ")");
  return line;
}

absl::Status CheckShard(const Placement& placement, uint32_t shard, uint64_t expected_epoch) {
  if (shard >= placement.shard_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard: ", shard, " is out of range (", placement.shard_count(), " shards)"));
  }
  if (!placement.created()) {
    return absl::UnavailableError(absl::StrCat("the cluster is not created yet: it needs ",
                                               placement.replication_factor(),
                                               " healthy registered nodes"));
  }
  const ShardEntry* entry = FindShard(placement, shard);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("shard: no shard ", shard));
  if (expected_epoch != 0 && expected_epoch != entry->epoch()) {
    return absl::FailedPreconditionError(
        absl::StrCat("expected_epoch: shard ", shard, " is at epoch ", entry->epoch()));
  }
  return absl::OkStatus();
}

absl::Status CheckNodeIdField(const std::string& field, const std::string& node_id) {
  const std::string problem = NodeIdProblem(node_id);
  if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
  return absl::OkStatus();
}

absl::Status CheckKnownNode(const Placement& placement, const std::string& field,
                            const std::string& node_id) {
  if (FindNode(placement, node_id) == nullptr) {
    return absl::NotFoundError(absl::StrCat(field, ": no node \"", node_id, "\" is registered"));
  }
  return absl::OkStatus();
}

absl::Status CheckUsable(const Placement& placement, const std::string& node_id) {
  if (!IsHealthy(placement, node_id)) {
    return absl::FailedPreconditionError(absl::StrCat("node ", node_id, " is unhealthy"));
  }
  if (IsDraining(placement, node_id)) {
    return absl::FailedPreconditionError(absl::StrCat("node ", node_id, " is draining"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplicaOf> FindReplicaOf(const Placement& placement, uint32_t shard_id,
                                        uint64_t expected_epoch, const std::string& node_id) {
  DASH_RETURN_IF_ERROR(CheckNodeIdField("node_id", node_id));
  DASH_RETURN_IF_ERROR(CheckShard(placement, shard_id, expected_epoch));
  DASH_RETURN_IF_ERROR(CheckKnownNode(placement, "node_id", node_id));
  const ShardEntry* shard = FindShard(placement, shard_id);
  const ReplicaEntry* replica = FindReplica(*shard, node_id);
  if (replica == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("node_id: ", node_id, " is not a replica of shard ", shard_id));
  }
  return ReplicaOf{shard, replica};
}

}  // namespace dash::controlplane::internal
