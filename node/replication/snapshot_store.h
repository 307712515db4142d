// The snapshots a leader keeps for followers catching up (the core behind
// dash.v1.Snapshots; see snapshot_format.md). A snapshot is a RocksDB
// checkpoint of one hosted replica in a directory of its own, described by a
// manifest (file names, sizes, SHA-256), kept until the follower releases it
// or it sits unused for the idle expiry. Knows nothing of gRPC. Thread-safe.
//
// Limits: at most `max_per_shard` snapshots of a shard live at once. A new one
// first replaces the same follower's earlier snapshot of the shard (that
// follower evidently gave it up), then evicts the least recently used one no
// stream is reading; when every one is being read, RESOURCE_EXHAUSTED.
//
// Disk: a checkpoint hard-links the replica's table files, so it costs little
// when made, but it pins those files after compaction replaces them; hence
// the small per-shard limit and the expiry. Snapshots do not outlive the
// process: Open wipes the directory.
#ifndef DASH_NODE_REPLICATION_SNAPSHOT_STORE_H_
#define DASH_NODE_REPLICATION_SNAPSHOT_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dash/v1/node.pb.h"
#include "node/shard/shard_host.h"

namespace dash::replication {

struct SnapshotStoreOptions {
  std::string dir;  // Holds one sub-directory per snapshot; wiped by Open.
  // A snapshot neither read nor created for this long is deleted (lazily, on
  // the next call into the store).
  absl::Duration idle_expiry = absl::Minutes(10);
  size_t max_per_shard = 2;
  Clock* clock = Clock::Real();
};

class SnapshotStore {
 private:
  struct Snapshot;

 public:
  // Reads one file of a snapshot. While it lives, the snapshot is neither
  // evicted nor expired (a release still deletes it; the open file stays
  // readable). Not thread-safe; must not outlive the store.
  class FileReader {
   public:
    ~FileReader();
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;

    uint64_t size() const { return size_; }
    // Up to `max_bytes` from `offset` (fewer only at the end of the file).
    // Counts as a use of the snapshot.
    absl::StatusOr<std::string> Read(uint64_t offset, size_t max_bytes);

   private:
    friend class SnapshotStore;
    FileReader(SnapshotStore* store, std::shared_ptr<Snapshot> snapshot, std::string path, int fd,
               uint64_t size)
        : store_(store),
          snapshot_(std::move(snapshot)),
          path_(std::move(path)),
          fd_(fd),
          size_(size) {}

    SnapshotStore* const store_;
    const std::shared_ptr<Snapshot> snapshot_;
    const std::string path_;
    const int fd_;
    const uint64_t size_;
  };

  // Wipes and creates options.dir. `host` must outlive the store.
  static absl::StatusOr<std::unique_ptr<SnapshotStore>> Open(shard::ShardHost* host,
                                                             SnapshotStoreOptions options);
  // Deletes every snapshot directory still held.
  ~SnapshotStore();

  SnapshotStore(const SnapshotStore&) = delete;
  SnapshotStore& operator=(const SnapshotStore&) = delete;

  // Checkpoints the replica of `shard` for `follower` and returns its
  // manifest. FAILED_PRECONDITION when the shard is not hosted, this replica
  // does not lead it, or `epoch` is not the adopted one (with a routing
  // hint); RESOURCE_EXHAUSTED at the per-shard limit (see above);
  // UNAVAILABLE after Close() or on an I/O error.
  absl::StatusOr<v1::SnapshotManifest> Create(uint32_t shard, uint64_t epoch,
                                              const std::string& follower);

  // Opens file `name` of snapshot `id` for reading from `offset`. NOT_FOUND
  // when the snapshot is unknown (expired, released, evicted, or made before
  // a restart); INVALID_ARGUMENT naming the field when `shard` is not the
  // snapshot's, `name` is not in its manifest, or `offset` is beyond the
  // file's size.
  absl::StatusOr<std::unique_ptr<FileReader>> OpenFile(const std::string& id, uint32_t shard,
                                                       const std::string& name, uint64_t offset);

  // Deletes snapshot `id`. OK when it is unknown (idempotent);
  // INVALID_ARGUMENT when it belongs to another shard than `shard`.
  absl::Status Release(const std::string& id, uint32_t shard);

  // Deletes every snapshot; Create fails with UNAVAILABLE from now on. Open
  // readers keep reading their files until they are destroyed.
  void Close();

  // The live snapshots (for tests and status pages).
  size_t size() const;

 private:
  struct Snapshot {
    std::string id;
    uint32_t shard = 0;
    std::string follower;
    std::string dir;
    v1::SnapshotManifest manifest;
    // Guarded by the store's mu_.
    int64_t last_use_micros = 0;
    int readers = 0;
  };

  SnapshotStore(shard::ShardHost* host, SnapshotStoreOptions options)
      : host_(host), options_(std::move(options)) {}

  // Takes out of the map, for deletion outside mu_, the snapshots idle longer
  // than the expiry.
  void TakeExpired(std::vector<std::shared_ptr<Snapshot>>* doomed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for one more snapshot of `shard` (see the limits above).
  absl::Status MakeRoom(uint32_t shard, const std::string& follower,
                        std::vector<std::shared_ptr<Snapshot>>* doomed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch(Snapshot* snapshot, int reader_delta);
  static void Delete(const std::vector<std::shared_ptr<Snapshot>>& doomed);

  // Constant after construction.
  shard::ShardHost* const host_;
  const SnapshotStoreOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Snapshot>> snapshots_ ABSL_GUARDED_BY(mu_);  // By id.
  std::map<uint32_t, int> creating_ ABSL_GUARDED_BY(mu_);  // Checkpoints in progress, by shard.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_SNAPSHOT_STORE_H_
