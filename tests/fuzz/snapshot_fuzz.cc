// libFuzzer: a follower's checks of what a leader sends for a snapshot
// (node/replication/internal/snapshot_files.h): the manifest, whose file names
// become paths on the follower's disk, and each chunk. The first byte picks
// which; a manifest that passes must name only plain, unique files.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "dash/v1/node.pb.h"
#include "node/replication/internal/snapshot_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace internal = dash::replication::internal;
  if (data[0] % 2 == 0) {
    dash::v1::SnapshotManifest m;
    if (!m.ParseFromString(bytes)) return 0;
    if (!internal::CheckManifest(m, m.shard()).ok()) return 0;
    std::set<std::string> names;
    for (const dash::v1::SnapshotFile& f : m.files()) {
      if (f.name().empty() || f.name().find('/') != std::string::npos || f.name() == "." ||
          f.name() == ".." || !names.insert(f.name()).second) {
        std::abort();  // A path outside the staging directory got through.
      }
    }
  } else {
    dash::v1::SnapshotChunk chunk;
    if (!chunk.ParseFromString(bytes)) return 0;
    dash::v1::SnapshotFile file;
    file.set_name("000012.sst");
    file.set_size(chunk.offset() % (1ull << 40) + 4096);
    if (internal::CheckChunk(file, chunk.offset(), chunk).ok() &&
        chunk.offset() + chunk.data().size() > file.size()) {
      std::abort();  // A chunk past the end of its file got through.
    }
  }
  return 0;
}
