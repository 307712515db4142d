// dash-node: serves the shard replicas of one node over gRPC.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http_api.h"
#include "common/http_flags.h"
#include "common/port_file.h"
#include "common/proto_log.h"
#include "common/security_flags.h"
#include "common/serving.h"
#include "common/status_macros.h"
#include "common/sync_point.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "node/backup/restore.h"
#include "node/replication/fault_hook.h"
#include "node/service/node_server.h"
#include "node/service/placement_agent.h"
#include "node/shard/shard_replica.h"

DEFINE_string(data_dir, "", "Directory holding this node's shard replicas (required).");
DEFINE_string(listen, "127.0.0.1:7100", "gRPC listen address host:port; port 0 picks a free port.");
DEFINE_string(port_file, "", "If set, the bound port is written here once the node serves.");
DEFINE_string(node_id, "node-1", "This node's id.");
DEFINE_uint32(shard_count, 1, "The cluster's fixed number of shards.");
DEFINE_string(shards, "", "Comma-separated shard ids this node hosts; empty hosts all.");
DEFINE_uint64(log_retention_records, 1000000,
              "Log records each replica keeps (the most recent); 0 keeps the whole log.");
DEFINE_uint64(vector_graph_min_rows, 2000,
              "A tenant's vectors in an index segment get a persisted HNSW graph from this many "
              "rows; fewer are searched exactly.");
DEFINE_bool(sync, true,
            "Sync every group commit before acknowledging. false risks acknowledged writes on a "
            "machine crash; for benchmarks only.");
DEFINE_uint64(block_cache_mb, 64, "RocksDB block cache per replica, in MiB.");
DEFINE_string(controlplane, "",
              "host:port of dash-controlplane. When set, the node joins that cluster: the shard "
              "count and the replicas it hosts, with their roles and epochs, come from the "
              "placement table (--shard_count and --shards are ignored).");
DEFINE_string(advertise_address, "",
              "Address other processes reach this node at; default 127.0.0.1:<bound port>.");
DEFINE_uint32(heartbeat_ms, 150, "Heartbeat interval to the control plane, in milliseconds.");
DEFINE_uint64(snapshot_rate_mb_per_s, 64,
              "MiB per second that catch-up traffic may use, all together: snapshot streams "
              "and the log streams of followers more than 1024 records behind. It leaves "
              "bandwidth for client writes; 0 is unlimited.");

DEFINE_uint32(commit_timeout_ms, 5000,
              "A write not held by a majority of its shard's replicas within this time is "
              "answered UNAVAILABLE (outcome unknown: retry with the same idempotency key).");
DEFINE_string(ack, "majority",
              "When a leader answers a write: \"majority\" (default) once a majority of the "
              "shard's replicas hold it durably; \"leader\" once the leader alone does -- "
              "faster, but a write acknowledged just before the leader dies can be lost.");
DEFINE_uint64(in_sync_max_lag_records, 10000,
              "A leader counts a follower in sync while it lacks at most this many records "
              "and its oldest missing record is at most --in_sync_max_lag_ms old.");
DEFINE_uint32(in_sync_max_lag_ms, 2000, "See --in_sync_max_lag_records (milliseconds).");
DEFINE_uint64(idempotency_ttl_s, 86400,
              "Seconds an idempotency key is remembered after its batch committed: a retry "
              "with the key within this time gets the original commit token, a later one "
              "applies the batch again. 0 remembers keys forever (they are never removed).");
DEFINE_bool(fault_injection, false,
            "Tests only (not in Release builds): watch <data_dir>/FAULTS; while it says "
            "\"isolate\", this node's traffic with its peers and the control plane fails "
            "(see node/replication/fault_hook.h).");
DEFINE_string(restore_from, "",
              "A backup repository (dashctl backup create --dest=DIR): before serving, put in "
              "--data_dir the replicas this node (by --node_id) held in backup "
              "--restore_backup. Only into an empty --data_dir (or one this restore began); "
              "start the new control plane with the same two flags.");
DEFINE_string(restore_backup, "latest", "The backup --restore_from restores: an id or latest.");
DEFINE_string(restore_node_map, "",
              "Restoring into nodes with other ids: OLD=NEW,... (the backup's node id = the new "
              "one), as `dashctl restore --node-map` prints it; the same on every process.");
DEFINE_string(restore_to, "",
              "Point-in-time restore: replay the repository's log archive after the backup's cut "
              "up to these commit tokens, one per shard (shard:epoch:lsn,...), as `dashctl "
              "restore` prints them; give the control plane the same. Empty: the backup's cut.");
