// Plain-file helpers of the node's storage (snapshots, index segments): whole
// files written all at once and made durable, read back whole. Local I/O
// failures are UNAVAILABLE, like the engine's. Thread-safe: functions of
// their arguments only.
#ifndef DASH_NODE_STORAGE_FILE_UTIL_H_
#define DASH_NODE_STORAGE_FILE_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dash::storage {

// UNAVAILABLE naming the operation, the path and errno's text.
absl::Status IoError(absl::string_view what, const std::string& path, int err);

// fsync of a file or a directory (for the entries in it).
absl::Status SyncPath(const std::string& path);

// Replaces `path` with `data` all at once: written to `tmp_path`, synced,
// renamed over `path`, and the directory synced.
absl::Status WriteFileAtomically(const std::string& path, const std::string& tmp_path,
                                 absl::string_view data);
// The same for the concatenation of `parts`, without joining them in memory.
absl::Status WriteFileAtomically(const std::string& path, const std::string& tmp_path,
                                 const std::vector<absl::string_view>& parts);

// The whole file. NOT_FOUND if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);
// Appends `data` to the file at `path` (created if missing) and syncs its
// content (fdatasync); the caller syncs the directory of a new file.
absl::Status AppendToFile(const std::string& path, absl::string_view data);

// Hex SHA-256 of the whole file.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

}  // namespace dash::storage

#endif  // DASH_NODE_STORAGE_FILE_UTIL_H_
