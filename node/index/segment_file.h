// The framing every index segment file shares (after Lucene's CodecUtil): a
// header naming the file's kind, its format version and the segment it
// belongs to, the body, and a footer holding the CRC-32 of everything before
// it.
//
//   header  "DASHSEG\0" | kind (4 bytes) | version (u32 LE) | segment id (16 bytes)
//   body    the kind's own format
//   footer  body length (u64 LE) | CRC-32 (zlib) of header + body (u32 LE) | "GESD"
//
// A file is written once, to a temporary name, synced, then renamed into
// place and its directory synced: a reader finds no file or a whole one. It
// is read back only once its footer's checksum matches, so a damaged segment
// is never served. Thread-safe: functions of their arguments only.
#ifndef DASH_NODE_INDEX_SEGMENT_FILE_H_
#define DASH_NODE_INDEX_SEGMENT_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dash::index {

inline constexpr size_t kSegmentIdBytes = 16;

struct SegmentFileInfo {
  std::string kind;        // 4 bytes, e.g. "POST" (postings), "DICT", "VECS".
  uint32_t version = 0;    // The kind's format version.
  std::string segment_id;  // kSegmentIdBytes bytes.
};

// The file framed around `body`, as WriteSegmentFile writes it.
// INVALID_ARGUMENT if the kind is not 4 bytes or the id not 16.
absl::StatusOr<std::string> FrameSegmentFile(const SegmentFileInfo& info, absl::string_view body);

// The body of a framed file held in memory. DATA_LOSS (naming `name`) when
// it is truncated, its checksum fails, or it is not a segment file;
// FAILED_PRECONDITION when it is of another kind or segment than `expected`,
// or of a newer version than `expected.version` (written by a newer DASH).
// `version` (when non-null) receives the file's version.
absl::StatusOr<absl::string_view> UnframeSegmentFile(absl::string_view file,
                                                     const SegmentFileInfo& expected,
                                                     absl::string_view name,
                                                     uint32_t* version = nullptr);

// Writes the framed file at `path`, durably and all at once. ALREADY_EXISTS
// if `path` exists: segment files are immutable.
absl::Status WriteSegmentFile(const std::string& path, const SegmentFileInfo& info,
                              absl::string_view body);
// The same for a body given as the concatenation of `parts`, which are never
// joined in memory (a segment's vectors can be hundreds of MiB).
absl::Status WriteSegmentFile(const std::string& path, const SegmentFileInfo& info,
                              const std::vector<absl::string_view>& parts);

// Reads and checks the file at `path` (UnframeSegmentFile's errors, naming
// the path, and NOT_FOUND when it does not exist); returns its body.
absl::StatusOr<std::string> ReadSegmentFile(const std::string& path,
                                            const SegmentFileInfo& expected,
                                            uint32_t* version = nullptr);

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_SEGMENT_FILE_H_
