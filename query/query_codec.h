// The query phases' structs on the wire (dash.v1.ShardQuery, node.proto):
// the router's remote shard targets encode them, a node's ShardQuery service
// decodes them, so both ends stay in step with RunQuery's types.
#ifndef DASH_QUERY_QUERY_CODEC_H_
#define DASH_QUERY_QUERY_CODEC_H_

#include "dash/v1/node.pb.h"
#include "query/shard_target.h"

namespace dash::query {

v1::CorpusStatsProto ToProto(const CorpusStats& stats);

CorpusStats FromProto(const v1::CorpusStatsProto& proto);

// Fills the leg fields of `out` (tenant, shard and epoch are the caller's).
void ToProto(const LegRequest& request, v1::ShardLegsRequest* out);
LegRequest FromProto(const v1::ShardLegsRequest& proto);

void ToProto(const LegResult& result, v1::ShardLegsResponse* out);
LegResult FromProto(const v1::ShardLegsResponse& proto);

void ToProto(const FetchOptions& options, v1::ShardFetchRequest* out);
FetchOptions FromProto(const v1::ShardFetchRequest& proto);

}  // namespace dash::query

#endif  // DASH_QUERY_QUERY_CODEC_H_
