// A backup repository: the directory `dashctl backup` writes to.
//
//   DIR/DASH-BACKUP                    marker: {"format": "dash-backup", "version": 1}
//   DIR/files/<aa>/<sha256>            every file of every backup, once, named by its
//                                      SHA-256 (aa: its first two hex digits), read-only
//   DIR/backups/<id>/manifest.json     one backup: the cluster's placement, and per shard
//                                      the leader's checkpoint at a recorded log position
//                                      (epoch, LSN) with its files (name, size, SHA-256)
//   DIR/staging/<id>/shard-<n>/        a backup being taken (removed once committed)
//   DIR/log/shard-<n>/                 the log archive (log_archive.h)
//
// Backups are incremental by content: an SST file unchanged since an earlier
// backup has the same SHA-256 and is stored once. A manifest carries the
// SHA-256 of its own content, so a damaged one is detected too. A backup
// exists once its manifest is in place (written atomically, last); deleting
// one removes its manifest, then every file no remaining manifest names.
// One writer at a time: create, delete and prune hold the repository's
// writer lock (LockForWriting), so a delete cannot collect the files of a
// backup still being taken. Reads (list, verify, restore) need no lock: a
// backup is complete once its manifest is in place.
#ifndef DASH_NODE_BACKUP_REPOSITORY_H_
#define DASH_NODE_BACKUP_REPOSITORY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dash::backup {

inline constexpr int kFormatVersion = 1;

struct FileRef {
  std::string name;  // As in the checkpoint, e.g. "000012.sst".
  uint64_t size = 0;
  std::string sha256;  // Hex.
};

// One shard's part of a backup: a checkpoint of its leader's replica.
struct ShardCut {
  uint32_t shard = 0;
  uint64_t epoch = 0;       // The routing epoch the leader led at.
  std::string leader;       // Its node id.
  uint64_t last_lsn = 0;    // The log end in the checkpoint.
  uint64_t last_epoch = 0;  // The epoch of that last record.
  std::vector<FileRef> files;
};

struct Manifest {
  std::string id;
  int format_version = kFormatVersion;
  absl::Time created;
  std::string dash_version;    // Of the dashctl that took it.
  std::string placement_json;  // dash.v1.Placement at the start, as JSON.
  uint32_t shard_count = 0;
  std::vector<ShardCut> shards;  // Ordered by shard.

  uint64_t total_bytes() const;
};

// A problem `Verify` found: which backup, shard and file, where, and what.
struct Damage {
  std::string backup_id;
  std::optional<uint32_t> shard;  // Unset for the manifest itself.
  std::string file;               // The checkpoint's name, or "manifest.json".
  std::string path;
  std::string problem;  // "missing", "size 10 instead of 12", "SHA-256 differs", ...
};

class Repository {
 public:
  // Opens DIR; with `create`, makes it (and its marker) when absent.
  // FAILED_PRECONDITION when DIR holds something that is not a repository of
  // this format version.
  static absl::StatusOr<Repository> Open(const std::string& dir, bool create);

  // An exclusive lock on DIR/LOCK (flock), released when the returned
  // object is destroyed or the process dies. FAILED_PRECONDITION naming the
  // holder's pid when another process holds it.
  class WriterLock {
   public:
    explicit WriterLock(int fd) : fd_(fd) {}
    WriterLock(WriterLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    WriterLock(const WriterLock&) = delete;
    WriterLock& operator=(const WriterLock&) = delete;
    ~WriterLock();

   private:
    int fd_;
  };
  absl::StatusOr<WriterLock> LockForWriting() const;
  // The log archive's own lock (DIR/log/LOCK): one archiver per repository,
  // beside backups being taken.
  absl::StatusOr<WriterLock> LockForArchiving() const;

  const std::string& dir() const { return dir_; }
  // Where the file with this SHA-256 is (or would be) stored.
  std::string StoredPath(const std::string& sha256) const;
  std::string StagingDir(const std::string& id, uint32_t shard) const;
  // An id for a backup taken at `now`, unused so far: UTC "20261201T140312Z",
  // with "-2", "-3"... appended if taken.
  std::string NewId(absl::Time now) const;

  // Puts a copy of the stored file with `file`'s SHA-256 at `path` (a hard
  // link) if the repository holds it; returns whether it did.
  bool LinkStored(const FileRef& file, const std::string& path) const;
  // Moves the verified file at `staged_path` into the store unless a file
  // with its SHA-256 is stored already.
  absl::Status Store(const std::string& staged_path, const FileRef& file);
  // Makes `manifest` a backup: every file it names must be stored.
  absl::Status Commit(const Manifest& manifest);
  absl::Status RemoveStaging(const std::string& id);

  // Every backup, oldest first. A manifest that does not load is an error
  // naming it (run verify).
  absl::StatusOr<std::vector<Manifest>> List() const;
  absl::StatusOr<Manifest> Load(const std::string& id) const;

  // Re-hashes every file of the backups `ids` (all when empty). `progress`
  // receives the bytes hashed so far. An empty result: nothing is damaged.
  absl::StatusOr<std::vector<Damage>> Verify(
      const std::vector<std::string>& ids,
      const std::function<void(uint64_t bytes)>& progress = nullptr) const;

  struct DeleteStats {
    int backups = 0;
    int files_removed = 0;
    uint64_t bytes_removed = 0;
  };
  // Deletes the backups `ids`, then every stored file no remaining backup
  // names. NOT_FOUND naming an unknown id (nothing deleted).
  absl::StatusOr<DeleteStats> Delete(const std::vector<std::string>& ids);

 private:
  explicit Repository(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<WriterLock> Lock(const std::string& name, const std::string& who) const;
  std::string ManifestPath(const std::string& id) const;

  std::string dir_;
};

// Which of `backups` (oldest first) a retention policy deletes: all but the
// newest `keep_last` (when set) that are also older than `keep_within` (when
// set) at `now`. The newest backup is always kept.
std::vector<std::string> SelectExpired(const std::vector<Manifest>& backups,
                                       std::optional<int> keep_last,
                                       std::optional<absl::Duration> keep_within, absl::Time now);

// Manifest <-> JSON (with the SHA-256 of the content, checked on parse).
std::string ManifestToJson(const Manifest& m);
absl::StatusOr<Manifest> ManifestFromJson(const std::string& json);

}  // namespace dash::backup

#endif  // DASH_NODE_BACKUP_REPOSITORY_H_
