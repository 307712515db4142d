// Majority commit for one replica of a shard: how far a majority of the
// shard's replicas hold the log durably (the commit LSN), the writes waiting
// for it, the leader's lease for LEADER_ONLY reads, and each follower's lag.
//
// It knows nothing of storage or gRPC: its owner (ShardReplica) tells it what
// this replica made durable, which replicas count, and what followers
// acknowledged; Release() says which waiting writes are now answered. Rules:
// - a write is committed once quorum = n/2 + 1 of the shard's n replicas hold
//   it durably (this one included);
// - a leader counts acknowledgements only from its epoch's first record on
//   (Raft's rule: never commit an older epoch's records by counting replicas);
// - a follower learns the commit LSN from its leader, capped at what it holds.
// Thread-safe.
#ifndef DASH_NODE_REPLICATION_QUORUM_TRACKER_H_
#define DASH_NODE_REPLICATION_QUORUM_TRACKER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace dash::replication {

// How far a follower trails its leader (the leader's view).
struct FollowerLag {
  std::string node_id;
  uint64_t acked_lsn = 0;
  uint64_t lag_records = 0;
  uint64_t lag_bytes = 0;
  double lag_seconds = 0;  // Age of the oldest record it lacks.
  bool in_sync = false;
};

struct QuorumOptions {
  uint32_t shard_id = 0;  // Named in error messages.
  // A write not held by a majority within this time is answered UNAVAILABLE
  // (its outcome unknown: the client retries with the same idempotency key).
  absl::Duration commit_timeout = absl::Seconds(5);
  // Answer a write once this replica holds it, without waiting for a majority.
  bool ack_leader_only = false;
  // A follower is in sync while it lacks at most this many records and its
  // oldest missing record is at most this old.
  uint64_t in_sync_max_lag_records = 10000;
  absl::Duration in_sync_max_lag = absl::Seconds(2);
  Clock* clock = Clock::Real();  // Waits, lag ages and the lease.
};

class QuorumTracker {
 public:
  // Runs once: OK when the write's LSN is committed, otherwise the error that
  // ended its wait. Run by the caller of Release(), never under a lock.
  using Done = std::function<void(absl::Status)>;
  struct Released {
    uint64_t commit_lsn = 0;
    std::vector<std::pair<Done, absl::Status>> answers;  // In the order they waited.
  };

  // `durable_lsn`: this replica's log end; `commit_lsn`: what it knows to be
  // committed (capped at durable_lsn); `leading`: whether it counts acks.
  QuorumTracker(QuorumOptions options, uint64_t durable_lsn, uint64_t commit_lsn, bool leading);

  QuorumTracker(const QuorumTracker&) = delete;
  QuorumTracker& operator=(const QuorumTracker&) = delete;

  // A new role. `replicas` are the shard's replicas (node ids) and `self` this
  // one: the others are the followers whose acks count, and a majority of all
  // of them commits (one or none: this replica alone). A leader counts acks
  // from `epoch_start_lsn` on. `new_leadership` (a leadership gained or
  // re-gained at another epoch) forgets every ack heard before: positions
  // reported to an earlier leader are no evidence for this one.
  void SetRole(bool leading, const std::vector<std::string>& replicas, const std::string& self,
               uint64_t epoch_start_lsn, bool new_leadership);
  // Fenced: acks no longer count (the commit LSN stays: it was committed).
  void StopLeading();

  // This replica's log now ends at `lsn`, durably (it may move back after a
  // truncation of an uncommitted suffix).
  void SetDurable(uint64_t lsn);
  // A leader wrote a commit group ending at `last_lsn` of `bytes` log bytes:
  // the marks behind followers' lag in bytes and seconds.
  void RecordGroup(uint64_t last_lsn, uint64_t bytes);
  // A write durable here at `lsn` waits for a majority.
  void Await(uint64_t lsn, Done done);
  // Moves the commit LSN as far as a majority holds (leading) and takes the
  // writes it answers: the committed ones (even when `fail_all` is set:
  // leadership being lost), all others with `fail_all` if set, and those
  // waiting longer than the commit timeout with UNAVAILABLE.
  [[nodiscard]] Released Release(const absl::Status& fail_all = absl::OkStatus());

  // Leader side: `follower` holds the log durably up to `durable_lsn`.
  // Release() then answers what a majority holds.
  void OnFollowerAck(const std::string& follower, uint64_t durable_lsn);
  // Follower side: the leader's commit LSN. Returns this replica's commit LSN
  // after it, or nullopt when this replica leads (its own count decides).
  std::optional<uint64_t> OnLeaderCommit(uint64_t commit_lsn);

  uint64_t commit_lsn() const;
  // The first LSN of the leader's epoch (0 before it led).
  uint64_t epoch_start_lsn() const;

  // LEADER_ONLY reads are served until the lease runs out; it only grows.
  void ExtendLease(absl::Time until);
  bool LeaseValid() const;

  // The leader's view of each follower (empty when not leading).
  std::vector<FollowerLag> FollowerLags() const;

 private:
  struct Waiting {
    uint64_t lsn;
    absl::Time since;
    Done done;
  };
  struct GroupMark {
    uint64_t lsn;
    uint64_t bytes;  // Log bytes up to and including the group.
    absl::Time at;
  };

  absl::Time Now() const { return absl::FromUnixMicros(options_.clock->NowMicros()); }

  const QuorumOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> acked_ ABSL_GUARDED_BY(mu_);  // Follower -> durable LSN.
  std::vector<std::string> followers_ ABSL_GUARDED_BY(mu_);     // Those that count.
  size_t quorum_ ABSL_GUARDED_BY(mu_) = 1;                      // Replicas needed.
  uint64_t durable_lsn_ ABSL_GUARDED_BY(mu_) = 0;               // This replica's.
  uint64_t commit_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_start_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time lease_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::deque<GroupMark> marks_ ABSL_GUARDED_BY(mu_);
  uint64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_QUORUM_TRACKER_H_
