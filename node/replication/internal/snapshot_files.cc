#include "node/replication/internal/snapshot_files.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"

namespace dash::replication::internal {

absl::Status CheckManifest(const v1::SnapshotManifest& m, uint32_t shard) {
  if (m.snapshot_id().empty() || m.shard() != shard) {
    return absl::InternalError(absl::StrCat("the leader answered a snapshot of shard ", m.shard(),
                                            " (id \"", m.snapshot_id(), "\") for shard ", shard));
  }
  std::set<std::string> names;
  uint64_t total = 0;
  for (const v1::SnapshotFile& f : m.files()) {
    if (!IsValidFileName(f.name()) || !names.insert(f.name()).second) {
      return absl::InternalError(absl::StrCat("snapshot ", m.snapshot_id(),
                                              ": bad or repeated file name \"", f.name(), "\""));
    }
    // Sizes come from the network: a sum that wraps must not pass as equal.
    if (f.size() > UINT64_MAX - total) {
      return absl::InternalError(
          absl::StrCat("snapshot ", m.snapshot_id(), ": file sizes overflow 64 bits"));
    }
    total += f.size();
  }
  if (total != m.total_bytes()) {
    return absl::InternalError(absl::StrCat("snapshot ", m.snapshot_id(), ": files add up to ",
                                            total, " bytes, not ", m.total_bytes()));
  }
  return absl::OkStatus();
}

absl::Status CheckChunk(const v1::SnapshotFile& file, uint64_t at, const v1::SnapshotChunk& chunk) {
  const std::string& data = chunk.data();
  if (chunk.offset() != at || data.empty() || data.size() > kMaxChunkBytes || at > file.size() ||
      data.size() > file.size() - at) {
    return absl::DataLossError(
        absl::StrCat(file.name(), ": a chunk of ", data.size(), " bytes at offset ", chunk.offset(),
                     " does not continue the file at ", at, " of ", file.size()));
  }
  if (Crc32(data) != chunk.crc32()) {
    return absl::DataLossError(
        absl::StrCat(file.name(), ": the chunk at offset ", at, " fails its CRC-32"));
  }
  return absl::OkStatus();
}

bool IsValidFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos && name.find('\0') == absl::string_view::npos &&
         name != kStagedManifest && name != kStagedManifestTmp;
}

}  // namespace dash::replication::internal
