// Availability around ordinary faults, with the whole cluster as processes
// (control plane, three nodes, router) spoken to through the router:
//  - a node SIGKILLed under a read load: reads that may be served by any
//    replica (ANY_HEALTHY, FOLLOWER_PREFERRED) never fail while a live
//    replica exists — the router moves on to the next one — and LEADER_ONLY
//    reads fail closed only for the shards the dead node led;
//  - the control plane SIGKILLed and restarted 20 times under writes: no
//    epoch changes, no write fails.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/cluster.h"
#include "tests/harness/router_cluster_test.h"

namespace dash {
namespace {

using namespace query::testing;  // NOLINT: test builders

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

class LivenessTest : public testing::RouterClusterTest {};

// The router's count of replicas a read replaced (trailer dash-read-failovers).
int FailoversOf(const grpc::ClientContext& ctx) {
  int failovers = 0;
  auto header = ctx.GetServerTrailingMetadata().find("dash-read-failovers");
  if (header != ctx.GetServerTrailingMetadata().end()) {
    (void)absl::SimpleAtoi(absl::string_view(header->second.data(), header->second.size()),
                           &failovers);
  }
  return failovers;
}

struct ReadSample {
  v1::ReadPreference preference;
  uint32_t shard;
  absl::Status status;
  double ms;
  int failovers;  // As the router reported them (dash-read-failovers).
};

TEST_F(LivenessTest, ReadsFailOverToALiveReplicaWhenANodeDiesUnderReadLoad) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  std::vector<std::pair<uint32_t, std::string>> claims;
  for (uint32_t s = 0; s < kShards; ++s) {
    for (int n = 0; n < 10; ++n) {
      claims.emplace_back(s, IdOnShard(s, n));
      auto w = Write(ClaimBatch("acme", claims.back().second));
      ASSERT_TRUE(w.ok()) << w.status();
    }
  }
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::FullyReplicated, absl::Seconds(15),
                                     "every follower to hold every claim")
                  .ok());
  const v1::Placement before = Placement();
  const std::string victim = testing::LocalCluster::LeaderOf(before, 0);
  std::set<uint32_t> led_by_victim;
  for (const auto& s : before.shards()) {
    if (s.leader_node_id() == victim) led_by_victim.insert(s.shard());
  }

  std::mutex mu;
  std::vector<ReadSample> samples;  // Guarded by mu.
  std::atomic<bool> stop{false};
  std::atomic<bool> killed{false};
  auto reader = [&](v1::ReadPreference preference, int seed) {
    auto stub = v1::Data::NewStub(cluster_->router().channel());
    for (size_t i = static_cast<size_t>(seed); !stop; i += 7) {
      const auto& [shard, id] = claims[i % claims.size()];
      v1::GetClaimRequest req;
      req.set_tenant("acme");
      req.set_claim_id(id);
      req.set_read_preference(preference);
      v1::GetClaimResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      const absl::Time start = absl::Now();
      grpc::Status st = stub->GetClaim(&ctx, req, &resp);
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
      const int failovers = FailoversOf(ctx);
      if (!killed) continue;  // Only what happens from the kill on counts.
      std::lock_guard<std::mutex> l(mu);
      samples.push_back({preference, shard, FromGrpcStatus(st, &ctx), ms, failovers});
    }
  };
  // Queries and listings touch every shard, the victim's too: with a live
  // replica for each, none may fail, and each must see every claim.
  auto scanner = [&](bool query, v1::ReadPreference preference) {
    auto stub = v1::Data::NewStub(cluster_->router().channel());
    while (!stop) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      const absl::Time start = absl::Now();
      grpc::Status st;
      absl::Status seen;
      if (query) {
        v1::QueryRequest req;
        req.set_tenant("acme");
        req.set_text("claim text");
        req.set_k(10);
        req.set_read_preference(preference);
        v1::QueryResponse resp;
        st = stub->Query(&ctx, req, &resp);
        if (st.ok() && resp.hits_size() != 10) {
          seen = absl::InternalError(absl::StrCat("the query found ", resp.hits_size(), " hits"));
        }
      } else {
        v1::ListClaimsRequest req;
        req.set_tenant("acme");
        req.set_page_size(100);
        req.set_read_preference(preference);
        v1::ListClaimsResponse resp;
        st = stub->ListClaims(&ctx, req, &resp);
        if (st.ok() && resp.records_size() != static_cast<int>(claims.size())) {
          seen = absl::InternalError(absl::StrCat("the listing held ", resp.records_size(), " of ",
                                                  claims.size(), " claims"));
        }
      }
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
      if (!killed) continue;
      std::lock_guard<std::mutex> l(mu);
      samples.push_back(
          {preference, kShards, st.ok() ? seen : FromGrpcStatus(st, &ctx), ms, FailoversOf(ctx)});
    }
  };
  std::vector<std::thread> readers;
  testing::JoinOnExit join_readers(&stop, &readers);
  int seed = 0;
  for (auto pref : {v1::READ_PREFERENCE_ANY_HEALTHY, v1::READ_PREFERENCE_FOLLOWER_PREFERRED,
                    v1::READ_PREFERENCE_LEADER_ONLY, v1::READ_PREFERENCE_ANY_HEALTHY,
                    v1::READ_PREFERENCE_FOLLOWER_PREFERRED}) {
    readers.emplace_back(reader, pref, seed++);
  }
  readers.emplace_back(scanner, /*query=*/true, v1::READ_PREFERENCE_ANY_HEALTHY);
  readers.emplace_back(scanner, /*query=*/false, v1::READ_PREFERENCE_FOLLOWER_PREFERRED);
  absl::SleepFor(absl::Milliseconds(300));
  killed = true;
  cluster_->node(victim).Kill();
  // Through the failure timeout (1.5 s), the failover and past the router's
  // breaker (2 s): every stage of the fault.
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [&](const v1::Placement& p) {
                        for (const auto& n : p.nodes()) {
                          if (n.node_id() == victim && n.health() == v1::NODE_HEALTH_HEALTHY) {
                            return false;
                          }
                        }
                        return testing::LocalCluster::AllShardsLed(p);
                      },
                      absl::Seconds(20), "the victim unhealthy and its shards led by others")
                  .ok());
  absl::SleepFor(absl::Seconds(1));
  stop = true;
  for (auto& t : readers) t.join();

  std::map<v1::ReadPreference, int> reads, failed;
  int scans = 0;  // Queries and listings that succeeded after the kill.
  int scans_failed_over = 0;
  std::vector<double> failed_over_ms, direct_ms;
  for (const ReadSample& s : samples) {
    ++reads[s.preference];
    if (s.preference == v1::READ_PREFERENCE_LEADER_ONLY) {
      if (!s.status.ok()) {
        ++failed[s.preference];
        EXPECT_TRUE(absl::IsUnavailable(s.status)) << "LEADER_ONLY fails closed: " << s.status;
        EXPECT_EQ(led_by_victim.count(s.shard), 1u) << "a LEADER_ONLY read of shard " << s.shard
                                                    << ", led by a live node, failed: " << s.status;
      }
      continue;
    }
    if (!s.status.ok()) {
      ++failed[s.preference];
      ADD_FAILURE() << v1::ReadPreference_Name(s.preference)
                    << (s.shard == kShards ? " query or listing"
                                           : absl::StrCat(" read of shard ", s.shard))
                    << " failed although live replicas exist: " << s.status;
      continue;
    }
    if (s.shard == kShards) {
      ++scans;
      scans_failed_over += s.failovers > 0;
      continue;
    }
    (s.failovers > 0 ? failed_over_ms : direct_ms).push_back(s.ms);
  }
  for (auto pref : {v1::READ_PREFERENCE_ANY_HEALTHY, v1::READ_PREFERENCE_FOLLOWER_PREFERRED,
                    v1::READ_PREFERENCE_LEADER_ONLY}) {
    std::cout << v1::ReadPreference_Name(pref) << ": " << reads[pref] << " reads after the kill, "
              << failed[pref] << " failed\n";
    EXPECT_GT(reads[pref], 20) << v1::ReadPreference_Name(pref);
  }
  EXPECT_GT(scans, 10) << "queries and listings after the kill";
  std::cout << "queries and listings after the kill: " << scans << " succeeded, "
            << scans_failed_over << " of them moved on from the dead node\n";
  // Whichever reader met the dead node first moved on, and the router's
  // breaker then spared the others: some read did, of one kind or another.
  EXPECT_GE(failed_over_ms.size() + scans_failed_over, 1u)
      << "some read met the dead node and moved on";
  std::cout << "failed-over reads: " << failed_over_ms.size() << ", p50 "
            << Percentile(failed_over_ms, 0.5) << " ms, p99 " << Percentile(failed_over_ms, 0.99)
            << " ms; other reads: " << direct_ms.size() << ", p50 " << Percentile(direct_ms, 0.5)
            << " ms, p99 " << Percentile(direct_ms, 0.99) << " ms\n";
  RecordProperty("failed_over_reads", static_cast<int>(failed_over_ms.size()));
  RecordProperty("failed_over_p50_us", static_cast<int>(Percentile(failed_over_ms, 0.5) * 1000));
  RecordProperty("failed_over_p99_us", static_cast<int>(Percentile(failed_over_ms, 0.99) * 1000));
  RecordProperty("direct_p50_us", static_cast<int>(Percentile(direct_ms, 0.5) * 1000));
  RecordProperty("direct_p99_us", static_cast<int>(Percentile(direct_ms, 0.99) * 1000));
}

