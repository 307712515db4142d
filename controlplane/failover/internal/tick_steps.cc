#include "controlplane/failover/internal/tick_steps.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/failover/internal/planner_util.h"

namespace dash::controlplane::internal {
namespace {

using v1::NodeEntry;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

InSyncVerdict InSync() { return {InSyncVerdict::kInSync, ""}; }
InSyncVerdict OutOfSync(std::string why) { return {InSyncVerdict::kOutOfSync, std::move(why)}; }
InSyncVerdict KeepFlag() { return {InSyncVerdict::kKeepFlag, ""}; }

// What the leader's report says of `follower`: in sync only when it lists it
// in sync.
InSyncVerdict LeaderVerdict(const ReplicaEntry& leader, const v1::ReplicaReport& leader_report,
                            const std::string& follower) {
  const v1::FollowerLag* lag = nullptr;
  for (const v1::FollowerLag& f : leader_report.followers()) {
    if (f.node_id() == follower) lag = &f;
  }
  if (lag == nullptr) {
    return OutOfSync(absl::StrCat("not among leader ", leader.node_id(), "'s followers"));
  }
  if (lag->in_sync()) return InSync();
  return OutOfSync(absl::StrCat("leader ", leader.node_id(), " reports lag ", lag->lag_records(),
                                " records, ", lag->lag_bytes(), " bytes, ",
                                absl::SixDigits(lag->lag_seconds()), " s"));
}

// Whether the leader's latest report of the shard arrived after the
// follower's; true when the order is unknown (`order` null).
bool LeaderReportIsNewer(const ReportOrder* order, const ShardEntry& shard,
                         const std::string& follower) {
  if (order == nullptr) return true;
  auto mine = order->find({shard.shard(), follower});
  auto theirs = order->find({shard.shard(), shard.leader_node_id()});
  return mine != order->end() && theirs != order->end() && theirs->second > mine->second;
}

}  // namespace

void UpdateHealth(const std::map<std::string, bool>& alive, Placement* after,
                  PlacementChange* change) {
  for (NodeEntry& node : *after->mutable_nodes()) {
    auto it = alive.find(node.node_id());
    if (it == alive.end()) continue;
    const v1::NodeHealth health = it->second ? v1::NODE_HEALTH_HEALTHY : v1::NODE_HEALTH_UNHEALTHY;
    if (node.health() != health) {
      change->add_summary(absl::StrCat("node ", node.node_id(), ": ", HealthName(node.health()),
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
}

void RepairFencedEpochs(const std::set<uint32_t>& fencing, const ReportMap& reports,
                        Placement* after, PlacementChange* change) {
  for (ShardEntry& shard : *after->mutable_shards()) {
    const std::string& leader = shard.leader_node_id();
    if (leader.empty() || !IsHealthy(*after, leader) || fencing.count(shard.shard()) > 0) {
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
    change->add_summary(absl::StrCat(
        "shard ", shard.shard(), ": epoch ", shard.epoch(), " -> ", newest, ", leader ", leader,
        " kept (", absl::StrJoin(fenced, ","), " fenced by a failover that promoted nobody)"));
    shard.set_epoch(newest);
    shard.clear_transfer_to();
    change->add_shards_changed(shard.shard());
  }
}

InSyncVerdict JudgeInSync(const TickInput& input, const ReportMap& reports, const ShardEntry& shard,
                          const ReplicaEntry& follower) {
  if (follower.health() != v1::NODE_HEALTH_HEALTHY) return OutOfSync("node unhealthy");
  const ReplicaEntry* leader = FindReplica(shard, shard.leader_node_id());
  if (leader == nullptr) return OutOfSync("no leader");
  // Not heard since start: a restart must not forget who was in sync.
  if (input.heard.count(follower.node_id()) == 0) return KeepFlag();
  auto it = reports.find({shard.shard(), follower.node_id()});
  if (it == reports.end()) return OutOfSync("no report for the shard");
  const v1::ReplicaReport& report = it->second;
  if (report.diverged()) return OutOfSync("diverged");
  if (report.epoch() < shard.epoch()) {
    return OutOfSync(
        absl::StrCat("epoch ", shard.epoch(), " not yet adopted (at ", report.epoch(), ")"));
  }
  if (report.epoch() > shard.epoch()) {
    return OutOfSync(
        absl::StrCat("fenced at epoch ", report.epoch(), ", above the shard's ", shard.epoch()));
  }
  // A leader that reports followers decides which are in sync (its own
  // bounds on lag in records and seconds); one that reports none (an older
  // node) leaves it to the LSN rule.
  const v1::ReplicaReport* leader_report = nullptr;
  auto leader_it = reports.find({shard.shard(), leader->node_id()});
  if (leader_it != reports.end() && leader_it->second.followers_size() > 0) {
    leader_report = &leader_it->second;
  }
  const uint64_t leader_lsn = leader->last_lsn();
  if (report.last_lsn() > leader_lsn) {
    // Judged only against a leader report newer than the follower's, when
    // the order is known: the leader's log only grows.
    if (LeaderReportIsNewer(input.report_order, shard, follower.node_id())) {
      return OutOfSync("ahead of the leader: diverged");
    }
    // The leader's report predates records the follower since received
    // (ordinary under writes): the leader's own verdict, from the
    // follower's acknowledgements, decides.
    if (leader_report != nullptr) return LeaderVerdict(*leader, *leader_report, follower.node_id());
    return KeepFlag();
  }
  if (report.last_lsn() == leader_lsn && report.last_lsn() > 0 &&
      report.last_epoch() != leader->last_epoch()) {
    // Same LSN, another record (LSN 0: no record, nothing to differ).
    return OutOfSync(absl::StrCat("last epoch ", report.last_epoch(), " at the leader's LSN, ",
                                  "leader's ", leader->last_epoch(), ": diverged"));
  }
  if (leader_report != nullptr) return LeaderVerdict(*leader, *leader_report, follower.node_id());
  if (leader_lsn - report.last_lsn() > input.in_sync_max_lag_records) {
    return OutOfSync(
        absl::StrCat("lag ", leader_lsn - report.last_lsn(), " > ", input.in_sync_max_lag_records));
  }
  return InSync();
}

void UpdateInSync(const TickInput& input, const ReportMap& reports, Placement* after,
                  PlacementChange* change) {
  for (ShardEntry& shard : *after->mutable_shards()) {
    const ReplicaEntry* leader = FindReplica(shard, shard.leader_node_id());
    const uint64_t leader_lsn = leader != nullptr ? leader->last_lsn() : 0;
    for (ReplicaEntry& replica : *shard.mutable_replicas()) {
      if (replica.node_id() == shard.leader_node_id()) continue;  // The leader stays in sync.
      const InSyncVerdict verdict = JudgeInSync(input, reports, shard, replica);
      const bool in_sync = verdict.outcome == InSyncVerdict::kKeepFlag
                               ? replica.in_sync()
                               : verdict.outcome == InSyncVerdict::kInSync;
      if (in_sync == replica.in_sync()) continue;
      std::string line = absl::StrCat("shard ", shard.shard(), ": ", replica.node_id(),
                                      in_sync ? " in sync" : " out of sync");
      if (!in_sync) absl::StrAppend(&line, ": ", verdict.reason);
      absl::StrAppend(&line, " (last_lsn ", replica.last_lsn(), ", leader ", leader_lsn, ")");
      change->add_summary(std::move(line));
      replica.set_in_sync(in_sync);
    }
  }
}

void FailOverUnhealthyLeaders(const FenceMap* fences, const ReportMap& reports, Placement* after,
                              PlacementChange* change) {
  for (ShardEntry& shard : *after->mutable_shards()) {
    const std::string leader = shard.leader_node_id();
    if (leader.empty() || IsHealthy(*after, leader)) continue;
    absl::StatusOr<std::string> candidate =
        absl::FailedPreconditionError("not fenced");  // The caller fences first.
    if (fences != nullptr) {
      auto fence = fences->find(shard.shard());
      if (fence != fences->end()) {
        candidate = ChooseFencedLeader(*after, shard, reports, fence->second);
      }
    }
    if (!candidate.ok()) {
      // The leader stays: writes fail closed while it is unhealthy, and it
      // simply leads again if it comes back. A transfer cannot finish now.
      if (!shard.transfer_to().empty()) {
        change->add_summary(absl::StrCat("shard ", shard.shard(), ": transfer to ",
                                         shard.transfer_to(), " abandoned (leader ", leader,
                                         " unhealthy)"));
        shard.clear_transfer_to();
      }
      continue;
    }
    change->add_summary(ChangeLeader(&shard, *candidate,
                                     absl::StrCat("automatic failover: ", leader, " unhealthy")));
    MutableReplica(&shard, leader)->set_in_sync(false);
    change->add_shards_changed(shard.shard());
  }
}

void CompleteMoves(Placement* after, PlacementChange* change) {
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
    if (std::find(change->shards_changed().begin(), change->shards_changed().end(),
                  shard.shard()) == change->shards_changed().end()) {
      change->add_shards_changed(shard.shard());
    }
    change->add_summary(absl::StrCat("shard ", shard.shard(), ": move done, removed replica ", from,
                                     ", epoch ", old_epoch, " -> ", old_epoch + 1));
  }
}

void CreateIfPending(Placement* after, PlacementChange* change) {
  if (after->created()) return;
  Normalize(after);
  PlacementChange created = PlanCreation(*after);
  if (!created.placement().created()) return;
  *after = created.placement();
  for (uint32_t s : created.shards_changed()) change->add_shards_changed(s);
  for (const std::string& line : created.summary()) change->add_summary(line);
}

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

}  // namespace dash::controlplane::internal
