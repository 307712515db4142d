// The query phases' structs on the wire (dash.v1.ShardQuery, node.proto):
// the router's remote shard targets encode them, a node's ShardQuery service
// decodes them, so both ends stay in step with RunQuery's types.
#ifndef DASH_NODE_SHARD_QUERY_CODEC_H_
#define DASH_NODE_SHARD_QUERY_CODEC_H_

#include "dash/v1/node.pb.h"
#include "node/shard/shard_replica.h"

namespace dash::shard {

v1::CorpusStatsProto ToProto(const index::CorpusStats& stats);

// A leader's view of one follower, as heartbeats and NodeInfo carry it.
v1::FollowerLag ToProto(const FollowerLag& lag);
index::CorpusStats FromProto(const v1::CorpusStatsProto& proto);

// Fills the leg fields of `out` (tenant, shard and epoch are the caller's).
void ToProto(const LegRequest& request, v1::ShardLegsRequest* out);
LegRequest FromProto(const v1::ShardLegsRequest& proto);

void ToProto(const LegResult& result, v1::ShardLegsResponse* out);
LegResult FromProto(const v1::ShardLegsResponse& proto);

void ToProto(const FetchOptions& options, v1::ShardFetchRequest* out);
FetchOptions FromProto(const v1::ShardFetchRequest& proto);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_QUERY_CODEC_H_
