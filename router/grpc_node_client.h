// NodeClient over gRPC: synchronous stubs on one channel per node address,
// with a short reconnect backoff (100 ms - 1 s) so that a node restarted at
// the same address is used again within a failure timeout. Statuses come back
// through FromGrpcStatus, routing hints included. Thread-safe.
#ifndef DASH_ROUTER_GRPC_NODE_CLIENT_H_
#define DASH_ROUTER_GRPC_NODE_CLIENT_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/security.h"
#include "grpcpp/channel.h"
#include "router/node_client.h"

namespace dash::router {

class GrpcNodeClient final : public NodeClient {
 public:
  // Calls nodes as a cluster member, with `security`'s TLS identity.
  explicit GrpcNodeClient(std::shared_ptr<const Security> security = Security::Insecure())
      : security_(std::move(security)) {}

  absl::StatusOr<v1::WriteResponse> Write(const std::string& address,
                                          const v1::WriteRequest& request,
                                          absl::Time deadline) override;
  absl::StatusOr<v1::GetClaimResponse> GetClaim(const std::string& address,
                                                const v1::GetClaimRequest& request,
                                                absl::Time deadline) override;
  absl::StatusOr<v1::ListClaimsResponse> ListClaims(const std::string& address,
                                                    const v1::ListClaimsRequest& request,
                                                    absl::Time deadline) override;
  absl::StatusOr<v1::ShardStatsResponse> ShardStats(const std::string& address,
                                                    const v1::ShardStatsRequest& request,
                                                    absl::Time deadline) override;
  absl::StatusOr<v1::ShardLegsResponse> ShardLegs(const std::string& address,
                                                  const v1::ShardLegsRequest& request,
                                                  absl::Time deadline) override;
  absl::StatusOr<v1::ShardFetchResponse> ShardFetch(const std::string& address,
                                                    const v1::ShardFetchRequest& request,
                                                    absl::Time deadline) override;

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);

  const std::shared_ptr<const Security> security_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dash::router

#endif  // DASH_ROUTER_GRPC_NODE_CLIENT_H_
