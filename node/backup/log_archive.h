// The log archive of a backup repository (repository.h): every shard's log,
// as its leaders committed it, for point-in-time restore (pitr.h). Written by
// `dashctl backup archive`, which pulls each shard's log from its leader as a
// follower does (without counting toward the commit quorum), like
// PostgreSQL's pg_receivewal.
//
//   DIR/log/shard-<n>/<first>-<last>.seg   sealed: records first..last (LSNs,
//                                          20 digits), every one committed
//   DIR/log/shard-<n>/open.seg             the tail: the records after the
//                                          sealed ones, as received
//
// A segment is the magic "DASHLOG1" followed by records, each a 4-byte
// big-endian length and the encoded log record (log_format.md; it carries its
// own CRC-32, epoch, LSN and commit time). Records are consecutive across the
// sealed segments and the tail.
//
// The tail is appended to and synced as records arrive, before the leader
// has reported them committed: an acknowledged write is in the archive
// about when a follower has it, so losing every replica loses none of them.
// The tail may hold records the leader never committed (it died first); a
// restore that replays them brings back writes whose clients got no answer,
// which is what a failover may do too (their outcome is unknown). A new
// leader that does not hold such records makes the archiver truncate the
// tail (divergence repair, as for followers). Sealing moves the tail's
// committed records into a sealed segment, which is never changed again.
#ifndef DASH_NODE_BACKUP_LOG_ARCHIVE_H_
#define DASH_NODE_BACKUP_LOG_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "node/storage/log_record.h"

namespace dash::backup {

// The directory of shard `shard`'s archive in repository `repo_dir`.
std::string ArchiveDir(const std::string& repo_dir, uint32_t shard);

struct ArchivedRecord {
  uint64_t lsn = 0;
  uint64_t epoch = 0;
  int64_t commit_time_micros = 0;
  std::string encoded;
};

// One shard's archive, for its one writer (the archiver holds the
// repository's archive lock). Not thread-safe.
class ShardArchive {
 public:
  // Opens (creating it if absent) the archive of `shard`. A tail cut short by
  // a crash mid-append is trimmed to its last whole record. DATA_LOSS naming
  // the file when a segment is damaged or the segments are not consecutive.
  static absl::StatusOr<ShardArchive> Open(const std::string& repo_dir, uint32_t shard);

  uint64_t last_lsn() const;    // 0 when empty.
  uint64_t last_epoch() const;  // Of the record at last_lsn(), 0 when empty.
  uint64_t sealed_lsn() const { return sealed_lsn_; }
  size_t tail_records() const { return tail_.size(); }
  // The largest LSN archived with an epoch <= `epoch`: where this archive's
  // part of that epoch ends (divergence repair).
  uint64_t EpochEnd(uint64_t epoch) const;

  // Appends encoded records (consecutive, continuing last_lsn()) to the tail
  // and syncs it. INVALID_ARGUMENT, writing nothing, when they do not follow.
  absl::Status Append(const std::vector<std::string>& encoded);
  // Moves the tail's records with LSN <= `commit_lsn` into a new sealed
  // segment. Nothing to do when none are.
  absl::Status Seal(uint64_t commit_lsn);
  // Drops the tail's records after `lsn`. FAILED_PRECONDITION when that would
  // drop a sealed (committed) record.
  absl::Status TruncateAfter(uint64_t lsn);

 private:
  ShardArchive(std::string dir, uint64_t sealed_lsn, uint64_t sealed_epoch,
               std::vector<ArchivedRecord> tail)
      : dir_(std::move(dir)),
        sealed_lsn_(sealed_lsn),
        sealed_epoch_(sealed_epoch),
        tail_(std::move(tail)) {}
  absl::Status RewriteTail();

  std::string dir_;
  uint64_t sealed_lsn_;
  uint64_t sealed_epoch_;
  std::vector<ArchivedRecord> tail_;
};

// What a shard's archive holds, for restore planning.
struct ArchiveExtent {
  uint64_t first_lsn = 0;  // 0 when empty.
  uint64_t last_lsn = 0;
  uint64_t sealed_lsn = 0;
  size_t segments = 0;           // Sealed ones.
  int64_t last_time_micros = 0;  // The commit time of the record at last_lsn.
};

// Reads shard `shard`'s archived records from `from_lsn` on, in LSN order,
// each decoded and CRC-checked as its segment is read, calling `visit` for
// each until it returns false. NOT_FOUND when the archive does not reach `from_lsn` (an empty
// archive, or one that starts after it: a gap); DATA_LOSS naming the file of
// a damaged record or a gap between segments.
absl::Status ReadArchive(const std::string& repo_dir, uint32_t shard, uint64_t from_lsn,
                         const std::function<bool(const ArchivedRecord& record)>& visit);

absl::StatusOr<ArchiveExtent> ArchiveExtentOf(const std::string& repo_dir, uint32_t shard);

// Archive retention: removes shard `shard`'s sealed segments that end before
// `keep_from_lsn` (the oldest remaining backup's cut: no restore can start
// before it, and the segment holding the cut's own record is kept). The
// oldest first, so what remains stays consecutive. Returns the segments and
// bytes removed.
struct ArchiveDropStats {
  int segments = 0;
  uint64_t bytes = 0;
};
absl::StatusOr<ArchiveDropStats> DropArchiveBefore(const std::string& repo_dir, uint32_t shard,
                                                   uint64_t keep_from_lsn);

}  // namespace dash::backup

#endif  // DASH_NODE_BACKUP_LOG_ARCHIVE_H_
