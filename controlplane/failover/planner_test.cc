#include "controlplane/failover/planner.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/failover/internal/planner_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace planner_testing;  // NOLINT: shared tables and reports

TEST(PlannerTest, NotCreatedUntilReplicationFactorNodes) {
  v1::Placement p = Cluster(2);
  EXPECT_FALSE(p.created());
  EXPECT_EQ(p.shards_size(), 0);
  EXPECT_EQ(p.version(), 3u);  // 1 + two registrations.
  v1::FailoverRequest failover;
  EXPECT_EQ(PlanFailover(p, {}, failover).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PlannerTest, CreationLayout) {
  // Four healthy nodes (registered in a scrambled order) before creation.
  v1::Placement uncreated = NewPlacement(/*shard_count=*/5, /*replication_factor=*/3);
  for (const char* id : {"n3", "n1", "n4", "n2"}) {
    v1::NodeEntry* node = uncreated.add_nodes();
    node->set_node_id(id);
    node->set_address("a:1");
    node->set_health(v1::NODE_HEALTH_HEALTHY);
  }
  v1::PlacementChange change = PlanCreation(uncreated);
  v1::Placement p = change.placement();
  ASSERT_TRUE(p.created());
  EXPECT_EQ(p.version(), 2u);
  EXPECT_THAT(change.shards_changed(), ElementsAre(0u, 1u, 2u, 3u, 4u));
  const std::vector<std::string> nodes = {"n1", "n2", "n3", "n4"};
  ASSERT_EQ(p.shards_size(), 5);
  for (uint32_t s = 0; s < 5; ++s) {
    const v1::ShardEntry& shard = p.shards(s);
    EXPECT_EQ(shard.shard(), s);
    EXPECT_EQ(shard.epoch(), 1u);
    EXPECT_EQ(shard.leader_node_id(), nodes[s % 4]);
    std::vector<std::string> want;
    for (int i = 0; i < 3; ++i) want.push_back(nodes[(s + i) % 4]);
    std::sort(want.begin(), want.end());
    ASSERT_EQ(shard.replicas_size(), 3);
    for (int i = 0; i < 3; ++i) {
      const v1::ReplicaEntry& r = shard.replicas(i);
      EXPECT_EQ(r.node_id(), want[i]) << "replicas ordered by node id";
      EXPECT_TRUE(r.in_sync());
      EXPECT_EQ(r.role(),
                r.node_id() == nodes[s % 4] ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
    }
  }
}

TEST(PlannerTest, CreationSkipsUnhealthyAndDrainingNodes) {
  v1::Placement p = Cluster(3);
  ASSERT_TRUE(p.created());
  v1::Placement uncreated = NewPlacement(2, 3);
  *uncreated.mutable_nodes() = p.nodes();
  uncreated.mutable_nodes(0)->set_draining(true);
  EXPECT_FALSE(PlanCreation(uncreated).placement().created());
  uncreated.mutable_nodes(0)->set_draining(false);
  uncreated.mutable_nodes(1)->set_health(v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_FALSE(PlanCreation(uncreated).placement().created());
  uncreated.mutable_nodes(1)->set_health(v1::NODE_HEALTH_HEALTHY);
  EXPECT_TRUE(PlanCreation(uncreated).placement().created());
}

TEST(PlannerTest, RegisterValidatesNodeIdAndAddress) {
  v1::Placement p = NewPlacement(4, 3);
  v1::RegisterNodeRequest request;
  request.set_address("a:1");
  EXPECT_THAT(std::string(PlanRegister(p, request).status().message()), StartsWith("node_id"));
  request.set_node_id("bad/id");
  EXPECT_EQ(PlanRegister(p, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_node_id(std::string(65, 'a'));
  EXPECT_EQ(PlanRegister(p, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_node_id("ok-id_1.x");
  request.clear_address();
  EXPECT_THAT(std::string(PlanRegister(p, request).status().message()), StartsWith("address"));
}

TEST(PlannerTest, ReRegisterSameAddressChangesNothing) {
  v1::Placement p = Cluster(3);
  v1::RegisterNodeRequest request;
  request.set_node_id("n2");
  request.set_address("127.0.0.1:7102");
  auto same = PlanRegister(p, request);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->placement().version(), p.version());
  request.set_address("127.0.0.1:9999");
  auto moved = PlanRegister(p, request);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->placement().version(), p.version() + 1);
  EXPECT_EQ(moved->placement().shards(0).epoch(), 1u) << "an address is not a routing change";
}

TEST(PlannerTest, FailoverChoosesHighestEpochThenLsn) {
  v1::Placement p = Cluster(4, 1, 4);  // Shard 0: leader n1, followers n2..n4.
  SetPosition(&p, 0, "n2", 1, 90);
  SetPosition(&p, 0, "n3", 2, 10);
  SetPosition(&p, 0, "n4", 2, 12);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), ReportsFromTable(p)).value_or(""), "n4");
  SetPosition(&p, 0, "n3", 3, 1);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), ReportsFromTable(p)).value_or(""), "n3");
}

