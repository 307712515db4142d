// Tests of planner_tick.cc: health, in-sync flags, failover, moves and readiness.

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "controlplane/failover/internal/planner_test_util.h"
#include "controlplane/failover/planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace planner_testing;  // NOLINT: shared tables and reports

TEST(PlannerTest, TickFailsOverToHighestLsnFollower) {
  v1::Placement p = Cluster(3, 1, 3);  // Shard 0: leader n1.
  SetPosition(&p, 0, "n1", 1, 50);
  SetPosition(&p, 0, "n2", 1, 40);
  SetPosition(&p, 0, "n3", 1, 45);
  const ReportMap reports = ReportsFromTable(p);
  TickInput input = AllAlive(p, &reports);
  input.alive["n1"] = false;
  EXPECT_EQ(PlanTick(p, input).placement().shards(0).leader_node_id(), "n1")
      << "nothing fails over before it was fenced";
  EXPECT_THAT(ShardsToFailOver(PlanTick(p, input).placement(), reports), ElementsAre(0u));
  const FenceMap fences = FenceAll(p, reports);
  input.fences = &fences;
  v1::PlacementChange change = PlanTick(p, input);
  const v1::Placement& after = change.placement();
  EXPECT_EQ(after.version(), p.version() + 1);
  EXPECT_EQ(after.shards(0).leader_node_id(), "n3");
  EXPECT_EQ(after.shards(0).epoch(), 2u);
  EXPECT_THAT(change.shards_changed(), ElementsAre(0u));
  const v1::ReplicaEntry& old = after.shards(0).replicas(0);
  EXPECT_EQ(old.node_id(), "n1");
  EXPECT_EQ(old.role(), v1::REPLICA_ROLE_FOLLOWER);
  EXPECT_FALSE(old.in_sync());
  EXPECT_EQ(old.health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(after.nodes(0).health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_THAT(change.summary(),
              ::testing::Contains(HasSubstr("shard 0: leader n1 -> n3, epoch 1 -> 2")));

  // The next tick with the same inputs changes nothing (the fencing was for
  // epoch 2, now the shard's own).
  v1::PlacementChange again = PlanTick(after, input);
  EXPECT_EQ(again.placement().version(), after.version());
}

TEST(PlannerTest, TickLeaderAloneLostPromotesHigherLsnFollowerOverTheInSyncOne) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1 at 5000.
  SetPosition(&p, 0, "n1", 1, 5000);
  SetPosition(&p, 0, "n2", 1, 4500);
  SetPosition(&p, 0, "n3", 1, 4600);
  // Flags as an earlier tick left them: only n2 in sync (n3 was, say, once
  // ahead of a leader report).
  Replica(&p, 0, "n3")->set_in_sync(false);
  const ReportMap reports = ReportsFromTable(p);
  TickInput input = AllAlive(p, &reports);  // Nobody heard yet: flags kept.
  input.alive["n1"] = false;
  const FenceMap fences = FenceAll(p, reports);
  input.fences = &fences;
  v1::PlacementChange change = PlanTick(p, input);
  v1::Placement after = change.placement();
  EXPECT_EQ(after.shards(0).leader_node_id(), "n3")
      << "a lower-LSN in-sync follower is never preferred";
  EXPECT_EQ(after.shards(0).epoch(), 2u);
}

TEST(PlannerTest, TickLeaderAndFollowerLostTogetherKeepsTheLeader) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1; followers n2, n3, all in sync.
  SetPosition(&p, 0, "n1", 1, 135);
  SetPosition(&p, 0, "n2", 1, 135);
  SetPosition(&p, 0, "n3", 1, 120);
  const ReportMap reports = ReportsFromTable(p);
  TickInput input = AllAlive(p, &reports);
  input.alive["n1"] = false;
  input.alive["n2"] = false;
  v1::PlacementChange change = PlanTick(p, input);
  v1::Placement after = change.placement();
  EXPECT_EQ(after.shards(0).leader_node_id(), "n1") << "n3 alone may lack acknowledged writes";
  EXPECT_EQ(after.shards(0).epoch(), 1u);
  EXPECT_EQ(after.version(), p.version() + 1) << "health changed";
  EXPECT_TRUE(change.shards_changed().empty());
  absl::StatusOr<std::string> why = ChooseFailoverLeader(after, after.shards(0), reports);
  EXPECT_EQ(why.status().message(),
            absl::StrCat("shard 0: only 1 of 3 replicas reachable", kDataLossAdvice));

  v1::FailoverRequest failover;
  failover.set_shard(0);
  auto refused_failover = PlanFailover(after, reports, failover);
  EXPECT_EQ(refused_failover.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused_failover.status().message(), why.status().message());

  // The operator's way out: Promote, which names what the dead reported.
  v1::PromoteRequest promote;
  promote.set_shard(0);
  promote.set_node_id("n3");
  auto refused = PlanPromote(after, promote);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("would discard LSNs (120, 135] reported by n1"));
  promote.set_accept_data_loss(true);
  auto promoted = PlanPromote(after, promote);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->placement().shards(0).leader_node_id(), "n3");
  ASSERT_EQ(promoted->lost_size(), 1);
  EXPECT_EQ(promoted->lost(0).to_lsn(), 135u);
}

