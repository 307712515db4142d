// failover_bench: how long a shard is unwritable after its leader dies.
//
// Starts a local cluster (control plane, 3 nodes, router; real processes on
// loopback), keeps a client write load on every shard through the router, and
// per trial SIGKILLs the leader of shard 0 and measures the time from the kill
// to the first write *sent after the kill* that the router acknowledges on
// shard 0. The killed node then comes back with an empty disk (a replacement),
// catches up from the leader's log, and the next trial starts once every
// follower is in sync. At the end every acknowledged write is read back.
// Prints a scorecard (p50/p90/p99/max) and exits 1 if a write was lost or the
// p99 misses --goal_ms.
//
//   build/bench/failover_bench [--trials=20] [--failure_timeout_ms=750] [--heartbeat_ms=150]
//                              [--goal_ms=2000]      (DASH_BIN_ROOT defaults to build/)
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "gflags/gflags.h"
#include "grpcpp/client_context.h"
#include "tests/harness/cluster.h"

DEFINE_int32(trials, 20, "Leader kills to measure.");
DEFINE_int32(failure_timeout_ms, 750, "The control plane's failure timeout.");
DEFINE_int32(heartbeat_ms, 150, "The nodes' heartbeat interval.");
DEFINE_int32(writers, 4, "Client threads writing through the router.");
DEFINE_double(goal_ms, 2000, "p99 goal for kill-to-first-write.");
DEFINE_string(dir, "/tmp/dash-failover-bench", "Where the cluster's processes keep data.");