TEST(PlannerTest, FailoverTiePrefersNonDrainingThenSmallestNodeIdWhateverTheOrder) {
  v1::Placement p = Cluster(4, 1, 4);
  for (const char* n : {"n2", "n3", "n4"}) SetPosition(&p, 0, n, 1, 50);
  const ReportMap reports = ReportsFromTable(p);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n2");
  auto* replicas = Shard(&p, 0)->mutable_replicas();
  std::reverse(replicas->begin(), replicas->end());
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n2");
  SetDraining(&p, "n2");
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n3")
      << "among equal maxima a non-draining node";
  SetPosition(&p, 0, "n2", 1, 51);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), ReportsFromTable(p)).value_or(""), "n2")
      << "the only replica known to hold everything leads, draining or not";
}

TEST(PlannerTest, FailoverIgnoresInSyncFlagsAndUsesReportedPositions) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1; followers n2, n3.
  SetPosition(&p, 0, "n2", 1, 40);
  SetPosition(&p, 0, "n3", 1, 45);
  Replica(&p, 0, "n3")->set_in_sync(false);
  ReportMap reports = ReportsFromTable(p);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n3")
      << "the maximum of an intersecting set, in sync or not";
  reports[{0, "n2"}].set_last_lsn(46);  // The reports are what counts.
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n2");
}

TEST(PlannerTest, FailoverElectorateExcludesUnhealthyDivergedStaleEpochAndUnreported) {
  v1::Placement p = Cluster(5, 1, 5);  // Leader n1; followers n2..n5; needs 3 of them.
  SetPosition(&p, 0, "n2", 1, 100);
  SetPosition(&p, 0, "n3", 1, 90);
  SetPosition(&p, 0, "n4", 1, 80);
  SetPosition(&p, 0, "n5", 1, 70);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  ReportMap reports = ReportsFromTable(p);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n2");

  SetHealth(&p, "n2", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n3");
  reports[{0, "n3"}].set_diverged(true);
  reports[{0, "n4"}].set_epoch(0);  // Has not adopted epoch 1.
  reports.erase({0, "n5"});
  absl::StatusOr<std::string> refused = ChooseFailoverLeader(p, p.shards(0), reports);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("shard 0: only 0 of 5 replicas reachable (not counted: n3: diverged, "
                         "n4: epoch 1 not yet adopted (at 0), n5: no report)",
                         kDataLossAdvice));
  reports[{0, "n4"}].set_epoch(1);
  reports[{0, "n5"}] = Report(0, 1, 70);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "n4 and n5 do not intersect every majority of 5";
  reports[{0, "n3"}].set_diverged(false);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n3");
}

