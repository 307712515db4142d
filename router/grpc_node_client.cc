#include "router/grpc_node_client.h"

#include <array>
#include <atomic>

#include "common/grpc_status.h"
#include "common/metrics.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"

namespace dash::router {
namespace {

// The methods the router calls on nodes, for the call histogram's labels.
enum Method { kWrite, kGetClaim, kListClaims, kStats, kLegs, kFetch, kMethods };
constexpr const char* kMethodNames[kMethods] = {
    "dash.v1.Data/Write",       "dash.v1.Data/GetClaim",   "dash.v1.Data/ListClaims",
    "dash.v1.ShardQuery/Stats", "dash.v1.ShardQuery/Legs", "dash.v1.ShardQuery/Fetch"};
constexpr int kCodes = 17;

// dash_router_node_call_seconds{method, code}: the router's fan-out as it
// sees it, each call to a node; a series is made on its first use.
prometheus::Histogram& NodeCallSeconds(Method method, grpc::StatusCode code) {
  static std::array<std::array<std::atomic<prometheus::Histogram*>, kCodes>, kMethods> series{};
  const int c = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes
                    ? static_cast<int>(code)
                    : static_cast<int>(grpc::StatusCode::UNKNOWN);
  prometheus::Histogram* h = series[method][c].load(std::memory_order_acquire);
  if (h == nullptr) {
    h = &metrics::Histogram("dash_router_node_call_seconds",
                            "Time of the router's calls to nodes (its fan-out), by method and code",
                            metrics::LatencyBuckets(),
                            {{"method", kMethodNames[method]}, {"code", metrics::CodeName(c)}});
    series[method][c].store(h, std::memory_order_release);
  }
  return *h;
}

// One blocking call: `rpc(ctx, response)` under `deadline`, observed.
template <typename Response, typename Rpc>
absl::StatusOr<Response> Call(Method method, absl::Time deadline, Rpc rpc) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  Response response;
  const absl::Time start = absl::Now();
  const grpc::Status status = rpc(&ctx, &response);
  NodeCallSeconds(method, status.error_code()).Observe(absl::ToDoubleSeconds(absl::Now() - start));
  absl::Status st = FromGrpcStatus(status, &ctx);
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
  return Call<v1::WriteResponse>(
      kWrite, deadline,
      [&](grpc::ClientContext* ctx, v1::WriteResponse* r) { return stub->Write(ctx, request, r); });
}

absl::StatusOr<v1::GetClaimResponse> GrpcNodeClient::GetClaim(const std::string& address,
                                                              const v1::GetClaimRequest& request,
                                                              absl::Time deadline) {
  auto stub = v1::Data::NewStub(Channel(address));
  return Call<v1::GetClaimResponse>(kGetClaim, deadline,
                                    [&](grpc::ClientContext* ctx, v1::GetClaimResponse* r) {
                                      return stub->GetClaim(ctx, request, r);
                                    });
}

absl::StatusOr<v1::ListClaimsResponse> GrpcNodeClient::ListClaims(
    const std::string& address, const v1::ListClaimsRequest& request, absl::Time deadline) {
  auto stub = v1::Data::NewStub(Channel(address));
  return Call<v1::ListClaimsResponse>(kListClaims, deadline,
                                      [&](grpc::ClientContext* ctx, v1::ListClaimsResponse* r) {
                                        return stub->ListClaims(ctx, request, r);
                                      });
}

absl::StatusOr<v1::ShardStatsResponse> GrpcNodeClient::ShardStats(
    const std::string& address, const v1::ShardStatsRequest& request, absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardStatsResponse>(kStats, deadline,
                                      [&](grpc::ClientContext* ctx, v1::ShardStatsResponse* r) {
                                        return stub->Stats(ctx, request, r);
                                      });
}

absl::StatusOr<v1::ShardLegsResponse> GrpcNodeClient::ShardLegs(const std::string& address,
                                                                const v1::ShardLegsRequest& request,
                                                                absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardLegsResponse>(kLegs, deadline,
                                     [&](grpc::ClientContext* ctx, v1::ShardLegsResponse* r) {
                                       return stub->Legs(ctx, request, r);
                                     });
}

absl::StatusOr<v1::ShardFetchResponse> GrpcNodeClient::ShardFetch(
    const std::string& address, const v1::ShardFetchRequest& request, absl::Time deadline) {
  auto stub = v1::ShardQuery::NewStub(Channel(address));
  return Call<v1::ShardFetchResponse>(kFetch, deadline,
                                      [&](grpc::ClientContext* ctx, v1::ShardFetchResponse* r) {
                                        return stub->Fetch(ctx, request, r);
                                      });
}

}  // namespace dash::router
