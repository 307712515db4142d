#include "node/service/node_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/serving.h"
#include "common/status_macros.h"
#include "grpcpp/server_builder.h"
#include "node/service/node_metrics.h"

namespace dash::service {

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(
    const shard::HostOptions& options, const std::string& listen_address,
    const NodeServerOptions& server_options) {
  auto server = std::unique_ptr<NodeServer>(new NodeServer());
  DASH_ASSIGN_OR_RETURN(server->host_, shard::ShardHost::Open(options, server_options.managed));
  const std::shared_ptr<const Security>& security = server_options.security;
  server->data_service_ = std::make_unique<DataService>(server->host_.get(), security);
  server->admin_service_ = std::make_unique<NodeAdminService>(server->host_.get(), security);
  server->shard_query_service_ = std::make_unique<ShardQueryService>(server->host_.get(), security);
  replication::SnapshotServerOptions snapshot_options;
  snapshot_options.snapshot_dir = absl::StrCat(options.data_dir, "/snapshots");
  server->snapshot_limiter_ = std::make_unique<RateLimiter>(
      server_options.snapshot_rate_bytes_per_s, snapshot_options.chunk_bytes);
  snapshot_options.limiter = server->snapshot_limiter_.get();
  snapshot_options.security = security;
  // Log catch-up of a far-behind follower shares the same budget.
  server->log_server_ = std::make_unique<replication::LogServer>(
      server->host_.get(), server->snapshot_limiter_.get(), security);
  DASH_ASSIGN_OR_RETURN(server->snapshot_server_,
                        replication::SnapshotServer::Create(server->host_.get(), snapshot_options));

  EnableHealthAndReflection();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen_address, security->ServerCredentials(), &server->port_);
  builder.RegisterService(server->data_service_.get());
  builder.RegisterService(server->admin_service_.get());
  builder.RegisterService(server->shard_query_service_.get());
  builder.RegisterService(server->log_server_.get());
  builder.RegisterService(server->snapshot_server_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto interceptors = server->inflight_.Factories();
  if (server_options.metrics)
    interceptors.push_back(metrics::RpcMetricsFactory({v1::Data::service_full_name()}));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_address));
  }
  SetServing(server->server_.get(),
             {v1::NodeAdmin::service_full_name(), v1::Replication::service_full_name(),
              v1::Snapshots::service_full_name()},
             true);
  server->SetReady(!server_options.managed);
  if (server_options.metrics) {
    shard::ShardHost* host = server->host_.get();
    server->collector_ = metrics::AddCollector([host] { return NodeFamilies(host->Info()); });
  }
  return server;
}

std::shared_ptr<grpc::Channel> NodeServer::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return server_->InProcessChannel(args);
}

void NodeServer::SetReady(bool ready) {
  SetServing(server_.get(),
             {"", v1::Data::service_full_name(), v1::ShardQuery::service_full_name()}, ready);
}

void NodeServer::StopServing() { dash::StopServing(server_.get()); }

void NodeServer::Wait() { server_->Wait(); }

void NodeServer::Shutdown() {
  StopServing();
  // Log and snapshot streams would otherwise hold the shutdown to its deadline.
  log_server_->Stop();
  snapshot_server_->Stop();
  // Calls in flight (a write waiting for its majority) get up to 5 s; idle
  // client connections do not hold the stop (see common/inflight.h).
  ShutdownWhenIdle(server_.get(), inflight_, absl::Seconds(5));
}

NodeServer::~NodeServer() {
  collector_.reset();  // Before host_ goes.
  if (server_ != nullptr) {
    Shutdown();
    server_->Wait();
    ForgetServer(server_.get());
  }
  server_.reset();
  host_.reset();
}

}  // namespace dash::service
