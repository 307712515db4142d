// The derived indexes' format version, and the migration of a replica whose
// stored index is older: the BM25 index is derived from the stored claims, so
// it can be rebuilt in place at open.
#ifndef DASH_NODE_SHARD_INDEX_MIGRATION_H_
#define DASH_NODE_SHARD_INDEX_MIGRATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"

namespace dash::shard {

// The current format of the derived indexes. 1: the BM25 index (docs, terms,
// postings). Bump it when the analyzer or the index layout changes.
constexpr uint32_t kIndexFormat = 1;

// Re-indexes every claim of a replica whose metadata `meta` names an index
// format older than kIndexFormat, in chunks, each committed atomically with
// its tenants' statistics; the last chunk also persists the metadata with the
// new format, which is returned. Safe to interrupt: re-indexing a claim
// replaces whatever it had.
absl::StatusOr<storage::ShardMeta> MigrateIndex(storage::Engine& engine, storage::ShardMeta meta);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_INDEX_MIGRATION_H_
