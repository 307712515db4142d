// A shard replica in this process as a query target (query/shard_target.h):
// how a node runs RunQuery over the shards it hosts.
#ifndef DASH_NODE_SHARD_LOCAL_SHARD_TARGET_H_
#define DASH_NODE_SHARD_LOCAL_SHARD_TARGET_H_

#include <map>
#include <string>
#include <vector>

#include "node/shard/shard_replica.h"
#include "query/shard_target.h"

namespace dash::shard {

class LocalShardTarget : public query::ShardTarget {
 public:
  explicit LocalShardTarget(const ShardReplica* replica) : replica_(replica) {}
  absl::StatusOr<query::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) override;
  absl::StatusOr<query::LegResult> Legs(absl::string_view tenant,
                                        const query::LegRequest& request) override;
  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const query::FetchOptions& options) override;
  bool local() const override { return true; }

 private:
  const ShardReplica* replica_;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_LOCAL_SHARD_TARGET_H_
