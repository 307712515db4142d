// A whole cluster as separate processes: control plane, three shard nodes and
// a router, spoken to only through the router (and dashctl), with nodes killed
// by SIGKILL. Asserts the routing and failover guarantees of issue 4.
#include "tests/harness/cluster.h"

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/router_cluster_test.h"

namespace dash {
namespace {

using ::testing::HasSubstr;
using namespace query::testing;  // NOLINT: test builders

class ClusterTest : public testing::RouterClusterTest {
 protected:
  absl::StatusOr<v1::GetClaimResponse> Get(const std::string& id, v1::ReadPreference pref) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetClaimRequest req;
    req.set_tenant("acme");
    req.set_claim_id(id);
    req.set_read_preference(pref);
    v1::GetClaimResponse resp;
    grpc::Status st = router_->GetClaim(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, &ctx);
    return resp;
  }

  // Get, retried while it fails (a follower learns a just-acknowledged
  // write's commit from its leader a moment later; a leader's lease comes
  // back with its next heartbeat).
  absl::StatusOr<v1::GetClaimResponse> GetEventually(const std::string& id,
                                                     v1::ReadPreference pref) {
    absl::StatusOr<v1::GetClaimResponse> r;
    testing::PollUntil(
        [&] {
          r = Get(id, pref);
          return r.ok();
        },
        absl::Seconds(10), "a read of " + id)
        .IgnoreError();  // On a timeout `r` holds the last failure, which the caller checks.
    return r;
  }

  // Get, retried while UNAVAILABLE (a new leader serves LEADER_ONLY reads once
  // its epoch is committed and its lease granted): NOT_FOUND stays an answer.
  absl::StatusOr<v1::GetClaimResponse> GetSettled(const std::string& id, v1::ReadPreference pref) {
    absl::StatusOr<v1::GetClaimResponse> r;
    testing::PollUntil(
        [&] {
          r = Get(id, pref);
          return !absl::IsUnavailable(r.status());
        },
        absl::Seconds(10), "a settled read of " + id)
        .IgnoreError();  // As in GetEventually.
    return r;
  }
};

TEST_F(ClusterTest, PlacementTableAndNodesAgreeOnEveryShardsLeaderAndFollowers) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement p = Placement();
  ASSERT_EQ(p.shards_size(), static_cast<int>(kShards));
  for (const v1::ShardEntry& s : p.shards()) {
    ASSERT_EQ(s.replicas_size(), 3);
    int leaders = 0;
    for (const v1::ReplicaEntry& r : s.replicas()) {
      leaders += r.role() == v1::REPLICA_ROLE_LEADER;
      EXPECT_EQ(r.role() == v1::REPLICA_ROLE_LEADER, r.node_id() == s.leader_node_id());
      // The node itself acts in the role the table gives it, at the same epoch.
      auto admin = v1::NodeAdmin::NewStub(cluster_->node(r.node_id()).channel());
      grpc::ClientContext ctx;
      v1::NodeInfo info;
      ASSERT_TRUE(admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok());
      bool found = false;
      for (const auto& ri : info.replicas()) {
        if (ri.shard() != s.shard()) continue;
        found = true;
        EXPECT_EQ(ri.epoch(), s.epoch());
        EXPECT_EQ(ri.role(), r.role() == v1::REPLICA_ROLE_LEADER ? "leader" : "follower");
        EXPECT_EQ(ri.leader_node_id(), s.leader_node_id());
      }
      EXPECT_TRUE(found) << r.node_id() << " does not host shard " << s.shard();
    }
    EXPECT_EQ(leaders, 1) << "shard " << s.shard();
  }
}

