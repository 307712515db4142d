// One replica of one shard: the core that ties storage, the log and the
// write rules together. It knows nothing of gRPC.
//
// Writes are queued and committed by one commit thread in groups: each client
// batch becomes one log record with its own LSN, every record of a group and
// all their state changes go into one atomic storage commit, synced before any
// of them is acknowledged (group commit). Reads use storage snapshots and may
// run concurrently from any thread. ShardReplica is thread-safe.
#ifndef DASH_NODE_SHARD_SHARD_REPLICA_H_
#define DASH_NODE_SHARD_SHARD_REPLICA_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dash/v1/data.pb.h"
#include "node/index/prefilter_cache.h"
#include "node/replication/quorum_tracker.h"
#include "node/shard/claim_reader.h"
#include "node/shard/read_views.h"
#include "node/shard/replica_log.h"
#include "node/shard/shard_searcher.h"
#include "node/storage/engine.h"
#include "query/batch_validator.h"
#include "query/shard_target.h"

namespace dash::shard {

struct ReplicaOptions {
  std::string node_id;  // The hosting node, named in read tokens.
  // Under a control plane: refuse writes until AdoptRole names this replica
  // leader. Otherwise the replica leads from the start.
  bool managed = false;
  uint32_t shard_id = 0;
  uint32_t shard_count = 1;
  std::string dir;  // The replica's RocksDB directory.
  // Keep at least this many most recent log records; 0 keeps the whole log.
  uint64_t log_retention_records = 1000000;
  // Sync each group commit to stable storage before acknowledging. Turning it
  // off risks losing acknowledged writes on a machine crash (not on a
  // process crash); only for tests and benchmarks that say so.
  bool sync = true;
  size_t max_pending_writes = 10000;  // Beyond this, RESOURCE_EXHAUSTED.
  size_t max_group_writes = 512;      // Batches per group commit.
  query::Limits limits;
  // A write not held by a majority within this time is answered UNAVAILABLE
  // (its outcome unknown: retry with the same idempotency key).
  absl::Duration commit_timeout = absl::Seconds(5);
  // The weaker, explicit `leader` ack mode: a leader answers a write once it
  // holds it durably itself, without waiting for a majority. A write so
  // acknowledged is lost if the leader dies before a follower has it. Reads
  // still see only majority-committed state.
  bool ack_leader_only = false;
  // A leader counts a follower in sync while it lacks at most this many
  // records and its oldest missing record is at most this old.
  uint64_t in_sync_max_lag_records = 10000;
  absl::Duration in_sync_max_lag = absl::Seconds(2);
  // An idempotency key is remembered for at least this long after its batch
  // committed; a retry after that applies the batch again. Each new record
  // removes a few expired ones (see LogPayload.idempotency_expire_before_micros).
  // InfiniteDuration (or zero) remembers keys forever.
  absl::Duration idempotency_ttl = absl::Hours(24);
  storage::EngineOptions engine;
  Clock* clock = Clock::Real();
};

struct WriteResult {
  v1::CommitToken token;
  int64_t commit_time_micros = 0;
  bool replayed = false;
};

// Who may write to a replica. A standalone replica leads at the epoch stored
// with it; under a control plane the role follows the placement table.
struct Role {
  bool leader = true;
  uint64_t epoch = 0;  // The shard's routing epoch.
  std::string leader_node_id;
  std::string leader_address;
  // Planned leadership transfer: the leader refuses writes (UNAVAILABLE) so
  // that its log stops growing and the target can catch up.
  bool writes_paused = false;
  // Every replica of the shard (node ids, this one included). A leader
  // acknowledges a write once a majority of them hold it durably; empty or one
  // replica: once this replica holds it.
  std::vector<std::string> replicas;
  std::string self_node_id;
};

struct ReplicaState {
  uint32_t shard_id = 0;
  uint64_t epoch = 0;       // Adopted routing epoch.
  uint64_t last_epoch = 0;  // Epoch of the last log record.
  uint64_t last_lsn = 0;
  uint64_t log_start_lsn = 0;  // 0 when the log is empty.
  uint64_t commit_lsn = 0;     // Known to be held by a majority.
  // Reads see the state as of this LSN: the newest committed one this
  // replica holds. 0 with readable false while it waits to learn it.
  uint64_t read_lsn = 0;
  bool readable = true;
  bool leader = true;
  bool writes_paused = false;
  std::string leader_node_id;
  std::string leader_address;
};

// A digest of a replica's state (everything but its log and metadata) as of
// one LSN: replicas at the same LSN must agree.
struct StateChecksum {
  uint64_t last_lsn = 0;
  uint64_t last_epoch = 0;
  std::string sha256;  // Hex.
  uint64_t keys = 0;
};

using replication::FollowerLag;

class ShardReplica {
 public:
  using WriteDone = std::function<void(absl::StatusOr<WriteResult>)>;

