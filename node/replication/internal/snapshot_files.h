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

// UNAVAILABLE naming the operation, the path and errno's text.
absl::Status IoError(absl::string_view what, const std::string& path, int err);

// Hex SHA-256 of the whole file.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// fsync of a file or a directory (for the entries in it).
absl::Status SyncPath(const std::string& path);

// Replaces `path` with `data` all at once: written to `tmp_path`, synced,
// renamed over `path`, and the directory synced.
absl::Status WriteFileAtomically(const std::string& path, const std::string& tmp_path,
                                 absl::string_view data);

}  // namespace dash::replication::internal

#endif  // DASH_NODE_REPLICATION_INTERNAL_SNAPSHOT_FILES_H_