TEST(PlannerTest, TickFiveReplicasToleratesTwoLossesNotThree) {
  v1::Placement p = Cluster(5, 1, 5);  // Leader n1; followers n2..n5.
  SetPosition(&p, 0, "n1", 1, 100);
  SetPosition(&p, 0, "n2", 1, 100);
  SetPosition(&p, 0, "n3", 1, 99);
  SetPosition(&p, 0, "n4", 1, 98);
  SetPosition(&p, 0, "n5", 1, 97);
  const ReportMap reports = ReportsFromTable(p);
  TickInput input = AllAlive(p, &reports);
  input.alive["n1"] = false;
  input.alive["n2"] = false;
  const FenceMap fences = FenceAll(p, reports);  // Even if n2 answered: it is unhealthy.
  input.fences = &fences;
  v1::PlacementChange change = PlanTick(p, input);
  EXPECT_EQ(change.placement().shards(0).leader_node_id(), "n3")
      << "n3, n4, n5 meet every majority of 5";
  EXPECT_EQ(change.placement().shards(0).epoch(), 2u);

  input.alive["n3"] = false;
  change = PlanTick(p, input);
  EXPECT_EQ(change.placement().shards(0).leader_node_id(), "n1");
  EXPECT_EQ(change.placement().shards(0).epoch(), 1u);
  v1::Placement after = change.placement();
  EXPECT_EQ(ChooseFailoverLeader(after, after.shards(0), reports).status().message(),
            absl::StrCat("shard 0: only 2 of 5 replicas reachable", kDataLossAdvice));
}

TEST(PlannerTest, TickWithoutReportsKeepsTheLeader) {
  v1::Placement p = Cluster(3, 1, 3);
  TickInput input = AllAlive(p, nullptr);
  input.alive["n1"] = false;
  v1::PlacementChange change = PlanTick(p, input);
  EXPECT_EQ(change.placement().shards(0).leader_node_id(), "n1")
      << "nobody reported having adopted the epoch";
  EXPECT_EQ(change.placement().shards(0).epoch(), 1u);
  EXPECT_TRUE(change.shards_changed().empty());
}