  // Opens the replica in options.dir, creating it (epoch 1, empty log) if
  // needed. Recovery is RocksDB's own: no index or state is rebuilt. Fails
  // with FAILED_PRECONDITION if the directory holds another shard.
  static absl::StatusOr<std::unique_ptr<ShardReplica>> Open(const ReplicaOptions& options);

  // Stops the commit thread; queued writes fail with UNAVAILABLE.
  ~ShardReplica();

  ShardReplica(const ShardReplica&) = delete;
  ShardReplica& operator=(const ShardReplica&) = delete;

  // Queues a batch. `done` runs exactly once, on the commit thread or (for
  // validation errors) on the caller's, with the commit token once the batch
  // is durable, or with INVALID_ARGUMENT (nothing applied), FAILED_PRECONDITION
  // (stale expected_epoch; carries a RoutingHint), RESOURCE_EXHAUSTED (queue
  // full) or UNAVAILABLE (shutting down or storage failure). `done` must not
  // block.
  void Write(v1::WriteRequest request, WriteDone done);
  // Write() of a batch the caller has already validated with this replica's
  // limits (ReplicaOptions::limits) and found to belong to this shard: a
  // node validates each batch once (ShardHost::Write).
  void WriteValidated(v1::WriteRequest request, WriteDone done);
  // Write() and wait for the result.
  absl::StatusOr<WriteResult> WriteAndWait(v1::WriteRequest request);

  // The claim with its evidence and outgoing edges. NOT_FOUND if absent.
  // With `evidence_page_size` > 0, at most that many pieces of evidence whose
  // id is after `evidence_after`, and `more` set (when non-null) if others
  // follow.
  absl::StatusOr<v1::GetClaimResponse> GetClaim(absl::string_view tenant,
                                                absl::string_view claim_id,
                                                size_t evidence_page_size = 0,
                                                absl::string_view evidence_after = "",
                                                bool* more = nullptr) const;
  // Up to `limit` claims of `tenant` with claim_id > `start_after`.
  absl::StatusOr<ListPage> ListClaims(absl::string_view tenant, absl::string_view start_after,
                                      size_t limit, bool include_evidence) const;

  // This replica's BM25 corpus statistics for analyzed query `terms`.
  absl::StatusOr<index::CorpusStats> LexicalStats(absl::string_view tenant,
                                                  const std::vector<std::string>& terms) const;
  // Runs the lexical and vector legs of a query on one snapshot, each
  // restricted to the claims that satisfy the filter (computed through the
  // prefilter cache). INVALID_ARGUMENT if the embedding does not fit the
  // tenant's dimension.
  absl::StatusOr<query::LegResult> RunLegs(absl::string_view tenant,
                                           const query::LegRequest& request) const;
  // One hit with its evidence as `options` select it; every returned quote is
  // checked against its stored hash. NOT_FOUND if the claim is gone.
  absl::StatusOr<v1::QueryHit> FetchHit(absl::string_view tenant, absl::string_view claim_id,
                                        const query::FetchOptions& options) const;
  index::PrefilterCacheStats FilterCacheStats() const { return searcher_.FilterCacheStats(); }

  ReplicaState State() const;
  // The state's digest on one snapshot: SHA-256 over every key and value of
  // the data and index families, in order.
  absl::StatusOr<StateChecksum> Checksum() const;

  // Adopts a role at `role.epoch`, persisting the epoch first. After it
  // returns, no commit group runs under the previous role. An epoch older than
  // the adopted one is refused (FAILED_PRECONDITION): placement never goes back.
  absl::Status AdoptRole(const Role& role);
  // Checks a caller's routing epoch (0: any) against the adopted one, with a
  // RoutingHint when they differ: FAILED_PRECONDITION when the caller's is
  // older (it must refresh its placement), and — under a control plane —
  // UNAVAILABLE when it is newer (this replica has yet to apply that
  // placement: retry). Writes follow the same rule, and a managed replica
  // that knows no leader yet refuses writes UNAVAILABLE too.
  absl::Status CheckEpoch(uint64_t expected_epoch) const;
  // A follower holds this replica's log durably up to `durable_lsn` (leader
  // side of majority commit). Acknowledges the writes a majority now holds.
  void OnFollowerAck(const std::string& follower, uint64_t durable_lsn);
  // Waits until last_lsn >= lsn, or commit_lsn moves past `commit_lsn`, or
  // the timeout passes; returns last_lsn.
  uint64_t WaitForLsn(uint64_t lsn, absl::Duration timeout, uint64_t commit_lsn = UINT64_MAX) const;
  // A follower learns its leader's commit LSN: reads may now see state up to
  // min(commit_lsn, last_lsn).
  void OnLeaderCommit(uint64_t commit_lsn);
  // The leader's view of each follower (empty on a follower).
  std::vector<FollowerLag> FollowerLags() const;

  // Fencing: adopts and persists `epoch` (refusing an older one,
  // FAILED_PRECONDITION, and one more than 1000 above the adopted epoch,
  // INVALID_ARGUMENT: no control plane issues it, and it could wedge the
  // shard) without a leader, so that nothing of an older epoch is applied or
  // acknowledged any more. A fence that promoted nobody is undone by the
  // control plane's epoch repair (the shard moves to the fenced epoch, same
  // leader). Returns the state after it.
  absl::StatusOr<ReplicaState> Fence(uint64_t epoch);

