// Tests of planner_membership.cc: registration, creation and drain.

#include <algorithm>
#include <string>
#include <vector>

#include "controlplane/failover/internal/planner_test_util.h"
#include "controlplane/failover/planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::ElementsAre;
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

}  // namespace
}  // namespace dash::controlplane
