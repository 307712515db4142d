// The derived indexes' format version, and the migration of a replica whose
// stored data carries an older one.
#ifndef DASH_NODE_SHARD_INDEX_MIGRATION_H_
#define DASH_NODE_SHARD_INDEX_MIGRATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"

namespace dash::shard {

// The current format of the derived indexes. 1: the BM25 index in the docs,
// terms and postings families, written in each commit's batch. 2: the BM25
// index in segments (LexicalStore), those families empty. Bump it when the
// analyzer or the index layout changes.
constexpr uint32_t kIndexFormat = 2;

// Brings a replica whose metadata `meta` names an older index format to
// kIndexFormat in one synced batch (after clearing the old index families),
// returning the new metadata. Safe to interrupt: it runs again at next open.
absl::StatusOr<storage::ShardMeta> MigrateIndex(storage::Engine& engine, storage::ShardMeta meta);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_INDEX_MIGRATION_H_
