// The follower's side of a snapshot transfer: copies a checkpoint of a shard's
// replica from its leader (dash.v1.Snapshots) into a local staging directory,
// from which ShardHost::InstallSnapshot puts it in place.
//
// Resumable: the staging directory keeps the manifest (MANIFEST) and every
// byte received, so a call after a crash, a cancellation or a broken stream
// continues where the last one stopped (snapshot_format.md). Nothing is
// trusted on the way: each chunk carries a CRC-32, each file's SHA-256 is
// checked once it is complete, and files are synced before the call returns.
#ifndef DASH_NODE_REPLICATION_SNAPSHOT_FETCHER_H_
#define DASH_NODE_REPLICATION_SNAPSHOT_FETCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dash/v1/node.grpc.pb.h"

namespace dash::replication {

// Counters of one FetchSnapshot call, updated while it runs (readable from
// any thread).
struct SnapshotFetchProgress {
  std::atomic<uint64_t> total_bytes{0};        // Of the snapshot being fetched.
  std::atomic<uint64_t> bytes_received{0};     // Chunk data received in this call.
  std::atomic<uint64_t> chunks_received{0};    // Chunks received in this call (CRC-checked).
  std::atomic<uint64_t> bytes_reused{0};       // Staged by an earlier call, verified, kept.
  std::atomic<uint32_t> files_complete{0};     // Files verified in this call.
  std::atomic<uint32_t> files_refetched{0};    // Staged files that failed their SHA-256.
  std::atomic<uint32_t> snapshots_created{0};  // CreateSnapshot calls that succeeded.
};

struct SnapshotFetchOptions {
  uint32_t shard = 0;
  uint64_t epoch = 0;  // The leader's routing epoch, for CreateSnapshot.
  std::string follower_node_id;
  // Created if missing. Put it on the file system of the node's data dir, so
  // that InstallSnapshot can rename it into place.
  std::string staging_dir;
  // Polled between chunks on the calling thread and every 50 ms on a watcher
  // thread (which cancels the call in flight): must be thread-safe. Null:
  // never cancelled.
  std::function<bool()> cancelled;
  SnapshotFetchProgress* progress = nullptr;  // Optional; not owned.
  // Optional: called for each file not staged yet, with the path it belongs
  // at. It may put a copy it already holds there (a backup repository links
  // the file of an earlier backup with the same SHA-256); what it puts is
  // verified like a staged file and fetched when it fails.
  std::function<void(const v1::SnapshotFile& file, const std::string& path)> reuse;
  // CreateSnapshot hashes every file of the checkpoint before answering.
  absl::Duration create_timeout = absl::Minutes(10);
  // A file stream with no chunk for this long is given up (UNAVAILABLE).
  absl::Duration stall_timeout = absl::Seconds(60);
  absl::Duration release_timeout = absl::Seconds(10);
};

// Fetches a snapshot of options.shard into options.staging_dir and returns its
// manifest once every file is there, verified and synced. With a MANIFEST in
// the staging directory, continues that snapshot; when the leader no longer
// knows it (NOT_FOUND), wipes the directory and starts over with a new
// snapshot, once per call. Releases the snapshot on the leader at the end
// (best effort). Errors: the leader's (FAILED_PRECONDITION with a routing
// hint when it does not lead at options.epoch, RESOURCE_EXHAUSTED, ...);
// DATA_LOSS when a chunk or a whole file fails its checksum (what was good
// stays staged: call again); CANCELLED; UNAVAILABLE on a broken or stalled
// stream or a local I/O error. Blocking.
absl::StatusOr<v1::SnapshotManifest> FetchSnapshot(v1::Snapshots::StubInterface* stub,
                                                   const SnapshotFetchOptions& options);

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_SNAPSHOT_FETCHER_H_
