#include "node/shard/local_shard_target.h"

namespace dash::shard {

absl::StatusOr<query::CorpusStats> LocalShardTarget::Stats(absl::string_view tenant,
                                                           const std::vector<std::string>& terms) {
  return replica_->LexicalStats(tenant, terms);
}

absl::StatusOr<query::LegResult> LocalShardTarget::Legs(absl::string_view tenant,
                                                        const query::LegRequest& request) {
  return replica_->RunLegs(tenant, request);
}

absl::StatusOr<std::map<std::string, v1::QueryHit>> LocalShardTarget::Fetch(
    absl::string_view tenant, const std::vector<std::string>& ids,
    const query::FetchOptions& options) {
  return replica_->FetchHits(tenant, ids, options);
}

}  // namespace dash::shard
