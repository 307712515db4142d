// A running shard node: the ShardHost behind a gRPC server. Thread-safe.
#ifndef DASH_NODE_SERVICE_NODE_SERVER_H_
#define DASH_NODE_SERVICE_NODE_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/inflight.h"
#include "common/metrics.h"
#include "common/rate_limiter.h"
#include "common/security.h"
#include "grpcpp/server.h"
#include "node/replication/log_server.h"
#include "node/replication/snapshot_server.h"
#include "node/service/data_service.h"
#include "node/service/shard_query_service.h"
#include "node/shard/shard_host.h"

namespace dash::service {

struct NodeServerOptions {
  // No replica is opened at start: a PlacementAgent adds them.
  bool managed = false;
  // What all snapshot streams of the node (followers catching up) may send
  // together, in bytes per second; 0: unlimited.
  uint64_t snapshot_rate_bytes_per_s = 64 << 20;
  // Who may call what, and the port's TLS (common/security.h).
  std::shared_ptr<const Security> security = Security::Insecure();
  // Prometheus series (common/metrics.h): every call's latency, and the
  // node's state read at each scrape (node_metrics.h).
  bool metrics = true;
};

class NodeServer {
 public:
  // Opens the hosted replicas and starts serving on `listen_address`
  // ("host:port"; port 0 picks a free port, see port()). Snapshots for
  // followers are kept in <data_dir>/snapshots, wiped here.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const shard::HostOptions& options,
                                                           const std::string& listen_address,
                                                           const NodeServerOptions& server_options);
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const shard::HostOptions& options,
                                                           const std::string& listen_address,
                                                           bool managed = false) {
    NodeServerOptions server_options;
    server_options.managed = managed;
    return Start(options, listen_address, server_options);
  }
  // Stops accepting calls, lets in-flight ones finish (up to a deadline), then
  // closes the replicas.
  ~NodeServer();

  int port() const { return port_; }
  grpc::Server* grpc_server() { return server_.get(); }
  // A channel into this server without the network (the HTTP API's calls).
  std::shared_ptr<grpc::Channel> InProcessChannel();
  shard::ShardHost* host() { return host_.get(); }
  // The node's health (common/serving.h): "", dash.v1.Data and
  // dash.v1.ShardQuery are SERVING while `ready` — from the start for an
  // unmanaged node, once its PlacementAgent reports ready for a managed one.
  // NodeAdmin, Replication and Snapshots serve from the start (followers catch
  // up from a draining node too). Ignored once stopping.
  void SetReady(bool ready);
  // Every service NOT_SERVING for good; the first step of Shutdown, and of a
  // process's stop before it lets go of its placement.
  void StopServing();
  // Blocks until Shutdown() is called from another thread.
  void Wait();
  void Shutdown();

 private:
  NodeServer() = default;

  std::unique_ptr<shard::ShardHost> host_;
  std::unique_ptr<DataService> data_service_;
  std::unique_ptr<NodeAdminService> admin_service_;
  std::unique_ptr<ShardQueryService> shard_query_service_;
  std::unique_ptr<replication::LogServer> log_server_;
  std::unique_ptr<RateLimiter> snapshot_limiter_;  // Used by snapshot_server_.
  std::unique_ptr<replication::SnapshotServer> snapshot_server_;
  InflightCalls inflight_;  // Before server_: its interceptors point here.
  std::unique_ptr<metrics::CollectorHandle> collector_;  // Reads host_.
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace dash::service

#endif  // DASH_NODE_SERVICE_NODE_SERVER_H_
