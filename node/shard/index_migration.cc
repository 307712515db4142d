#include "node/shard/index_migration.h"

#include <string>

#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/storage/keys.h"

namespace dash::shard {

using storage::Family;
namespace keys = storage::keys;

absl::StatusOr<storage::ShardMeta> MigrateIndex(storage::Engine& engine, storage::ShardMeta meta) {
  // Format 1 kept the BM25 index in three families, written in every
  // commit's batch. From format 2 it lives in segments derived from the log
  // (LexicalStore), rebuilt from the stored claims when absent: drop the old
  // families and the statistics kept beside the tenants' counters.
  for (Family f : {Family::kDocs, Family::kTerms, Family::kPostings}) {
    DASH_RETURN_IF_ERROR(engine.DeleteRange(f, "", std::string(1024, '\xff')));
  }
  auto ws = engine.NewWriteSet();
  {
    auto snapshot = engine.NewSnapshot();
    auto cursor = snapshot->Scan(Family::kTenants, "");
    for (; cursor->Valid(); cursor->Next()) {
      storage::TenantState state;
      if (!state.ParseFromArray(cursor->value().data(), static_cast<int>(cursor->value().size()))) {
        return absl::DataLossError("tenant state is corrupt");
      }
      if (state.lexical_docs() == 0 && state.lexical_length() == 0) continue;
      state.clear_lexical_docs();
      state.clear_lexical_length();
      ws->Put(Family::kTenants, cursor->key(), state.SerializeAsString());
    }
    DASH_RETURN_IF_ERROR(cursor->status());
  }
  ws->Delete(Family::kMeta, keys::kLexicalManifestKey);
  meta.set_index_format(kIndexFormat);
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine.Commit(*ws, /*sync=*/true));
  LOG(INFO) << "shard " << meta.shard_id() << ": index format " << kIndexFormat
            << ": the BM25 index moved out of the commit batch into segments";
  return meta;
}

}  // namespace dash::shard