TEST_F(ClusterTest, WritesReachFollowersAndEachReadPreferencePicksItsReplica) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  std::vector<std::string> ids;
  for (uint32_t s = 0; s < kShards; ++s) {
    for (int n = 0; n < 5; ++n) {
      ids.push_back(IdOnShard(s, n));
      auto w = Write(ClaimBatch("acme", ids.back(), 2));
      ASSERT_TRUE(w.ok()) << w.status();
    }
  }
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::FullyReplicated, absl::Seconds(10),
                                     "followers to catch up")
                  .ok());
  const v1::Placement p = Placement();
  for (const std::string& id : ids) {
    const uint32_t shard = ShardOf("acme", id, kShards);
    const std::string leader = testing::LocalCluster::LeaderOf(p, shard);
    auto r = GetEventually(id, v1::READ_PREFERENCE_LEADER_ONLY);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->read_at().served_by(), leader);
    EXPECT_EQ(r->record().evidence_size(), 2);
    r = GetEventually(id, v1::READ_PREFERENCE_FOLLOWER_PREFERRED);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NE(r->read_at().served_by(), leader) << "an in-sync follower exists";
    EXPECT_EQ(r->record().evidence_size(), 2) << "the follower holds the replicated claim";
    EXPECT_EQ(r->read_at().epoch(), p.shards(shard).epoch());
  }
  std::set<std::string> served;
  for (int i = 0; i < 12; ++i) {
    auto r = GetEventually(ids[0], v1::READ_PREFERENCE_ANY_HEALTHY);
    ASSERT_TRUE(r.ok()) << r.status();
    served.insert(r->read_at().served_by());
  }
  EXPECT_EQ(served.size(), 3u) << "ANY_HEALTHY spreads over all three replicas";

  // A list through the router merges every shard and says where each was read.
  grpc::ClientContext ctx;
  v1::ListClaimsRequest list;
  list.set_tenant("acme");
  list.set_page_size(1000);
  list.set_read_preference(v1::READ_PREFERENCE_FOLLOWER_PREFERRED);
  v1::ListClaimsResponse page;
  ASSERT_TRUE(router_->ListClaims(&ctx, list, &page).ok());
  EXPECT_EQ(page.records_size(), static_cast<int>(ids.size()));
  EXPECT_EQ(page.read_at_size(), static_cast<int>(kShards));

  // Every shard's three replicas hold byte-identical state at the same LSN.
  testing::CommandResult verify =
      testing::RunCommand(testing::BinaryPath("dashctl/dashctl"),
                          {"--controlplane=" + cluster_->controlplane().address(), "verify"}, "",
                          dir_.Sub("verify.err"));
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  // Five writes per shard, after the leader's epoch_start record(s).
  for (uint32_t s = 0; s < kShards; ++s) {
    const size_t at = verify.out.find(absl::StrCat("shard ", s, ": lsn "));
    ASSERT_NE(at, std::string::npos) << verify.out;
    const std::string line = verify.out.substr(at, verify.out.find('\n', at) - at);
    EXPECT_THAT(line, HasSubstr(": 3 replicas agree")) << verify.out;
    uint64_t lsn = 0;
    ASSERT_TRUE(
        absl::SimpleAtoi(line.substr(line.find("lsn ") + 4,
                                     line.find(':', line.find("lsn ")) - line.find("lsn ") - 4),
                         &lsn))
        << line;
    EXPECT_GE(lsn, 6u) << line;
  }
}

TEST_F(ClusterTest, QueryThroughTheRouterRanksExactlyAsASingleShardNode) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  testing::NodeProcess single(dir_.Sub("single"), {"--shard_count=1"});
  ASSERT_TRUE(single.Start().ok());
  for (const std::string& addr : {cluster_->router().address(), single.address()}) {
    testing::CommandResult r = testing::RunCommand(
        testing::BinaryPath("dashctl/dashctl"),
        {"--addr=" + addr, "ingest", DASH_SAMPLE_FILE, "--tenant=cf"}, "", dir_.Sub("ingest.err"));
    ASSERT_EQ(r.exit_code, 0) << addr;
  }
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::FullyReplicated, absl::Seconds(10),
                                     "followers to catch up")
                  .ok());
  // Until then a follower may not yet know its last records committed.
  auto count = [](v1::Data::Stub& stub, v1::ReadPreference preference) {
    grpc::ClientContext ctx;
    v1::ListClaimsRequest list;
    list.set_tenant("cf");
    list.set_page_size(1000);
    list.set_read_preference(preference);
    v1::ListClaimsResponse page;
    return stub.ListClaims(&ctx, list, &page).ok() ? page.records_size() : -1;
  };
  auto single_list = v1::Data::NewStub(single.channel());
  const int ingested = count(*single_list, v1::READ_PREFERENCE_LEADER_ONLY);
  ASSERT_GT(ingested, 0);
  ASSERT_TRUE(
      testing::PollUntil(
          [&] { return count(*router_, v1::READ_PREFERENCE_FOLLOWER_PREFERRED) == ingested; },
          absl::Seconds(10), "followers to read every claim")
          .ok());
  // Replicas hold byte-identical state, metadata maps included (their
  // serialization must not depend on the process).
  testing::CommandResult verify =
      testing::RunCommand(testing::BinaryPath("dashctl/dashctl"),
                          {"--controlplane=" + cluster_->controlplane().address(), "verify"}, "",
                          dir_.Sub("verify.err"));
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  auto single_stub = v1::Data::NewStub(single.channel());
  for (const char* text : {"global warming is caused by the sun", "sea level rise",
                           "carbon dioxide emissions", "polar bears extinction"}) {
    // Followers derive their index segments on their own (their own flushes
    // and merges) and must rank exactly as the leader, and as one shard.
    for (auto [mode, preference] :
         {std::pair{v1::STANCE_MODE_ALL, v1::READ_PREFERENCE_LEADER_ONLY},
          std::pair{v1::STANCE_MODE_ALL, v1::READ_PREFERENCE_FOLLOWER_PREFERRED},
          std::pair{v1::STANCE_MODE_BALANCED, v1::READ_PREFERENCE_FOLLOWER_PREFERRED},
          std::pair{v1::STANCE_MODE_BALANCED, v1::READ_PREFERENCE_ANY_HEALTHY}}) {
      v1::QueryRequest q;
      q.set_tenant("cf");
      q.set_text(text);
      q.set_k(10);
      q.set_stance_mode(mode);
      q.set_read_preference(preference);
      v1::QueryResponse a, b;
      grpc::ClientContext c1, c2;
      ASSERT_TRUE(router_->Query(&c1, q, &a).ok());
      ASSERT_TRUE(single_stub->Query(&c2, q, &b).ok());
      ASSERT_EQ(a.hits_size(), b.hits_size()) << text;
      ASSERT_GT(a.hits_size(), 0) << text;
      for (int i = 0; i < a.hits_size(); ++i) {
        EXPECT_EQ(a.hits(i).record().claim().claim_id(), b.hits(i).record().claim().claim_id())
            << text << " rank " << i;
        EXPECT_DOUBLE_EQ(a.hits(i).score(), b.hits(i).score()) << text << " rank " << i;
        EXPECT_EQ(a.hits(i).record().evidence_size(), b.hits(i).record().evidence_size());
      }
      EXPECT_EQ(a.read_at_size(), static_cast<int>(kShards)) << "every shard says where it served";
    }
  }
}

