// ShardReplica's roles: who may write (the refusals of the commit path),
// adopting a role from the placement, fencing, and the checks reads and
// writes make against the adopted epoch and the leader's lease. See
// shard_replica.h for the contracts.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/shard/shard_replica.h"

namespace dash::shard {
namespace {

// How far above its adopted epoch a replica may be fenced (see Fence).
constexpr uint64_t kMaxFenceJump = 1000;

// Where a refused caller should go: the shard's epoch and leader as `s` has them.
v1::RoutingHint HintOf(uint32_t shard, const ReplicaState& s) {
  v1::RoutingHint h;
  h.set_shard(shard);
  h.set_current_epoch(s.epoch);
  h.set_leader_node_id(s.leader_node_id);
  h.set_leader_address(s.leader_address);
  return h;
}

}  // namespace

absl::Status ShardReplica::Refusal(const v1::WriteRequest& req, uint64_t epoch) const {
  absl::Status st;
  if (options_.managed && req.expected_epoch() > epoch) {
    // The caller saw a newer placement than this replica has applied yet
    // (just opened, or its placement watch is a moment behind): transient.
    st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": this replica has not yet adopted epoch ",
                     req.expected_epoch(), " (it is at ", epoch, "); retry"));
  } else if (!role_.leader && options_.managed && role_.leader_node_id.empty()) {
    // No role adopted yet (just opened), or the shard has no leader now:
    // both pass; the caller retries.
    st = absl::UnavailableError(absl::StrCat("shard ", options_.shard_id,
                                             ": this replica knows no leader at epoch ", epoch,
                                             " yet; retry"));
  } else if (!role_.leader) {
    st = absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard_id, ": this replica is a follower at epoch ", epoch,
        role_.leader_node_id.empty() ? "; the shard has no leader"
                                     : absl::StrCat("; the leader is ", role_.leader_node_id)));
  } else if (role_.writes_paused) {
    st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": leadership transfer in progress; retry"));
  } else if (req.expected_epoch() != 0 && req.expected_epoch() != epoch) {
    st =
        absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id, ": expected epoch ",
                                                   req.expected_epoch(), ", current ", epoch));
  } else {
    return absl::OkStatus();
  }
  v1::RoutingHint h;
  h.set_shard(options_.shard_id);
  h.set_current_epoch(epoch);
  h.set_leader_node_id(role_.leader_node_id);
  h.set_leader_address(role_.leader_address);
  SetRoutingHint(st, h);
  return st;
}

absl::Status ShardReplica::AdoptRole(const Role& role) {
  absl::MutexLock wl(&write_mu_);
  if (role.epoch < log_.meta().epoch()) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id, ": epoch ",
                                                      role.epoch, " is older than the adopted ",
                                                      log_.meta().epoch()));
  }
  DASH_RETURN_IF_ERROR(log_.PersistEpoch(role.epoch));
  PublishLog();
  // A leader's log holds a record of its epoch before anything counts toward
  // its commit LSN (and the epoch history records where the epoch starts).
  if (role.leader && log_.meta().last_epoch() < role.epoch) DASH_RETURN_IF_ERROR(WriteEpochStart());
  const bool changed = role.leader != role_.leader || role.epoch != role_.epoch ||
                       role.writes_paused != role_.writes_paused ||
                       role.leader_node_id != role_.leader_node_id;
  const bool gained_leadership = role.leader && (!role_.leader || role.epoch != role_.epoch);
  const bool lost_leadership = role_.leader && !role.leader;
  role_ = role;
  uint64_t epoch_start = 0;
  if (role.leader) {
    auto start = log_.epochs().find(role.epoch);
    epoch_start = start == log_.epochs().end() ? log_.meta().last_lsn() + 1 : start->second;
  }
  quorum_.SetRole(role.leader, role.replicas, role.self_node_id, epoch_start, gained_leadership);
  if (lost_leadership) {
    ReleaseCommitted(absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id, ": this replica stopped leading (epoch ", role.epoch,
        ") before a majority acknowledged the write; its outcome is unknown: retry with the "
        "same idempotency key")));
  } else if (role.leader) {
    ReleaseCommitted();
  }
  if (changed) {
    LOG(INFO) << "shard " << options_.shard_id << ": "
              << (role.leader ? (role.writes_paused ? "leader (writes paused)" : "leader")
                              : "follower")
              << " at epoch " << role.epoch << ", leader "
              << (role.leader_node_id.empty() ? "none" : role.leader_node_id) << ", last lsn "
              << log_.meta().last_lsn();
  }
  absl::MutexLock l(&mu_);
  state_.epoch = log_.meta().epoch();
  state_.leader = role.leader;
  state_.writes_paused = role.writes_paused;
  state_.leader_node_id = role.leader_node_id;
  state_.leader_address = role.leader_address;
  return absl::OkStatus();
}

