// Runs a query over a set of shard replicas, local or remote, so that a node
// (over the shards it hosts) and the router (over one replica of every shard)
// rank by the same code: validation, corpus statistics summed over all shards,
// each leg merged across shards, one fusion, then the hits fetched with their
// evidence. The ranking therefore does not depend on the number of shards.
#ifndef DASH_NODE_SHARD_QUERY_RUNNER_H_
#define DASH_NODE_SHARD_QUERY_RUNNER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dash/v1/data.pb.h"
#include "node/shard/shard_replica.h"

namespace dash::shard {

// One replica of one shard as a query sees it. RunQuery calls the targets of
// different shards at the same time, from threads of its own (one call per
// target at a time), so implementations must be callable from any thread.
class ShardTarget {
 public:
  virtual ~ShardTarget() = default;
  virtual absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                                   const std::vector<std::string>& terms) = 0;
  virtual absl::StatusOr<LegResult> Legs(absl::string_view tenant, const LegRequest& request) = 0;
  // The hits for `ids`, in order; a claim deleted since the legs ran is left
  // out of the map.
  virtual absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const FetchOptions& options) = 0;
};

// A replica in this process.
class LocalShardTarget : public ShardTarget {
 public:
  explicit LocalShardTarget(const ShardReplica* replica) : replica_(replica) {}
  absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) override;
  absl::StatusOr<LegResult> Legs(absl::string_view tenant, const LegRequest& request) override;
  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(absl::string_view tenant,
                                                            const std::vector<std::string>& ids,
                                                            const FetchOptions& options) override;

 private:
  const ShardReplica* replica_;
};

// INVALID_ARGUMENT naming the field when the request is malformed.
absl::Status ValidateQuery(const v1::QueryRequest& request);

// Runs `request` over `shards` (shard id -> target; every shard whose claims
// should be searched). `shard_count` maps a claim to its shard for fetching.
absl::StatusOr<v1::QueryResponse> RunQuery(const v1::QueryRequest& request,
                                           const std::map<uint32_t, ShardTarget*>& shards,
                                           uint32_t shard_count);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_QUERY_RUNNER_H_