TEST(PlannerTest, TickComputesInSync) {
  v1::Placement p = Cluster(4, 1, 4);  // Leader n1; followers n2, n3, n4.
  SetPosition(&p, 0, "n1", 1, 5000);
  ReportMap reports;
  reports[{0, "n2"}] = Report(0, 1, 4000);  // Lag 1000: in sync.
  reports[{0, "n3"}] = Report(0, 1, 3999);  // Lag 1001: out.
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3"};  // n4 not heard since start: keeps its flag.
  input.in_sync_max_lag_records = 1000;
  v1::Placement after = PlanTick(p, input).placement();
  EXPECT_TRUE(Replica(&after, 0, "n1")->in_sync());
  EXPECT_TRUE(Replica(&after, 0, "n2")->in_sync());
  EXPECT_FALSE(Replica(&after, 0, "n3")->in_sync());
  EXPECT_TRUE(Replica(&after, 0, "n4")->in_sync());

  reports[{0, "n2"}].set_epoch(0);  // Has not adopted epoch 1.
  input.heard.insert("n4");         // Heard, but reported nothing for shard 0.
  v1::PlacementChange change = PlanTick(p, input);
  after = change.placement();
  EXPECT_FALSE(Replica(&after, 0, "n2")->in_sync());
  EXPECT_FALSE(Replica(&after, 0, "n4")->in_sync());
  EXPECT_EQ(after.shards(0).epoch(), 1u) << "in-sync flags are not routing changes";
  EXPECT_THAT(change.summary(),
              ::testing::IsSupersetOf({HasSubstr("n2 out of sync: epoch 1 not yet adopted (at 0)"),
                                       HasSubstr("n3 out of sync: lag 1001 > 1000"),
                                       HasSubstr("n4 out of sync: no report for the shard")}));
}

TEST(PlannerTest, TickFlagsFollowersWhoseLogDivergedFromTheLeaders) {
  v1::Placement p = Cluster(4, 1, 4);  // Leader n1 at (2, 500); followers n2, n3, n4.
  Shard(&p, 0)->set_epoch(2);
  SetPosition(&p, 0, "n1", 2, 500);
  ReportMap reports;
  reports[{0, "n2"}] = Report(0, 2, 501);  // Ahead of the leader.
  reports[{0, "n3"}] = Report(0, 2, 500);  // Same position, other last epoch.
  reports[{0, "n3"}].set_last_epoch(1);
  reports[{0, "n4"}] = Report(0, 2, 500);  // Reported diverged.
  reports[{0, "n4"}].set_diverged(true);
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3", "n4"};
  v1::PlacementChange change = PlanTick(p, input);
  v1::Placement after = change.placement();
  for (const char* n : {"n2", "n3", "n4"}) EXPECT_FALSE(Replica(&after, 0, n)->in_sync()) << n;
  EXPECT_THAT(change.summary(),
              ::testing::IsSupersetOf({HasSubstr("n2 out of sync: ahead of the leader: diverged"),
                                       HasSubstr("n3 out of sync: last epoch 1 at the leader's "
                                                 "LSN, leader's 2: diverged"),
                                       HasSubstr("n4 out of sync: diverged")}));

  // With the arrival order known, a follower ahead of an older leader report
  // keeps its flag (the leader may not have reported its newer records yet);
  // against a newer leader report it is out of sync.
  ReportOrder order = {{{0, "n1"}, 1}, {{0, "n2"}, 2}};
  input.report_order = &order;
  after = PlanTick(p, input).placement();
  EXPECT_TRUE(Replica(&after, 0, "n2")->in_sync());
  order[{0, "n1"}] = 3;
  after = PlanTick(p, input).placement();
  EXPECT_FALSE(Replica(&after, 0, "n2")->in_sync());

  // Unhealthy: out of sync, saying so.
  input.alive["n2"] = false;
  change = PlanTick(p, input);
  EXPECT_THAT(change.summary(), ::testing::Contains(HasSubstr("n2 out of sync: node unhealthy")));
}

