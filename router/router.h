// The router's core: how dash.v1.Data is served for a whole cluster, with no
// gRPC in sight. Writes go to the shard's leader under the routing epoch and
// fail closed (UNAVAILABLE) when the shard has no healthy leader; a leader
// that refused before logging (UNAVAILABLE with a routing hint) is tried again
// once the next placement table arrives, within RouterOptions::leader_wait.
// Reads pick replicas by the request's ReadPreference and, unless that is
// LEADER_ONLY, move on to the next eligible replica when one is UNAVAILABLE
// (replica_choice.h). ListClaims asks one replica of every shard at once and
// merges their pages (query/page_merge.h); queries run query::RunQuery over
// one remote target per shard, so the ranking does not depend on the shard
// count. Any FAILED_PRECONDITION answer (our epoch is stale, or the node no
// longer serves the shard) refreshes the placement and runs the request once
// more: nothing was applied, so the retry is safe. Every answer says the
// epoch and LSN each shard served at.
//
// Threading: each method blocks its calling thread until the nodes have
// answered (so the caller runs it on an executor of its own, never on a gRPC
// thread); fan-out runs on the `fanout` pool with the caller's help
// (common/thread_pool.h), so calling from a thread of that pool is safe.
// Thread-safe.
#ifndef DASH_ROUTER_ROUTER_H_
#define DASH_ROUTER_ROUTER_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/thread_pool.h"
#include "dash/v1/data.pb.h"
#include "dash/v1/node.pb.h"
#include "router/node_client.h"
#include "router/placement_view.h"
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
};

// A read's answer or error, and how many replicas failed and were replaced by
// another within it (counted whether the read succeeded or not).
template <typename Response>
struct ReadResult {
  absl::StatusOr<Response> response;
  int failovers = 0;
};

class Router {
 public:
  // `placement`, `nodes` and `fanout` must outlive the router.
  Router(PlacementView* placement, NodeClient* nodes, ThreadPool* fanout, RouterOptions options)
      : placement_(placement),
        nodes_(nodes),
        fanout_(fanout),
        options_(options),
        breaker_(options.breaker_open_for) {}

  // INVALID_ARGUMENT naming the field when a request is malformed; no I/O, so
  // a caller may refuse a request before it takes an executor thread. The
  // methods below REQUIRE their request to pass.
  static absl::Status Validate(const v1::WriteRequest& request);
  static absl::Status Validate(const v1::GetClaimRequest& request);
  static absl::Status Validate(const v1::ListClaimsRequest& request);
  static absl::Status Validate(const v1::QueryRequest& request);

  // Each call to a node ends by the earlier of `deadline` (the client's) and
  // RouterOptions::rpc_timeout from when it is sent. Errors are the node's,
  // passed through, or UNAVAILABLE (with a RoutingHint) when no replica may
  // serve; INVALID_ARGUMENT when a write names a shard it does not belong to
  // or a listing names a shard beyond the shard count or a page token of
  // another listing.
  absl::StatusOr<v1::WriteResponse> Write(const v1::WriteRequest& request, absl::Time deadline);
  ReadResult<v1::GetClaimResponse> GetClaim(const v1::GetClaimRequest& request,
                                            absl::Time deadline);
  ReadResult<v1::ListClaimsResponse> ListClaims(const v1::ListClaimsRequest& request,
                                                absl::Time deadline);
  ReadResult<v1::QueryResponse> Query(const v1::QueryRequest& request, absl::Time deadline);

  // The cluster as one node (dash.v1.NodeAdmin.GetNodeInfo): each shard as its
  // leader last reported it to the control plane. UNAVAILABLE without a table.
  absl::StatusOr<v1::NodeInfo> ClusterInfo() const;

 private:
  // Runs `attempt` against the current placement; when it fails with
  // FAILED_PRECONDITION, refreshes the placement and runs it once more.
  absl::Status WithRetry(const std::function<absl::Status(const v1::Placement&)>& attempt);
  // When a call to a node sent now must end.
  absl::Time CallDeadline(absl::Time deadline) const;

  // Constant after construction.
  PlacementView* const placement_;
  NodeClient* const nodes_;
  ThreadPool* const fanout_;
  const RouterOptions options_;
  // Thread-safe themselves.
  std::atomic<uint64_t> spread_{0};  // Rotates equally good replicas.
  ReplicaBreaker breaker_;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_ROUTER_H_