// What a client (and the quick start) relies on: once the table shows every
// shard led by a healthy leader that is ready, a write to any shard succeeds
// at the first attempt (no "not hosted" or "opening; retry" in between).
TEST_F(ClusterTest, AClusterShownLedAndReadyTakesAWriteOnEveryShardAtOnce) {
  testing::ClusterOptions options;
  options.settle = false;
  StartCluster(options);
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [](const v1::Placement& p) {
                        return testing::LocalCluster::AllShardsLed(p) &&
                               testing::LocalCluster::AllLeadersReady(p);
                      },
                      absl::Seconds(30), "every shard led by a ready leader")
                  .ok());
  ASSERT_TRUE(cluster_->WaitForRouterToCatchUp(absl::Seconds(10)).ok());
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    absl::StatusOr<v1::WriteResponse> w = Write(ClaimBatch("acme", IdOnShard(shard, 0)));
    EXPECT_TRUE(w.ok()) << "shard " << shard << ": " << w.status();
  }
}

TEST_F(ClusterTest, WritesFailClosedWhileAShardHasNoHealthyLeader) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const std::string id = IdOnShard(0, 0);
  auto first = Write(ClaimBatch("acme", id));
  ASSERT_TRUE(first.ok()) << first.status();
  // Every node dies: no shard can be failed over, each keeps its (unhealthy) leader.
  for (const std::string& n : cluster_->node_ids()) cluster_->node(n).Kill();
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [](const v1::Placement& p) {
                        for (const auto& n : p.nodes()) {
                          if (n.health() != v1::NODE_HEALTH_UNHEALTHY) return false;
                        }
                        return true;
                      },
                      absl::Seconds(10), "every node to be unhealthy")
                  .ok());
  ASSERT_TRUE(cluster_->WaitForRouterToCatchUp(absl::Seconds(10)).ok());
  const v1::Placement before = Placement();
  auto w = Write(ClaimBatch("acme", IdOnShard(0, 1)));
  ASSERT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  EXPECT_THAT(w.status().message(), HasSubstr("no healthy leader"));
  std::optional<v1::RoutingHint> hint = GetRoutingHint(w.status());
  ASSERT_TRUE(hint.has_value()) << "the refusal names the shard's epoch and leader";
  EXPECT_EQ(hint->shard(), 0u);
  EXPECT_EQ(hint->current_epoch(), before.shards(0).epoch());
  EXPECT_EQ(hint->leader_node_id(), before.shards(0).leader_node_id());
  // Reads that need a leader fail closed too.
  EXPECT_TRUE(absl::IsUnavailable(Get(id, v1::READ_PREFERENCE_LEADER_ONLY).status()));

  // The nodes come back with their data: the same leaders serve again.
  for (const std::string& n : cluster_->node_ids()) {
    ASSERT_TRUE(cluster_->RestartNode(n, /*wipe=*/false).ok());
  }
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::AllShardsLed, absl::Seconds(10),
                                     "leaders to be healthy again")
                  .ok());
  absl::StatusOr<v1::WriteResponse> again;
  ASSERT_TRUE(testing::PollUntil(
                  [&] {
                    again = Write(ClaimBatch("acme", IdOnShard(0, 1)));
                    return again.ok();
                  },
                  absl::Seconds(10), "a write to succeed")
                  .ok())
      << again.status();
  auto r = GetEventually(id, v1::READ_PREFERENCE_LEADER_ONLY);
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(ClusterTest, RouterAndNodesServeOnWhileTheControlPlaneIsDown) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement before = Placement();
  cluster_->controlplane().Kill();
  // Past every leader's lease: no control plane confirms them any more.
  absl::SleepFor(absl::Milliseconds(1500));
  std::vector<std::string> ids;
  for (int n = 0; n < 10; ++n) {
    ids.push_back(IdOnShard(n % kShards, n));
    auto w = Write(ClaimBatch("acme", ids.back()));
    ASSERT_TRUE(w.ok()) << w.status() << ": writes need a majority, not the control plane";
    auto r = GetEventually(ids.back(), v1::READ_PREFERENCE_FOLLOWER_PREFERRED);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  // Linearizable reads need a lease the control plane grants: they fail
  // closed (retryable) rather than risk a deposed leader answering.
  auto leader_read = Get(ids[0], v1::READ_PREFERENCE_LEADER_ONLY);
  ASSERT_TRUE(absl::IsUnavailable(leader_read.status())) << leader_read.status();
  EXPECT_THAT(leader_read.status().message(), HasSubstr("lease"));
  ASSERT_TRUE(cluster_->controlplane().Start().ok());
  auto back = GetEventually(ids[0], v1::READ_PREFERENCE_LEADER_ONLY);
  EXPECT_TRUE(back.ok()) << back.status();
  const v1::Placement after = Placement();
  EXPECT_GE(after.version(), before.version());
  for (uint32_t s = 0; s < kShards; ++s) {
    EXPECT_EQ(after.shards(s).epoch(), before.shards(s).epoch()) << "no failover happened";
    EXPECT_EQ(after.shards(s).leader_node_id(), before.shards(s).leader_node_id());
  }
}