TEST(PlannerTest, TransferTargetSkipsUnhealthyDivergedOutOfSyncAndDraining) {
  v1::Placement base = Cluster(5, 1, 5);  // Leader n1; followers n2..n5.
  SetPosition(&base, 0, "n2", 1, 100);
  SetPosition(&base, 0, "n3", 1, 90);
  SetPosition(&base, 0, "n4", 1, 80);
  SetPosition(&base, 0, "n5", 1, 70);
  EXPECT_EQ(ChooseTransferTarget(base, base.shards(0), {}), "n2");

  v1::Placement p = base;
  SetHealth(&p, "n2", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(ChooseTransferTarget(p, p.shards(0), {}), "n3");

  ReportMap reports;
  reports[{0, "n3"}] = Report(0, 1, 90);
  reports[{0, "n3"}].set_diverged(true);
  EXPECT_EQ(ChooseTransferTarget(p, p.shards(0), reports), "n4");

  Replica(&p, 0, "n4")->set_in_sync(false);
  EXPECT_EQ(ChooseTransferTarget(p, p.shards(0), reports), "n5");

  SetDraining(&p, "n5");
  EXPECT_EQ(ChooseTransferTarget(p, p.shards(0), reports), std::nullopt);
}

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

TEST(PlannerTest, PromoteRefusesToDiscardReportedLsns) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1.
  SetPosition(&p, 0, "n1", 1, 135);
  SetPosition(&p, 0, "n2", 1, 120);
  SetPosition(&p, 0, "n3", 1, 130);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  v1::PromoteRequest request;
  request.set_shard(0);
  request.set_node_id("n2");
  auto refused = PlanPromote(p, request);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "promoting n2 would discard LSNs (120, 135] reported by n1; pass accept_data_loss "
            "to promote anyway");

  request.set_accept_data_loss(true);
  auto promoted = PlanPromote(p, request);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->lost_size(), 1);
  EXPECT_EQ(promoted->lost(0).shard(), 0u);
  EXPECT_EQ(promoted->lost(0).from_lsn(), 120u);
  EXPECT_EQ(promoted->lost(0).to_lsn(), 135u);
  EXPECT_EQ(promoted->lost(0).reported_by(), "n1");
  v1::Placement after = promoted->placement();
  EXPECT_EQ(after.shards(0).leader_node_id(), "n2");
  EXPECT_EQ(after.shards(0).epoch(), 2u);
  EXPECT_EQ(Replica(&after, 0, "n2")->role(), v1::REPLICA_ROLE_LEADER);
  EXPECT_EQ(Replica(&after, 0, "n1")->role(), v1::REPLICA_ROLE_FOLLOWER);
  EXPECT_FALSE(Replica(&after, 0, "n1")->in_sync());
  EXPECT_FALSE(Replica(&after, 0, "n3")->in_sync());
  EXPECT_THAT(promoted->shards_changed(), ElementsAre(0u));
}

TEST(PlannerTest, PromoteCaughtUpReplicaLosesNothing) {
  v1::Placement p = Cluster(3, 1, 3);
  SetPosition(&p, 0, "n1", 1, 100);
  SetPosition(&p, 0, "n3", 1, 100);
  v1::PromoteRequest request;
  request.set_shard(0);
  request.set_node_id("n3");
  auto promoted = PlanPromote(p, request);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->lost_size(), 0);
  EXPECT_EQ(promoted->placement().shards(0).leader_node_id(), "n3");
  EXPECT_THAT(promoted->summary(), ElementsAre("shard 0: leader n1 -> n3, epoch 1 -> 2 (promote)"));
}

TEST(PlannerTest, PromoteCurrentLeaderIsANoOp) {
  v1::Placement p = Cluster(3, 1, 3);
  v1::PromoteRequest request;
  request.set_shard(0);
  request.set_node_id("n1");
  auto change = PlanPromote(p, request);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(Deterministic(change->placement()), Deterministic(p));
  EXPECT_TRUE(change->shards_changed().empty());
  EXPECT_THAT(change->summary(), ElementsAre(HasSubstr("already leader")));
}

