#include "node/service/shard_query_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "node/shard/local_shard_target.h"
#include "query/query_codec.h"
#include "query/query_runner.h"

namespace dash::service {

absl::StatusOr<std::shared_ptr<shard::ShardReplica>> ShardQueryService::Target(
    uint32_t shard, uint64_t epoch, bool leader_read) const {
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<shard::ShardReplica> r, host_->ReplicaAt(shard, epoch));
  if (leader_read) DASH_RETURN_IF_ERROR(r->CheckLeaderRead());
  return r;
}

grpc::Status ShardQueryService::Stats(grpc::ServerContext* ctx,
                                      const v1::ShardStatsRequest* request,
                                      v1::ShardStatsResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  auto r = Target(request->shard(), request->epoch(), request->leader_read());
  if (!r.ok()) return ToGrpcStatus(r.status(), ctx);
  std::vector<std::string> terms(request->terms().begin(), request->terms().end());
  absl::StatusOr<index::CorpusStats> stats = (*r)->LexicalStats(request->tenant(), terms);
  if (!stats.ok()) return ToGrpcStatus(stats.status(), ctx);
  *response->mutable_stats() = query::ToProto(*stats);
  return grpc::Status::OK;
}

grpc::Status ShardQueryService::Legs(grpc::ServerContext* ctx, const v1::ShardLegsRequest* request,
                                     v1::ShardLegsResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  auto r = Target(request->shard(), request->epoch(), request->leader_read());
  if (!r.ok()) return ToGrpcStatus(r.status(), ctx);
  absl::StatusOr<query::LegResult> legs =
      (*r)->RunLegs(request->tenant(), query::FromProto(*request));
  if (!legs.ok()) return ToGrpcStatus(legs.status(), ctx);
  query::ToProto(*legs, response);
  return grpc::Status::OK;
}

grpc::Status ShardQueryService::Fetch(grpc::ServerContext* ctx,
                                      const v1::ShardFetchRequest* request,
                                      v1::ShardFetchResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  auto r = Target(request->shard(), request->epoch(), request->leader_read());
  if (!r.ok()) return ToGrpcStatus(r.status(), ctx);
  shard::LocalShardTarget target(r->get());
  std::vector<std::string> ids(request->claim_ids().begin(), request->claim_ids().end());
  auto hits = target.Fetch(request->tenant(), ids, query::FromProto(*request));
  if (!hits.ok()) return ToGrpcStatus(hits.status(), ctx);
  for (const std::string& id : ids) {
    auto it = hits->find(id);
    if (it == hits->end()) {
      response->add_missing(id);
    } else {
      *response->add_hits() = std::move(it->second);
    }
  }
  return grpc::Status::OK;
}

}  // namespace dash::service