// Bounded divergence: a follower whose replication is cut (by the node's
// fault hook; it still heartbeats) falls behind, its leader calls it out of
// sync once its oldest missing record is older than the bound, the control
// plane records that, follower reads stop going to it, and it rejoins once
// caught up.
TEST_F(ClusterTest, ALaggingFollowerLeavesTheInSyncSetAndRejoinsWhenCaughtUp) {
  testing::ClusterOptions options;
  options.node_args = {"--fault_injection", "--in_sync_max_lag_ms=600"};
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  const v1::Placement p = Placement();
  const std::string leader = testing::LocalCluster::LeaderOf(p, 0);
  std::vector<std::string> followers;
  for (const auto& r : p.shards(0).replicas()) {
    if (r.node_id() != leader) followers.push_back(r.node_id());
  }
  ASSERT_EQ(followers.size(), 2u);
  const std::string cut = followers[0];
  const std::string other = followers[1];
  auto entry_of = [](const v1::Placement& pl, const std::string& node) {
    for (const auto& r : pl.shards(0).replicas()) {
      if (r.node_id() == node) return r;
    }
    return v1::ReplicaEntry();
  };
  auto set_faults = [&](const std::string& text) {
    std::ofstream out(cluster_->node(cut).dir() + "/data/FAULTS", std::ios::trunc);
    out << text << "\n";
  };

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int n = 0; !stop; ++n) {
      if (Write(ClaimBatch("acme", IdOnShard(0, 1000 + n))).ok()) ++written;
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  testing::JoinOnExit join_writer(&stop, &writer);
  set_faults("no_replication");
  absl::Status out_of_sync = cluster_->WaitForPlacement(
      [&](const v1::Placement& pl) {
        const v1::ReplicaEntry e = entry_of(pl, cut);
        return !e.in_sync() && e.lag().lag_records() > 0 && e.lag().lag_seconds() > 0.6;
      },
      absl::Seconds(15), "the cut follower to be recorded out of sync");
  EXPECT_TRUE(out_of_sync.ok()) << out_of_sync;
  const v1::ReplicaEntry behind = entry_of(Placement(), cut);
  EXPECT_GT(behind.lag().lag_bytes(), 0u);
  EXPECT_TRUE(entry_of(Placement(), other).in_sync()) << "the other follower keeps up";
  ASSERT_TRUE(cluster_->WaitForRouterToCatchUp(absl::Seconds(10)).ok());
  // Follower reads of shard 0 now all go to the follower that keeps up.
  for (int i = 0; i < 6; ++i) {
    auto r = GetEventually(IdOnShard(0, 1000), v1::READ_PREFERENCE_FOLLOWER_PREFERRED);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->read_at().served_by(), other);
  }
  // dashctl shows it behind, with its lag.
  testing::CommandResult show = testing::RunCommand(
      testing::BinaryPath("dashctl/dashctl"),
      {"--controlplane=" + cluster_->controlplane().address(), "placement", "show"}, "",
      dir_.Sub("show.err"));
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_THAT(show.out, HasSubstr(cut + "(F,behind,")) << show.out;
  // Why it is behind: its puller says so, on the node and through dashctl.
  auto follow_of = [&](const std::string& node) {
    auto admin = v1::NodeAdmin::NewStub(cluster_->node(node).channel());
    grpc::ClientContext ctx;
    v1::NodeInfo info;
    EXPECT_TRUE(admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok());
    for (const auto& ri : info.replicas()) {
      if (ri.shard() == 0) return ri.follow();
    }
    return v1::FollowerStatus();
  };
  EXPECT_EQ(follow_of(cut).state(), "cut");
  EXPECT_EQ(follow_of(other).state(), "pulling");
  EXPECT_LT(follow_of(other).leader_silent_ms(), 1000u) << "an open stream speaks";
  EXPECT_THAT(show.out, HasSubstr("shard 0 " + cut + ": not pulling from " + leader + " (cut"))
      << show.out;

  set_faults("");
  absl::Status back = cluster_->WaitForPlacement(
      [&](const v1::Placement& pl) { return entry_of(pl, cut).in_sync(); }, absl::Seconds(15),
      "the follower to rejoin the in-sync set");
  EXPECT_TRUE(back.ok()) << back;
  EXPECT_TRUE(testing::PollUntil(
                  [&] {
                    const v1::FollowerStatus f = follow_of(cut);
                    return f.state() == "pulling" && f.last_error().empty();
                  },
                  absl::Seconds(5), "the node to report its follower pulling again")
                  .ok());
  stop = true;
  writer.join();
  EXPECT_GT(written.load(), 20) << "writes went on with a majority";
}