TEST(PlannerTest, PromoteChecks) {
  v1::Placement p = Cluster(4, 1, 3);  // Shard 0 on n1, n2, n3.
  v1::PromoteRequest request;
  request.set_shard(0);
  request.set_node_id("n4");
  EXPECT_EQ(PlanPromote(p, request).status().code(), absl::StatusCode::kNotFound)
      << "registered, but not a replica of shard 0";
  request.set_node_id("n9");
  EXPECT_EQ(PlanPromote(p, request).status().code(), absl::StatusCode::kNotFound);
  request.set_node_id("n2");
  request.set_shard(4);
  EXPECT_THAT(std::string(PlanPromote(p, request).status().message()), StartsWith("shard: "));
  request.set_shard(0);
  request.set_expected_epoch(7);
  auto stale = PlanPromote(p, request);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(stale.status().message(), "expected_epoch: shard 0 is at epoch 1");
  request.set_expected_epoch(1);
  SetHealth(&p, "n2", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(PlanPromote(p, request).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PlannerTest, EpochBumpsOnlyOnLeaderOrReplicaChanges) {
  v1::Placement p = Cluster(4, 2, 3);
  const uint64_t v = p.version();

  // Health change: version, not epoch.
  TickInput input = AllAlive(p, nullptr);
  input.alive["n4"] = false;
  v1::Placement after = PlanTick(p, input).placement();
  EXPECT_EQ(after.version(), v + 1);
  EXPECT_EQ(after.shards(0).epoch(), 1u);
  EXPECT_EQ(after.shards(1).epoch(), 1u);

  // Draining: version, not epoch.
  v1::DrainNodeRequest drain;
  drain.set_node_id("n3");
  auto drained = PlanDrainMark(p, drain);
  ASSERT_TRUE(drained.ok());
  EXPECT_EQ(drained->placement().version(), v + 1);
  EXPECT_TRUE(drained->shards_changed().empty());
  for (const auto& s : drained->placement().shards()) EXPECT_EQ(s.epoch(), 1u);

  // Transfer start: version, not epoch; finish: epoch.
  v1::TransferLeaderRequest transfer;
  transfer.set_shard(0);
  transfer.set_node_id("n2");
  auto started = PlanTransferStart(p, transfer);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->placement().shards(0).epoch(), 1u);
  EXPECT_EQ(started->placement().shards(0).transfer_to(), "n2");
  EXPECT_EQ(started->placement().version(), v + 1);
  auto finished = PlanTransferFinish(started->placement(), 0, "n2");
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(finished->placement().shards(0).leader_node_id(), "n2");
  EXPECT_EQ(finished->placement().shards(0).transfer_to(), "");
  EXPECT_EQ(finished->placement().version(), v + 2);
  v1::Placement fp = finished->placement();
  EXPECT_TRUE(Replica(&fp, 0, "n1")->in_sync());

  // Add replica: epoch.
  v1::AddReplicaRequest add;
  add.set_shard(0);
  add.set_node_id("n4");
  auto added = PlanAddReplica(p, add);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(added->placement().shards(1).epoch(), 1u);
  EXPECT_THAT(added->shards_changed(), ElementsAre(0u));
}

TEST(PlannerTest, TransferStartChecks) {
  v1::Placement p = Cluster(4, 1, 3);  // Shard 0 on n1, n2, n3.
  v1::TransferLeaderRequest transfer;
  transfer.set_shard(0);
  transfer.set_node_id("n4");
  EXPECT_EQ(PlanTransferStart(p, transfer).status().code(), absl::StatusCode::kNotFound);
  transfer.set_node_id("n2");
  auto started = PlanTransferStart(p, transfer);
  ASSERT_TRUE(started.ok());
  transfer.set_node_id("n3");
  EXPECT_EQ(PlanTransferStart(started->placement(), transfer).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "one transfer per shard at a time";
  v1::PlacementChange abandoned = PlanTransferAbandon(started->placement(), 0);
  EXPECT_EQ(abandoned.placement().shards(0).transfer_to(), "");
  EXPECT_EQ(abandoned.placement().version(), started->placement().version() + 1);
  EXPECT_EQ(PlanTransferFinish(abandoned.placement(), 0, "n2").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PlannerTest, RemoveLeaderRefused) {
  v1::Placement p = Cluster(3, 1, 3);
  v1::RemoveReplicaRequest remove;
  remove.set_shard(0);
  remove.set_node_id("n1");
  auto refused = PlanRemoveReplica(p, remove);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("transfer leadership first"));

  remove.set_node_id("n3");
  auto removed = PlanRemoveReplica(p, remove);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->placement().shards(0).replicas_size(), 2);
  EXPECT_EQ(removed->placement().shards(0).epoch(), 2u);
  remove.set_node_id("n2");
  auto last = PlanRemoveReplica(removed->placement(), remove);
  ASSERT_TRUE(last.ok()) << "removing the last follower is allowed";
  EXPECT_EQ(last->placement().shards(0).replicas_size(), 1);
  EXPECT_EQ(PlanRemoveReplica(last->placement(), remove).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(PlannerTest, AddDuplicateRefused) {
  v1::Placement p = Cluster(4, 1, 3);
  v1::AddReplicaRequest add;
  add.set_shard(0);
  add.set_node_id("n2");
  EXPECT_EQ(PlanAddReplica(p, add).status().code(), absl::StatusCode::kFailedPrecondition);
  add.set_node_id("n4");
  SetHealth(&p, "n4", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(PlanAddReplica(p, add).status().code(), absl::StatusCode::kFailedPrecondition);
  SetHealth(&p, "n4", v1::NODE_HEALTH_HEALTHY);
  auto added = PlanAddReplica(p, add);
  ASSERT_TRUE(added.ok());
  v1::Placement after = added->placement();
  ASSERT_NE(Replica(&after, 0, "n4"), nullptr);
  EXPECT_FALSE(Replica(&after, 0, "n4")->in_sync());
  EXPECT_EQ(Replica(&after, 0, "n4")->role(), v1::REPLICA_ROLE_FOLLOWER);
}

TEST(PlannerTest, MoveReplicaCompletesOnceTargetIsInSync) {
  v1::Placement p = Cluster(4, 1, 3);  // Shard 0: n1 (leader), n2, n3.
  v1::MoveReplicaRequest move;
  move.set_shard(0);
  move.set_from_node_id("n1");
  move.set_to_node_id("n4");
  auto leader = PlanMoveReplica(p, move);
  EXPECT_EQ(leader.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(leader.status().message()), HasSubstr("transfer leadership first"));
  move.set_from_node_id("n3");
  auto moved = PlanMoveReplica(p, move);
  ASSERT_TRUE(moved.ok()) << moved.status();
  v1::Placement after = moved->placement();
  EXPECT_EQ(after.shards(0).moving_from(), "n3");
  EXPECT_EQ(after.shards(0).moving_to(), "n4");
  EXPECT_EQ(after.shards(0).epoch(), 2u);
  EXPECT_EQ(after.shards(0).replicas_size(), 4);
  EXPECT_EQ(PlanMoveReplica(after, move).status().code(), absl::StatusCode::kFailedPrecondition);

  ReportMap reports;
  reports[{0, "n3"}] = Report(0, 2, 0);
  TickInput input = AllAlive(after, &reports);
  input.heard = {"n1", "n2", "n3", "n4"};
  // n4 has not reported yet: out of sync, the move waits.
  v1::Placement waiting = PlanTick(after, input).placement();
  EXPECT_EQ(waiting.shards(0).replicas_size(), 4);
  EXPECT_EQ(waiting.shards(0).epoch(), 2u);
  EXPECT_EQ(waiting.shards(0).moving_to(), "n4");

  // n4 in sync: done, whatever the other follower (n2 reported nothing).
  reports[{0, "n4"}] = Report(0, 2, 0);
  v1::PlacementChange done = PlanTick(waiting, input);
  EXPECT_FALSE(Replica(done.mutable_placement(), 0, "n2")->in_sync());
  EXPECT_EQ(done.placement().shards(0).moving_from(), "");
  EXPECT_EQ(done.placement().shards(0).moving_to(), "");
  EXPECT_EQ(done.placement().shards(0).epoch(), 3u);
  ASSERT_EQ(done.placement().shards(0).replicas_size(), 3);
  EXPECT_EQ(done.placement().shards(0).replicas(2).node_id(), "n4");
  EXPECT_THAT(done.shards_changed(), ElementsAre(0u));
}

TEST(PlannerTest, MoveWithoutTargetInAnOlderTableWaitsForEveryFollower) {
  v1::Placement p = Cluster(4, 1, 3);
  v1::MoveReplicaRequest move;
  move.set_shard(0);
  move.set_from_node_id("n3");
  move.set_to_node_id("n4");
  v1::Placement after = PlanMoveReplica(p, move)->placement();
  Shard(&after, 0)->clear_moving_to();  // As stored before the field existed.
  ReportMap reports;
  reports[{0, "n4"}] = Report(0, 2, 0);
  TickInput input = AllAlive(after, &reports);
  input.heard = {"n1", "n2", "n3", "n4"};
  EXPECT_EQ(PlanTick(after, input).placement().shards(0).moving_from(), "n3") << "n2 not in sync";
  reports[{0, "n2"}] = Report(0, 2, 0);
  EXPECT_EQ(PlanTick(after, input).placement().shards(0).moving_from(), "");
}

TEST(PlannerTest, RemovingEitherEndOfAMoveEndsIt) {
  v1::Placement p = Cluster(4, 1, 3);
  v1::MoveReplicaRequest move;
  move.set_shard(0);
  move.set_from_node_id("n3");
  move.set_to_node_id("n4");
  v1::Placement moving = PlanMoveReplica(p, move)->placement();
  for (const char* end : {"n3", "n4"}) {
    v1::RemoveReplicaRequest remove;
    remove.set_shard(0);
    remove.set_node_id(end);
    auto removed = PlanRemoveReplica(moving, remove);
    ASSERT_TRUE(removed.ok()) << removed.status();
    EXPECT_EQ(removed->placement().shards(0).moving_from(), "") << end;
    EXPECT_EQ(removed->placement().shards(0).moving_to(), "") << end;
    EXPECT_THAT(removed->summary(), ElementsAre(HasSubstr("(ends the move n3 -> n4)")));
  }
}

TEST(PlannerTest, FailoverRequiresAnElectorateThatMeetsEveryMajority) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1 (healthy).
  SetPosition(&p, 0, "n2", 1, 10);
  SetPosition(&p, 0, "n3", 1, 12);
  for (auto* n : {"n2", "n3"}) Replica(&p, 0, n)->set_in_sync(false);  // Irrelevant.
  v1::FailoverRequest request;
  request.set_shard(0);
  ReportMap reports = ReportsFromTable(p);
  reports.erase({0, "n2"});
  auto refused = PlanFailover(p, reports, request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("shard 0: only 1 of 3 replicas reachable besides leader n1 (not "
                         "counted: n2: no report)",
                         kDataLossAdvice));
  auto done = PlanFailover(p, ReportsFromTable(p), request);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->placement().shards(0).leader_node_id(), "n3");
  EXPECT_EQ(done->placement().shards(0).epoch(), 2u);
  v1::Placement after = done->placement();
  EXPECT_FALSE(Replica(&after, 0, "n1")->in_sync());
}

// ---- Fencing ----

FenceOutcome Answered(uint64_t last_epoch, uint64_t last_lsn) {
  FenceOutcome answer;
  answer.last_epoch = last_epoch;
  answer.last_lsn = last_lsn;
  return answer;
}

FenceOutcome Failed(absl::Status status) {
  FenceOutcome answer;
  answer.status = std::move(status);
  return answer;
}

TEST(PlannerTest, FencedFailoverChoosesByTheFenceAnswersNotTheReports) {
  v1::Placement p = Cluster(4, 1, 4);  // Leader n1; followers n2..n4.
  SetPosition(&p, 0, "n2", 1, 100);    // Reported positions...
  SetPosition(&p, 0, "n3", 1, 90);
  SetPosition(&p, 0, "n4", 1, 80);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  const ReportMap reports = ReportsFromTable(p);
  EXPECT_EQ(ChooseFailoverLeader(p, p.shards(0), reports).value_or(""), "n2");
  ShardFence fence;  // ...and the fresher answers.
  fence.epoch = 2;
  fence.replicas["n1"] = Failed(absl::UnavailableError("down"));
  fence.replicas["n2"] = Answered(1, 100);
  fence.replicas["n3"] = Answered(1, 120);
  fence.replicas["n4"] = Answered(1, 80);
  EXPECT_EQ(ChooseFencedLeader(p, p.shards(0), reports, fence).value_or(""), "n3");
  fence.replicas["n4"] = Answered(2, 1);  // A newer epoch wins over any LSN.
  EXPECT_EQ(ChooseFencedLeader(p, p.shards(0), reports, fence).value_or(""), "n4");

  // Ties as before: a non-draining node, then the smallest node id.
  for (const char* n : {"n2", "n3", "n4"}) fence.replicas[n] = Answered(1, 50);
  EXPECT_EQ(ChooseFencedLeader(p, p.shards(0), reports, fence).value_or(""), "n2");
  SetDraining(&p, "n2");
  EXPECT_EQ(ChooseFencedLeader(p, p.shards(0), reports, fence).value_or(""), "n3");

  // The failover itself, by the fenced choice.
  v1::FailoverRequest request;
  request.set_shard(0);
  fence.replicas["n4"] = Answered(1, 51);
  auto done = PlanFailover(p, reports, request, &fence);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->placement().shards(0).leader_node_id(), "n4");
  EXPECT_EQ(done->placement().shards(0).epoch(), fence.epoch) << "the fenced epoch";
}

TEST(PlannerTest, FencedFailoverNeedsEnoughFencedReplicasBesidesTheLeader) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1; followers n2, n3.
  SetPosition(&p, 0, "n2", 1, 100);
  SetPosition(&p, 0, "n3", 1, 90);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  const ReportMap reports = ReportsFromTable(p);
  ShardFence fence;
  fence.epoch = 2;
  fence.replicas["n1"] = Answered(1, 130);  // The old leader does not count.
  fence.replicas["n2"] = Answered(1, 100);
  fence.replicas["n3"] = Failed(absl::DeadlineExceededError("no answer"));
  absl::StatusOr<std::string> refused = ChooseFencedLeader(p, p.shards(0), reports, fence);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message(),
            "shard 0: only 1 of 3 replicas fenced at epoch 2, 2 needed (not fenced: n3: "
            "DEADLINE_EXCEEDED)");
  fence.replicas["n3"] = Failed(absl::FailedPreconditionError("newer epoch"));
  EXPECT_THAT(std::string(ChooseFencedLeader(p, p.shards(0), reports, fence).status().message()),
              HasSubstr("n3: FAILED_PRECONDITION"));
  fence.replicas.erase("n3");
  EXPECT_THAT(std::string(ChooseFencedLeader(p, p.shards(0), reports, fence).status().message()),
              HasSubstr("n3: not asked"));

  // The ticker keeps the leader (writes fail closed) until enough answer.
  fence.replicas["n3"] = Failed(absl::DeadlineExceededError("no answer"));
  const FenceMap fences = {{0, fence}};
  TickInput input = AllAlive(p, &reports);
  input.alive["n1"] = false;
  input.fences = &fences;
  v1::PlacementChange kept = PlanTick(p, input);
  EXPECT_EQ(kept.placement().shards(0).leader_node_id(), "n1");
  EXPECT_EQ(kept.placement().shards(0).epoch(), 1u);
  FenceMap answered = fences;
  answered[0].replicas["n3"] = Answered(1, 90);
  input.fences = &answered;
  v1::PlacementChange moved = PlanTick(p, input);
  EXPECT_EQ(moved.placement().shards(0).leader_node_id(), "n2");
  EXPECT_EQ(moved.placement().shards(0).epoch(), 2u);

  // Fenced but unhealthy, diverged or unreported: not counted.
  ReportMap diverged = reports;
  diverged[{0, "n3"}].set_diverged(true);
  EXPECT_THAT(
      std::string(ChooseFencedLeader(p, p.shards(0), diverged, answered[0]).status().message()),
      HasSubstr("n3: fenced but diverged"));
  v1::Placement sick = p;
  SetHealth(&sick, "n3", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_THAT(
      std::string(
          ChooseFencedLeader(sick, sick.shards(0), reports, answered[0]).status().message()),
      HasSubstr("n3: fenced but unhealthy"));

  // Five replicas: three of the four followers.
  v1::Placement five = Cluster(5, 1, 5);
  SetHealth(&five, "n1", v1::NODE_HEALTH_UNHEALTHY);
  const ReportMap five_reports = ReportsFromTable(five);
  ShardFence five_fence;
  five_fence.epoch = 2;
  for (const char* n : {"n1", "n2", "n3"}) five_fence.replicas[n] = Answered(1, 7);
  for (const char* n : {"n4", "n5"}) five_fence.replicas[n] = Failed(absl::UnavailableError("x"));
  EXPECT_EQ(ChooseFencedLeader(five, five.shards(0), five_reports, five_fence).status().code(),
            absl::StatusCode::kUnavailable);
  five_fence.replicas["n5"] = Answered(1, 7);
  EXPECT_EQ(ChooseFencedLeader(five, five.shards(0), five_reports, five_fence).value_or(""), "n2");
}

