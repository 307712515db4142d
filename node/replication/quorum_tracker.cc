#include "node/replication/quorum_tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dash::replication {

QuorumTracker::QuorumTracker(QuorumOptions options, uint64_t durable_lsn, uint64_t commit_lsn,
                             bool leading)
    : options_(std::move(options)) {
  absl::MutexLock l(&mu_);
  durable_lsn_ = durable_lsn;
  commit_lsn_ = std::min(commit_lsn, durable_lsn);
  leading_ = leading;
}

void QuorumTracker::SetRole(bool leading, const std::vector<std::string>& replicas,
                            const std::string& self, uint64_t epoch_start_lsn,
                            bool new_leadership) {
  absl::MutexLock l(&mu_);
  followers_.clear();
  for (const std::string& n : replicas) {
    if (n != self) followers_.push_back(n);
  }
  quorum_ = replicas.size() <= 1 ? 1 : replicas.size() / 2 + 1;
  leading_ = leading;
  if (leading) epoch_start_lsn_ = epoch_start_lsn;
  if (new_leadership) {
    acked_.clear();
    marks_.clear();
    marks_.push_back(GroupMark{durable_lsn_, log_bytes_, Now()});
  }
}

void QuorumTracker::StopLeading() {
  absl::MutexLock l(&mu_);
  leading_ = false;
}

void QuorumTracker::SetDurable(uint64_t lsn) {
  absl::MutexLock l(&mu_);
  durable_lsn_ = lsn;
}

void QuorumTracker::RecordGroup(uint64_t last_lsn, uint64_t bytes) {
  absl::MutexLock l(&mu_);
  log_bytes_ += bytes;
  marks_.push_back(GroupMark{last_lsn, log_bytes_, Now()});
  // Bounded when followers stay away: the oldest marks only age the lag.
  if (marks_.size() > 100000) marks_.pop_front();
}

void QuorumTracker::Await(uint64_t lsn, Done done) {
  absl::MutexLock l(&mu_);
  waiting_.push_back(Waiting{lsn, Now(), std::move(done)});
}

QuorumTracker::Released QuorumTracker::Release(const absl::Status& fail_all) {
  Released out;
  absl::MutexLock l(&mu_);
  if (leading_) {
    std::vector<uint64_t> held = {durable_lsn_};
    for (const std::string& n : followers_) {
      auto it = acked_.find(n);
      held.push_back(it == acked_.end() ? 0 : std::min(it->second, durable_lsn_));
    }
    std::sort(held.rbegin(), held.rend());
    if (quorum_ <= held.size() && held[quorum_ - 1] >= epoch_start_lsn_) {
      commit_lsn_ = std::max(commit_lsn_, held[quorum_ - 1]);
    }
  }
  out.commit_lsn = commit_lsn_;
  const absl::Time expired = Now() - options_.commit_timeout;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->lsn <= commit_lsn_ || (options_.ack_leader_only && it->lsn <= durable_lsn_)) {
      // Committed: acknowledged even when leadership is being lost.
      out.answers.emplace_back(std::move(it->done), absl::OkStatus());
    } else if (!fail_all.ok()) {
      out.answers.emplace_back(std::move(it->done), fail_all);
    } else if (it->since < expired) {
      out.answers.emplace_back(
          std::move(it->done),
          absl::UnavailableError(absl::StrCat(
              "shard ", options_.shard_id, ": lsn ", it->lsn,
              " is durable on the leader but was not acknowledged by a majority of the ",
              followers_.size() + 1, " replicas within ",
              absl::FormatDuration(options_.commit_timeout),
              "; its outcome is unknown: retry with the same idempotency key")));
    } else {
      ++it;
      continue;
    }
    it = waiting_.erase(it);
  }
  return out;
}

void QuorumTracker::OnFollowerAck(const std::string& follower, uint64_t durable_lsn) {
  absl::MutexLock l(&mu_);
  uint64_t& acked = acked_[follower];
  acked = std::max(acked, durable_lsn);
  // Group marks every follower is past are no longer needed for lag.
  uint64_t min_acked = durable_lsn_;
  for (const std::string& n : followers_) {
    auto it = acked_.find(n);
    min_acked = std::min(min_acked, it == acked_.end() ? 0 : it->second);
  }
  while (marks_.size() > 1 && marks_[1].lsn <= min_acked) marks_.pop_front();
}

std::optional<uint64_t> QuorumTracker::OnLeaderCommit(uint64_t commit_lsn) {
  absl::MutexLock l(&mu_);
  if (leading_) return std::nullopt;
  // Only what this replica holds: its log matched the leader's up to there.
  commit_lsn_ = std::max(commit_lsn_, std::min(commit_lsn, durable_lsn_));
  return commit_lsn_;
}

uint64_t QuorumTracker::commit_lsn() const {
  absl::MutexLock l(&mu_);
  return commit_lsn_;
}

uint64_t QuorumTracker::epoch_start_lsn() const {
  absl::MutexLock l(&mu_);
  return epoch_start_lsn_;
}

void QuorumTracker::ExtendLease(absl::Time until) {
  absl::MutexLock l(&mu_);
  lease_until_ = std::max(lease_until_, until);
}

bool QuorumTracker::LeaseValid() const {
  absl::MutexLock l(&mu_);
  return Now() < lease_until_;
}

std::vector<FollowerLag> QuorumTracker::FollowerLags() const {
  std::vector<FollowerLag> out;
  absl::MutexLock l(&mu_);
  if (!leading_) return out;
  const absl::Time now = Now();
  for (const std::string& n : followers_) {
    FollowerLag lag;
    lag.node_id = n;
    auto it = acked_.find(n);
    lag.acked_lsn = it == acked_.end() ? 0 : std::min(it->second, durable_lsn_);
    lag.lag_records = durable_lsn_ - lag.acked_lsn;
    if (lag.lag_records > 0) {
      // The first group holding a record the follower lacks.
      auto mark = std::lower_bound(marks_.begin(), marks_.end(), lag.acked_lsn + 1,
                                   [](const GroupMark& m, uint64_t lsn) { return m.lsn < lsn; });
      if (mark != marks_.end()) {
        lag.lag_seconds = absl::ToDoubleSeconds(now - mark->at);
        // Bytes of the records after the acked one (whole groups).
        const uint64_t before = mark == marks_.begin() ? 0 : std::prev(mark)->bytes;
        lag.lag_bytes = log_bytes_ - std::min(log_bytes_, before);
      }
    }
    lag.in_sync = lag.lag_records <= options_.in_sync_max_lag_records &&
                  lag.lag_seconds <= absl::ToDoubleSeconds(options_.in_sync_max_lag);
    out.push_back(std::move(lag));
  }
  return out;
}

}  // namespace dash::replication
