// File helpers shared by the two ends of a snapshot transfer (the leader's
// SnapshotServer and the follower's FetchSnapshot); not part of their API.
// Local I/O failures are UNAVAILABLE, like the storage engine's. Thread-safe:
// functions of their arguments only.
#ifndef DASH_NODE_REPLICATION_INTERNAL_SNAPSHOT_FILES_H_
#define DASH_NODE_REPLICATION_INTERNAL_SNAPSHOT_FILES_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dash/v1/node.pb.h"
#include "node/storage/file_util.h"

namespace dash::replication::internal {

// The proto's limit on SnapshotChunk.data.
inline constexpr size_t kMaxChunkBytes = 1 << 20;
// The follower's copy of the manifest in its staging directory, and the
// temporary it is written through.
inline constexpr char kStagedManifest[] = "MANIFEST";
inline constexpr char kStagedManifestTmp[] = "MANIFEST.tmp";

// A name a snapshot may use for one of its files: a plain file name (no '/',
// not "." or ".."), not one of the staging directory's own names.
bool IsValidFileName(absl::string_view name);

// The follower's checks of what a leader sends, before anything touches its
// disk. A manifest of `shard` (INTERNAL otherwise): an id, file names that
// stay in the staging directory and are unique, sizes that add up to
// total_bytes. A chunk of `file` that continues it at `at`: offset `at`, 1 to
// kMaxChunkBytes bytes within the file's size, its CRC-32 right (DATA_LOSS
// otherwise). Bytes from the network: fuzzed by tests/fuzz/snapshot_fuzz.cc.
absl::Status CheckManifest(const v1::SnapshotManifest& m, uint32_t shard);
absl::Status CheckChunk(const v1::SnapshotFile& file, uint64_t at, const v1::SnapshotChunk& chunk);

// The file helpers (node/storage/file_util.h), by their names here.
using storage::IoError;
using storage::Sha256OfFile;
using storage::SyncPath;
using storage::WriteFileAtomically;

}  // namespace dash::replication::internal

#endif  // DASH_NODE_REPLICATION_INTERNAL_SNAPSHOT_FILES_H_