// The acceptance test of failover: a client write load through the router, the
// leader of shard 0 SIGKILLed mid-load, writes on that shard resume, and every
// shard ends with a healthy leader (the CI probe).
TEST_F(ClusterTest, SigkillOfALeaderUnderWriteLoadWritesResumeThroughTheRouter) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement initial = Placement();
  const std::string victim = testing::LocalCluster::LeaderOf(initial, 0);

  struct Ack {
    std::string id;
    absl::Time at;
  };
  std::mutex mu;
  std::vector<Ack> acked;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> first_success_after_kill_us{0};
  std::atomic<int64_t> kill_time_us{0};
  std::vector<std::thread> writers;
  testing::JoinOnExit join_writers(&stop, &writers);
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      auto stub = v1::Data::NewStub(cluster_->router().channel());
      for (int n = 0; !stop; ++n) {
        const uint32_t shard = (w + n) % kShards;
        v1::WriteRequest req = ClaimBatch("acme", IdOnShard(shard, w * 1000000 + n));
        req.set_idempotency_key(absl::StrCat("w", w, "-", n));
        // Retry the same batch (same key) until it is acknowledged.
        while (!stop) {
          const int64_t sent_us = absl::ToUnixMicros(absl::Now());
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::WriteResponse resp;
          if (stub->Write(&ctx, req, &resp).ok()) {
            const absl::Time now = absl::Now();
            std::lock_guard<std::mutex> l(mu);
            acked.push_back({req.ops(0).claim().claim_id(), now});
            // Resumption counts only writes sent after the leader was dead.
            const int64_t killed = kill_time_us.load();
            if (shard == 0 && killed != 0 && sent_us > killed) {
              int64_t expected = 0;
              first_success_after_kill_us.compare_exchange_strong(expected,
                                                                  absl::ToUnixMicros(now));
            }
            break;
          }
          absl::SleepFor(absl::Milliseconds(20));
        }
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));
  cluster_->node(victim).Kill();  // Returns once the process is reaped.
  const absl::Time killed_at = absl::Now();
  kill_time_us = absl::ToUnixMicros(killed_at);
  ASSERT_TRUE(testing::PollUntil([&] { return first_success_after_kill_us.load() != 0; },
                                 absl::Seconds(15), "a write on shard 0 after the kill")
                  .ok());
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  for (auto& t : writers) t.join();
  const absl::Duration resumed =
      absl::FromUnixMicros(first_success_after_kill_us.load()) - killed_at;
  std::cout << "writes on shard 0 resumed " << absl::FormatDuration(resumed)
            << " after the SIGKILL of its leader " << victim << "; " << acked.size()
            << " batches acknowledged\n";
  EXPECT_LT(resumed, absl::Seconds(5));

  // CI probe: no shard is left without a healthy leader.
  const v1::Placement after = Placement();
  EXPECT_TRUE(testing::LocalCluster::AllShardsLed(after));
  EXPECT_NE(testing::LocalCluster::LeaderOf(after, 0), victim);
  EXPECT_GT(after.shards(0).epoch(), initial.shards(0).epoch());

  // Every acknowledged write is readable from the new leaders: a write is
  // acknowledged only once a majority holds it, and failover promotes the
  // follower holding the most.
  int lost = 0;
  for (const Ack& a : acked) {
    auto r = GetSettled(a.id, v1::READ_PREFERENCE_LEADER_ONLY);
    if (r.ok()) continue;
    ASSERT_TRUE(absl::IsNotFound(r.status())) << r.status();
    ++lost;
    ADD_FAILURE() << "acknowledged claim " << a.id << " is gone after the failover";
  }
  EXPECT_EQ(lost, 0);
  // The surviving replicas of every shard converge to identical state.
  testing::CommandResult verify =
      testing::RunCommand(testing::BinaryPath("dashctl/dashctl"),
                          {"--controlplane=" + cluster_->controlplane().address(), "verify"}, "",
                          dir_.Sub("verify.err"));
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
}