TEST(PlannerTest, DeterministicTickAndPromote) {
  v1::Placement p = Cluster(5, 6, 3);
  for (auto& shard : *p.mutable_shards()) {
    uint64_t lsn = 10;
    for (auto& r : *shard.mutable_replicas()) {
      r.set_last_epoch(1);
      r.set_last_lsn(lsn);
      lsn = (lsn * 7) % 13 + 10;
    }
  }
  const ReportMap reports = ReportsFromTable(p);
  TickInput input = AllAlive(p, &reports);
  input.alive["n2"] = false;
  const FenceMap fences = FenceAll(p, reports);
  input.fences = &fences;
  const std::string first = Deterministic(PlanTick(p, input));
  EXPECT_FALSE(PlanTick(p, input).shards_changed().empty()) << "something fails over";
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(Deterministic(PlanTick(p, input)), first) << "run " << i;
  }
  // The same table with replicas and nodes listed in other orders.
  std::mt19937 rng(42);
  for (int i = 0; i < 20; ++i) {
    v1::Placement shuffled = p;
    for (auto& shard : *shuffled.mutable_shards()) {
      std::shuffle(shard.mutable_replicas()->begin(), shard.mutable_replicas()->end(), rng);
    }
    std::shuffle(shuffled.mutable_nodes()->begin(), shuffled.mutable_nodes()->end(), rng);
    ASSERT_EQ(Deterministic(PlanTick(shuffled, input)), first) << "shuffle " << i;
  }
}

TEST(PlannerTest, AFencingThatPromotedNobodyIsRepairedWhileTheLeaderIsHealthy) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1 at epoch 1.
  ReportMap reports = ReportsFromTable(p);
  reports[{0, "n2"}].set_epoch(2);  // Fenced at 2; nobody was promoted.
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3"};
  input.fencing = {0};  // Still being fenced: not yet.
  EXPECT_EQ(PlanTick(p, input).placement().shards(0).epoch(), 1u);
  input.fencing.clear();
  v1::PlacementChange repaired = PlanTick(p, input);
  EXPECT_EQ(repaired.placement().shards(0).epoch(), 2u);
  EXPECT_EQ(repaired.placement().shards(0).leader_node_id(), "n1");
  EXPECT_THAT(repaired.shards_changed(), ElementsAre(0u));
  EXPECT_THAT(repaired.summary(),
              ::testing::Contains("shard 0: epoch 1 -> 2, leader n1 kept (n2 fenced by a failover "
                                  "that promoted nobody)"));
  // With the leader unhealthy it is failover's business; the fenced replica
  // still counts for it.
  input.alive["n1"] = false;
  v1::PlacementChange unhealthy = PlanTick(p, input);
  EXPECT_EQ(unhealthy.placement().shards(0).epoch(), 1u);
  EXPECT_THAT(ShardsToFailOver(unhealthy.placement(), reports), ElementsAre(0u));
  // Meanwhile the fenced follower is out of sync, saying why.
  v1::Placement out = unhealthy.placement();
  EXPECT_FALSE(Replica(&out, 0, "n2")->in_sync());
  EXPECT_THAT(unhealthy.summary(),
              ::testing::Contains(HasSubstr("n2 out of sync: fenced at epoch 2, above the "
                                            "shard's 1")));
}

