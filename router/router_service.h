// dash-router's gRPC face: dash.v1.Data for clients that know only the
// router, and dash.v1.NodeAdmin answered for the cluster. Thin by design: the
// routing is the Router's (router.h).
//
// Threading: Data uses the callback API. A method validates its request on
// the gRPC thread, then hands it to `executor`, a bounded pool the router
// owns, whose thread runs the Router (which blocks on the nodes) and finishes
// the call; no gRPC thread waits on a node. The queue is bounded (beyond it,
// RESOURCE_EXHAUSTED), and a request whose client gave up while it waited is
// not run. A read's failover count goes into the trailing metadata
// kReadFailoversHeader.
#ifndef DASH_ROUTER_ROUTER_SERVICE_H_
#define DASH_ROUTER_ROUTER_SERVICE_H_

#include "common/security.h"
#include "common/thread_pool.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "router/router.h"

namespace dash::router {

// Trailing metadata on a read answer: how many replicas failed and were
// replaced by another within it (absent when none).
inline constexpr char kReadFailoversHeader[] = "dash-read-failovers";

class RouterService final : public v1::Data::CallbackService {
 public:
  // `router` and `executor` must outlive the server's last call. Once
  // `max_queued` requests wait for an executor thread, more are refused
  // RESOURCE_EXHAUSTED (retry with backoff) rather than queued without bound.
  // Every call is authorized by `security` first (common/security.h).
  RouterService(Router* router, ThreadPool* executor, size_t max_queued = 10000,
                std::shared_ptr<const Security> security = Security::Insecure())
      : router_(router),
        executor_(executor),
        max_queued_(max_queued),
        security_(std::move(security)) {}

  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, const v1::WriteRequest* request,
                                  v1::WriteResponse* response) override;
  grpc::ServerUnaryReactor* GetClaim(grpc::CallbackServerContext* ctx,
                                     const v1::GetClaimRequest* request,
                                     v1::GetClaimResponse* response) override;
  grpc::ServerUnaryReactor* ListClaims(grpc::CallbackServerContext* ctx,
                                       const v1::ListClaimsRequest* request,
                                       v1::ListClaimsResponse* response) override;
  grpc::ServerUnaryReactor* Query(grpc::CallbackServerContext* ctx, const v1::QueryRequest* request,
                                  v1::QueryResponse* response) override;

 private:
  Router* const router_;
  ThreadPool* const executor_;
  const size_t max_queued_;
  const std::shared_ptr<const Security> security_;
};

// dash.v1.NodeAdmin on the router: the cluster as one node, so that tools
// written against a node (dashctl info, ingest's shard count) work unchanged.
// Synchronous: it only reads the cached placement.
class RouterAdminService final : public v1::NodeAdmin::Service {
 public:
  // GetNodeInfo needs the admin role.
  explicit RouterAdminService(const Router* router,
                              std::shared_ptr<const Security> security = Security::Insecure())
      : router_(router), security_(std::move(security)) {}
  grpc::Status GetNodeInfo(grpc::ServerContext* ctx, const v1::GetNodeInfoRequest* request,
                           v1::NodeInfo* response) override;

 private:
  const Router* const router_;
  const std::shared_ptr<const Security> security_;
};

}  // namespace dash::router

#endif  // DASH_ROUTER_ROUTER_SERVICE_H_