// Runs `writers` client threads writing single-claim batches through the router
// (each retried with its idempotency key until acknowledged) and remembers the
// acknowledged claim ids.
class WriteLoad {
 public:
  WriteLoad(std::shared_ptr<grpc::Channel> router, int writers) {
    for (int w = 0; w < writers; ++w) {
      threads_.emplace_back([this, router, w] {
        auto stub = v1::Data::NewStub(router);
        for (int n = 0; !stop_; ++n) {
          v1::WriteRequest req = ClaimBatch("acme", absl::StrCat("load-", w, "-", n));
          req.set_idempotency_key(absl::StrCat("load-", w, "-", n));
          while (!stop_) {
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
            v1::WriteResponse resp;
            if (stub->Write(&ctx, req, &resp).ok()) {
              std::lock_guard<std::mutex> l(mu_);
              acked_.push_back(req.ops(0).claim().claim_id());
              break;
            }
            absl::SleepFor(absl::Milliseconds(10));
          }
        }
      });
    }
  }
  ~WriteLoad() { Stop(); }
  std::vector<std::string> Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard<std::mutex> l(mu_);
    return acked_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> acked_;
  std::vector<std::thread> threads_;
};

class ClusterOpsTest : public ClusterTest {
 protected:
  std::unique_ptr<v1::ControlPlane::Stub> Cp() {
    return v1::ControlPlane::NewStub(cluster_->controlplane().channel());
  }
  // Every id is readable from its shard's leader.
  void ExpectAllReadable(const std::vector<std::string>& ids) {
    int lost = 0;
    for (const std::string& id : ids) {
      auto r = GetSettled(id, v1::READ_PREFERENCE_LEADER_ONLY);
      if (!r.ok()) {
        ++lost;
        ADD_FAILURE() << "acknowledged claim " << id << ": " << r.status();
      }
    }
    EXPECT_EQ(lost, 0) << "of " << ids.size() << " acknowledged";
  }
};

TEST_F(ClusterOpsTest, PlannedTransferUnderWritesLosesNothingAndBumpsTheEpochOnce) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement before = Placement();
  const std::string from = testing::LocalCluster::LeaderOf(before, 0);
  std::string to;
  for (const auto& r : before.shards(0).replicas()) {
    if (r.node_id() != from && to.empty()) to = r.node_id();
  }
  WriteLoad load(cluster_->router().channel(), 2);
  absl::SleepFor(absl::Milliseconds(500));
  v1::TransferLeaderRequest req;
  req.set_shard(0);
  req.set_node_id(to);
  v1::PlacementChange change;
  grpc::ClientContext ctx;
  grpc::Status st = Cp()->TransferLeader(&ctx, req, &change);
  ASSERT_TRUE(st.ok()) << st.error_message();
  absl::SleepFor(absl::Milliseconds(500));
  const std::vector<std::string> acked = load.Stop();
  const v1::Placement after = Placement();
  EXPECT_EQ(testing::LocalCluster::LeaderOf(after, 0), to);
  EXPECT_EQ(after.shards(0).epoch(), before.shards(0).epoch() + 1);
  EXPECT_TRUE(after.shards(0).transfer_to().empty());
  ASSERT_GT(acked.size(), 10u);
  ExpectAllReadable(acked);
}

