#include "controlplane/failover/planner.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace dash::controlplane {
namespace {

using v1::NodeEntry;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

constexpr size_t kMaxNodeIdLength = 64;

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

// Canonical order (rule: nodes by id, shards by number, replicas by node id),
// so that equal tables serialize identically whatever order the edits came in.
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

// Seals `change`: normalizes its table and bumps the version iff the table
// differs from `before` (a change that changed nothing is no version).
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

// Makes `new_leader` the shard's leader and every other replica a follower,
// and bumps the epoch. Returns the summary line.
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

// The node may receive a new replica or leadership: healthy, not draining.
absl::Status CheckUsable(const Placement& placement, const std::string& node_id) {
  if (!IsHealthy(placement, node_id)) {
    return absl::FailedPreconditionError(absl::StrCat("node ", node_id, " is unhealthy"));
  }
  if (IsDraining(placement, node_id)) {
    return absl::FailedPreconditionError(absl::StrCat("node ", node_id, " is draining"));
  }
  return absl::OkStatus();
}

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

namespace {

// A failover candidate and the log end it is judged by.
struct Candidate {
  std::string node_id;
  uint64_t last_epoch = 0;
  uint64_t last_lsn = 0;
};

// The candidate with the highest (last_epoch, last_lsn); among equal maxima a
// non-draining node, then the smallest node id, whatever the listing order.
// REQUIRES: !candidates.empty().
const Candidate& Highest(const Placement& placement, const std::vector<Candidate>& candidates) {
  size_t best = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    const Candidate& b = candidates[best];
    const auto key = std::make_tuple(c.last_epoch, c.last_lsn);
    const auto best_key = std::make_tuple(b.last_epoch, b.last_lsn);
    if (key != best_key) {
      if (key > best_key) best = i;
      continue;
    }
    const bool draining = IsDraining(placement, c.node_id);
    const bool best_draining = IsDraining(placement, b.node_id);
    if (draining != best_draining) {
      if (!draining) best = i;
      continue;
    }
    if (c.node_id < b.node_id) best = i;
  }
  return candidates[best];
}

// The smallest number of replicas of an n-replica shard that intersects every
// majority (n/2 + 1) of it.
size_t IntersectingCount(size_t n) { return n - (n / 2 + 1) + 1; }

// "n3: DEADLINE_EXCEEDED" for each replica other than `leader` not fenced OK
// (not asked: "not asked").
std::vector<std::string> NotFenced(const ShardEntry& shard, const ShardFence& fence,
                                   const std::string& leader) {
  std::vector<std::string> out;
  for (const ReplicaEntry& replica : shard.replicas()) {
    if (replica.node_id() == leader) continue;
    auto it = fence.replicas.find(replica.node_id());
    if (it == fence.replicas.end()) {
      out.push_back(absl::StrCat(replica.node_id(), ": not asked"));
    } else if (!it->second.status.ok()) {
      out.push_back(absl::StrCat(replica.node_id(), ": ",
                                 absl::StatusCodeToString(it->second.status.code())));
    }
  }
  return out;
}

absl::Status CheckFenceEpoch(const ShardEntry& shard, const ShardFence& fence) {
  if (fence.epoch != shard.epoch() + 1) {
    return absl::AbortedError(absl::StrCat("shard ", shard.shard(), ": fenced at epoch ",
                                           fence.epoch, " but the shard is now at epoch ",
                                           shard.epoch(), "; fence again"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ChooseFencedLeader(const Placement& placement, const ShardEntry& shard,
                                               const ReportMap& reports, const ShardFence& fence) {
  DASH_RETURN_IF_ERROR(CheckFenceEpoch(shard, fence));
  const std::string& leader = shard.leader_node_id();
  const size_t n = static_cast<size_t>(shard.replicas_size());
  const size_t needed = IntersectingCount(n);
  std::vector<Candidate> members;
  std::vector<std::string> not_counted = NotFenced(shard, fence, leader);
  for (const ReplicaEntry& replica : shard.replicas()) {
    if (replica.node_id() == leader) continue;
    auto answer = fence.replicas.find(replica.node_id());
    if (answer == fence.replicas.end() || !answer->second.status.ok()) continue;
    std::string why;
    auto report = reports.find({shard.shard(), replica.node_id()});
    if (!IsHealthy(placement, replica.node_id())) {
      why = "unhealthy";
    } else if (report == reports.end()) {
      why = "no report";
    } else if (report->second.diverged()) {
      why = "diverged";
    }
    if (!why.empty()) {
      not_counted.push_back(absl::StrCat(replica.node_id(), ": fenced but ", why));
      continue;
    }
    members.push_back({replica.node_id(), answer->second.last_epoch, answer->second.last_lsn});
  }
  if (members.empty() || members.size() < needed) {
    std::sort(not_counted.begin(), not_counted.end());
    std::string reason =
        absl::StrCat("shard ", shard.shard(), ": only ", members.size(), " of ", n,
                     " replicas fenced at epoch ", fence.epoch, ", ", needed, " needed");
    if (!not_counted.empty()) {
      absl::StrAppend(&reason, " (not fenced: ", absl::StrJoin(not_counted, ", "), ")");
    }
    return absl::UnavailableError(reason);
  }
  return Highest(placement, members).node_id;
}

std::vector<uint32_t> ShardsToFailOver(const Placement& placement, const ReportMap& reports) {
  std::vector<uint32_t> out;
  if (!placement.created()) return out;
  for (const ShardEntry& shard : placement.shards()) {
    if (shard.leader_node_id().empty() || IsHealthy(placement, shard.leader_node_id())) continue;
    if (ChooseFailoverLeader(placement, shard, reports).ok()) out.push_back(shard.shard());
  }
  return out;
}

absl::StatusOr<std::string> ChooseFailoverLeader(const Placement& placement,
                                                 const ShardEntry& shard,
                                                 const ReportMap& reports) {
  const std::string& leader = shard.leader_node_id();
  const size_t n = static_cast<size_t>(shard.replicas_size());
  // The smallest set that intersects every majority of n.
  const size_t needed = IntersectingCount(n);
  std::vector<Candidate> members;
  std::vector<std::string> not_counted;  // Healthy replicas left out, and why.
  for (const ReplicaEntry& replica : shard.replicas()) {
    if (replica.node_id() == leader) continue;
    if (!IsHealthy(placement, replica.node_id())) continue;
    auto it = reports.find({shard.shard(), replica.node_id()});
    std::string why;
    if (it == reports.end()) {
      why = "no report";
    } else if (it->second.diverged()) {
      why = "diverged";
    } else if (it->second.epoch() < shard.epoch()) {
      // (A newer epoch was adopted from a fencing that promoted nobody.)
      why = absl::StrCat("epoch ", shard.epoch(), " not yet adopted (at ", it->second.epoch(), ")");
    }
    if (!why.empty()) {
      not_counted.push_back(absl::StrCat(replica.node_id(), ": ", why));
      continue;
    }
    members.push_back({replica.node_id(), it->second.last_epoch(), it->second.last_lsn()});
  }
  if (members.empty() || members.size() < needed) {
    std::string reason = absl::StrCat("shard ", shard.shard(), ": only ", members.size(), " of ", n,
                                      " replicas reachable");
    if (!leader.empty() && IsHealthy(placement, leader)) {
      absl::StrAppend(&reason, " besides leader ", leader);
    }
    if (!not_counted.empty()) {
      absl::StrAppend(&reason, " (not counted: ", absl::StrJoin(not_counted, ", "), ")");
    }
    absl::StrAppend(&reason,
                    "; promoting could lose acknowledged writes: use `dashctl promote "
                    "--accept-data-loss`");
    return absl::FailedPreconditionError(reason);
  }
  return Highest(placement, members).node_id;
}

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

bool LeaderSilenceReported(const Placement& placement, const ReportMap& reports,
                           const std::string& node_id, uint64_t silence_ms) {
  for (const ShardEntry& shard : placement.shards()) {
    if (shard.leader_node_id() != node_id) continue;
    for (const ReplicaEntry& replica : shard.replicas()) {
      if (replica.node_id() == node_id) continue;
      auto it = reports.find({shard.shard(), replica.node_id()});
      if (it == reports.end()) continue;
      const v1::ReplicaReport& report = it->second;
      if (report.role() == v1::REPLICA_ROLE_FOLLOWER && report.epoch() == shard.epoch() &&
          report.has_follow() && report.follow().leader_silent_ms() >= silence_ms) {
        return true;
      }
    }
  }
  return false;
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

// Why the leader's report calls `follower` out of sync ("" when in sync).
static std::string LeaderVerdict(const ReplicaEntry& leader, const v1::ReplicaReport& leader_report,
                                 const std::string& follower) {
  const v1::FollowerLag* lag = nullptr;
  for (const v1::FollowerLag& f : leader_report.followers()) {
    if (f.node_id() == follower) lag = &f;
  }
  if (lag == nullptr) return absl::StrCat("not among leader ", leader.node_id(), "'s followers");
  if (lag->in_sync()) return "";
  return absl::StrCat("leader ", leader.node_id(), " reports lag ", lag->lag_records(),
                      " records, ", lag->lag_bytes(), " bytes, ",
                      absl::SixDigits(lag->lag_seconds()), " s");
}

namespace {

// (f) A leader is ready once it reports leading at the shard's epoch: it has
// opened its replica and adopted the role, so it takes writes. It stops being
// ready when, heard since this control plane started, it no longer reports
// so (restarted, reopening its replicas); an epoch change needs a new report.
void MarkReadyLeaders(const TickInput& input, const ReportMap& reports, Placement* after,
                      PlacementChange* change) {
  for (ShardEntry& shard : *after->mutable_shards()) {
    if (shard.leader_node_id().empty()) continue;
    auto it = reports.find({shard.shard(), shard.leader_node_id()});
    const bool leads = it != reports.end() && it->second.role() == v1::REPLICA_ROLE_LEADER &&
                       it->second.epoch() == shard.epoch();
    const bool ready = shard.leader_ready_epoch() == shard.epoch();
    if (leads && !ready) {
      shard.set_leader_ready_epoch(shard.epoch());
      change->add_summary(absl::StrCat("shard ", shard.shard(), ": leader ", shard.leader_node_id(),
                                       " takes writes at epoch ", shard.epoch()));
    } else if (!leads && ready && input.heard.count(shard.leader_node_id()) > 0) {
      shard.clear_leader_ready_epoch();
      change->add_summary(absl::StrCat("shard ", shard.shard(), ": leader ", shard.leader_node_id(),
                                       " no longer reports leading at epoch ", shard.epoch()));
    }
  }
}

}  // namespace

PlacementChange PlanTick(const Placement& placement, const TickInput& input) {
  static const ReportMap kNoReports;
  const ReportMap& reports = input.reports != nullptr ? *input.reports : kNoReports;
  PlacementChange change;
  Placement* after = change.mutable_placement();
  *after = placement;
  Normalize(after);  // The summary lines follow the canonical order.

  // (a) Health.
  for (NodeEntry& node : *after->mutable_nodes()) {
    auto it = input.alive.find(node.node_id());
    if (it == input.alive.end()) continue;
    const v1::NodeHealth health = it->second ? v1::NODE_HEALTH_HEALTHY : v1::NODE_HEALTH_UNHEALTHY;
    if (node.health() != health) {
      change.add_summary(absl::StrCat("node ", node.node_id(), ": ", HealthName(node.health()),
                                      " -> ", HealthName(health)));
      node.set_health(health);
    }
  }
  for (ShardEntry& shard : *after->mutable_shards()) {
    for (ReplicaEntry& replica : *shard.mutable_replicas()) {
      const NodeEntry* node = FindNode(*after, replica.node_id());
      replica.set_health(node != nullptr ? node->health() : v1::NODE_HEALTH_UNHEALTHY);
    }
  }

  // (a') Epoch repair. Fencing a shard at epoch + 1 that then promoted
  // nobody (too few answered, the leader came back, the operator's call was
  // refused) leaves the fenced replicas refusing the leader's older epoch.
  // With the leader healthy the shard moves to the newest adopted epoch,
  // leader unchanged: nobody ever led at that epoch (the fencer would have
  // published it), so the leader may take it up.
  for (ShardEntry& shard : *after->mutable_shards()) {
    const std::string& leader = shard.leader_node_id();
    if (leader.empty() || !IsHealthy(*after, leader) || input.fencing.count(shard.shard()) > 0) {
      continue;
    }
    uint64_t newest = shard.epoch();
    std::vector<std::string> fenced;
    for (const ReplicaEntry& replica : shard.replicas()) {
      auto it = reports.find({shard.shard(), replica.node_id()});
      if (it == reports.end() || it->second.epoch() <= shard.epoch()) continue;
      newest = std::max(newest, it->second.epoch());
      fenced.push_back(replica.node_id());
    }
    if (newest == shard.epoch()) continue;
    change.add_summary(absl::StrCat(
        "shard ", shard.shard(), ": epoch ", shard.epoch(), " -> ", newest, ", leader ", leader,
        " kept (", absl::StrJoin(fenced, ","), " fenced by a failover that promoted nobody)"));
    shard.set_epoch(newest);
    shard.clear_transfer_to();
    change.add_shards_changed(shard.shard());
  }

  // (b) In-sync flags of followers.
  for (ShardEntry& shard : *after->mutable_shards()) {
    const ReplicaEntry* leader = FindReplica(shard, shard.leader_node_id());
    const uint64_t leader_lsn = leader != nullptr ? leader->last_lsn() : 0;
    const uint64_t leader_last_epoch = leader != nullptr ? leader->last_epoch() : 0;
    // A leader that reports followers decides which are in sync (its own
    // bounds on lag in records and seconds); one that reports none (an older
    // node) leaves it to the LSN rule.
    const v1::ReplicaReport* leader_report = nullptr;
    if (leader != nullptr) {
      auto it = reports.find({shard.shard(), leader->node_id()});
      if (it != reports.end() && it->second.followers_size() > 0) leader_report = &it->second;
    }
    for (ReplicaEntry& replica : *shard.mutable_replicas()) {
      if (replica.node_id() == shard.leader_node_id()) continue;  // The leader stays in sync.
      bool decided = true;
      std::string why_out;  // Empty: in sync.
      if (replica.health() != v1::NODE_HEALTH_HEALTHY) {
        why_out = "node unhealthy";
      } else if (leader == nullptr) {
        why_out = "no leader";
      } else if (input.heard.count(replica.node_id()) == 0) {
        decided = false;  // Not heard since start: keep the stored flag.
      } else {
        const std::pair<uint32_t, std::string> key(shard.shard(), replica.node_id());
        auto it = reports.find(key);
        if (it == reports.end()) {
          why_out = "no report for the shard";
        } else {
          const v1::ReplicaReport& report = it->second;
          if (report.diverged()) {
            why_out = "diverged";
          } else if (report.epoch() < shard.epoch()) {
            why_out =
                absl::StrCat("epoch ", shard.epoch(), " not yet adopted (at ", report.epoch(), ")");
          } else if (report.epoch() > shard.epoch()) {
            why_out = absl::StrCat("fenced at epoch ", report.epoch(), ", above the shard's ",
                                   shard.epoch());
          } else if (report.last_lsn() > leader_lsn) {
            // Judged only against a leader report newer than the follower's,
            // when the order is known: the leader's log only grows.
            bool leader_newer = true;
            if (input.report_order != nullptr) {
              auto mine = input.report_order->find(key);
              auto theirs = input.report_order->find({shard.shard(), shard.leader_node_id()});
              leader_newer = mine != input.report_order->end() &&
                             theirs != input.report_order->end() && theirs->second > mine->second;
            }
            if (leader_newer) {
              why_out = "ahead of the leader: diverged";
            } else if (leader_report != nullptr) {
              // The leader's report predates records the follower since
              // received (ordinary under writes): the leader's own verdict,
              // from the follower's acknowledgements, decides.
              why_out = LeaderVerdict(*leader, *leader_report, replica.node_id());
            } else {
              decided = false;
            }
          } else if (report.last_lsn() == leader_lsn && report.last_lsn() > 0 &&
                     report.last_epoch() != leader_last_epoch) {
            // Same LSN, another record (LSN 0: no record, nothing to differ).
            why_out = absl::StrCat("last epoch ", report.last_epoch(), " at the leader's LSN, ",
                                   "leader's ", leader_last_epoch, ": diverged");
          } else if (leader_report != nullptr) {
            why_out = LeaderVerdict(*leader, *leader_report, replica.node_id());
          } else if (leader_lsn - report.last_lsn() > input.in_sync_max_lag_records) {
            why_out = absl::StrCat("lag ", leader_lsn - report.last_lsn(), " > ",
                                   input.in_sync_max_lag_records);
          }
        }
      }
      const bool in_sync = decided ? why_out.empty() : replica.in_sync();
      if (in_sync != replica.in_sync()) {
        std::string line = absl::StrCat("shard ", shard.shard(), ": ", replica.node_id(),
                                        in_sync ? " in sync" : " out of sync");
        if (!in_sync) absl::StrAppend(&line, ": ", why_out);
        absl::StrAppend(&line, " (last_lsn ", replica.last_lsn(), ", leader ", leader_lsn, ")");
        change.add_summary(std::move(line));
        replica.set_in_sync(in_sync);
      }
    }
  }

  // (c) Automatic failover: only to a replica that holds every acknowledged
  // write, decided on the answers of a fencing (see ChooseFencedLeader).
  for (ShardEntry& shard : *after->mutable_shards()) {
    const std::string leader = shard.leader_node_id();
    if (leader.empty() || IsHealthy(*after, leader)) continue;
    absl::StatusOr<std::string> candidate =
        absl::FailedPreconditionError("not fenced");  // The caller fences first.
    if (input.fences != nullptr) {
      auto fence = input.fences->find(shard.shard());
      if (fence != input.fences->end()) {
        candidate = ChooseFencedLeader(*after, shard, reports, fence->second);
      }
    }
    if (!candidate.ok()) {
      // The leader stays: writes fail closed while it is unhealthy, and it
      // simply leads again if it comes back. A transfer cannot finish now.
      if (!shard.transfer_to().empty()) {
        change.add_summary(absl::StrCat("shard ", shard.shard(), ": transfer to ",
                                        shard.transfer_to(), " abandoned (leader ", leader,
                                        " unhealthy)"));
        shard.clear_transfer_to();
      }
      continue;
    }
    change.add_summary(ChangeLeader(&shard, *candidate,
                                    absl::StrCat("automatic failover: ", leader, " unhealthy")));
    MutableReplica(&shard, leader)->set_in_sync(false);
    change.add_shards_changed(shard.shard());
  }

  // (d) Replica moves.
  for (ShardEntry& shard : *after->mutable_shards()) {
    const std::string from = shard.moving_from();
    const std::string to = shard.moving_to();
    if (from.empty() || from == shard.leader_node_id()) continue;
    bool ready = true;
    if (!to.empty()) {
      // The move's target holds the data once it is in sync.
      const ReplicaEntry* target = FindReplica(shard, to);
      ready = target != nullptr && target->in_sync() && target->health() == v1::NODE_HEALTH_HEALTHY;
    } else {
      // A table stored before moving_to existed names no target: wait for
      // every other follower (the new one among them).
      for (const ReplicaEntry& replica : shard.replicas()) {
        if (replica.node_id() == from || replica.node_id() == shard.leader_node_id()) continue;
        if (!replica.in_sync() || replica.health() != v1::NODE_HEALTH_HEALTHY) ready = false;
      }
    }
    if (!ready) continue;
    auto* replicas = shard.mutable_replicas();
    for (int i = 0; i < replicas->size(); ++i) {
      if (replicas->Get(i).node_id() == from) {
        replicas->DeleteSubrange(i, 1);
        break;
      }
    }
    shard.clear_moving_from();
    shard.clear_moving_to();
    const uint64_t old_epoch = shard.epoch();
    shard.set_epoch(old_epoch + 1);
    if (std::find(change.shards_changed().begin(), change.shards_changed().end(), shard.shard()) ==
        change.shards_changed().end()) {
      change.add_shards_changed(shard.shard());
    }
    change.add_summary(absl::StrCat("shard ", shard.shard(), ": move done, removed replica ", from,
                                    ", epoch ", old_epoch, " -> ", old_epoch + 1));
  }

  // (e) Cluster creation, once enough nodes are healthy again.
  if (!after->created()) {
    Normalize(after);
    PlacementChange created = PlanCreation(*after);
    if (created.placement().created()) {
      *after = created.placement();
      for (uint32_t s : created.shards_changed()) change.add_shards_changed(s);
      for (const std::string& line : created.summary()) change.add_summary(line);
    }
  }
  MarkReadyLeaders(input, reports, after, &change);
  return Finish(placement, std::move(change));
}

absl::StatusOr<PlacementChange> PlanFailover(const Placement& placement, const ReportMap& reports,
                                             const v1::FailoverRequest& request,
                                             const ShardFence* fence) {
  DASH_RETURN_IF_ERROR(CheckShard(placement, request.shard(), request.expected_epoch()));
  const ShardEntry& shard = *FindShard(placement, request.shard());
  const std::string leader = shard.leader_node_id();
  DASH_ASSIGN_OR_RETURN(const std::string candidate,
                        fence == nullptr ? ChooseFailoverLeader(placement, shard, reports)
                                         : ChooseFencedLeader(placement, shard, reports, *fence));
  PlacementChange change;
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  change.add_summary(ChangeLeader(entry, candidate, "failover"));
  ReplicaEntry* old = MutableReplica(entry, leader);
  if (old != nullptr) old->set_in_sync(false);
  change.add_shards_changed(request.shard());
  return Finish(placement, std::move(change));
}

namespace {

// A shard and one of its replicas, checked the way every operation on a
// named replica starts: a valid and known node_id, a shard at the expected
// epoch, and the node among the shard's replicas (NOT_FOUND otherwise).
struct ReplicaOf {
  const ShardEntry* shard;
  const ReplicaEntry* replica;
};

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

}  // namespace

absl::StatusOr<PlacementChange> PlanPromote(const Placement& placement,
                                            const v1::PromoteRequest& request,
                                            const ShardFence* fence) {
  DASH_ASSIGN_OR_RETURN(
      const ReplicaOf found,
      FindReplicaOf(placement, request.shard(), request.expected_epoch(), request.node_id()));
  const ShardEntry& shard = *found.shard;
  DASH_RETURN_IF_ERROR(CheckUsable(placement, request.node_id()));
  if (shard.leader_node_id() == request.node_id()) {
    return NoChange(placement, absl::StrCat("shard ", request.shard(), ": ", request.node_id(),
                                            " is already leader"));
  }
  const std::string& old_leader = shard.leader_node_id();
  // Each replica's last LSN: its fence answer when it gave one (fresher),
  // else what it last reported.
  std::map<std::string, uint64_t> lsn;
  for (const ReplicaEntry& replica : shard.replicas()) lsn[replica.node_id()] = replica.last_lsn();
  std::vector<std::string> not_fenced;  // Set only when too few were fenced.
  if (fence != nullptr) {
    DASH_RETURN_IF_ERROR(CheckFenceEpoch(shard, *fence));
    auto target = fence->replicas.find(request.node_id());
    if (target == fence->replicas.end() || !target->second.status.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "shard ", request.shard(), ": ", request.node_id(), " did not answer the fence at epoch ",
          fence->epoch,
          target == fence->replicas.end()
              ? std::string()
              : absl::StrCat(" (", absl::StatusCodeToString(target->second.status.code()), ")"),
          "; not promoted"));
    }
    size_t fenced = 0;
    for (const auto& [node_id, answer] : fence->replicas) {
      if (!answer.status.ok() || FindReplica(shard, node_id) == nullptr) continue;
      lsn[node_id] = answer.last_lsn;
      if (node_id != old_leader) ++fenced;
    }
    const size_t needed = IntersectingCount(static_cast<size_t>(shard.replicas_size()));
    if (fenced < needed) {
      not_fenced = NotFenced(shard, *fence, old_leader);
      if (!request.accept_data_loss()) {
        return absl::UnavailableError(absl::StrCat(
            "shard ", request.shard(), ": only ", fenced, " of ", shard.replicas_size(),
            " replicas fenced at epoch ", fence->epoch, ", ", needed, " needed (not fenced: ",
            absl::StrJoin(not_fenced, ", "), "); a majority may still acknowledge writes of ",
            old_leader, ": pass accept_data_loss to promote anyway"));
      }
    }
  }
  const uint64_t target_lsn = lsn[request.node_id()];
  // The highest LSN of any other replica; ties go to the smallest id.
  std::string highest;
  for (const auto& [node_id, last_lsn] : lsn) {
    if (node_id == request.node_id()) continue;
    if (highest.empty() || last_lsn > lsn[highest]) highest = node_id;
  }
  PlacementChange change;
  if (!highest.empty() && lsn[highest] > target_lsn) {
    if (!request.accept_data_loss()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "promoting ", request.node_id(), " would discard LSNs (", target_lsn, ", ", lsn[highest],
          "] reported by ", highest, "; pass accept_data_loss to promote anyway"));
    }
    v1::LostRange* lost = change.add_lost();
    lost->set_shard(request.shard());
    lost->set_from_lsn(target_lsn);
    lost->set_to_lsn(lsn[highest]);
    lost->set_reported_by(highest);
  }
  *change.mutable_placement() = placement;
  ShardEntry* entry = MutableShard(change.mutable_placement(), request.shard());
  std::string why = "promote";
  if (change.lost_size() > 0) {
    why = absl::StrCat("promote, accepting loss of LSNs (", change.lost(0).from_lsn(), ", ",
                       change.lost(0).to_lsn(), "]");
  }
  change.add_summary(ChangeLeader(entry, request.node_id(), why));
  if (!not_fenced.empty()) {
    change.add_summary(absl::StrCat("shard ", request.shard(), ": too few fenced at epoch ",
                                    fence->epoch, "; not fenced: ", absl::StrJoin(not_fenced, ", "),
                                    " (accepted: they may still acknowledge writes of ", old_leader,
                                    " until they see this placement)"));
  }
  for (ReplicaEntry& replica : *entry->mutable_replicas()) {
    // A replica holding records the new leader lacks has diverged from it.
    if (replica.node_id() != request.node_id() && lsn[replica.node_id()] > target_lsn) {
      replica.set_in_sync(false);
    }
  }
  change.add_shards_changed(request.shard());
  return Finish(placement, std::move(change));
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
