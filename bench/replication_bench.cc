// replication_bench: what replication costs, in one run on one machine.
//
//   1. Ingest throughput through the same gRPC Write API: a single standalone
//      node (one replica per shard) vs. a 3-node cluster through its router
//      (RF 3, a write acknowledged once a majority holds it).
//   2. Catch-up: a cluster node replaced with an empty disk, timed until every
//      replica it hosts is in sync and within --caught_up_lag records.
//
//   build/bench/replication_bench [--claims=20000] [--clients=8] [--batch=10]
//   (DASH_BIN_ROOT defaults to build/)
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

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
  dash::testing::LocalCluster cluster(FLAGS_dir + "/cluster", options);
  if (absl::Status st = cluster.Start(); !st.ok()) {
    fprintf(stderr, "replication_bench: %s\n", st.ToString().c_str());
    return 2;
  }
  const double replicated = Ingest(cluster.router().channel(), "bench");
  if (single < 0 || replicated < 0) return 1;

  // 2. Catch-up of a replaced node (empty disk) from the leaders' logs.
  const absl::Time replaced = absl::Now();
  if (absl::Status st = cluster.RestartNode("n3", /*wipe=*/true); !st.ok()) {
    fprintf(stderr, "replication_bench: %s\n", st.ToString().c_str());
    return 2;
  }
  // Asked of the nodes themselves: the control plane's table may still show
  // the old process's positions for a moment after the restart.
  auto lsns = [&](const std::string& node) {
    std::map<uint32_t, uint64_t> out;
    auto admin = dash::v1::NodeAdmin::NewStub(cluster.node(node).channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    dash::v1::NodeInfo info;
    if (admin->GetNodeInfo(&ctx, dash::v1::GetNodeInfoRequest(), &info).ok()) {
      for (const auto& r : info.replicas()) out[r.shard()] = r.last_lsn();
    }
    return out;
  };
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
    printf(
        "  replaced node (empty disk) caught up with its 4 replicas in %.1f s "
        "(%d claims, %.0f claims/s)\n",
        catch_up_s, FLAGS_claims, FLAGS_claims / catch_up_s);
  } else {
    printf("  replaced node did not catch up: %s\n", caught_up.ToString().c_str());
    return 1;
  }
  return 0;
}
