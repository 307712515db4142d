#include "controlplane/failover/internal/tick_steps.h"

#include <string>

#include "controlplane/failover/internal/planner_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using planner_testing::Lag;

v1::ReplicaReport Report(uint64_t epoch, uint64_t last_epoch, uint64_t last_lsn) {
  v1::ReplicaReport report;
  report.set_shard(0);
  report.set_epoch(epoch);
  report.set_last_epoch(last_epoch);
  report.set_last_lsn(last_lsn);
  return report;
}

std::string Show(const InSyncVerdict& verdict) {
  switch (verdict.outcome) {
    case InSyncVerdict::kInSync:
      return verdict.reason.empty() ? "in sync" : "in sync, with a reason: " + verdict.reason;
    case InSyncVerdict::kOutOfSync:
      return "out of sync: " + verdict.reason;
    case InSyncVerdict::kKeepFlag:
      return verdict.reason.empty() ? "keep" : "keep, with a reason: " + verdict.reason;
  }
  return "?";
}

// Shard 0 at epoch 2: leader n1 at (last_epoch 2, last_lsn 5000) by the table,
// follower n2 healthy, heard, reporting (2, 2, 4500): in sync by the LSN rule
// (lag 500 <= 1000). Each test breaks one condition.
class JudgeInSyncTest : public ::testing::Test {
 protected:
  JudgeInSyncTest() {
    shard_.set_shard(0);
    shard_.set_epoch(2);
    shard_.set_leader_node_id("n1");
    v1::ReplicaEntry* leader = shard_.add_replicas();
    leader->set_node_id("n1");
    leader->set_role(v1::REPLICA_ROLE_LEADER);
    leader->set_health(v1::NODE_HEALTH_HEALTHY);
    leader->set_last_epoch(2);
    leader->set_last_lsn(5000);
    v1::ReplicaEntry* follower = shard_.add_replicas();
    follower->set_node_id("n2");
    follower->set_role(v1::REPLICA_ROLE_FOLLOWER);
    follower->set_health(v1::NODE_HEALTH_HEALTHY);
    input_.heard = {"n1", "n2"};
    input_.in_sync_max_lag_records = 1000;
    reports_[{0, "n1"}] = Report(2, 2, 5000);
    reports_[{0, "n2"}] = Report(2, 2, 4500);
  }

  v1::ReplicaEntry* Follower() { return shard_.mutable_replicas(1); }
  v1::ReplicaReport& FollowerReport() { return reports_[{0, "n2"}]; }
  v1::ReplicaReport& LeaderReport() { return reports_[{0, "n1"}]; }
  std::string Judge() { return Show(JudgeInSync(input_, reports_, shard_, *Follower())); }

  v1::ShardEntry shard_;
  TickInput input_;
  ReportMap reports_;
};

TEST_F(JudgeInSyncTest, InSyncWithinTheLagBound) {
  EXPECT_EQ(Judge(), "in sync");
  FollowerReport().set_last_lsn(4000);  // Lag exactly the bound.
  EXPECT_EQ(Judge(), "in sync");
  FollowerReport().set_last_lsn(5000);  // Caught up.
  EXPECT_EQ(Judge(), "in sync");
  // The stored flag and the table's position of the follower play no part.
  Follower()->set_in_sync(false);
  Follower()->set_last_lsn(1);
  EXPECT_EQ(Judge(), "in sync");
}

TEST_F(JudgeInSyncTest, LagAboveTheBound) {
  FollowerReport().set_last_lsn(3999);
  EXPECT_EQ(Judge(), "out of sync: lag 1001 > 1000");
  input_.in_sync_max_lag_records = 0;
  FollowerReport().set_last_lsn(4999);
  EXPECT_EQ(Judge(), "out of sync: lag 1 > 0");
}

