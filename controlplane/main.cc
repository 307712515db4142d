// dash-controlplane: the placement authority (see README.md).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "common/http_flags.h"
#include "common/port_file.h"
#include "common/proto_log.h"
#include "common/security_flags.h"
#include "common/serving.h"
#include "common/status_macros.h"
#include "controlplane/placement/store.h"
#include "controlplane/service/control_plane_service.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "node/backup/restore.h"

DEFINE_string(data_dir, "", "Directory of the durable placement table (required).");
DEFINE_string(listen, "127.0.0.1:7000", "gRPC listen address host:port; port 0 picks a free port.");
DEFINE_string(port_file, "", "If set, the bound port is written here once the server serves.");
DEFINE_uint32(shard_count, 4, "Number of shards of a new cluster (a stored table keeps its own).");
DEFINE_uint32(replication_factor, 3,
              "Replicas per shard of a new cluster (a stored table keeps its own).");
DEFINE_uint32(failure_timeout_ms, 750, "A node silent for longer than this is UNHEALTHY.");
DEFINE_uint32(tick_ms, 50, "Interval of the health / in-sync / failover ticker.");
DEFINE_uint64(in_sync_max_lag_records, 1000,
              "A follower trailing its leader by more records than this is out of sync (only "
              "for leaders that do not report their followers' lag themselves).");
DEFINE_uint32(lease_ms, 500,
              "Leadership lease granted to healthy nodes in heartbeat answers; must be below "
              "--failure_timeout_ms (default when not given: 2/3 of it); 0: no leases.");
DEFINE_string(restore_from, "",
              "A backup repository (dashctl backup create --dest=DIR): this new control plane's "
              "table starts as the placement of backup --restore_backup, every epoch raised "
              "above the backup's. Only into an empty --data_dir (or one this restore began); "
              "start each node with the same two flags.");
DEFINE_string(restore_backup, "latest", "The backup --restore_from restores: an id or latest.");
DEFINE_string(restore_node_map, "",
              "Restoring into nodes with other ids: OLD=NEW,... (the backup's node id = the new "
              "one), as `dashctl restore --node-map` prints it; the same on every process.");
DEFINE_string(restore_to, "",
              "Point-in-time restore: the commit tokens (shard:epoch:lsn,..., one per shard) the "
              "nodes are restored to, as `dashctl restore` prints them. Empty: the backup's cut.");
DEFINE_uint32(fence_timeout_ms, 500,
              "Deadline of the FenceShard calls made to the replicas before a leader changes.");

namespace {

// --restore_from: the table of a new cluster restored from a backup, saved
// before the control plane opens its store.
absl::Status RestoreTable() {
  DASH_ASSIGN_OR_RETURN(dash::backup::ServerRestore restore,
                        dash::backup::PlanServerRestore(FLAGS_restore_from, FLAGS_restore_backup,
                                                        FLAGS_restore_to, FLAGS_restore_node_map));
  const std::string label = dash::backup::RestoreLabel(restore.plan);
  DASH_RETURN_IF_ERROR(dash::backup::ClaimDataDir(label, FLAGS_data_dir));
  DASH_ASSIGN_OR_RETURN(std::unique_ptr<dash::controlplane::PlacementStore> store,
                        dash::controlplane::OpenRocksPlacementStore(FLAGS_data_dir));
  DASH_ASSIGN_OR_RETURN(std::optional<dash::v1::Placement> stored, store->Load());
  if (stored.has_value()) {
    LOG(INFO) << "restore of " << label << ": the table is restored already (version "
              << stored->version() << ")";
    return absl::OkStatus();
  }
  DASH_ASSIGN_OR_RETURN(dash::v1::Placement table, dash::backup::RestoredPlacement(restore.plan));
  DASH_RETURN_IF_ERROR(store->Save(table));
  LOG(INFO) << "restore of " << label << ": table version " << table.version() << ", "
            << table.shard_count() << " shards, replication factor " << table.replication_factor()
            << " (--shard_count and --replication_factor are "
            << "the backup's)";
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "dash-controlplane --data_dir=DIR [--listen=HOST:PORT] [--shard_count=N] "
      "[--replication_factor=N] [--failure_timeout_ms=MS] [--lease_ms=MS] "
      "[--fence_timeout_ms=MS]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  dash::RateLimitProtobufLogs();  // A malformed request must not cost a log line each.

  if (FLAGS_data_dir.empty()) {
    fprintf(stderr, "dash-controlplane: --data_dir is required\n");
    return 2;
  }
  if (FLAGS_shard_count == 0 || FLAGS_replication_factor == 0 || FLAGS_tick_ms == 0 ||
      FLAGS_failure_timeout_ms == 0) {
    fprintf(stderr,
            "dash-controlplane: --shard_count, --replication_factor, --tick_ms and "
            "--failure_timeout_ms must be > 0\n");
    return 2;
  }
  if (FLAGS_fence_timeout_ms == 0) {
    fprintf(stderr, "dash-controlplane: --fence_timeout_ms must be > 0\n");
    return 2;
  }
  dash::controlplane::ManagerOptions options;
  options.shard_count = FLAGS_shard_count;
  options.replication_factor = FLAGS_replication_factor;
  options.failure_timeout = absl::Milliseconds(FLAGS_failure_timeout_ms);
  options.tick = absl::Milliseconds(FLAGS_tick_ms);
  options.in_sync_max_lag_records = FLAGS_in_sync_max_lag_records;
  options.lease = gflags::GetCommandLineFlagInfoOrDie("lease_ms").is_default
                      ? dash::controlplane::DefaultLease(options.failure_timeout)
                      : absl::Milliseconds(FLAGS_lease_ms);
  options.fence_timeout = absl::Milliseconds(FLAGS_fence_timeout_ms);
  if (absl::Status lease =
          dash::controlplane::ValidateLease(options.lease, options.failure_timeout);
      !lease.ok()) {
    fprintf(stderr, "dash-controlplane: --%s\n", std::string(lease.message()).c_str());
    return 2;
  }

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::shared_ptr<const dash::Security>> security =
      dash::SecurityFromFlags("dash-controlplane");
  if (!security.ok()) {
    fprintf(stderr, "dash-controlplane: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  if (!FLAGS_restore_from.empty()) {
    if (absl::Status restored = RestoreTable(); !restored.ok()) {
      fprintf(stderr, "dash-controlplane: --restore_from: %s\n",
              std::string(restored.message()).c_str());
      return 1;
    }
  }
  auto server = dash::controlplane::ControlPlaneServer::Start(options, FLAGS_data_dir, FLAGS_listen,
                                                              *security);
  if (!server.ok()) {
    LOG(ERROR) << "dash-controlplane: " << server.status();
    return 1;
  }
  LOG(INFO) << "dash-controlplane serving on port " << (*server)->port();
  if (!FLAGS_port_file.empty() && !dash::WritePortFile(FLAGS_port_file, (*server)->port())) {
    LOG(ERROR) << "dash-controlplane: cannot write " << FLAGS_port_file;
    return 1;
  }
  dash::controlplane::ControlPlaneServer* cp = server->get();
  absl::StatusOr<std::unique_ptr<dash::HttpServer>> http = dash::HttpServerFromFlags(
      "dash-controlplane", **security, [cp] { return dash::IsServing(cp->grpc_server(), ""); });
  if (!http.ok()) {
    LOG(ERROR) << "dash-controlplane: " << http.status();
    return 1;
  }
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LOG(INFO) << "dash-controlplane: signal " << sig << ", shutting down";
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_waiter.join();
  http->reset();
  server->reset();
  LOG(INFO) << "dash-controlplane: stopped";
  return 0;
}
