// Replica choice for writes and each read preference, over placement tables
// built here (the routing rules are pure functions of the table).
#include "router/router_service.h"

#include <set>

#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::router {
namespace {

// Shard 0 led by n1, followers n2 (in sync) and n3 (behind); all healthy.
v1::Placement Table() {
  v1::Placement p;
  p.set_version(7);
  p.set_shard_count(1);
  p.set_replication_factor(3);
  p.set_created(true);
  for (const char* id : {"n1", "n2", "n3"}) {
    v1::NodeEntry* n = p.add_nodes();
    n->set_node_id(id);
    n->set_address(std::string("addr-") + id);
    n->set_health(v1::NODE_HEALTH_HEALTHY);
  }
  v1::ShardEntry* s = p.add_shards();
  s->set_shard(0);
  s->set_epoch(4);
  s->set_leader_node_id("n1");
  auto add = [&](const char* id, v1::ReplicaRole role, bool in_sync) {
    v1::ReplicaEntry* r = s->add_replicas();
    r->set_node_id(id);
    r->set_role(role);
    r->set_in_sync(in_sync);
  };
  add("n1", v1::REPLICA_ROLE_LEADER, true);
  add("n2", v1::REPLICA_ROLE_FOLLOWER, true);
  add("n3", v1::REPLICA_ROLE_FOLLOWER, false);
  return p;
}

void SetHealth(v1::Placement& p, const std::string& id, v1::NodeHealth h) {
  for (auto& n : *p.mutable_nodes()) {
    if (n.node_id() == id) n.set_health(h);
  }
}

TEST(ChooseLeaderTest, RoutesToTheHealthyLeaderWithTheShardEpoch) {
  const v1::Placement p = Table();
  absl::StatusOr<Route> r = ChooseLeader(p, p.shards(0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->node_id, "n1");
  EXPECT_EQ(r->address, "addr-n1");
  EXPECT_EQ(r->epoch, 4u);
}

TEST(ChooseLeaderTest, FailsClosedWhenTheLeaderIsUnhealthy) {
  v1::Placement p = Table();
  SetHealth(p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  absl::StatusOr<Route> r = ChooseLeader(p, p.shards(0));
  ASSERT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  std::optional<v1::RoutingHint> hint = GetRoutingHint(r.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 4u);
  EXPECT_EQ(hint->leader_node_id(), "n1");
}

TEST(ChooseLeaderTest, FailsClosedWhenTheShardHasNoLeader) {
  v1::Placement p = Table();
  p.mutable_shards(0)->clear_leader_node_id();
  EXPECT_TRUE(absl::IsUnavailable(ChooseLeader(p, p.shards(0)).status()));
}

TEST(ChooseReplicaTest, LeaderOnlyNeverReadsAFollower) {
  v1::Placement p = Table();
  for (uint64_t spread = 0; spread < 6; ++spread) {
    auto r = ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_LEADER_ONLY, spread);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->node_id, "n1");
  }
  SetHealth(p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_TRUE(absl::IsUnavailable(
      ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_LEADER_ONLY, 0).status()));
}

TEST(ChooseReplicaTest, FollowerPreferredTakesOnlyInSyncHealthyFollowersThenTheLeader) {
  v1::Placement p = Table();
  for (uint64_t spread = 0; spread < 6; ++spread) {
    auto r = ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_FOLLOWER_PREFERRED, spread);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->node_id, "n2") << "n3 is behind, n1 leads";
  }
  SetHealth(p, "n2", v1::NODE_HEALTH_UNHEALTHY);
  auto r = ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_FOLLOWER_PREFERRED, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->node_id, "n1") << "no in-sync follower left: the leader serves";
  SetHealth(p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_TRUE(absl::IsUnavailable(
      ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_FOLLOWER_PREFERRED, 0).status()));
}

TEST(ChooseReplicaTest, AnyHealthySpreadsOverEveryHealthyReplica) {
  v1::Placement p = Table();
  std::set<std::string> seen;
  for (uint64_t spread = 0; spread < 6; ++spread) {
    auto r = ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, spread);
    ASSERT_TRUE(r.ok());
    seen.insert(r->node_id);
  }
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("n1", "n2", "n3"));
  SetHealth(p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  SetHealth(p, "n2", v1::NODE_HEALTH_UNHEALTHY);
  for (uint64_t spread = 0; spread < 4; ++spread) {
    auto r = ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, spread);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->node_id, "n3") << "the only healthy replica, even though it is behind";
  }
  SetHealth(p, "n3", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_TRUE(absl::IsUnavailable(
      ChooseReplica(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, 0).status()));
}

TEST(ChooseReplicaTest, UnknownPreferenceIsInvalid) {
  const v1::Placement p = Table();
  EXPECT_TRUE(absl::IsInvalidArgument(
      ChooseReplica(p, p.shards(0), static_cast<v1::ReadPreference>(99), 0).status()));
}

}  // namespace
}  // namespace dash::router
