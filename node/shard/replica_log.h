// A replica's log and the metadata that goes with it (node/storage/
// log_format.md, key_layout.md): the records, one per committed batch; each
// record's undo, the before-image of what it changed, kept until the record
// is known committed so that a diverged suffix can be truncated; the epoch
// history (epoch -> LSN of its first record); and the shard metadata (adopted
// epoch, log end, commit LSN as last written).
//
// A record commits atomically with the state changes it logs: the caller
// stages both into one WriteSet (BeginAppend, LogAppend::Add, Seal), commits
// it, and then tells the log (Committed). Epoch changes, truncation and
// retention commit on their own.
//
// Thread-compatible: the owner serializes every call that changes it
// (ShardReplica holds its write lock).
#ifndef DASH_NODE_SHARD_REPLICA_LOG_H_
#define DASH_NODE_SHARD_REPLICA_LOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "node/storage/engine.h"
#include "node/storage/log_record.h"
#include "node/storage/records.pb.h"

namespace dash::shard {

// Log records staged into one WriteSet, to be committed together.
class LogAppend {
 public:
  // Stages `record` (encoded as `encoded`; the undo of the state changes it
  // logs as `undo`) as the next entry. REQUIRES: record.lsn == last_lsn() + 1
  // and record.epoch >= last_epoch() (the caller checks: ReplicaLog trusts it).
  void Add(const storage::LogRecord& record, std::string encoded, std::string undo);

  bool empty() const { return added_ == 0; }
  uint64_t last_lsn() const { return meta_.last_lsn(); }
  uint64_t last_epoch() const { return meta_.last_epoch(); }
  uint64_t bytes() const { return bytes_; }  // Encoded record bytes staged.

 private:
  friend class ReplicaLog;
  LogAppend(storage::WriteSet* ws, storage::ShardMeta meta, uint64_t known_last_epoch)
      : ws_(ws), meta_(std::move(meta)), known_last_epoch_(known_last_epoch) {}

  storage::WriteSet* ws_;
  storage::ShardMeta meta_;  // After the staged records.
  uint64_t known_last_epoch_;
  std::map<uint64_t, uint64_t> new_epochs_;
  uint64_t first_lsn_ = 0;
  size_t added_ = 0;
  uint64_t bytes_ = 0;
};

class ReplicaLog {
 public:
  // Opens the log of the replica stored in `engine` (which must outlive it),
  // creating a new replica's metadata (epoch 1, `index_format`) when there is
  // none. FAILED_PRECONDITION if the engine holds another shard (`dir` names
  // it in the message); DATA_LOSS if the metadata or epoch history is corrupt.
  static absl::StatusOr<ReplicaLog> Open(storage::Engine* engine, uint32_t shard_id,
                                         uint32_t shard_count, const std::string& dir,
                                         uint32_t index_format);

  const storage::ShardMeta& meta() const { return meta_; }
  // The first retained record's LSN; 0 when the log is empty.
  uint64_t log_start_lsn() const { return log_start_lsn_; }
  const std::map<uint64_t, uint64_t>& epochs() const { return epochs_; }

  // Appending: stage records into `ws` (which must outlive the append), then
  // Seal with the commit LSN to persist, commit `ws`, and call Committed.
  LogAppend BeginAppend(storage::WriteSet* ws) const;
  // Puts the metadata after the staged records (with `commit_lsn`, capped at
  // the new log end) into the write set. REQUIRES: !append.empty().
  void Seal(LogAppend* append, uint64_t commit_lsn) const;
  // The append's write set is committed: the log ends with it.
  void Committed(const LogAppend& append);

  // Persists `epoch` as the adopted epoch if newer (before acting on it: after
  // a restart the replica still refuses callers of older epochs).
  absl::Status PersistEpoch(uint64_t epoch);
  // Adopts metadata its caller committed itself (index migration).
  void AdoptMeta(const storage::ShardMeta& meta) { meta_ = meta; }

  // Removes the records after `lsn` and undoes their state changes, as one
  // synced commit, and adds the (tenant, claim id) pairs they touched to
  // `touched`. FAILED_PRECONDITION if that would remove a record at or below
  // `commit_lsn`, or one whose undo is gone (the replica needs a snapshot).
  absl::Status TruncateAfter(uint64_t lsn, uint64_t commit_lsn,
                             std::vector<std::pair<std::string, std::string>>* touched);
  // Retention: deletes records so that the newest `keep` remain (0 keeps all),
  // in steps of at least keep / 8. True if the log start moved.
  bool MaybeTruncate(uint64_t keep);
  // Drops the undo of records up to `commit_lsn` (amortized: once 1,024 more
  // are committed).
  void MaybeDropUndo(uint64_t commit_lsn);

  // The largest epoch <= `requested_epoch` in the history and the LSN of its
  // last record here; (0, 0) when there is none (KIP-279, leader side).
  std::pair<uint64_t, uint64_t> EpochEndOffset(uint64_t requested_epoch) const;
  // The LSN to truncate this log to, given the leader's answer for this
  // log's last epoch (follower side).
  uint64_t DivergencePoint(uint64_t leader_epoch, uint64_t leader_end_lsn) const;

  // The shard metadata stored in `r` (empty for a new replica). DATA_LOSS if
  // it does not parse.
  static absl::StatusOr<storage::ShardMeta> MetaOf(const storage::Reader& r);
  // The encoded record at `lsn` on a fresh snapshot of `engine`. NOT_FOUND if
  // retention removed it or it was never written. Needs no serialization.
  static absl::StatusOr<std::string> ReadRecord(storage::Engine& engine, uint64_t lsn);

 private:
  ReplicaLog(storage::Engine* engine, storage::ShardMeta meta, uint64_t log_start_lsn,
             std::map<uint64_t, uint64_t> epochs)
      : engine_(engine),
        meta_(std::move(meta)),
        log_start_lsn_(log_start_lsn),
        epochs_(std::move(epochs)) {}

  storage::Engine* engine_;
  storage::ShardMeta meta_;  // As last committed.
  uint64_t log_start_lsn_ = 0;
  std::map<uint64_t, uint64_t> epochs_;
  uint64_t undo_dropped_to_ = 0;  // Undo <= this is gone.
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_REPLICA_LOG_H_
