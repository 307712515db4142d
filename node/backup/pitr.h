// Point-in-time restore: which backup, and which archived log records
// (log_archive.h) after its cut, rebuild a cluster as of a target.
//
// A target is resolved per shard into the LSN to restore to (a commit token):
// `dashctl restore` plans with any target (a time, tokens, the archive's end)
// and prints the servers' --restore_to as exact tokens, so that the control
// plane and every node, which each plan again from the same repository,
// restore to the same records whatever the archiver appends meanwhile.
#ifndef DASH_NODE_BACKUP_PITR_H_
#define DASH_NODE_BACKUP_PITR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "node/backup/repository.h"

namespace dash::backup {

struct RestoreTarget {
  enum class Kind {
    kBackup,  // The backup's cut: no archived record.
    kEnd,     // Every record archived.
    kTime,    // The records committed at or before `time`.
    kTokens,  // Per shard in `tokens` up to that record; other shards: kEnd.
  };
  Kind kind = Kind::kBackup;
  absl::Time time;
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> tokens;  // shard -> (epoch, lsn)
  // kTokens: every shard must be named (the servers' --restore_to).
  bool exact = false;
};

// The servers' --restore_to: empty, the backup's cut; otherwise one exact
// token per shard.
absl::StatusOr<RestoreTarget> ServerRestoreTarget(const std::string& restore_to);

// "shard:epoch:lsn,..." (a shard at most once). INVALID_ARGUMENT naming the
// part that is wrong.
absl::StatusOr<std::map<uint32_t, std::pair<uint64_t, uint64_t>>> ParseTokens(
    const std::string& text);

struct ShardPlan {
  uint32_t shard = 0;
  uint64_t cut_lsn = 0;        // The backup's.
  uint64_t to_lsn = 0;         // Restored up to here (== cut_lsn: no replay).
  uint64_t to_epoch = 0;       // The epoch of the record at to_lsn.
  int64_t to_time_micros = 0;  // Its commit time, 0 when not known.
  uint64_t max_epoch = 0;      // The highest epoch the backup or replay holds.
  uint64_t archived_lsn = 0;   // Where the shard's archive ends (0: none).
};

struct RestorePlan {
  Manifest backup;
  std::vector<ShardPlan> shards;  // One per shard, ordered.
  // Restoring into nodes with other ids: the backup's node id -> the new
  // one (ids not named keep theirs). Empty: the same ids.
  std::map<std::string, std::string> node_map;

  // The plan's ends as exact tokens, "0:3:812,1:3:790": the servers'
  // --restore_to.
  std::string Tokens() const;
};

// Plans a restore from `repo` to `target` from backup `backup_id`, or (when
// empty or "latest") from the newest backup the target can be reached from.
// NOT_FOUND when no backup can; FAILED_PRECONDITION when the archive does not
// reach the target (a gap, or it ends before), naming the shard and LSNs;
// DATA_LOSS naming a damaged segment.
absl::StatusOr<RestorePlan> PlanRestore(const Repository& repo, const std::string& backup_id,
                                        const RestoreTarget& target);

// "old=new,..." (ParseNodeMap), checked against backup `m` (CheckNodeMap):
// every old id one of its nodes, the new ids distinct from each other and from
// the ids not renamed. INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<std::map<std::string, std::string>> ParseNodeMap(const std::string& text);
absl::Status CheckNodeMap(const Manifest& m, const std::map<std::string, std::string>& node_map);

// Calls `apply` with the encoded records of `plan`'s shard after the cut up
// to to_lsn, in order, in batches of at most `batch` records.
absl::Status ForEachReplayBatch(
    const Repository& repo, const ShardPlan& plan, size_t batch,
    const std::function<absl::Status(const std::vector<std::string>& encoded)>& apply);

}  // namespace dash::backup

#endif  // DASH_NODE_BACKUP_PITR_H_
