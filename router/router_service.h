// dash-router's public API: dash.v1.Data for clients that know only the
// router. Writes go to the shard's leader under the routing epoch and fail
// closed (UNAVAILABLE) when the shard has no healthy leader; on a stale-epoch
// answer the router refreshes its placement and retries once. Reads pick one
// replica per shard by the request's ReadPreference and, unless that is
// LEADER_ONLY, move on to the next eligible replica when one is UNAVAILABLE
// (replica_choice.h); queries scatter to one replica of every shard and rank globally with the same
// code a node uses (query/query_runner.h), so the ranking does not depend on the shard count.
// Every answer says the epoch and LSN each shard served at.
#ifndef DASH_ROUTER_ROUTER_SERVICE_H_
#define DASH_ROUTER_ROUTER_SERVICE_H_

#include <atomic>
#include <functional>

#include "common/thread_pool.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "router/placement_cache.h"
#include "router/replica_choice.h"

namespace dash::router {

struct RouterOptions {
  absl::Duration rpc_timeout = absl::Seconds(10);  // Per call to a node.
  // Replicas a FOLLOWER_PREFERRED or ANY_HEALTHY read tries per shard (and
  // per query phase) before it gives up.
  int max_read_attempts = 3;
  // How long a replica that failed a read is tried last.
  absl::Duration breaker_open_for = absl::Seconds(2);
  // How long a write the shard's leader refused for now (RefusedUntilNextTable:
  // just promoted, opening, transferring) waits for the next placement table
  // before it is tried again; within the caller's deadline.
  absl::Duration leader_wait = absl::Seconds(2);
  // Workers of the pool that ListClaims and queries fan out on (the
  // request's own thread helps: see common/thread_pool.h).
  size_t fanout_threads = 32;
};

// Trailing metadata on a read answer: how many replicas failed and were
// replaced by another within it (absent when none).
inline constexpr char kReadFailoversHeader[] = "dash-read-failovers";

class RouterService final : public v1::Data::Service {
 public:
  RouterService(PlacementCache* placement, RouterOptions options)
      : placement_(placement),
        options_(options),
        breaker_(options.breaker_open_for),
        fanout_(options.fanout_threads) {}

  grpc::Status Write(grpc::ServerContext* ctx, const v1::WriteRequest* request,
                     v1::WriteResponse* response) override;
  grpc::Status GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                        v1::GetClaimResponse* response) override;
  grpc::Status ListClaims(grpc::ServerContext* ctx, const v1::ListClaimsRequest* request,
                          v1::ListClaimsResponse* response) override;
  grpc::Status Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                     v1::QueryResponse* response) override;

 private:
  // Runs `attempt` against the current placement; when it fails with
  // FAILED_PRECONDITION (a node's epoch differs from ours), refreshes the
  // placement and runs it once more.
  absl::Status WithRetry(const std::function<absl::Status(const v1::Placement&)>& attempt);
  std::chrono::system_clock::time_point Deadline(const grpc::ServerContext* ctx) const;

  PlacementCache* const placement_;
  const RouterOptions options_;
  std::atomic<uint64_t> spread_{0};
  ReplicaBreaker breaker_;
  ThreadPool fanout_;
};

// dash.v1.NodeAdmin on the router: the cluster as one node, so that tools
// written against a node (dashctl info, ingest's shard count) work unchanged.
// Each shard is reported as its leader last reported it to the control plane.
class RouterAdminService final : public v1::NodeAdmin::Service {
 public:
  explicit RouterAdminService(PlacementCache* placement) : placement_(placement) {}
  grpc::Status GetNodeInfo(grpc::ServerContext* ctx, const v1::GetNodeInfoRequest* request,
                           v1::NodeInfo* response) override;

 private:
  PlacementCache* const placement_;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_ROUTER_SERVICE_H_
