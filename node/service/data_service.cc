#include "node/service/data_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "google/protobuf/util/time_util.h"

namespace dash::service {

grpc::ServerUnaryReactor* DataService::Write(grpc::CallbackServerContext* ctx,
                                             const v1::WriteRequest* request,
                                             v1::WriteResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  host_->Write(*request, [ctx, reactor, response](absl::StatusOr<shard::WriteResult> result) {
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status(), ctx));
      return;
    }
    *response->mutable_token() = result->token;
    *response->mutable_commit_time() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(result->commit_time_micros);
    response->set_replayed(result->replayed);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::Status DataService::GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                                   v1::GetClaimResponse* response) {
  absl::StatusOr<v1::GetClaimResponse> result = host_->GetClaim(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status DataService::ListClaims(grpc::ServerContext* ctx, const v1::ListClaimsRequest* request,
                                     v1::ListClaimsResponse* response) {
  absl::StatusOr<v1::ListClaimsResponse> result = host_->ListClaims(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status DataService::Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                                v1::QueryResponse* response) {
  absl::StatusOr<v1::QueryResponse> result = host_->Query(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status NodeAdminService::GetNodeInfo(grpc::ServerContext* ctx,
                                           const v1::GetNodeInfoRequest* request,
                                           v1::NodeInfo* response) {
  *response = host_->Info();
  return grpc::Status::OK;
}

grpc::Status NodeAdminService::GetReplicaChecksum(grpc::ServerContext* ctx,
                                                  const v1::ReplicaChecksumRequest* request,
                                                  v1::ReplicaChecksum* response) {
  std::shared_ptr<shard::ShardReplica> r = host_->replica(request->shard());
  if (r == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("shard ", request->shard(), " is not hosted on node ", host_->node_id())));
  }
  absl::StatusOr<shard::StateChecksum> sum = r->Checksum();
  if (!sum.ok()) return ToGrpcStatus(sum.status(), ctx);
  response->set_shard(request->shard());
  response->set_node_id(host_->node_id());
  response->set_last_lsn(sum->last_lsn);
  response->set_last_epoch(sum->last_epoch);
  response->set_sha256(sum->sha256);
  response->set_keys(sum->keys);
  return grpc::Status::OK;
}

}  // namespace dash::service
