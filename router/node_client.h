// How the router core reaches a node: one blocking call per RPC of
// dash.v1.Data and dash.v1.ShardQuery that the router forwards, to the node
// at `address`, ending by `deadline`. An error is the node's answer or the
// transport's (UNAVAILABLE when the node cannot be reached); a node's routing
// hint travels on the status (common/grpc_status.h). GrpcNodeClient is the
// implementation; the interface keeps gRPC out of the core.
// Implementations are thread-safe.
#ifndef DASH_ROUTER_NODE_CLIENT_H_
#define DASH_ROUTER_NODE_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dash/v1/data.pb.h"
#include "dash/v1/node.pb.h"

namespace dash::router {

class NodeClient {
 public:
  virtual ~NodeClient() = default;

  virtual absl::StatusOr<v1::WriteResponse> Write(const std::string& address,
                                                  const v1::WriteRequest& request,
                                                  absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::GetClaimResponse> GetClaim(const std::string& address,
                                                        const v1::GetClaimRequest& request,
                                                        absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ListClaimsResponse> ListClaims(const std::string& address,
                                                            const v1::ListClaimsRequest& request,
                                                            absl::Time deadline) = 0;
  // A query's phases on one replica (dash.v1.ShardQuery).
  virtual absl::StatusOr<v1::ShardStatsResponse> ShardStats(const std::string& address,
                                                            const v1::ShardStatsRequest& request,
                                                            absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ShardLegsResponse> ShardLegs(const std::string& address,
                                                          const v1::ShardLegsRequest& request,
                                                          absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ShardFetchResponse> ShardFetch(const std::string& address,
                                                            const v1::ShardFetchRequest& request,
                                                            absl::Time deadline) = 0;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_NODE_CLIENT_H_
