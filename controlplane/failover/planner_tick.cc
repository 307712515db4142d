#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/failover/internal/planner_util.h"
#include "controlplane/failover/planner.h"

namespace dash::controlplane {
namespace {

using internal::ChangeLeader;
using internal::Finish;
using internal::HealthName;
using internal::IsHealthy;
using internal::MutableReplica;
using internal::Normalize;
using v1::NodeEntry;
using v1::Placement;
using v1::PlacementChange;
using v1::ReplicaEntry;
using v1::ShardEntry;

}  // namespace

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

}  // namespace dash::controlplane