  // Leadership lease (managed replicas): LEADER_ONLY reads are served until
  // `until`. A replica that is not leader, or whose lease ran out, refuses
  // them (FAILED_PRECONDITION / UNAVAILABLE).
  void SetLeaseUntil(absl::Time until);
  absl::Status CheckLeaderRead() const;

  // Epoch history: epoch -> LSN of its first record in this replica's log.
  std::map<uint64_t, uint64_t> EpochHistory() const;
  // Leader side of divergence repair (KIP-279): the largest epoch <=
  // `requested_epoch` in this replica's history and the LSN of its last
  // record here; (0, 0) when there is none.
  std::pair<uint64_t, uint64_t> EpochEndOffset(uint64_t requested_epoch) const;
  // Follower side: the LSN to truncate this replica's log to, given the
  // leader's answer for this replica's last epoch.
  uint64_t DivergencePoint(uint64_t leader_epoch, uint64_t leader_end_lsn) const;
  // Removes the log records after `lsn` and undoes their state changes, as
  // one atomic commit. FAILED_PRECONDITION if that would remove a record
  // known to be committed, or one whose undo is gone (a snapshot is needed).
  absl::Status TruncateLogAfter(uint64_t lsn);

  // Reads the encoded log record at `lsn`. NOT_FOUND if retention removed it
  // or it was never written.
  absl::StatusOr<std::string> ReadLogRecord(uint64_t lsn) const;

  // Applies an encoded log record of any supported version as the next entry
  // of this replica's log (replay, and followers). FAILED_PRECONDITION unless
  // record.lsn == last_lsn + 1 and its epoch is not older than the last
  // record's; DATA_LOSS on a corrupt record. A record of a newer epoch than
  // the adopted one advances the adopted epoch.
  absl::Status ApplyEncodedRecord(absl::string_view encoded);
  // Applies consecutive records as one atomic storage commit (one sync): how
  // a follower keeps up with a leader that group-commits. All or none. With
  // `stream_epoch` (a follower pulling from the leader of that epoch),
  // FAILED_PRECONDITION once the replica adopted another epoch (fenced).
  absl::Status ApplyEncodedRecords(const std::vector<std::string>& encoded,
                                   uint64_t stream_epoch = 0);

  // Writes a consistent copy of the whole replica (state, log, metadata) into
  // `dir`, which must not exist, between two commits. Returns the replica's
  // log end in the copy (last_lsn, last_epoch).
  absl::StatusOr<std::pair<uint64_t, uint64_t>> CreateCheckpoint(const std::string& dir);

  uint32_t shard_id() const { return options_.shard_id; }

 private:
  struct Pending {
    v1::WriteRequest request;
    std::string digest;
    WriteDone done;
  };

  ShardReplica(const ReplicaOptions& options, std::unique_ptr<storage::Engine> engine,
               ReplicaLog log);
  void CommitLoop();
  void CommitGroup(std::vector<Pending> group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Why `request` may not be written now under role_ at `epoch` (with a
  // RoutingHint), or OK.
  absl::Status Refusal(const v1::WriteRequest& request, uint64_t epoch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // After a storage commit that moved the log end (or back, by truncation):
  // publishes it, applies retention, refreshes the searcher's caches for the
  // claims it touched and queues a read view of it.
  void AfterCommit(const std::vector<std::pair<std::string, std::string>>& touched,
                   std::set<std::string> tenants) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Answers the waiting writes the quorum now commits (all of them with
  // `fail_all` if set, except the committed ones), after the read view moved.
  void ReleaseCommitted(const absl::Status& fail_all = absl::OkStatus());
  // Makes the newest view the commit LSN reaches readable.
  void AdvanceReadView();
  // Appends the epoch_start record of a leader's new epoch.
  absl::Status WriteEpochStart() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Publishes the log's end and epoch to state_ and the quorum tracker.
  void PublishLog() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // Constant after construction.
  const ReplicaOptions options_;
  const std::unique_ptr<storage::Engine> engine_;
  const ClaimReader reader_;

  // Thread-safe components (their locks are leaves: taken after any of ours).
  replication::QuorumTracker quorum_;  // Acks, commit LSN, lease, lag.
  ReadViews views_;                    // What reads see.
  ShardSearcher searcher_;             // Legs, fetch, vector and filter caches.

  // Serializes everything that changes the replica: the commit thread's
  // groups, followers' appends, truncation, roles and fencing.
  mutable absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  ReplicaLog log_ ABSL_GUARDED_BY(write_mu_);
  Role role_ ABSL_GUARDED_BY(write_mu_);

  // The write queue, and copies of the log's and role's state for State()
  // without write_mu_.
  mutable absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  ReplicaState state_ ABSL_GUARDED_BY(mu_);

  std::thread commit_thread_;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_SHARD_REPLICA_H_