DEFINE_string(kill_at, "",
              "Tests only (not in Release builds): SIGKILL this process when it reaches the "
              "named sync point (POINT, or POINT:N for the N-th time; see "
              "common/sync_point.h), to crash it at an exact place.");

namespace {

// --restore_from: this node's replicas put in place from a backup, before
// anything opens them.
absl::Status RestoreReplicas() {
  DASH_ASSIGN_OR_RETURN(dash::backup::ServerRestore restore,
                        dash::backup::PlanServerRestore(FLAGS_restore_from, FLAGS_restore_backup,
                                                        FLAGS_restore_to, FLAGS_restore_node_map));
  // The archived records after the cut, applied to the restored checkpoint
  // as a follower applies its leader's, before the replica is in place.
  auto replay = [&restore](const std::string& dir, const dash::backup::ShardPlan& plan) {
    dash::shard::ReplicaOptions options;
    options.node_id = FLAGS_node_id;
    options.managed = true;
    options.shard_id = plan.shard;
    options.shard_count = restore.plan.backup.shard_count;
    options.dir = dir;
    options.log_retention_records = 0;  // The node's own retention applies once it serves.
    DASH_ASSIGN_OR_RETURN(std::unique_ptr<dash::shard::ShardReplica> replica,
                          dash::shard::ShardReplica::Open(options));
    return dash::backup::ForEachReplayBatch(restore.repo, plan, 256,
                                            [&replica](const std::vector<std::string>& encoded) {
                                              return replica->ApplyEncodedRecords(encoded);
                                            });
  };
  DASH_ASSIGN_OR_RETURN(
      dash::backup::NodeRestoreResult restored,
      dash::backup::RestoreNode(restore.repo, restore.plan, FLAGS_node_id, FLAGS_data_dir, replay));
  LOG(INFO) << "restore of " << dash::backup::RestoreLabel(restore.plan) << ": "
            << restored.restored.size() << " replicas put in place (" << restored.bytes
            << " bytes, " << restored.replayed_records << " archived records replayed), "
            << restored.kept.size() << " already there";
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("dash-node --data_dir=DIR [--listen=HOST:PORT] [--shard_count=N]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  dash::RateLimitProtobufLogs();  // A malformed request must not cost a log line each.

  if (FLAGS_data_dir.empty()) {
    fprintf(stderr, "dash-node: --data_dir is required\n");
    return 2;
  }
  absl::StatusOr<std::shared_ptr<const dash::Security>> security =
      dash::SecurityFromFlags("dash-node");
  if (!security.ok()) {
    fprintf(stderr, "dash-node: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  if (!FLAGS_restore_from.empty()) {
    if (absl::Status restored = RestoreReplicas(); !restored.ok()) {
      fprintf(stderr, "dash-node: --restore_from: %s\n", std::string(restored.message()).c_str());
      return 1;
    }
  }
  dash::shard::HostOptions options;
  options.node_id = FLAGS_node_id;
  options.data_dir = FLAGS_data_dir;
  options.shard_count = FLAGS_shard_count;
  for (absl::string_view part : absl::StrSplit(FLAGS_shards, ',', absl::SkipEmpty())) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      fprintf(stderr, "dash-node: --shards: \"%s\" is not a shard id\n", std::string(part).c_str());
      return 2;
    }
    options.shards.push_back(id);
  }
  options.replica.log_retention_records = FLAGS_log_retention_records;
  options.replica.vector_graph_min_rows = FLAGS_vector_graph_min_rows;
  options.replica.sync = FLAGS_sync;
  options.replica.engine.block_cache_bytes = FLAGS_block_cache_mb << 20;
  options.replica.commit_timeout = absl::Milliseconds(FLAGS_commit_timeout_ms);
  options.replica.in_sync_max_lag_records = FLAGS_in_sync_max_lag_records;
  options.replica.in_sync_max_lag = absl::Milliseconds(FLAGS_in_sync_max_lag_ms);
  options.replica.idempotency_ttl = FLAGS_idempotency_ttl_s == 0
                                        ? absl::InfiniteDuration()
                                        : absl::Seconds(FLAGS_idempotency_ttl_s);
  if (FLAGS_ack == "leader") {
    options.replica.ack_leader_only = true;
  } else if (FLAGS_ack != "majority") {
    fprintf(stderr, "dash-node: --ack: \"%s\" is neither \"majority\" nor \"leader\"\n",
            FLAGS_ack.c_str());
    return 2;
  }
  if ((FLAGS_fault_injection || !FLAGS_kill_at.empty()) && !dash::kTestHooks) {
    fprintf(stderr,
            "dash-node: --fault_injection and --kill_at need a build with test hooks (any CMake "
            "build type but Release, or Bazel without -c opt); this one has none\n");
    return 2;
  }
  if (FLAGS_fault_injection) {
    dash::replication::FaultHook::Init(FLAGS_data_dir + "/FAULTS");
    LOG(WARNING) << "dash-node: fault injection enabled (" << FLAGS_data_dir << "/FAULTS)";
  }
#ifdef DASH_TEST_HOOKS
  if (!FLAGS_kill_at.empty()) {
    if (absl::Status st = dash::SyncPoint::Get()->KillAtSpec(FLAGS_kill_at); !st.ok()) {
      fprintf(stderr, "dash-node: --%s\n", std::string(st.message()).c_str());
      return 2;
    }
    dash::SyncPoint::Get()->EnableProcessing();
    LOG(WARNING) << "dash-node: will SIGKILL itself at sync point " << FLAGS_kill_at;
  }
#endif

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const bool managed = !FLAGS_controlplane.empty();
  if (managed) {
    LOG(INFO) << "dash-node: asking the control plane at " << FLAGS_controlplane
              << " for the cluster's shard count";
    absl::StatusOr<uint32_t> count = dash::service::PlacementAgent::FetchShardCount(
        FLAGS_controlplane, **security, absl::InfiniteDuration());
    if (!count.ok()) {
      LOG(ERROR) << "dash-node: " << count.status();
      return 1;
    }
    options.shard_count = *count;
    options.shards.clear();
  }
  dash::service::NodeServerOptions server_options;
  server_options.managed = managed;
  server_options.snapshot_rate_bytes_per_s = FLAGS_snapshot_rate_mb_per_s << 20;
  server_options.security = *security;
  auto server = dash::service::NodeServer::Start(options, FLAGS_listen, server_options);
  if (!server.ok()) {
    LOG(ERROR) << "dash-node: " << server.status();
    return 1;
  }
  LOG(INFO) << "dash-node " << FLAGS_node_id << " serving on port " << (*server)->port();
  if (!FLAGS_port_file.empty() && !dash::WritePortFile(FLAGS_port_file, (*server)->port())) {
    LOG(ERROR) << "dash-node: cannot write " << FLAGS_port_file;
    return 1;
  }
  std::unique_ptr<dash::service::PlacementAgent> agent;
  if (managed) {
    dash::service::AgentOptions agent_options;
    agent_options.controlplane = FLAGS_controlplane;
    agent_options.node_id = FLAGS_node_id;
    agent_options.advertise_address = FLAGS_advertise_address.empty()
                                          ? absl::StrCat("127.0.0.1:", (*server)->port())
                                          : FLAGS_advertise_address;
    agent_options.heartbeat_interval = absl::Milliseconds(FLAGS_heartbeat_ms);
    agent_options.security = *security;
    dash::service::NodeServer* node = server->get();
    agent_options.on_ready = [node](bool ready) { node->SetReady(ready); };
    agent = std::make_unique<dash::service::PlacementAgent>((*server)->host(), agent_options);
    agent->Start();
  }
  // The HTTP port: health, readiness, metrics and the JSON API (calls on the
  // node's own gRPC server, authorized there).
  dash::service::NodeServer* node_server = server->get();
  absl::StatusOr<std::unique_ptr<dash::HttpServer>> http = dash::HttpServerFromFlags(
      "dash-node", **security,
      [node_server] { return dash::IsServing(node_server->grpc_server(), ""); },
      [&](httplib::Server& routes) {
        dash::HttpApiOptions api;
        api.local = node_server->InProcessChannel();
        api.security = *security;
        dash::AddDataRoutes(routes, api);
      });
  if (!http.ok()) {
    LOG(ERROR) << "dash-node: " << http.status();
    return 1;
  }
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LOG(INFO) << "dash-node: signal " << sig << ", shutting down";
    (*server)->StopServing();  // Probes turn away before anything stops.
    agent.reset();             // Stops heartbeats and followers first.
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_waiter.join();
  http->reset();  // Its API calls go to the server: stopped first.
  server->reset();
  LOG(INFO) << "dash-node: stopped";
  return 0;
}
