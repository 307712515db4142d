// Tests of planner_replicas.cc: adding, removing and moving replicas.

#include <string>

#include "controlplane/failover/internal/planner_test_util.h"
#include "controlplane/failover/planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace planner_testing;  // NOLINT: shared tables and reports

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

}  // namespace
}  // namespace dash::controlplane