TEST(PlannerTest, FenceAnswersForAnotherEpochAreAborted) {
  v1::Placement p = Cluster(3, 1, 3);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  const ReportMap reports = ReportsFromTable(p);
  FenceMap fences = FenceAll(p, reports);
  Shard(&p, 0)->set_epoch(2);  // The shard changed while it was fenced.
  absl::StatusOr<std::string> stale = ChooseFencedLeader(p, p.shards(0), reports, fences[0]);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  v1::FailoverRequest request;
  request.set_shard(0);
  EXPECT_EQ(PlanFailover(p, reports, request, &fences[0]).status().code(),
            absl::StatusCode::kAborted);
  TickInput input = AllAlive(p, &reports);
  input.alive["n1"] = false;
  input.fences = &fences;
  EXPECT_EQ(PlanTick(p, input).placement().shards(0).leader_node_id(), "n1");
}

TEST(PlannerTest, FencedPromoteNeedsTheTargetAndEnoughFenced) {
  v1::Placement p = Cluster(3, 1, 3);  // Leader n1 at 135; n2 120, n3 130 reported.
  SetPosition(&p, 0, "n1", 1, 135);
  SetPosition(&p, 0, "n2", 1, 120);
  SetPosition(&p, 0, "n3", 1, 130);
  v1::PromoteRequest promote;
  promote.set_shard(0);
  promote.set_node_id("n2");
  ShardFence fence;
  fence.epoch = 2;
  fence.replicas["n1"] = Answered(1, 135);
  fence.replicas["n2"] = Failed(absl::DeadlineExceededError("slow"));
  fence.replicas["n3"] = Answered(1, 130);
  auto not_target = PlanPromote(p, promote, &fence);
  EXPECT_EQ(not_target.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(not_target.status().message(),
            "shard 0: n2 did not answer the fence at epoch 2 (DEADLINE_EXCEEDED); not promoted");
  promote.set_accept_data_loss(true);
  EXPECT_EQ(PlanPromote(p, promote, &fence).status().code(), absl::StatusCode::kUnavailable)
      << "the target must be fenced, whatever the operator accepts";

  // Target fenced, the other follower not: a majority (n1 + n3) may still
  // acknowledge n1's writes.
  promote.set_accept_data_loss(false);
  fence.replicas["n2"] = Answered(1, 135);  // Caught up since it last reported.
  fence.replicas["n3"] = Failed(absl::UnavailableError("down"));
  auto too_few = PlanPromote(p, promote, &fence);
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(too_few.status().message(),
            "shard 0: only 1 of 3 replicas fenced at epoch 2, 2 needed (not fenced: n3: "
            "UNAVAILABLE); a majority may still acknowledge writes of n1: pass accept_data_loss "
            "to promote anyway");
  promote.set_accept_data_loss(true);
  auto accepted = PlanPromote(p, promote, &fence);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->placement().shards(0).leader_node_id(), "n2");
  EXPECT_EQ(accepted->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(accepted->lost_size(), 0) << "n2's fence answer (135) is what counts, not its report";
  EXPECT_THAT(accepted->summary(), ::testing::Contains(HasSubstr("not fenced: n3: UNAVAILABLE")));

  // Enough fenced: the fresher positions decide about data loss.
  promote.set_accept_data_loss(false);
  fence.replicas["n3"] = Answered(1, 136);
  auto loses = PlanPromote(p, promote, &fence);
  EXPECT_EQ(loses.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(loses.status().message()),
              HasSubstr("would discard LSNs (135, 136] reported by n3"));
  fence.replicas["n3"] = Answered(1, 135);
  auto promoted = PlanPromote(p, promote, &fence);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->placement().shards(0).leader_node_id(), "n2");

  fence.epoch = 3;
  EXPECT_EQ(PlanPromote(p, promote, &fence).status().code(), absl::StatusCode::kAborted);
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

TEST(PlannerTest, LeaderSilenceIsReportedOnlyByItsFollowersAtTheShardsEpoch) {
  v1::Placement p = Cluster(3, 2, 3);  // Shard 0 led by n1, shard 1 by n2.
  ReportMap reports;
  auto follower = [](uint32_t shard, uint64_t epoch, uint64_t silent_ms) {
    v1::ReplicaReport r = Report(shard, epoch, 10);
    r.set_role(v1::REPLICA_ROLE_FOLLOWER);
    r.mutable_follow()->set_leader_silent_ms(silent_ms);
    return r;
  };
  reports[{0, "n2"}] = follower(0, 1, 100);
  reports[{0, "n3"}] = follower(0, 1, 100);
  EXPECT_FALSE(LeaderSilenceReported(p, reports, "n1", 750)) << "its followers hear it";
  reports[{0, "n3"}] = follower(0, 1, 900);
  EXPECT_TRUE(LeaderSilenceReported(p, reports, "n1", 750));
  EXPECT_FALSE(LeaderSilenceReported(p, reports, "n2", 750)) << "n2 leads shard 1, not 0";
  reports[{0, "n3"}] = follower(0, 7, 900);  // Fenced at another epoch: follows someone else.
  EXPECT_FALSE(LeaderSilenceReported(p, reports, "n1", 750));
  reports[{0, "n3"}] = Report(0, 1, 10);  // No word about its leader.
  reports[{0, "n3"}].set_role(v1::REPLICA_ROLE_FOLLOWER);
  EXPECT_FALSE(LeaderSilenceReported(p, reports, "n1", 750));
}

TEST(PlannerTest, ANewLeaderCarriesNoLag) {
  v1::Placement p = Cluster(3, 1, 3);
  *Replica(&p, 0, "n2")->mutable_lag() = Lag("n2", 4, true);
  SetHealth(&p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  const ReportMap reports = ReportsFromTable(p);
  FenceMap fences = FenceAll(p, reports);
  v1::FailoverRequest request;
  request.set_shard(0);
  auto done = PlanFailover(p, reports, request, &fences[0]);
  ASSERT_TRUE(done.ok()) << done.status();
  v1::Placement after = done->placement();
  ASSERT_EQ(after.shards(0).leader_node_id(), "n2");
  EXPECT_FALSE(Replica(&after, 0, "n2")->has_lag());
}

}  // namespace
}  // namespace dash::controlplane
