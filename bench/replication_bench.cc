// replication_bench: what replication costs, in one run on one machine.
//
//   1. Ingest throughput through the same gRPC Write API: a single standalone
//      node (one replica per shard) vs. a 3-node cluster through its router
//      (RF 3, a write acknowledged once a majority holds it).
//   2. Catch-up: a cluster node replaced with an empty disk, timed until every
//      replica it hosts is within --caught_up_lag records of its leader. With
//      --retention smaller than the shards' logs, from a snapshot.
//   3. Replication lag under steady load: --lag_rate batches per second for
//      --lag_seconds through the router, one claim each; every follower is
//      polled every 2 ms, and a record's lag is the time from its
//      acknowledgement to the client until the follower holds it (0 if it
//      held it first, as a majority member does).
//
//   build/bench/replication_bench [--claims=20000] [--clients=8] [--batch=10]
//                                 [--retention=N] [--lag_rate=200] [--lag_seconds=10]
//   (DASH_BIN_ROOT defaults to build/)
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "gflags/gflags.h"
#include "grpcpp/client_context.h"
#include "tests/harness/cluster.h"

DEFINE_int32(claims, 20000, "Claims to ingest in each configuration (3 evidence each).");
DEFINE_int32(clients, 8, "Concurrent writers.");
DEFINE_int32(batch, 10, "Claims per write batch (one shard per batch).");
DEFINE_int32(caught_up_lag, 0, "Records behind its leader a replaced replica may be.");
DEFINE_string(dir, "/tmp/dash-replication-bench", "Where the processes keep data.");
DEFINE_int64(retention, 0, "Log records each cluster replica keeps (0: the node's default).");
DEFINE_int32(lag_rate, 200, "Batches per second for the replication lag measurement.");
DEFINE_int32(lag_seconds, 10, "Duration of the replication lag measurement.");

