// Runs a query over a set of shard replicas, local or remote, so that a node
// (over the shards it hosts) and the router (over one replica of every shard)
// rank by the same code: validation, corpus statistics summed over all shards,
// each leg merged across shards, one fusion, then the hits fetched with their
// evidence. The ranking therefore does not depend on the number of shards.
#ifndef DASH_QUERY_QUERY_RUNNER_H_
#define DASH_QUERY_QUERY_RUNNER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/thread_pool.h"
#include "dash/v1/data.pb.h"
#include "query/shard_target.h"

namespace dash::query {

// INVALID_ARGUMENT naming the field when the request is malformed.
absl::Status ValidateQuery(const v1::QueryRequest& request);

// Runs `request` over `shards` (shard id -> target; every shard whose claims
// should be searched). `shard_count` maps a claim to its shard for fetching.
// Each phase asks its shards at once through RunAll on `pool` (the caller's:
// the router's fan-out pool, or the node's), on the calling thread and the
// pool's; RunQuery may itself run on a thread of `pool`. REQUIRES: `pool` is
// not null.
absl::StatusOr<v1::QueryResponse> RunQuery(const v1::QueryRequest& request,
                                           const std::map<uint32_t, ShardTarget*>& shards,
                                           uint32_t shard_count, ThreadPool* pool);

}  // namespace dash::query

#endif  // DASH_QUERY_QUERY_RUNNER_H_