TEST(PlannerTest, ALeaderIsReadyOnlyOnceItReportsLeadingAtTheShardsEpoch) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1 at epoch 1.
  ASSERT_EQ(Shard(&p, 0)->leader_node_id(), "n1");
  EXPECT_NE(Shard(&p, 0)->leader_ready_epoch(), Shard(&p, 0)->epoch()) << "created, not ready";
  ReportMap reports;
  for (const char* n : {"n1", "n2", "n3"}) reports[{0, n}] = Report(0, 1, 0);
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3"};

  // n1 has the replica open but still acts as a follower: not ready.
  v1::Placement after = PlanTick(p, input).placement();
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), 0u);
  // A follower reporting the leader role proves nothing about the leader.
  reports[{0, "n2"}].set_role(v1::REPLICA_ROLE_LEADER);
  after = PlanTick(p, input).placement();
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), 0u);
  // The leader leading at an older epoch: not ready at this one.
  reports[{0, "n2"}].set_role(v1::REPLICA_ROLE_FOLLOWER);
  reports[{0, "n1"}] = Report(0, 0, 0);
  reports[{0, "n1"}].set_role(v1::REPLICA_ROLE_LEADER);
  after = PlanTick(p, input).placement();
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), 0u);

  // The leader leads at the shard's epoch: ready, published as a new version.
  reports[{0, "n1"}] = Report(0, 1, 1);
  reports[{0, "n1"}].set_role(v1::REPLICA_ROLE_LEADER);
  v1::PlacementChange change = PlanTick(p, input);
  after = change.placement();
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), 1u);
  EXPECT_EQ(after.version(), p.version() + 1);
  EXPECT_THAT(change.summary(),
              ::testing::Contains(HasSubstr("leader n1 takes writes at epoch 1")));
  EXPECT_EQ(PlanTick(after, input).placement().version(), after.version()) << "once";

  // Restarted, the leader reports no shard while it reopens: not ready, once
  // heard since this control plane started; a control plane that has not
  // heard it yet keeps the stored flag.
  const v1::ReplicaReport leading = reports[{0, "n1"}];
  reports.erase({0, "n1"});
  TickInput unheard = input;
  unheard.heard = {"n2", "n3"};
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), 1u);
  v1::Placement kept = PlanTick(after, unheard).placement();
  EXPECT_EQ(Shard(&kept, 0)->leader_ready_epoch(), 1u);
  change = PlanTick(after, input);
  v1::Placement reopening = change.placement();
  EXPECT_EQ(Shard(&reopening, 0)->leader_ready_epoch(), 0u);
  EXPECT_THAT(change.summary(),
              ::testing::Contains(HasSubstr("n1 no longer reports leading at epoch 1")));
  reports[{0, "n1"}] = leading;

  // A failover moves the epoch: the new leader is not ready until it reports.
  reports[{0, "n2"}] = Report(0, 1, 1);
  reports[{0, "n3"}] = Report(0, 1, 1);
  v1::FailoverRequest failover;
  failover.set_shard(0);
  absl::StatusOr<v1::PlacementChange> moved = PlanFailover(after, reports, failover);
  ASSERT_TRUE(moved.ok()) << moved.status();
  v1::Placement failed_over = moved->placement();
  const v1::ShardEntry& entry = *Shard(&failed_over, 0);
  EXPECT_NE(entry.leader_ready_epoch(), entry.epoch());
  const std::string next = entry.leader_node_id();
  reports[{0, next}] = Report(0, entry.epoch(), 1);
  reports[{0, next}].set_role(v1::REPLICA_ROLE_LEADER);
  after = PlanTick(failed_over, input).placement();
  EXPECT_EQ(Shard(&after, 0)->leader_ready_epoch(), entry.epoch());
}

