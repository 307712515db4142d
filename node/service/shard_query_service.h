// dash.v1.ShardQuery over a ShardHost: the per-shard phases of a query for a
// router that ranks across all shards (see query/query_runner.h).
#ifndef DASH_NODE_SERVICE_SHARD_QUERY_SERVICE_H_
#define DASH_NODE_SERVICE_SHARD_QUERY_SERVICE_H_

#include "common/security.h"
#include "dash/v1/node.grpc.pb.h"
#include "node/shard/shard_host.h"

namespace dash::service {

class ShardQueryService final : public v1::ShardQuery::Service {
 public:
  // Internal: only cluster members (the router) may call.
  ShardQueryService(shard::ShardHost* host, std::shared_ptr<const Security> security)
      : host_(host), security_(std::move(security)) {}

  grpc::Status Stats(grpc::ServerContext* ctx, const v1::ShardStatsRequest* request,
                     v1::ShardStatsResponse* response) override;
  grpc::Status Legs(grpc::ServerContext* ctx, const v1::ShardLegsRequest* request,
                    v1::ShardLegsResponse* response) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::ShardFetchRequest* request,
                     v1::ShardFetchResponse* response) override;

 private:
  // The replica of `shard` at `epoch`, or the error to answer.
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> Target(uint32_t shard, uint64_t epoch,
                                                              bool leader_read) const;
  shard::ShardHost* const host_;
  const std::shared_ptr<const Security> security_;
};

}  // namespace dash::service

#endif  // DASH_NODE_SERVICE_SHARD_QUERY_SERVICE_H_