namespace {

constexpr uint32_t kShards = 4;

// Writes --claims claims through `channel`; returns claims per second, or -1.
double Ingest(const std::shared_ptr<grpc::Channel>& channel, const std::string& tenant) {
  // Pre-group claim ids by shard so every batch is single-shard.
  std::vector<std::vector<std::string>> by_shard(kShards);
  for (int i = 0; i < FLAGS_claims; ++i) {
    std::string id = absl::StrCat("c", i);
    by_shard[dash::ShardOf(tenant, id, kShards)].push_back(id);
  }
  std::vector<std::vector<std::string>> batches;
  for (auto& ids : by_shard) {
    for (size_t i = 0; i < ids.size(); i += FLAGS_batch) {
      batches.emplace_back(ids.begin() + i, ids.begin() + std::min(ids.size(), i + FLAGS_batch));
    }
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < FLAGS_clients; ++c) {
    threads.emplace_back([&] {
      auto stub = dash::v1::Data::NewStub(channel);
      for (size_t b = next++; b < batches.size() && !failed; b = next++) {
        dash::v1::WriteRequest req;
        req.set_tenant(tenant);
        for (const std::string& id : batches[b]) {
          dash::v1::WriteOp* op = req.add_ops();
          op->mutable_claim()->set_claim_id(id);
          op->mutable_claim()->set_text(
              absl::StrCat("claim ", id, " about sea level rise and ocean temperature"));
          for (int e = 0; e < 3; ++e) {
            dash::v1::Evidence* ev = req.add_ops()->mutable_evidence();
            ev->set_claim_id(id);
            ev->set_evidence_id(absl::StrCat("e", e));
            ev->set_stance(e == 2 ? dash::v1::STANCE_CONTRADICTS : dash::v1::STANCE_SUPPORTS);
            ev->mutable_citation()->set_source_uri("https://example.org/" + id);
            ev->mutable_citation()->set_quote(
                absl::StrCat("measured sea level rose ", e, " millimetres per year"));
          }
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        dash::v1::WriteResponse resp;
        grpc::Status st = stub->Write(&ctx, req, &resp);
        if (!st.ok()) {
          fprintf(stderr, "write failed: %s\n", st.error_message().c_str());
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) return -1;
  return FLAGS_claims / absl::ToDoubleSeconds(absl::Now() - start);
}

// The replicas' last LSNs per shard, asked of the node itself.
std::map<uint32_t, uint64_t> Lsns(dash::testing::LocalCluster& cluster, const std::string& node) {
  std::map<uint32_t, uint64_t> out;
  auto admin = dash::v1::NodeAdmin::NewStub(cluster.node(node).channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  dash::v1::NodeInfo info;
  if (admin->GetNodeInfo(&ctx, dash::v1::GetNodeInfoRequest(), &info).ok()) {
    for (const auto& r : info.replicas()) out[r.shard()] = r.last_lsn();
  }
  return out;
}

struct LagResult {
  size_t samples = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// Steady load through the router; per (follower, record): time from the
// client's acknowledgement until the follower holds the record.
LagResult MeasureLag(dash::testing::LocalCluster& cluster) {
  absl::StatusOr<dash::v1::Placement> placement = cluster.Placement();
  if (!placement.ok()) return {};
  std::map<uint32_t, std::vector<std::string>> followers;
  for (const auto& e : placement->shards()) {
    for (const auto& r : e.replicas()) {
      if (r.node_id() != e.leader_node_id()) followers[e.shard()].push_back(r.node_id());
    }
  }
  std::mutex mu;
  std::map<std::pair<uint32_t, uint64_t>, absl::Time> acked_at;  // (shard, lsn)
  // First time each follower was seen holding each (shard, lsn).
  std::map<std::tuple<std::string, uint32_t, uint64_t>, absl::Time> held_at;
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    std::map<std::pair<std::string, uint32_t>, uint64_t> seen;
    while (!stop) {
      for (const std::string& n : cluster.node_ids()) {
        const std::map<uint32_t, uint64_t> lsns = Lsns(cluster, n);
        const absl::Time now = absl::Now();
        std::lock_guard<std::mutex> l(mu);
        for (const auto& [shard, lsn] : lsns) {
          uint64_t& prev = seen[{n, shard}];
          if (prev == 0) prev = lsn;  // Start from what it held before.
          for (uint64_t x = prev + 1; x <= lsn; ++x) held_at[{n, shard, x}] = now;
          prev = std::max(prev, lsn);
        }
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  auto stub = dash::v1::Data::NewStub(cluster.router().channel());
  const absl::Duration period = absl::Seconds(1) / FLAGS_lag_rate;
  const absl::Time start = absl::Now();
  for (int i = 0; absl::Now() - start < absl::Seconds(FLAGS_lag_seconds); ++i) {
    const absl::Time due = start + period * i;
    if (absl::Now() < due) absl::SleepFor(due - absl::Now());
    dash::v1::WriteRequest req;
    req.set_tenant("lag");
    const std::string id = absl::StrCat("lag", i);
    req.add_ops()->mutable_claim()->set_claim_id(id);
    req.mutable_ops(0)->mutable_claim()->set_text("steady load");
    dash::v1::Evidence* ev = req.add_ops()->mutable_evidence();
    ev->set_claim_id(id);
    ev->set_evidence_id("e");
    ev->set_stance(dash::v1::STANCE_SUPPORTS);
    ev->mutable_citation()->set_source_uri("https://example.org/lag");
    ev->mutable_citation()->set_quote("steady");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    dash::v1::WriteResponse resp;
    if (stub->Write(&ctx, req, &resp).ok()) {
      std::lock_guard<std::mutex> l(mu);
      acked_at[{resp.token().shard(), resp.token().lsn()}] = absl::Now();
    }
  }
  absl::SleepFor(absl::Seconds(2));  // Let the followers finish.
  stop = true;
  poller.join();
  std::vector<double> lags;
  for (const auto& [key, at] : acked_at) {
    for (const std::string& f : followers[key.first]) {
      auto it = held_at.find({f, key.first, key.second});
      if (it == held_at.end()) continue;
      lags.push_back(std::max(0.0, absl::ToDoubleMilliseconds(it->second - at)));
    }
  }
  LagResult r;
  r.samples = lags.size();
  if (lags.empty()) return r;
  std::sort(lags.begin(), lags.end());
  r.p50_ms = lags[lags.size() / 2];
  r.p99_ms = lags[std::min(lags.size() - 1, lags.size() * 99 / 100)];
  r.max_ms = lags.back();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (std::getenv("DASH_BIN_ROOT") == nullptr) setenv("DASH_BIN_ROOT", "build", 1);
  std::filesystem::remove_all(FLAGS_dir);

  // 1a. One standalone node: every shard a single replica.
  double single = 0;
  {
    dash::testing::NodeProcess node(FLAGS_dir + "/single", {"--shard_count=4"});
    if (absl::Status st = node.Start(); !st.ok()) {
      fprintf(stderr, "replication_bench: %s\n", st.ToString().c_str());
      return 2;
    }
    single = Ingest(node.channel(), "bench");
  }
  // 1b. The cluster: RF 3, majority commit, through the router.
  dash::testing::ClusterOptions options;
  options.shard_count = kShards;
  if (FLAGS_retention > 0) {
    options.node_args.push_back(absl::StrCat("--log_retention_records=", FLAGS_retention));
  }
  dash::testing::LocalCluster cluster(FLAGS_dir + "/cluster", options);
  if (absl::Status st = cluster.Start(); !st.ok()) {
    fprintf(stderr, "replication_bench: %s\n", st.ToString().c_str());
    return 2;
  }
  const double replicated = Ingest(cluster.router().channel(), "bench");
  if (single < 0 || replicated < 0) return 1;

  // 3 first, on the loaded cluster with all its replicas.
  const LagResult lag = MeasureLag(cluster);

  // 2. Catch-up of a replaced node (empty disk) from the leaders' logs.
  const absl::Time replaced = absl::Now();
  if (absl::Status st = cluster.RestartNode("n3", /*wipe=*/true); !st.ok()) {
    fprintf(stderr, "replication_bench: %s\n", st.ToString().c_str());
    return 2;
  }
  // Asked of the nodes themselves: the control plane's table may still show
  // the old process's positions for a moment after the restart.
  auto lsns = [&](const std::string& node) { return Lsns(cluster, node); };
  std::map<uint32_t, uint64_t> target;  // Highest LSN per shard on the other nodes.
  for (const std::string& n : {"n1", "n2"}) {
    for (const auto& [shard, lsn] : lsns(n)) target[shard] = std::max(target[shard], lsn);
  }
  absl::Status caught_up = dash::testing::PollUntil(
      [&] {
        const std::map<uint32_t, uint64_t> mine = lsns("n3");
        if (mine.size() != target.size()) return false;
        for (const auto& [shard, lsn] : target) {
          auto it = mine.find(shard);
          if (it == mine.end() || it->second + FLAGS_caught_up_lag < lsn) return false;
        }
        return true;
      },
      absl::Minutes(30), "n3 to catch up", absl::Milliseconds(50));
  const double catch_up_s = absl::ToDoubleSeconds(absl::Now() - replaced);

  printf(
      "replication_bench scorecard (%d claims x 3 evidence, %d clients, batches of %d, "
      "4 shards, sync on)\n",
      FLAGS_claims, FLAGS_clients, FLAGS_batch);
  printf("  single replica, one node:              %8.0f claims/s\n", single);
  printf("  RF 3, majority commit, via the router: %8.0f claims/s  (ratio %.2f)\n", replicated,
         replicated / single);
  if (caught_up.ok()) {
    // How it caught up: the node logs each snapshot it installs.
    std::ifstream log(cluster.node("n3").log_path());
    std::stringstream text;
    text << log.rdbuf();
    size_t snapshots = 0;
    for (size_t at = 0; (at = text.str().find("bytes received)", at)) != std::string::npos; ++at) {
      ++snapshots;
    }
    printf(
        "  replaced node (empty disk) caught up with its 4 replicas in %.1f s "
        "(%d claims, %.0f claims/s; %zu of them from a snapshot)\n",
        catch_up_s, FLAGS_claims, FLAGS_claims / catch_up_s, snapshots);
    printf(
        "  replication lag at %d batches/s for %d s: p50 %.1f ms, p99 %.1f ms, max %.1f ms "
        "(%zu follower-records)\n",
        FLAGS_lag_rate, FLAGS_lag_seconds, lag.p50_ms, lag.p99_ms, lag.max_ms, lag.samples);
  } else {
    printf("  replaced node did not catch up: %s\n", caught_up.ToString().c_str());
    return 1;
  }
  return 0;
}