TEST_F(JudgeInSyncTest, NodeUnhealthy) {
  Follower()->set_health(v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(Judge(), "out of sync: node unhealthy");
  Follower()->set_health(v1::NODE_HEALTH_UNSPECIFIED);
  EXPECT_EQ(Judge(), "out of sync: node unhealthy");
  // Decided before whether it was heard: not kept.
  input_.heard.erase("n2");
  EXPECT_EQ(Judge(), "out of sync: node unhealthy");
}

TEST_F(JudgeInSyncTest, NoLeader) {
  shard_.set_leader_node_id("");
  EXPECT_EQ(Judge(), "out of sync: no leader");
  shard_.set_leader_node_id("n9");  // Not a replica.
  EXPECT_EQ(Judge(), "out of sync: no leader");
}

TEST_F(JudgeInSyncTest, NotHeardSinceStartKeepsTheFlag) {
  input_.heard.erase("n2");
  EXPECT_EQ(Judge(), "keep");
  reports_.erase({0, "n2"});  // Even with no report: it may not have sent one yet.
  EXPECT_EQ(Judge(), "keep");
  FollowerReport().set_diverged(true);
  EXPECT_EQ(Judge(), "keep");
}

TEST_F(JudgeInSyncTest, NoReportForTheShard) {
  reports_.erase({0, "n2"});
  EXPECT_EQ(Judge(), "out of sync: no report for the shard");
  reports_[{1, "n2"}] = Report(2, 2, 5000);  // Another shard's report does not count.
  EXPECT_EQ(Judge(), "out of sync: no report for the shard");
}

TEST_F(JudgeInSyncTest, Diverged) {
  FollowerReport().set_diverged(true);
  EXPECT_EQ(Judge(), "out of sync: diverged");
  FollowerReport().set_epoch(1);  // Checked before the epoch.
  EXPECT_EQ(Judge(), "out of sync: diverged");
}

TEST_F(JudgeInSyncTest, EpochNotYetAdoptedOrFencedPast) {
  FollowerReport().set_epoch(1);
  EXPECT_EQ(Judge(), "out of sync: epoch 2 not yet adopted (at 1)");
  FollowerReport().set_epoch(3);
  EXPECT_EQ(Judge(), "out of sync: fenced at epoch 3, above the shard's 2");
  // Decided before the leader's verdict.
  *LeaderReport().add_followers() = Lag("n2", 0, true);
  EXPECT_EQ(Judge(), "out of sync: fenced at epoch 3, above the shard's 2");
}

TEST_F(JudgeInSyncTest, AheadOfTheLeaderWithoutTheArrivalOrder) {
  FollowerReport().set_last_lsn(5001);
  EXPECT_EQ(Judge(), "out of sync: ahead of the leader: diverged");
  // Even when the leader lists it in sync.
  *LeaderReport().add_followers() = Lag("n2", 0, true);
  EXPECT_EQ(Judge(), "out of sync: ahead of the leader: diverged");
}

TEST_F(JudgeInSyncTest, AheadOfTheLeaderJudgedOnlyAgainstANewerLeaderReport) {
  FollowerReport().set_last_lsn(5001);
  ReportOrder order = {{{0, "n1"}, 2}, {{0, "n2"}, 1}};
  input_.report_order = &order;
  EXPECT_EQ(Judge(), "out of sync: ahead of the leader: diverged") << "leader's report is newer";

  order[{0, "n1"}] = 1;  // Same arrival: not newer.
  EXPECT_EQ(Judge(), "keep") << "no followers listed: the stored flag stands";
  order[{0, "n1"}] = 0;  // Older.
  EXPECT_EQ(Judge(), "keep");
  order.erase({0, "n1"});  // Order unknown for either: not newer.
  EXPECT_EQ(Judge(), "keep");
  order[{0, "n1"}] = 2;
  order.erase({0, "n2"});
  EXPECT_EQ(Judge(), "keep");

  // With followers listed, the leader's verdict decides.
  order[{0, "n2"}] = 3;
  *LeaderReport().add_followers() = Lag("n2", 0, true);
  EXPECT_EQ(Judge(), "in sync");
  LeaderReport().mutable_followers(0)->set_in_sync(false);
  LeaderReport().mutable_followers(0)->set_lag_records(5);
  EXPECT_EQ(Judge(), "out of sync: leader n1 reports lag 5 records, 0 bytes, 0 s");
  LeaderReport().mutable_followers(0)->set_node_id("n3");
  EXPECT_EQ(Judge(), "out of sync: not among leader n1's followers");
}

TEST_F(JudgeInSyncTest, SameLsnAnotherLastEpochIsDiverged) {
  FollowerReport().set_last_lsn(5000);
  FollowerReport().set_last_epoch(1);
  EXPECT_EQ(Judge(), "out of sync: last epoch 1 at the leader's LSN, leader's 2: diverged");
  // Even when the leader lists it in sync.
  *LeaderReport().add_followers() = Lag("n2", 0, true);
  EXPECT_EQ(Judge(), "out of sync: last epoch 1 at the leader's LSN, leader's 2: diverged");
  // At LSN 0 neither holds a record: nothing to differ.
  LeaderReport().clear_followers();
  Follower()->set_last_lsn(0);
  shard_.mutable_replicas(0)->set_last_lsn(0);
  FollowerReport().set_last_lsn(0);
  EXPECT_EQ(Judge(), "in sync");
}

TEST_F(JudgeInSyncTest, TheLeadersListDecidesOverTheLagBound) {
  *LeaderReport().add_followers() = Lag("n3", 0, true);
  EXPECT_EQ(Judge(), "out of sync: not among leader n1's followers");
  *LeaderReport().add_followers() = Lag("n2", 12, false);
  EXPECT_EQ(Judge(), "out of sync: leader n1 reports lag 12 records, 1200 bytes, 1.2 s");
  LeaderReport().mutable_followers(1)->set_in_sync(true);
  FollowerReport().set_last_lsn(1);  // Far beyond the LSN bound: the leader's word counts.
  EXPECT_EQ(Judge(), "in sync");
}

TEST_F(JudgeInSyncTest, ALeaderReportWithoutFollowersLeavesItToTheLsnRule) {
  FollowerReport().set_last_lsn(3999);
  LeaderReport().set_role(v1::REPLICA_ROLE_LEADER);  // Lists nobody: an older node.
  EXPECT_EQ(Judge(), "out of sync: lag 1001 > 1000");
  reports_.erase({0, "n1"});  // No leader report at all.
  EXPECT_EQ(Judge(), "out of sync: lag 1001 > 1000");
  // The leader's position is the table's, not its report's.
  shard_.mutable_replicas(0)->set_last_lsn(4999);
  EXPECT_EQ(Judge(), "in sync");
}

// A created table with nodes n1..n3 healthy and shard 0 led by n1 at epoch
// 2, every replica in sync.
v1::Placement ThreeNodes() {
  v1::Placement placement;
  placement.set_version(7);
  placement.set_shard_count(1);
  placement.set_replication_factor(3);
  placement.set_created(true);
  v1::ShardEntry* shard = placement.add_shards();
  shard->set_shard(0);
  shard->set_epoch(2);
  shard->set_leader_node_id("n1");
  for (const char* id : {"n1", "n2", "n3"}) {
    v1::NodeEntry* node = placement.add_nodes();
    node->set_node_id(id);
    node->set_health(v1::NODE_HEALTH_HEALTHY);
    v1::ReplicaEntry* replica = shard->add_replicas();
    replica->set_node_id(id);
    replica->set_role(std::string(id) == "n1" ? v1::REPLICA_ROLE_LEADER
                                              : v1::REPLICA_ROLE_FOLLOWER);
    replica->set_health(v1::NODE_HEALTH_HEALTHY);
    replica->set_in_sync(true);
  }
  return placement;
}

TEST(TickStepsTest, UpdateInSyncFlipsOnlyDecidedFlagsAndSaysWhy) {
  v1::Placement placement = ThreeNodes();
  placement.mutable_shards(0)->mutable_replicas(0)->set_last_epoch(2);
  placement.mutable_shards(0)->mutable_replicas(0)->set_last_lsn(5000);
  placement.mutable_shards(0)->mutable_replicas(1)->set_last_lsn(3800);
  placement.mutable_shards(0)->mutable_replicas(2)->set_in_sync(false);
  ReportMap reports;
  reports[{0, "n2"}] = Report(2, 2, 3800);  // Lag 1200.
  TickInput input;
  input.heard = {"n1", "n2"};  // n3 not heard: keeps its (false) flag.
  input.in_sync_max_lag_records = 1000;
  v1::PlacementChange change;
  UpdateInSync(input, reports, &placement, &change);
  EXPECT_TRUE(placement.shards(0).replicas(0).in_sync()) << "the leader stays in sync";
  EXPECT_FALSE(placement.shards(0).replicas(1).in_sync());
  EXPECT_FALSE(placement.shards(0).replicas(2).in_sync());
  EXPECT_THAT(change.summary(),
              ElementsAre("shard 0: n2 out of sync: lag 1200 > 1000 (last_lsn 3800, leader 5000)"));
  EXPECT_THAT(change.shards_changed(), IsEmpty()) << "in-sync flags are not routing changes";

  // n3 heard and caught up: back in sync, with a line.
  input.heard.insert("n3");
  reports[{0, "n3"}] = Report(2, 2, 5000);
  change.Clear();
  UpdateInSync(input, reports, &placement, &change);
  EXPECT_TRUE(placement.shards(0).replicas(2).in_sync());
  EXPECT_THAT(change.summary(), ElementsAre("shard 0: n3 in sync (last_lsn 0, leader 5000)"));
}

TEST(TickStepsTest, UpdateHealthFlipsListedNodesAndMirrorsReplicas) {
  v1::Placement placement = ThreeNodes();
  placement.mutable_shards(0)->mutable_replicas(2)->set_node_id("n4");  // Not registered.
  v1::PlacementChange change;
  UpdateHealth({{"n1", false}, {"n2", true}}, &placement, &change);  // n3 not listed.
  EXPECT_EQ(placement.nodes(0).health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(placement.nodes(1).health(), v1::NODE_HEALTH_HEALTHY);
  EXPECT_EQ(placement.nodes(2).health(), v1::NODE_HEALTH_HEALTHY);
  EXPECT_EQ(placement.shards(0).replicas(0).health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(placement.shards(0).replicas(1).health(), v1::NODE_HEALTH_HEALTHY);
  EXPECT_EQ(placement.shards(0).replicas(2).health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_THAT(change.summary(), ElementsAre("node n1: HEALTHY -> UNHEALTHY"));
}

TEST(TickStepsTest, RepairFencedEpochsSkipsAShardBeingFenced) {
  v1::Placement placement = ThreeNodes();
  placement.mutable_shards(0)->set_transfer_to("n2");
  ReportMap reports;
  reports[{0, "n2"}] = Report(3, 2, 0);  // Fenced at 3 by a failover that promoted nobody.
  reports[{0, "n3"}] = Report(4, 2, 0);
  v1::PlacementChange change;
  RepairFencedEpochs({0}, reports, &placement, &change);
  EXPECT_EQ(placement.shards(0).epoch(), 2u);
  EXPECT_THAT(change.summary(), IsEmpty());

  RepairFencedEpochs({}, reports, &placement, &change);
  EXPECT_EQ(placement.shards(0).epoch(), 4u) << "the newest fenced epoch";
  EXPECT_EQ(placement.shards(0).leader_node_id(), "n1");
  EXPECT_EQ(placement.shards(0).transfer_to(), "");
  EXPECT_THAT(change.shards_changed(), ElementsAre(0u));
  EXPECT_THAT(change.summary(),
              ElementsAre("shard 0: epoch 2 -> 4, leader n1 kept (n2,n3 fenced by a failover "
                          "that promoted nobody)"));
}

TEST(TickStepsTest, AnUnfencedUnhealthyLeaderStaysAndItsTransferIsAbandoned) {
  v1::Placement placement = ThreeNodes();
  placement.mutable_nodes(0)->set_health(v1::NODE_HEALTH_UNHEALTHY);
  placement.mutable_shards(0)->set_transfer_to("n2");
  v1::PlacementChange change;
  FailOverUnhealthyLeaders(nullptr, ReportMap(), &placement, &change);
  EXPECT_EQ(placement.shards(0).leader_node_id(), "n1");
  EXPECT_EQ(placement.shards(0).epoch(), 2u);
  EXPECT_EQ(placement.shards(0).transfer_to(), "");
  EXPECT_THAT(change.shards_changed(), IsEmpty());
  EXPECT_THAT(change.summary(),
              ElementsAre("shard 0: transfer to n2 abandoned (leader n1 unhealthy)"));
}

TEST(TickStepsTest, CompleteMovesListsAShardOnceAndWaitsForTheTarget) {
  v1::Placement placement = ThreeNodes();
  v1::ShardEntry* shard = placement.mutable_shards(0);
  shard->set_moving_from("n2");
  shard->set_moving_to("n3");
  shard->mutable_replicas(2)->set_in_sync(false);
  v1::PlacementChange change;
  CompleteMoves(&placement, &change);
  EXPECT_EQ(placement.shards(0).replicas_size(), 3) << "target not in sync yet";
  EXPECT_THAT(change.summary(), IsEmpty());

  shard->mutable_replicas(2)->set_in_sync(true);
  change.add_shards_changed(0);  // An earlier step changed the shard's epoch too.
  CompleteMoves(&placement, &change);
  ASSERT_EQ(placement.shards(0).replicas_size(), 2);
  EXPECT_EQ(placement.shards(0).replicas(1).node_id(), "n3");
  EXPECT_EQ(placement.shards(0).epoch(), 3u);
  EXPECT_EQ(placement.shards(0).moving_from(), "");
  EXPECT_EQ(placement.shards(0).moving_to(), "");
  EXPECT_THAT(change.shards_changed(), ElementsAre(0u));
  EXPECT_THAT(change.summary(),
              ElementsAre("shard 0: move done, removed replica n2, epoch 2 -> 3"));
}

}  // namespace
}  // namespace dash::controlplane::internal