absl::StatusOr<ReplicaState> ShardReplica::Fence(uint64_t epoch) {
  {
    absl::MutexLock wl(&write_mu_);
    if (epoch < log_.meta().epoch()) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard_id, ": cannot fence epoch ", epoch,
                       ": the replica adopted epoch ", log_.meta().epoch()));
    }
    if (epoch - log_.meta().epoch() > kMaxFenceJump) {
      // The control plane fences at the shard's epoch + 1, and a replica
      // trails the table by a few epochs at most; an epoch far above could
      // only wedge the shard (2^64 - 1 leaves no epoch to move on to).
      return absl::InvalidArgumentError(
          absl::StrCat("epoch: ", epoch, " is more than ", kMaxFenceJump,
                       " above the epoch this replica adopted (", log_.meta().epoch(),
                       "); the control plane fences at the shard's epoch + 1"));
    }
    DASH_RETURN_IF_ERROR(log_.PersistEpoch(epoch));
    PublishLog();
    if (epoch > role_.epoch) {
      const bool was_leader = role_.leader;
      role_.epoch = epoch;
      role_.leader = false;
      role_.writes_paused = false;
      role_.leader_node_id.clear();
      role_.leader_address.clear();
      quorum_.StopLeading();
      if (was_leader) {
        LOG(WARNING) << "shard " << options_.shard_id << ": fenced at epoch " << epoch
                     << ": no longer leading";
        ReleaseCommitted(absl::UnavailableError(absl::StrCat(
            "shard ", options_.shard_id, ": this replica was fenced (epoch ", epoch,
            ") before a majority acknowledged the write; its outcome is unknown: retry with "
            "the same idempotency key")));
      }
      absl::MutexLock l(&mu_);
      state_.leader = false;
      state_.writes_paused = false;
      state_.leader_node_id.clear();
      state_.leader_address.clear();
    }
  }
  return State();
}

void ShardReplica::SetLeaseUntil(absl::Time until) { quorum_.ExtendLease(until); }

absl::Status ShardReplica::CheckLeaderRead() const {
  if (!options_.managed) return absl::OkStatus();
  const ReplicaState state = State();
  const v1::RoutingHint h = HintOf(options_.shard_id, state);
  if (!state.leader) {
    // Between leaders (fenced, the new one not yet named) the caller retries;
    // with a leader named elsewhere it must refresh its placement.
    absl::Status st =
        state.leader_node_id.empty()
            ? absl::UnavailableError(absl::StrCat("shard ", options_.shard_id,
                                                  ": LEADER_ONLY read while this replica knows no "
                                                  "leader at epoch ",
                                                  state.epoch, " yet; retry"))
            : absl::FailedPreconditionError(
                  absl::StrCat("shard ", options_.shard_id,
                               ": LEADER_ONLY read at a replica that does not lead"));
    SetRoutingHint(st, h);
    return st;
  }
  if (state.writes_paused) {
    absl::Status st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": leadership transfer in progress; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  if (views_.ReadableLsn() < quorum_.epoch_start_lsn()) {
    // Until its own epoch's first record is committed and readable, a new
    // leader's reads may miss writes the previous one acknowledged.
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id, ": the new leader has not yet committed its epoch; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  if (!quorum_.LeaseValid()) {
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id,
        ": the leader's lease has run out (the control plane has not confirmed it lately); "
        "LEADER_ONLY reads wait for it; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  return absl::OkStatus();
}

absl::Status ShardReplica::CheckEpoch(uint64_t expected_epoch) const {
  absl::MutexLock l(&mu_);
  if (expected_epoch == 0 || expected_epoch == state_.epoch) return absl::OkStatus();
  absl::Status st =
      options_.managed && expected_epoch > state_.epoch
          ? absl::UnavailableError(absl::StrCat(
                "shard ", options_.shard_id, ": this replica has not yet adopted epoch ",
                expected_epoch, " (it is at ", state_.epoch, "); retry"))
          : absl::FailedPreconditionError(
                absl::StrCat("shard ", options_.shard_id, ": expected epoch ", expected_epoch,
                             ", this replica is at epoch ", state_.epoch));
  SetRoutingHint(st, HintOf(options_.shard_id, state_));
  return st;
}

}  // namespace dash::shard