// A control-plane restart (an upgrade, a crash) is invisible to shards whose
// leader is alive: no fencing, no new epoch, no failed write.
TEST_F(LivenessTest, ControlPlaneRestartedTwentyTimesUnderWritesChangesNoEpoch) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement before = Placement();

  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::mutex mu;
  std::vector<std::string> errors;  // Guarded by mu.
  auto writer = [&](int w) {
    for (int n = 0; !stop; ++n) {
      auto r =
          Write(ClaimBatch("acme", IdOnShard(static_cast<uint32_t>(n % kShards), w * 1000000 + n)));
      if (r.ok()) {
        ++acked;
      } else {
        std::lock_guard<std::mutex> l(mu);
        errors.push_back(r.status().ToString());
      }
    }
  };
  std::vector<std::thread> writers;
  testing::JoinOnExit join_writers(&stop, &writers);
  for (int w = 0; w < 2; ++w) writers.emplace_back(writer, w);

  std::mt19937 rng(20261130);
  for (int round = 0; round < 20; ++round) {
    cluster_->controlplane().Kill();
    // Down for 0.1-2.5 s: at times past the failure timeout (1.5 s), so that
    // the nodes' channels back off and their first heartbeats come late.
    absl::SleepFor(absl::Milliseconds(100 + rng() % 2400));
    const absl::Time restarted = absl::Now();
    ASSERT_TRUE(cluster_->controlplane().Start().ok()) << "round " << round;
    // Every node heard again (its heartbeat time is after the restart).
    absl::Status heard = cluster_->WaitForPlacement(
        [&](const v1::Placement& p) {
          for (const auto& n : p.nodes()) {
            if (absl::FromUnixMicros(n.last_heartbeat().seconds() * 1000000 +
                                     n.last_heartbeat().nanos() / 1000) < restarted) {
              return false;
            }
          }
          return true;
        },
        absl::Seconds(10), "every node's heartbeat after the restart");
    ASSERT_TRUE(heard.ok()) << "round " << round << ": " << heard;
    const v1::Placement p = Placement();
    for (uint32_t s = 0; s < kShards; ++s) {
      ASSERT_EQ(p.shards(s).epoch(), before.shards(s).epoch()) << "round " << round;
      ASSERT_EQ(p.shards(s).leader_node_id(), before.shards(s).leader_node_id());
    }
  }
  // Past a failure timeout after the last restart: still nothing changed.
  absl::SleepFor(absl::Seconds(2));
  stop = true;
  for (auto& t : writers) t.join();
  const v1::Placement after = Placement();
  for (uint32_t s = 0; s < kShards; ++s) {
    EXPECT_EQ(after.shards(s).epoch(), before.shards(s).epoch()) << "shard " << s;
    EXPECT_EQ(after.shards(s).leader_node_id(), before.shards(s).leader_node_id());
  }
  for (const auto& n : after.nodes()) EXPECT_EQ(n.health(), v1::NODE_HEALTH_HEALTHY);
  EXPECT_THAT(errors, ::testing::IsEmpty()) << "writes need a majority, not the control plane";
  EXPECT_GT(acked.load(), 100);
  std::cout << acked.load() << " writes acknowledged across 20 control-plane restarts, "
            << errors.size() << " failed\n";
}

}  // namespace
}  // namespace dash
