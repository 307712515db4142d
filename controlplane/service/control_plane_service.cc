#include "controlplane/service/control_plane_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/inflight.h"
#include "common/placement_metrics.h"
#include "common/serving.h"
#include "common/status_macros.h"
#include "controlplane/fencing/grpc_fencer.h"
#include "grpcpp/server_builder.h"

namespace dash::controlplane {
namespace {

// How often a waiting watcher checks whether its client went away.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(100);

template <typename T>
grpc::Status Reply(grpc::ServerContext* ctx, absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status(), ctx);
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ControlPlaneService::RegisterNode(grpc::ServerContext* ctx,
                                               const v1::RegisterNodeRequest* request,
                                               v1::RegisterNodeResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  return Reply(ctx, manager_->RegisterNode(*request), response);
}

grpc::Status ControlPlaneService::Heartbeat(grpc::ServerContext* ctx,
                                            const v1::HeartbeatRequest* request,
                                            v1::HeartbeatResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  return Reply(ctx, manager_->Heartbeat(*request), response);
}

grpc::Status ControlPlaneService::GetPlacement(grpc::ServerContext* ctx,
                                               const v1::GetPlacementRequest* request,
                                               v1::Placement* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  *response = manager_->GetPlacement();
  return grpc::Status::OK;
}

grpc::Status ControlPlaneService::WatchPlacement(grpc::ServerContext* ctx,
                                                 const v1::WatchPlacementRequest* request,
                                                 grpc::ServerWriter<v1::Placement>* writer) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  uint64_t sent = request->after_version();
  while (!ctx->IsCancelled()) {
    // Always the latest table: a slow watcher skips versions, never reorders.
    std::optional<v1::Placement> next = manager_->WaitForNewer(sent, kWatchPoll);
    if (manager_->stopped()) break;
    if (!next.has_value()) continue;
    if (!writer->Write(*next)) break;  // The client went away.
    sent = next->version();
  }
  if (manager_->stopped()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the control plane is shutting down");
  }
  return grpc::Status::OK;
}

grpc::Status ControlPlaneService::ListNodes(grpc::ServerContext* ctx,
                                            const v1::ListNodesRequest* request,
                                            v1::ListNodesResponse* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  *response = manager_->ListNodes();
  return grpc::Status::OK;
}

grpc::Status ControlPlaneService::Failover(grpc::ServerContext* ctx,
                                           const v1::FailoverRequest* request,
                                           v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->Failover(*request), response);
}

grpc::Status ControlPlaneService::Promote(grpc::ServerContext* ctx,
                                          const v1::PromoteRequest* request,
                                          v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->Promote(*request), response);
}

grpc::Status ControlPlaneService::TransferLeader(grpc::ServerContext* ctx,
                                                 const v1::TransferLeaderRequest* request,
                                                 v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->TransferLeader(*request), response);
}

grpc::Status ControlPlaneService::DrainNode(grpc::ServerContext* ctx,
                                            const v1::DrainNodeRequest* request,
                                            v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->DrainNode(*request), response);
}

grpc::Status ControlPlaneService::AddReplica(grpc::ServerContext* ctx,
                                             const v1::AddReplicaRequest* request,
                                             v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->AddReplica(*request), response);
}

grpc::Status ControlPlaneService::RemoveReplica(grpc::ServerContext* ctx,
                                                const v1::RemoveReplicaRequest* request,
                                                v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->RemoveReplica(*request), response);
}

grpc::Status ControlPlaneService::MoveReplica(grpc::ServerContext* ctx,
                                              const v1::MoveReplicaRequest* request,
                                              v1::PlacementChange* response) {
  if (grpc::Status auth = security_->AuthorizeRole(*ctx, jwt::Role::kAdmin); !auth.ok()) {
    return auth;
  }
  return Reply(ctx, manager_->MoveReplica(*request), response);
}

absl::StatusOr<std::unique_ptr<ControlPlaneServer>> ControlPlaneServer::Start(
    ManagerOptions options, const std::string& data_dir, const std::string& listen_address,
    std::shared_ptr<const Security> security) {
  auto server = std::unique_ptr<ControlPlaneServer>(new ControlPlaneServer());
  if (options.fencer == nullptr) {
    server->fencer_ = NewGrpcFencer(security);
    options.fencer = server->fencer_.get();
  }
  DASH_ASSIGN_OR_RETURN(std::unique_ptr<PlacementStore> store, OpenRocksPlacementStore(data_dir));
  DASH_ASSIGN_OR_RETURN(server->manager_, PlacementManager::Open(std::move(store), options));
  server->service_ = std::make_unique<ControlPlaneService>(server->manager_.get(), security);

  EnableHealthAndReflection();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen_address, security->ServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(ParseErrorsAsInvalidArgument());
  interceptors.push_back(metrics::RpcMetricsFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_address));
  }
  // Its store is open and its table loaded: it serves.
  SetServing(server->server_.get(), {"", v1::ControlPlane::service_full_name()}, true);
  PlacementManager* manager = server->manager_.get();
  server->collector_ = metrics::AddCollector(
      [manager] { return metrics::PlacementFamilies(manager->GetPlacement()); });
  return server;
}

void ControlPlaneServer::Wait() { server_->Wait(); }

void ControlPlaneServer::Shutdown() {
  StopServing(server_.get());
  manager_->Shutdown();
  // In-flight calls are short (watch streams end at once on manager shutdown);
  // after a second whatever remains is cancelled.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

ControlPlaneServer::~ControlPlaneServer() {
  collector_.reset();  // Before manager_ goes.
  if (server_ != nullptr) {
    Shutdown();
    server_->Wait();
    ForgetServer(server_.get());
  }
  server_.reset();
  service_.reset();
  manager_.reset();
}

}  // namespace dash::controlplane
