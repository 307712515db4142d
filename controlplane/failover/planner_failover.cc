#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

}  // namespace dash::controlplane
