#include "router/router_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace dash::router {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext* ctx) {
  return absl::FromChrono(ctx->deadline());
}

// Refuses a caller without `role` on the request's tenant, then a malformed
// request, at once; otherwise `work` (which returns the call's status) runs on
// `executor` and finishes the call there.
template <typename Request, typename Work>
grpc::ServerUnaryReactor* Serve(const Security& security, jwt::Role role, ThreadPool* executor,
                                size_t max_queued, grpc::CallbackServerContext* ctx,
                                const Request& request, Work work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status auth = security.Authorize(*ctx, request.tenant(), role); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  absl::Status valid = Router::Validate(request);
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  const bool queued = executor->TrySchedule(
      [reactor, ctx, work = std::move(work)] {
        if (ctx->IsCancelled()) {  // The client gave up while the request waited.
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while queued"));
          return;
        }
        reactor->Finish(work());
      },
      max_queued);
  if (!queued) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "router: ", max_queued, " requests already wait for the nodes; retry with backoff"))));
  }
  return reactor;
}

template <typename Response>
grpc::Status Answer(grpc::CallbackServerContext* ctx, absl::StatusOr<Response> result,
                    Response* response) {
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = *std::move(result);
  return grpc::Status::OK;
}

template <typename Response>
grpc::Status Answer(grpc::CallbackServerContext* ctx, ReadResult<Response> result,
                    Response* response) {
  // Tells the client how many replicas failed and were replaced within its read.
  if (result.failovers > 0) {
    ctx->AddTrailingMetadata(kReadFailoversHeader, std::to_string(result.failovers));
  }
  return Answer(ctx, std::move(result.response), response);
}

}  // namespace

grpc::ServerUnaryReactor* RouterService::Write(grpc::CallbackServerContext* ctx,
                                               const v1::WriteRequest* request,
                                               v1::WriteResponse* response) {
  return Serve(*security_, jwt::Role::kWrite, executor_, max_queued_, ctx, *request,
               [this, ctx, request, response] {
                 return Answer(ctx, router_->Write(*request, DeadlineOf(ctx)), response);
               });
}

grpc::ServerUnaryReactor* RouterService::GetClaim(grpc::CallbackServerContext* ctx,
                                                  const v1::GetClaimRequest* request,
                                                  v1::GetClaimResponse* response) {
  return Serve(*security_, jwt::Role::kRead, executor_, max_queued_, ctx, *request,
               [this, ctx, request, response] {
                 return Answer(ctx, router_->GetClaim(*request, DeadlineOf(ctx)), response);
               });
}

grpc::ServerUnaryReactor* RouterService::ListClaims(grpc::CallbackServerContext* ctx,
                                                    const v1::ListClaimsRequest* request,
                                                    v1::ListClaimsResponse* response) {
  return Serve(*security_, jwt::Role::kRead, executor_, max_queued_, ctx, *request,
               [this, ctx, request, response] {
                 return Answer(ctx, router_->ListClaims(*request, DeadlineOf(ctx)), response);
               });
}

grpc::ServerUnaryReactor* RouterService::Query(grpc::CallbackServerContext* ctx,
                                               const v1::QueryRequest* request,
                                               v1::QueryResponse* response) {
  return Serve(*security_, jwt::Role::kRead, executor_, max_queued_, ctx, *request,
               [this, ctx, request, response] {
                 return Answer(ctx, router_->Query(*request, DeadlineOf(ctx)), response);
               });
}

grpc::Status RouterAdminService::GetNodeInfo(grpc::ServerContext* ctx,
                                             const v1::GetNodeInfoRequest* request,
                                             v1::NodeInfo* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  absl::StatusOr<v1::NodeInfo> info = router_->ClusterInfo();
  if (!info.ok()) return ToGrpcStatus(info.status(), ctx);
  *response = *std::move(info);
  response->set_insecure_no_auth(security_->insecure());
  return grpc::Status::OK;
}

}  // namespace dash::router
