#include "node/replication/internal/snapshot_files.h"

namespace dash::replication::internal {

bool IsValidFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos && name.find('\0') == absl::string_view::npos &&
         name != kStagedManifest && name != kStagedManifestTmp;
}

}  // namespace dash::replication::internal
