#include "node/shard/index_migration.h"

#include <map>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/index/lexical_index.h"
#include "node/storage/keys.h"

namespace dash::shard {

using storage::Family;
namespace keys = storage::keys;

absl::StatusOr<storage::ShardMeta> MigrateIndex(storage::Engine& engine, storage::ShardMeta meta) {
  size_t claims = 0;
  std::string resume;
  for (bool more = true; more;) {
    auto ws = engine.NewWriteSet();
    std::map<std::string, storage::TenantState> tenants;
    std::vector<std::string> keys_in_chunk;
    {
      auto snapshot = engine.NewSnapshot();
      auto cursor = snapshot->Scan(Family::kClaims, "", resume);
      for (; cursor->Valid() && keys_in_chunk.size() < 512; cursor->Next()) {
        keys_in_chunk.emplace_back(cursor->key());
      }
      DASH_RETURN_IF_ERROR(cursor->status());
      more = cursor->Valid();
    }
    for (const std::string& key : keys_in_chunk) {
      const size_t sep = key.find('\0');
      if (sep == std::string::npos) return absl::DataLossError("malformed claim key");
      const std::string tenant = key.substr(0, sep);
      auto [it, inserted] = tenants.try_emplace(tenant);
      if (inserted) {
        DASH_ASSIGN_OR_RETURN(auto raw, ws->Get(Family::kTenants, keys::Tenant(tenant)));
        if (raw.has_value() && !it->second.ParseFromString(*raw)) {
          return absl::DataLossError("tenant state is corrupt");
        }
      }
      DASH_RETURN_IF_ERROR(index::ReindexClaim(tenant, key.substr(sep + 1), ws.get(), &it->second));
    }
    for (const auto& [tenant, state] : tenants) {
      ws->Put(Family::kTenants, keys::Tenant(tenant), state.SerializeAsString());
    }
    if (!more) {
      meta.set_index_format(kIndexFormat);
      ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    }
    DASH_RETURN_IF_ERROR(engine.Commit(*ws, /*sync=*/true));
    claims += keys_in_chunk.size();
    if (!keys_in_chunk.empty()) resume = keys_in_chunk.back() + std::string(1, '\0');
  }
  LOG(INFO) << "shard " << meta.shard_id() << ": re-indexed " << claims
            << " claims to index format " << kIndexFormat;
  return meta;
}

}  // namespace dash::shard
