// Tests of planner_transfer.cc: leadership transfer, and which changes bump the epoch.

#include <string>

#include "controlplane/failover/internal/planner_test_util.h"
#include "controlplane/failover/planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::ElementsAre;
using namespace planner_testing;  // NOLINT: shared tables and reports

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

}  // namespace
}  // namespace dash::controlplane