TEST_F(ClusterOpsTest, MovedReplicaCatchesUpOnTheNewNodeAndLeavesTheOld) {
  testing::ClusterOptions options;
  options.nodes = 4;  // n4 holds replicas of the shards the layout gives it.
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  std::vector<std::string> ids;
  for (int n = 0; n < 30; ++n) {
    ids.push_back(IdOnShard(0, n));
    ASSERT_TRUE(Write(ClaimBatch("acme", ids.back(), 2)).ok());
  }
  const v1::Placement before = Placement();
  std::set<std::string> members;
  std::string follower;
  for (const auto& r : before.shards(0).replicas()) {
    members.insert(r.node_id());
    if (r.node_id() != before.shards(0).leader_node_id() && follower.empty()) {
      follower = r.node_id();
    }
  }
  std::string target;
  for (const std::string& n : cluster_->node_ids()) {
    if (members.count(n) == 0) target = n;
  }
  ASSERT_FALSE(target.empty());
  v1::MoveReplicaRequest req;
  req.set_shard(0);
  req.set_from_node_id(follower);
  req.set_to_node_id(target);
  v1::PlacementChange change;
  grpc::ClientContext ctx;
  grpc::Status st = Cp()->MoveReplica(&ctx, req, &change);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [&](const v1::Placement& p) {
                        if (!p.shards(0).moving_from().empty()) return false;
                        for (const auto& r : p.shards(0).replicas()) {
                          if (r.node_id() == follower) return false;
                        }
                        return testing::LocalCluster::FullyReplicated(p);
                      },
                      absl::Seconds(20), "the move to finish")
                  .ok());
  // The new replica holds the shard's data: read it there (ANY_HEALTHY rotates
  // over the replicas, so every one of them serves some of the reads).
  std::set<std::string> served;
  for (const std::string& id : ids) {
    for (int i = 0; i < 3; ++i) {
      auto r = GetEventually(id, v1::READ_PREFERENCE_ANY_HEALTHY);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->record().evidence_size(), 2);
      served.insert(r->read_at().served_by());
    }
  }
  EXPECT_EQ(served.count(target), 1u) << "the new replica served reads";
  EXPECT_EQ(served.count(follower), 0u) << "the old replica is gone";
  // The old node moved its copy aside instead of deleting it.
  auto admin = v1::NodeAdmin::NewStub(cluster_->node(follower).channel());
  grpc::ClientContext ictx;
  v1::NodeInfo info;
  ASSERT_TRUE(admin->GetNodeInfo(&ictx, v1::GetNodeInfoRequest(), &info).ok());
  for (const auto& r : info.replicas()) EXPECT_NE(r.shard(), 0u);
}

TEST_F(ClusterOpsTest, ControlPlaneKilledWithTheLeaderFailsOverOnceAfterItsRestart) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const v1::Placement before = Placement();
  const std::string victim = testing::LocalCluster::LeaderOf(before, 0);
  ASSERT_TRUE(Write(ClaimBatch("acme", IdOnShard(0, 0))).ok());
  cluster_->node(victim).Kill();
  cluster_->controlplane().Kill();
  absl::SleepFor(absl::Seconds(1));
  // Without a control plane nobody can promote: shard 0 stays unwritable.
  EXPECT_FALSE(Write(ClaimBatch("acme", IdOnShard(0, 1)), absl::Seconds(2)).ok());
  ASSERT_TRUE(cluster_->controlplane().Start().ok());
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [&](const v1::Placement& p) {
                        return testing::LocalCluster::LeaderOf(p, 0) != victim;
                      },
                      absl::Seconds(10), "the failover after the restart")
                  .ok());
  absl::StatusOr<v1::WriteResponse> w;
  ASSERT_TRUE(testing::PollUntil(
                  [&] {
                    w = Write(ClaimBatch("acme", IdOnShard(0, 2)));
                    return w.ok();
                  },
                  absl::Seconds(10), "a write on shard 0")
                  .ok())
      << w.status();
  const v1::Placement after = Placement();
  EXPECT_EQ(after.shards(0).epoch(), before.shards(0).epoch() + 1) << "exactly one failover";
  EXPECT_GT(after.version(), before.version());
  ExpectAllReadable({IdOnShard(0, 0), IdOnShard(0, 2)});
}

// A leader replaced by an empty disk faster than the failure timeout must not
// come back as the leader of data it no longer has.
TEST_F(ClusterOpsTest, ALeaderRestartedOnAnEmptyDiskDoesNotLeadAgain) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  std::vector<std::string> ids;
  for (int n = 0; n < 10; ++n) {
    ids.push_back(IdOnShard(0, n));
    ASSERT_TRUE(Write(ClaimBatch("acme", ids.back())).ok());
  }
  const v1::Placement before = Placement();
  const std::string victim = testing::LocalCluster::LeaderOf(before, 0);
  ASSERT_TRUE(cluster_->RestartNode(victim, /*wipe=*/true).ok());
  ASSERT_TRUE(cluster_->WaitUntilAdopted(absl::Seconds(10)).ok());
  const v1::Placement after = Placement();
  EXPECT_NE(testing::LocalCluster::LeaderOf(after, 0), victim);
  EXPECT_EQ(after.shards(0).epoch(), before.shards(0).epoch() + 1);
  ExpectAllReadable(ids);
  // The replaced node catches up as a follower and holds the same state.
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::FullyReplicated, absl::Seconds(20),
                                     "the replaced node to catch up")
                  .ok());
  testing::CommandResult verify =
      testing::RunCommand(testing::BinaryPath("dashctl/dashctl"),
                          {"--controlplane=" + cluster_->controlplane().address(), "verify"}, "",
                          dir_.Sub("verify.err"));
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
}

