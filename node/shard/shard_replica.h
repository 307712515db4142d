// One replica of one shard: the facade that ties its log, majority commit,
// read views and retrieval together under the write rules. It knows nothing
// of gRPC. Its parts, each with its own contract:
// - ReplicaLog (replica_log.h): records, undo, epoch history, metadata;
// - replication::QuorumTracker: acks, commit LSN, lease, follower lag;
// - ReadViews: the committed snapshot reads see;
// - ClaimReader and ShardSearcher: claim reads, query legs, fetch, caches.
// The write queue, the group commit (shard_replica.cc) and roles and
// fencing (shard_replica_roles.cc) are its own.
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
#include "node/shard/replica_types.h"
#include "node/shard/shard_searcher.h"
#include "node/shard/state_checksum.h"
#include "node/storage/engine.h"
#include "query/batch_validator.h"
#include "query/shard_target.h"

namespace dash::shard {

using replication::FollowerLag;

class ShardReplica {
 public:
  using WriteDone = std::function<void(absl::StatusOr<WriteResult>)>;

  // Opens the replica in options.dir, creating it (epoch 1, empty log) if
  // needed. Recovery is RocksDB's own: no index or state is rebuilt. Fails
  // with FAILED_PRECONDITION if the directory holds another shard.
  static absl::StatusOr<std::unique_ptr<ShardReplica>> Open(const ReplicaOptions& options);
  // Opens the replica stored in `engine` (options.dir only names it in
  // messages): for tests that hand it a fault-injecting engine.
  static absl::StatusOr<std::unique_ptr<ShardReplica>> Open(
      const ReplicaOptions& options, std::unique_ptr<storage::Engine> engine);

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
  // ShardSearcher::FetchHits.
  absl::StatusOr<std::map<std::string, v1::QueryHit>> FetchHits(
      absl::string_view tenant, const std::vector<std::string>& claim_ids,
      const query::FetchOptions& options) const;
  index::PrefilterCacheStats FilterCacheStats() const { return searcher_.FilterCacheStats(); }
  // The BM25 index's segments, and why it was rebuilt at open (or empty).
  index::LexicalStoreInfo LexicalInfo() const { return searcher_.LexicalInfo(); }
  absl::StatusOr<storage::StorageUsage> StorageUsage() const { return engine_->Usage(); }
  const std::string& lexical_status() const { return searcher_.lexical_status(); }
  // Flushes the BM25 index's committed documents into segments and runs the
  // merges that are due (the background thread does this on its own).
  absl::Status FlushLexical() { return searcher_.FlushLexical(); }

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
    // The batch's texts, analyzed by the writer's thread for the BM25 index.
    std::unique_ptr<index::AnalyzedTexts> analyzed;
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
  // claims it touched and queues a read view of it, which `changed` (the
  // claims whose state differs from the previous view's) goes with.
  void AfterCommit(const std::vector<std::pair<std::string, std::string>>& touched,
                   ReadViews::Touched changed,
                   const std::vector<const index::AnalyzedTexts*>& ahead = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
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
