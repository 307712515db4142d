// dash-router: the stateless front door of a DASH cluster (see router.h and router_service.h).
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/http_api.h"
#include "common/http_flags.h"
#include "common/inflight.h"
#include "common/metrics.h"
#include "common/placement_metrics.h"
#include "common/port_file.h"
#include "common/proto_log.h"
#include "common/security_flags.h"
#include "common/serving.h"
#include "common/thread_pool.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "router/grpc_node_client.h"
#include "router/placement_cache.h"
#include "router/replica_choice.h"
#include "router/router.h"
#include "router/router_service.h"

DEFINE_string(controlplane, "127.0.0.1:7000", "host:port of dash-controlplane.");
DEFINE_string(listen, "127.0.0.1:7100", "gRPC listen address host:port; port 0 picks a free port.");
DEFINE_string(port_file, "", "If set, the bound port is written here once the router serves.");
DEFINE_uint32(rpc_timeout_ms, 10000, "Deadline of each call to a node, in milliseconds.");
DEFINE_uint32(max_read_attempts, 3,
              "Replicas a FOLLOWER_PREFERRED or ANY_HEALTHY read tries per shard before it fails "
              "(LEADER_ONLY reads and writes try the leader only).");
DEFINE_uint32(breaker_ms, 2000,
              "After a replica fails a read, reads try it last for this long (until the control "
              "plane marks its node unhealthy, or it serves again).");

DEFINE_uint32(leader_wait_ms, 2000,
              "A write the shard's leader refused before logging it (just promoted, still "
              "opening, transferring) waits up to this long for the next placement table, then "
              "is tried again (until the wait is over).");
DEFINE_uint32(request_threads, 64,
              "Threads that run requests, each blocking on the nodes it forwards to; requests "
              "beyond them wait in a queue (gRPC's own threads never wait on a node).");
DEFINE_uint32(max_queued_requests, 10000,
              "Requests that may wait for a --request_threads thread; beyond them a request is "
              "refused RESOURCE_EXHAUSTED (retry with backoff) instead of queued without bound.");
DEFINE_uint32(fanout_threads, 32,
              "Threads that ListClaims and queries ask their shards on, shared by all requests "
              "(a request's own thread helps, so none waits for a free one).");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("dash-router --controlplane=HOST:PORT [--listen=HOST:PORT]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  dash::RateLimitProtobufLogs();  // A malformed request must not cost a log line each.

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::shared_ptr<const dash::Security>> security =
      dash::SecurityFromFlags("dash-router");
  if (!security.ok()) {
    fprintf(stderr, "dash-router: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  dash::router::PlacementCache placement(FLAGS_controlplane, **security);
  placement.Start();
  dash::router::RouterOptions options;
  options.rpc_timeout = absl::Milliseconds(FLAGS_rpc_timeout_ms);
  options.max_read_attempts = static_cast<int>(std::max<uint32_t>(FLAGS_max_read_attempts, 1));
  options.breaker_open_for = absl::Milliseconds(FLAGS_breaker_ms);
  options.leader_wait = absl::Milliseconds(FLAGS_leader_wait_ms);
  // The pools outlive the server: its last calls are finished from them.
  dash::ThreadPool requests(std::max<uint32_t>(FLAGS_request_threads, 1));
  dash::ThreadPool fanout(std::max<uint32_t>(FLAGS_fanout_threads, 1));
  dash::router::GrpcNodeClient nodes(*security);
  dash::router::Router router(&placement, &nodes, &fanout, options);
  dash::router::RouterService service(&router, &requests,
                                      std::max<uint32_t>(FLAGS_max_queued_requests, 1), *security);
  dash::router::RouterAdminService admin(&router, *security);

  int port = 0;
  dash::EnableHealthAndReflection();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(FLAGS_listen, (*security)->ServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.RegisterService(&admin);
  builder.SetMaxReceiveMessageSize(64 << 20);
  dash::InflightCalls inflight;
  auto interceptors = inflight.Factories();
  interceptors.push_back(dash::metrics::RpcMetricsFactory({dash::v1::Data::service_full_name()}));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LOG(ERROR) << "dash-router: cannot listen on " << FLAGS_listen;
    return 1;
  }
  LOG(INFO) << "dash-router serving on port " << port << ", control plane " << FLAGS_controlplane;
  if (!FLAGS_port_file.empty() && !dash::WritePortFile(FLAGS_port_file, port)) {
    LOG(ERROR) << "dash-router: cannot write " << FLAGS_port_file;
    return 1;
  }
  // Health: NodeAdmin serves from the start; the router as a whole ("") and
  // its Data service once its placement has every shard led (writes would
  // otherwise fail closed), checked every 100 ms.
  dash::SetServing(server.get(), {dash::v1::NodeAdmin::service_full_name()}, true);
  absl::Notification stopping;
  std::thread readiness([&] {
    int reported = -1;
    do {
      absl::StatusOr<std::shared_ptr<const dash::v1::Placement>> table = placement.Get();
      const bool ready = table.ok() && dash::router::EveryShardLed(**table);
      if (reported != static_cast<int>(ready)) {
        LOG(INFO) << "dash-router: "
                  << (ready ? "ready: every shard has a healthy leader"
                            : "not ready: a shard has no healthy leader");
        dash::SetServing(server.get(), {"", dash::v1::Data::service_full_name()}, ready);
        reported = ready;
      }
    } while (!stopping.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  });
  // Metrics of the table it routes by, read at each scrape.
  std::unique_ptr<dash::metrics::CollectorHandle> collector =
      dash::metrics::AddCollector([&placement] {
        absl::StatusOr<std::shared_ptr<const dash::v1::Placement>> table = placement.Get();
        return table.ok() ? dash::metrics::PlacementFamilies(**table)
                          : std::vector<prometheus::MetricFamily>();
      });
  // The HTTP port: health, readiness, metrics and the JSON API (calls on the
  // router's own gRPC server, authorized there).
  grpc::Server* grpc_server = server.get();
  absl::StatusOr<std::unique_ptr<dash::HttpServer>> http = dash::HttpServerFromFlags(
      "dash-router", **security, [grpc_server] { return dash::IsServing(grpc_server, ""); },
      [&](httplib::Server& routes) {
        dash::HttpApiOptions api;
        grpc::ChannelArguments args;
        args.SetMaxReceiveMessageSize(64 << 20);
        api.local = grpc_server->InProcessChannel(args);
        api.security = *security;
        api.placement = [&placement] { return placement.Get(); };
        dash::AddDataRoutes(routes, api);
      });
  if (!http.ok()) {
    LOG(ERROR) << "dash-router: " << http.status();
    return 1;
  }
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LOG(INFO) << "dash-router: signal " << sig << ", shutting down";
    stopping.Notify();
    dash::StopServing(server.get());
    // Calls in flight get up to 2 s; idle connections do not hold the stop.
    dash::ShutdownWhenIdle(server.get(), inflight, absl::Seconds(2));
  });
  server->Wait();
  signal_waiter.join();
  readiness.join();
  http->reset();
  LOG(INFO) << "dash-router: stopped";
  return 0;
}
