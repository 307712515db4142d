#include "node/service/data_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "google/protobuf/util/time_util.h"
#include "node/replication/fault_hook.h"
#include "query/batch_validator.h"

namespace dash::service {
namespace {

// A LEADER_ONLY read of one shard: the replica must lead under a valid lease
// (managed replicas; a standalone one always leads).
absl::Status CheckLeaderRead(const shard::ShardHost& host, uint32_t shard,
                             v1::ReadPreference preference) {
  if (preference != v1::READ_PREFERENCE_LEADER_ONLY) return absl::OkStatus();
  std::shared_ptr<shard::ShardReplica> r = host.replica(shard);
  if (r == nullptr) return absl::OkStatus();  // The host answers "not hosted".
  return r->CheckLeaderRead();
}

}  // namespace

grpc::ServerUnaryReactor* DataService::Write(grpc::CallbackServerContext* ctx,
                                             const v1::WriteRequest* request,
                                             v1::WriteResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status auth = security_->Authorize(*ctx, request->tenant(), jwt::Role::kWrite);
      !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
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
  if (grpc::Status auth = security_->Authorize(*ctx, request->tenant(), jwt::Role::kRead);
      !auth.ok()) {
    return auth;
  }
  absl::Status valid = query::ValidateTenant(request->tenant(), "tenant");
  if (valid.ok()) valid = query::ValidateId(request->claim_id(), "claim_id");
  if (valid.ok()) {
    valid = CheckLeaderRead(*host_,
                            ShardOf(request->tenant(), request->claim_id(), host_->shard_count()),
                            request->read_preference());
  }
  if (!valid.ok()) return ToGrpcStatus(valid, ctx);
  absl::StatusOr<v1::GetClaimResponse> result = host_->GetClaim(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status DataService::ListClaims(grpc::ServerContext* ctx, const v1::ListClaimsRequest* request,
                                     v1::ListClaimsResponse* response) {
  if (grpc::Status auth = security_->Authorize(*ctx, request->tenant(), jwt::Role::kRead);
      !auth.ok()) {
    return auth;
  }
  // Without a shard the listing covers whatever this node hosts: a node-local
  // view, not a leader read of the cluster.
  if (request->has_shard()) {
    absl::Status leader_ok = CheckLeaderRead(*host_, request->shard(), request->read_preference());
    if (!leader_ok.ok()) return ToGrpcStatus(leader_ok, ctx);
  }
  absl::StatusOr<v1::ListClaimsResponse> result = host_->ListClaims(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status DataService::Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                                v1::QueryResponse* response) {
  if (grpc::Status auth = security_->Authorize(*ctx, request->tenant(), jwt::Role::kRead);
      !auth.ok()) {
    return auth;
  }
  absl::StatusOr<v1::QueryResponse> result = host_->Query(*request);
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status NodeAdminService::GetNodeInfo(grpc::ServerContext* ctx,
                                           const v1::GetNodeInfoRequest* request,
                                           v1::NodeInfo* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  *response = host_->Info();
  response->set_insecure_no_auth(security_->insecure());
  return grpc::Status::OK;
}

grpc::Status NodeAdminService::FenceShard(grpc::ServerContext* ctx,
                                          const v1::FenceShardRequest* request,
                                          v1::FenceShardResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  if (absl::Status cut = replication::FaultHook::CheckPeerTraffic(); !cut.ok()) {
    return ToGrpcStatus(cut);
  }
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> hosted = host_->ReplicaAt(request->shard());
  if (!hosted.ok()) return ToGrpcStatus(hosted.status(), ctx);
  std::shared_ptr<shard::ShardReplica> r = *std::move(hosted);
  if (request->epoch() == 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("epoch: must be set"));
  }
  absl::StatusOr<shard::ReplicaState> state = r->Fence(request->epoch());
  if (!state.ok()) return ToGrpcStatus(state.status(), ctx);
  response->set_shard(request->shard());
  response->set_epoch(state->epoch);
  response->set_last_epoch(state->last_epoch);
  response->set_last_lsn(state->last_lsn);
  return grpc::Status::OK;
}

grpc::Status NodeAdminService::GetReplicaChecksum(grpc::ServerContext* ctx,
                                                  const v1::ReplicaChecksumRequest* request,
                                                  v1::ReplicaChecksum* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> hosted = host_->ReplicaAt(request->shard());
  if (!hosted.ok()) return ToGrpcStatus(hosted.status(), ctx);
  std::shared_ptr<shard::ShardReplica> r = *std::move(hosted);
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
