#include "router/grpc_node_client.h"

#include "common/grpc_status.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"

namespace dash::router {
namespace {

// One blocking call: `rpc(ctx, response)` under `deadline`.
template <typename Response, typename Rpc>
absl::StatusOr<Response> Call(absl::Time deadline, Rpc rpc) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  Response response;
  absl::Status st = FromGrpcStatus(rpc(&ctx, &response), &ctx);
  if (!st.ok()) return st;
  return response;
}

}  // namespace

std::shared_ptr<grpc::Channel> GrpcNodeClient::Channel(const std::string& address) {
  absl::MutexLock l(&mu_);
  auto& ch = channels_[address];
  if (ch == nullptr) {
    // A node that restarts at the same address must be reachable again within
    // a failure timeout, not after gRPC's default reconnect backoff (up to 2 min).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(64 << 20);
    ch = security_->PeerChannel(address, args);
  }
  return ch;
}

absl::StatusOr<v1::WriteResponse> GrpcNodeClient::Write(const std::string& address,
                                                        const v1::WriteRequest& request,
                                                        absl::Time deadline) {
  auto stub = v1::Data::NewStub(Channel(address));
  return Call<v1::WriteResponse>(deadline, [&](grpc::ClientContext* ctx, v1::WriteResponse* r) {
    return stub->Write(ctx, request, r);
  });
}

absl::StatusOr<v1::GetClaimResponse> GrpcNodeClient::GetClaim(const std::string& address,
                                                              const v1::GetClaimRequest& request,
                                                              absl::Time deadline) {
  auto stub = v1::Data::NewStub(Channel(address));
  return Call<v1::GetClaimResponse>(deadline,
                                    [&](grpc::ClientContext* ctx, v1::GetClaimResponse* r) {
                                      return stub->GetClaim(ctx, request, r);
                                    });
}

absl::StatusOr<v1::ListClaimsResponse> GrpcNodeClient::ListClaims(
    const std::string& address, const v1::ListClaimsRequest& request, absl::Time deadline) {
  auto stub = v1::Data::NewStub(Channel(address));
  return Call<v1::ListClaimsResponse>(deadline,
                                      [&](grpc::ClientContext* ctx, v1::ListClaimsResponse* r) {
                                        return stub->ListClaims(ctx, request, r);
                                      });
}

absl::StatusOr<v1::ShardStatsResponse> GrpcNodeClient::ShardStats(
    const std::string& address, const v1::ShardStatsRequest& request, absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardStatsResponse>(deadline,
                                      [&](grpc::ClientContext* ctx, v1::ShardStatsResponse* r) {
                                        return stub->Stats(ctx, request, r);
                                      });
}

absl::StatusOr<v1::ShardLegsResponse> GrpcNodeClient::ShardLegs(const std::string& address,
                                                                const v1::ShardLegsRequest& request,
                                                                absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardLegsResponse>(deadline,
                                     [&](grpc::ClientContext* ctx, v1::ShardLegsResponse* r) {
                                       return stub->Legs(ctx, request, r);
                                     });
}

absl::StatusOr<v1::ShardFetchResponse> GrpcNodeClient::ShardFetch(
    const std::string& address, const v1::ShardFetchRequest& request, absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardFetchResponse>(deadline,
                                      [&](grpc::ClientContext* ctx, v1::ShardFetchResponse* r) {
                                        return stub->Fetch(ctx, request, r);
                                      });
}

}  // namespace dash::router