namespace {

using dash::testing::LocalCluster;

constexpr uint32_t kShards = 4;

std::string IdOnShard(uint32_t shard, int64_t n) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat("f", shard, "-", n, "-", i);
    if (dash::ShardOf("bench", id, kShards) == shard) return id;
  }
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (std::getenv("DASH_BIN_ROOT") == nullptr) setenv("DASH_BIN_ROOT", "build", 1);
  const std::string dir = FLAGS_dir;
  std::filesystem::remove_all(dir);
  dash::testing::ClusterOptions options;
  options.shard_count = kShards;
  options.failure_timeout_ms = FLAGS_failure_timeout_ms;
  options.heartbeat_ms = FLAGS_heartbeat_ms;
  LocalCluster cluster(dir, options);
  if (absl::Status st = cluster.Start(); !st.ok()) {
    fprintf(stderr, "failover_bench: cannot start the cluster: %s\n", st.ToString().c_str());
    return 2;
  }

  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> armed_at_us{0};    // Kill time of the current trial; 0: none.
  std::atomic<int64_t> resumed_at_us{0};  // First success on shard 0 sent after it.
  std::atomic<int64_t> failed_attempts{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < FLAGS_writers; ++w) {
    writers.emplace_back([&, w] {
      auto stub = dash::v1::Data::NewStub(cluster.router().channel());
      for (int64_t n = 0; !stop; ++n) {
        // Writer 0 writes shard 0 only: it sees the outage as soon as it ends.
        const uint32_t shard = w == 0 ? 0 : static_cast<uint32_t>((w + n) % kShards);
        dash::v1::WriteRequest req;
        req.set_tenant("bench");
        req.set_idempotency_key(absl::StrCat("w", w, "-", n));
        dash::v1::WriteOp* op = req.add_ops();
        op->mutable_claim()->set_claim_id(IdOnShard(shard, w * 1000000000LL + n));
        op->mutable_claim()->set_text("failover bench claim");
        dash::v1::WriteOp* ev = req.add_ops();
        ev->mutable_evidence()->set_claim_id(op->claim().claim_id());
        ev->mutable_evidence()->set_evidence_id("e");
        ev->mutable_evidence()->set_stance(dash::v1::STANCE_SUPPORTS);
        ev->mutable_evidence()->mutable_citation()->set_source_uri("https://example.org/bench");
        ev->mutable_evidence()->mutable_citation()->set_quote("a quoted sentence");
        while (!stop) {
          const int64_t sent = absl::ToUnixMicros(absl::Now());
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          dash::v1::WriteResponse resp;
          if (stub->Write(&ctx, req, &resp).ok()) {
            const int64_t armed = armed_at_us.load();
            if (shard == 0 && armed != 0 && sent > armed) {
              int64_t zero = 0;
              resumed_at_us.compare_exchange_strong(zero, absl::ToUnixMicros(absl::Now()));
            }
            std::lock_guard<std::mutex> l(mu);
            acked.push_back(op->claim().claim_id());
            break;
          }
          ++failed_attempts;
          absl::SleepFor(absl::Milliseconds(5));  // A client's retry delay.
        }
      }
    });
  }

  std::vector<double> resume_ms;
  int rc = 0;
  for (int t = 0; t < FLAGS_trials; ++t) {
    absl::SleepFor(absl::Milliseconds(500));  // Load before the kill.
    absl::StatusOr<dash::v1::Placement> p = cluster.Placement();
    if (!p.ok()) {
      fprintf(stderr, "trial %d: %s\n", t, p.status().ToString().c_str());
      rc = 2;
      break;
    }
    const std::string victim = LocalCluster::LeaderOf(*p, 0);
    resumed_at_us = 0;
    cluster.node(victim).Kill();
    const int64_t killed = absl::ToUnixMicros(absl::Now());
    armed_at_us = killed;
    while (resumed_at_us.load() == 0 && absl::ToUnixMicros(absl::Now()) - killed < 30000000) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    armed_at_us = 0;
    if (resumed_at_us.load() == 0) {
      fprintf(stderr, "trial %d: no write on shard 0 within 30 s of killing %s\n", t,
              victim.c_str());
      rc = 1;
      break;
    }
    resume_ms.push_back((resumed_at_us.load() - killed) / 1000.0);
    absl::StatusOr<dash::v1::Placement> after = cluster.Placement();
    printf(
        "trial %2d: killed %s (leader of shard 0 at epoch %lu), writes resumed after %7.1f ms "
        "on %s\n",
        t + 1, victim.c_str(), static_cast<unsigned long>(p->shards(0).epoch()), resume_ms.back(),
        after.ok() ? LocalCluster::LeaderOf(*after, 0).c_str() : "?");
    fflush(stdout);
    // A replacement machine under the same name: empty disk, catches up.
    if (absl::Status st = cluster.RestartNode(victim, /*wipe=*/true); !st.ok()) {
      fprintf(stderr, "trial %d: restarting %s: %s\n", t, victim.c_str(), st.ToString().c_str());
      rc = 2;
      break;
    }
    absl::Status synced = cluster.WaitForPlacement(
        [](const dash::v1::Placement& p) {
          return LocalCluster::AllShardsLed(p) && LocalCluster::CaughtUp(p, 100);
        },
        absl::Seconds(60), "the replaced node to catch up");
    if (!synced.ok()) {
      fprintf(stderr, "trial %d: %s\n", t, synced.ToString().c_str());
      rc = 2;
      break;
    }
  }
  stop = true;
  for (auto& th : writers) th.join();

  // Every acknowledged write must have survived every failover.
  auto stub = dash::v1::Data::NewStub(cluster.router().channel());
  size_t lost = 0;
  for (const std::string& id : acked) {
    grpc::ClientContext ctx;
    dash::v1::GetClaimRequest req;
    req.set_tenant("bench");
    req.set_claim_id(id);
    dash::v1::GetClaimResponse resp;
    if (!stub->GetClaim(&ctx, req, &resp).ok()) ++lost;
  }
  printf(
      "\nfailover_bench scorecard (3 nodes, %u shards, RF 3, majority commit; heartbeat %d ms, "
      "failure timeout %d ms)\n",
      kShards, FLAGS_heartbeat_ms, FLAGS_failure_timeout_ms);
  if (!resume_ms.empty()) {
    printf("  SIGKILL of shard 0's leader -> first acknowledged write on shard 0, %zu trials:\n",
           resume_ms.size());
    printf("    p50 %.0f ms   p90 %.0f ms   p99 %.0f ms   max %.0f ms   (goal p99 < %.0f ms)\n",
           Percentile(resume_ms, 0.5), Percentile(resume_ms, 0.9), Percentile(resume_ms, 0.99),
           Percentile(resume_ms, 1.0), FLAGS_goal_ms);
    if (Percentile(resume_ms, 0.99) >= FLAGS_goal_ms) rc = std::max(rc, 1);
  }
  printf("  acknowledged writes: %zu, read back after all failovers: %zu, lost: %zu\n",
         acked.size(), acked.size() - lost, lost);
  printf("  refused attempts retried by the clients: %ld\n",
         static_cast<long>(failed_attempts.load()));
  if (lost > 0) rc = 1;
  return rc;
}