TEST_F(ClusterOpsTest, LeaderAndFollowerLostTogetherWaitForAnOperatorsPromote) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  std::vector<std::string> ids;
  for (int n = 0; n < 5; ++n) {
    ids.push_back(IdOnShard(0, n));
    ASSERT_TRUE(Write(ClaimBatch("acme", ids.back())).ok());
  }
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(testing::LocalCluster::FullyReplicated, absl::Seconds(10),
                                     "followers to catch up")
                  .ok());
  const v1::Placement before = Placement();
  const std::string leader = testing::LocalCluster::LeaderOf(before, 0);
  std::vector<std::string> followers;
  for (const auto& r : before.shards(0).replicas()) {
    if (r.node_id() != leader) followers.push_back(r.node_id());
  }
  ASSERT_EQ(followers.size(), 2u);
  // The follower dies first (and is known dead), then the leader: when the
  // leader's death is noticed only one replica of three is reachable. (Killed
  // at once, whichever silence the control plane notices first decides, and a
  // promotion to the other may happen while it still looks alive.)
  auto unhealthy = [&](int count) {
    return [count](const v1::Placement& p) {
      int n = 0;
      for (const auto& node : p.nodes()) n += node.health() == v1::NODE_HEALTH_UNHEALTHY;
      return n == count;
    };
  };
  cluster_->node(followers[0]).Kill();
  ASSERT_TRUE(
      cluster_->WaitForPlacement(unhealthy(1), absl::Seconds(10), "the follower's death").ok());
  cluster_->node(leader).Kill();
  ASSERT_TRUE(
      cluster_->WaitForPlacement(unhealthy(2), absl::Seconds(10), "the leader's death").ok());
  absl::SleepFor(absl::Milliseconds(300));
  // One of three replicas cannot know every acknowledged write: no automatic
  // promotion, and writes fail closed.
  const v1::Placement stuck = Placement();
  EXPECT_EQ(testing::LocalCluster::LeaderOf(stuck, 0), leader);
  EXPECT_EQ(stuck.shards(0).epoch(), before.shards(0).epoch());
  auto w = Write(ClaimBatch("acme", IdOnShard(0, 100)));
  EXPECT_TRUE(absl::IsUnavailable(w.status())) << w.status();

  // The operator decides. One replica of three cannot be fenced into a
  // majority, so a plain promote is refused (unavailable: the others did not
  // answer the fence)...
  const std::string dashctl = testing::BinaryPath("dashctl/dashctl");
  const std::string cp = "--controlplane=" + cluster_->controlplane().address();
  testing::CommandResult r = testing::RunCommand(
      dashctl, {cp, "promote", "--shard=0", "--node=" + followers[1]}, "", dir_.Sub("promote.err"));
  EXPECT_EQ(r.exit_code, 3) << r.out;
  // ...and the operator accepts that writes only the dead replicas held may be lost.
  r = testing::RunCommand(
      dashctl, {cp, "promote", "--shard=0", "--node=" + followers[1], "--accept-data-loss"}, "",
      dir_.Sub("promote.err"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  v1::Placement after = Placement();
  EXPECT_EQ(testing::LocalCluster::LeaderOf(after, 0), followers[1]);
  EXPECT_EQ(after.shards(0).epoch(), before.shards(0).epoch() + 1);
  // A majority of three is still two: the new leader cannot commit alone until
  // the operator also takes the dead replicas out of the shard.
  for (const std::string& dead : {leader, followers[0]}) {
    r = testing::RunCommand(dashctl, {cp, "replicas", "remove", "--shard=0", "--node=" + dead}, "",
                            dir_.Sub("remove.err"));
    EXPECT_EQ(r.exit_code, 0) << r.out;
  }
  ASSERT_TRUE(cluster_->WaitUntilAdopted(absl::Seconds(10)).ok());
  after = Placement();
  EXPECT_EQ(after.shards(0).replicas_size(), 1);
  absl::StatusOr<v1::WriteResponse> again;
  ASSERT_TRUE(testing::PollUntil(
                  [&] {
                    again = Write(ClaimBatch("acme", IdOnShard(0, 101)));
                    return again.ok();
                  },
                  absl::Seconds(10), "a write on shard 0")
                  .ok())
      << again.status();
  ExpectAllReadable(ids);
}

}  // namespace
}  // namespace dash