TEST(PlannerTest, InSyncFollowsTheLeadersVerdictWhenItReportsFollowers) {
  v1::Placement p = Cluster(4, 1, 4);       // Leader n1; followers n2, n3, n4.
  Shard(&p, 0)->set_leader_ready_epoch(1);  // Settled: n1 already reported leading.
  SetPosition(&p, 0, "n1", 1, 5000);
  ReportMap reports;
  reports[{0, "n1"}] = Report(0, 1, 5000);
  reports[{0, "n1"}].set_role(v1::REPLICA_ROLE_LEADER);
  reports[{0, "n2"}] = Report(0, 1, 4990);
  reports[{0, "n3"}] = Report(0, 1, 4999);
  reports[{0, "n4"}] = Report(0, 1, 5000);
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3", "n4"};
  // Without followers in the leader's report (an older node): the LSN rule,
  // by which all three are in sync.
  v1::Placement after = PlanTick(p, input).placement();
  EXPECT_EQ(after.version(), p.version());
  for (const char* n : {"n2", "n3", "n4"}) EXPECT_TRUE(Replica(&after, 0, n)->in_sync()) << n;

  // The leader's own bounds: n2 in sync, n3 lagging by its measure (records
  // or seconds), n4 not among its followers.
  *reports[{0, "n1"}].add_followers() = Lag("n2", 10, true);
  *reports[{0, "n1"}].add_followers() = Lag("n3", 1, false);
  v1::PlacementChange change = PlanTick(p, input);
  after = change.placement();
  EXPECT_EQ(after.version(), p.version() + 1) << "in-sync flips are published";
  EXPECT_TRUE(Replica(&after, 0, "n2")->in_sync());
  EXPECT_FALSE(Replica(&after, 0, "n3")->in_sync());
  EXPECT_FALSE(Replica(&after, 0, "n4")->in_sync());
  EXPECT_THAT(change.summary(),
              ::testing::IsSupersetOf(
                  {HasSubstr("n3 out of sync: leader n1 reports lag 1 records, 100 bytes, 0.1 s"),
                   HasSubstr("n4 out of sync: not among leader n1's followers")}));

  // The leader's verdict does not override the other conditions.
  reports[{0, "n2"}].set_diverged(true);
  v1::Placement diverged = PlanTick(after, input).placement();
  EXPECT_FALSE(Replica(&diverged, 0, "n2")->in_sync());
  reports[{0, "n2"}].set_diverged(false);

  // Lag numbers changing alone publish nothing; a flip does.
  for (auto& lag : *reports[{0, "n1"}].mutable_followers()) {
    lag.set_lag_records(lag.lag_records() + 7);
    lag.set_lag_seconds(lag.lag_seconds() + 1.5);
  }
  EXPECT_EQ(PlanTick(after, input).placement().version(), after.version());
  reports[{0, "n1"}].mutable_followers(1)->set_in_sync(true);
  v1::Placement flipped = PlanTick(after, input).placement();
  EXPECT_EQ(flipped.version(), after.version() + 1);
  EXPECT_TRUE(Replica(&flipped, 0, "n3")->in_sync());
}

// Under writes a follower's heartbeat often lands after its leader's and
// reports records the leader's older report does not show yet. That must not
// keep a follower that caught up out of the in-sync set: the leader's verdict
// (from the follower's acknowledgements) decides. Before, the stored flag was
// kept, so a follower could stay out for as long as its heartbeats followed
// its leader's.
TEST(PlannerTest, ACaughtUpFollowerRejoinsWhileItsReportsRunAheadOfTheLeaders) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1; followers n2, n3.
  SetPosition(&p, 0, "n1", 1, 500);
  Replica(&p, 0, "n2")->set_in_sync(false);  // It was cut off, and caught up since.
  ReportMap reports;
  reports[{0, "n1"}] = Report(0, 1, 500);
  reports[{0, "n1"}].set_role(v1::REPLICA_ROLE_LEADER);
  *reports[{0, "n1"}].add_followers() = Lag("n2", 0, true);
  *reports[{0, "n1"}].add_followers() = Lag("n3", 0, true);
  reports[{0, "n2"}] = Report(0, 1, 503);  // Newer than the leader's report.
  reports[{0, "n3"}] = Report(0, 1, 503);
  ReportOrder order = {{{0, "n1"}, 1}, {{0, "n2"}, 2}, {{0, "n3"}, 3}};
  TickInput input = AllAlive(p, &reports);
  input.heard = {"n1", "n2", "n3"};
  input.report_order = &order;
  v1::Placement after = PlanTick(p, input).placement();
  EXPECT_TRUE(Replica(&after, 0, "n2")->in_sync()) << "the leader says it keeps up";
  EXPECT_TRUE(Replica(&after, 0, "n3")->in_sync());
  // And the leader's verdict still takes one out.
  reports[{0, "n1"}].mutable_followers(1)->set_in_sync(false);
  after = PlanTick(after, input).placement();
  EXPECT_FALSE(Replica(&after, 0, "n3")->in_sync());
}

}  // namespace
}  // namespace dash::controlplane
