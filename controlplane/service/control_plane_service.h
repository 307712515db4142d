// The gRPC face of the control plane: ControlPlaneService adapts
// dash.v1.ControlPlane to PlacementManager (unpack, call, pack; no state and
// no decisions here), and ControlPlaneServer runs it.
//
// The service uses gRPC's synchronous API on purpose: TransferLeader and
// DrainNode wait for nodes to catch up and WatchPlacement waits for new
// versions, and the sync server runs each call on its own thread, so a
// waiting call never blocks another. A watcher polls for cancellation every
// 100 ms while it waits.
//
// Thread-safety: thread-safe.
#ifndef DASH_CONTROLPLANE_SERVICE_CONTROL_PLANE_SERVICE_H_
#define DASH_CONTROLPLANE_SERVICE_CONTROL_PLANE_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/security.h"
#include "controlplane/fencing/fencer.h"
#include "controlplane/placement/placement_manager.h"
#include "dash/v1/placement.grpc.pb.h"
#include "grpcpp/server.h"

namespace dash::controlplane {

class ControlPlaneService final : public v1::ControlPlane::Service {
 public:
  // `manager` is not owned and must outlive the service. RegisterNode and
  // Heartbeat are internal (cluster members only); every other call needs
  // the admin role (common/security.h).
  ControlPlaneService(PlacementManager* manager,
                      std::shared_ptr<const Security> security = Security::Insecure())
      : manager_(manager), security_(std::move(security)) {}

  grpc::Status RegisterNode(grpc::ServerContext* ctx, const v1::RegisterNodeRequest* request,
                            v1::RegisterNodeResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status GetPlacement(grpc::ServerContext* ctx, const v1::GetPlacementRequest* request,
                            v1::Placement* response) override;
  grpc::Status WatchPlacement(grpc::ServerContext* ctx, const v1::WatchPlacementRequest* request,
                              grpc::ServerWriter<v1::Placement>* writer) override;
  grpc::Status ListNodes(grpc::ServerContext* ctx, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;
  grpc::Status Failover(grpc::ServerContext* ctx, const v1::FailoverRequest* request,
                        v1::PlacementChange* response) override;
  grpc::Status Promote(grpc::ServerContext* ctx, const v1::PromoteRequest* request,
                       v1::PlacementChange* response) override;
  grpc::Status TransferLeader(grpc::ServerContext* ctx, const v1::TransferLeaderRequest* request,
                              v1::PlacementChange* response) override;
  grpc::Status DrainNode(grpc::ServerContext* ctx, const v1::DrainNodeRequest* request,
                         v1::PlacementChange* response) override;
  grpc::Status AddReplica(grpc::ServerContext* ctx, const v1::AddReplicaRequest* request,
                          v1::PlacementChange* response) override;
  grpc::Status RemoveReplica(grpc::ServerContext* ctx, const v1::RemoveReplicaRequest* request,
                             v1::PlacementChange* response) override;
  grpc::Status MoveReplica(grpc::ServerContext* ctx, const v1::MoveReplicaRequest* request,
                           v1::PlacementChange* response) override;

 private:
  PlacementManager* const manager_;
  const std::shared_ptr<const Security> security_;
};

// A running control plane: the manager (table in `data_dir`) behind a gRPC
// server on `listen_address` ("host:port"; port 0 picks a free port).
class ControlPlaneServer {
 public:
  // Without options.fencer the server fences over gRPC (NewGrpcFencer).
  // `security` guards the port and gives the fencer its TLS identity.
  static absl::StatusOr<std::unique_ptr<ControlPlaneServer>> Start(
      ManagerOptions options, const std::string& data_dir, const std::string& listen_address,
      std::shared_ptr<const Security> security = Security::Insecure());
  // Shutdown() and Wait().
  ~ControlPlaneServer();

  int port() const { return port_; }
  PlacementManager* manager() { return manager_.get(); }
  grpc::Server* grpc_server() { return server_.get(); }
  // Blocks until Shutdown() is called from another thread.
  void Wait();
  // Wakes waiting calls (watchers end, transfers are abandoned), then stops
  // the server, letting in-flight calls finish for up to 5 seconds.
  void Shutdown();

 private:
  ControlPlaneServer() = default;

  std::unique_ptr<Fencer> fencer_;  // Outlives manager_ (declared first).
  std::unique_ptr<PlacementManager> manager_;
  std::unique_ptr<ControlPlaneService> service_;
  std::unique_ptr<metrics::CollectorHandle> collector_;  // Reads manager_.
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_SERVICE_CONTROL_PLANE_SERVICE_H_
