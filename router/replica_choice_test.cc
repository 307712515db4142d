// Replica choice for writes and each read preference, over placement tables
// built here (the routing rules are pure functions of the table).
#include "router/replica_choice.h"

#include <map>
#include <set>
#include <string>
#include <vector>

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

TEST(RefusedUntilNextTableTest, OnlyANodesOwnRefusalIsRetried) {
  v1::RoutingHint hint;
  hint.set_shard(0);
  absl::Status refused = absl::UnavailableError("shard 0 is assigned to node n1 and still opening");
  SetRoutingHint(refused, hint);
  EXPECT_TRUE(RefusedUntilNextTable(refused));
  // A transport failure (no hint): the write may have been applied.
  EXPECT_FALSE(RefusedUntilNextTable(absl::UnavailableError("failed to connect to all addresses")));
  // Stale epoch (the caller refreshes), or any other answer: not this path.
  absl::Status stale = absl::FailedPreconditionError("expected epoch 3, current 4");
  SetRoutingHint(stale, hint);
  EXPECT_FALSE(RefusedUntilNextTable(stale));
  EXPECT_FALSE(RefusedUntilNextTable(absl::OkStatus()));
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

std::vector<std::string> Nodes(const std::vector<Route>& routes) {
  std::vector<std::string> out;
  for (const Route& r : routes) out.push_back(r.node_id);
  return out;
}

TEST(ReadCandidatesTest, OrderEligibleReplicasBestFirst) {
  v1::Placement p = Table();
  auto leader_only = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_LEADER_ONLY, 1);
  ASSERT_TRUE(leader_only.ok());
  EXPECT_THAT(Nodes(*leader_only), ::testing::ElementsAre("n1")) << "no failover: fail closed";
  EXPECT_TRUE(leader_only->front().leader_read);
  EXPECT_EQ(leader_only->front().epoch, 4u) << "a leader read pins the epoch";

  p.mutable_shards(0)->mutable_replicas(2)->set_in_sync(true);  // n3 caught up.
  auto follower = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_FOLLOWER_PREFERRED, 1);
  ASSERT_TRUE(follower.ok());
  EXPECT_THAT(Nodes(*follower), ::testing::ElementsAre("n3", "n2", "n1"))
      << "in-sync followers (rotated), then the leader";
  for (const Route& r : *follower) {
    EXPECT_FALSE(r.leader_read);
    EXPECT_EQ(r.epoch, 0u) << "any replica's committed state answers; not pinned";
  }

  auto any = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, 2);
  ASSERT_TRUE(any.ok());
  EXPECT_THAT(Nodes(*any), ::testing::ElementsAre("n3", "n1", "n2"));
  SetHealth(p, "n3", v1::NODE_HEALTH_UNHEALTHY);
  any = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, 2);
  ASSERT_TRUE(any.ok());
  EXPECT_THAT(Nodes(*any), ::testing::ElementsAre("n1", "n2")) << "unhealthy nodes never";

  // A follower is still read when the leader is unhealthy.
  SetHealth(p, "n1", v1::NODE_HEALTH_UNHEALTHY);
  follower = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_FOLLOWER_PREFERRED, 0);
  ASSERT_TRUE(follower.ok());
  EXPECT_THAT(Nodes(*follower), ::testing::ElementsAre("n2"));
}

TEST(ReplicaBreakerTest, AFailedReplicaGoesLastUntilItServesOrItsTimeIsUp) {
  const v1::Placement p = Table();
  auto routes = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, 0);
  ASSERT_TRUE(routes.ok());
  ASSERT_THAT(Nodes(*routes), ::testing::ElementsAre("n1", "n2", "n3"));
  ReplicaBreaker breaker(absl::Seconds(2));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  breaker.Failed((*routes)[0], t0);
  EXPECT_TRUE(breaker.IsOpen((*routes)[0], t0 + absl::Seconds(1)));
  EXPECT_THAT(Nodes(breaker.Order(*routes, t0 + absl::Seconds(1))),
              ::testing::ElementsAre("n2", "n3", "n1"));
  EXPECT_THAT(Nodes(breaker.Order(*routes, t0 + absl::Seconds(2))),
              ::testing::ElementsAre("n1", "n2", "n3"))
      << "tried first again once its time is up";
  Route other_shard = (*routes)[0];
  other_shard.shard = 5;
  EXPECT_FALSE(breaker.IsOpen(other_shard, t0)) << "per replica: the node's other shards";
  breaker.Failed((*routes)[1], t0);
  breaker.Failed((*routes)[2], t0);
  EXPECT_THAT(Nodes(breaker.Order(*routes, t0)), ::testing::ElementsAre("n1", "n2", "n3"))
      << "all open: all still tried, in order";
  breaker.Succeeded((*routes)[1]);
  EXPECT_THAT(Nodes(breaker.Order(*routes, t0)), ::testing::ElementsAre("n2", "n1", "n3"));
}

TEST(ReadWithFailoverTest, MovesOnOnlyAfterUnavailableAndAtMostMaxAttempts) {
  const v1::Placement p = Table();
  auto routes = ReadCandidates(p, p.shards(0), v1::READ_PREFERENCE_ANY_HEALTHY, 0);
  ASSERT_TRUE(routes.ok());
  const absl::Time far = absl::Now() + absl::Hours(1);
  ReplicaBreaker breaker(absl::Seconds(30));
  std::vector<std::string> tried;
  std::map<std::string, absl::Status> answers = {
      {"n1", absl::UnavailableError("failed to connect to all addresses")},
      {"n2", absl::OkStatus()},
      {"n3", absl::OkStatus()}};
  auto attempt = [&](const Route& r) {
    tried.push_back(r.node_id);
    return answers[r.node_id];
  };
  ReadOutcome outcome;
  EXPECT_TRUE(ReadWithFailover(*routes, &breaker, 3, far, attempt, &outcome).ok());
  EXPECT_THAT(tried, ::testing::ElementsAre("n1", "n2"));
  EXPECT_EQ(outcome.route.node_id, "n2");
  EXPECT_EQ(outcome.attempts, 2);

  // The dead replica's breaker is open: the next read does not wait on it.
  tried.clear();
  EXPECT_TRUE(ReadWithFailover(*routes, &breaker, 3, far, attempt, &outcome).ok());
  EXPECT_THAT(tried, ::testing::ElementsAre("n2"));
  EXPECT_EQ(outcome.attempts, 1);

  // Answers that another replica would give alike are not retried.
  answers["n2"] = absl::NotFoundError("claim_id: not found");
  tried.clear();
  EXPECT_TRUE(absl::IsNotFound(ReadWithFailover(*routes, &breaker, 3, far, attempt)));
  EXPECT_THAT(tried, ::testing::ElementsAre("n2"));

  // Bounded: every replica down, two attempts allowed.
  for (auto& [node, st] : answers) st = absl::UnavailableError("down");
  ReplicaBreaker fresh(absl::Seconds(30));
  tried.clear();
  absl::Status st = ReadWithFailover(*routes, &fresh, 2, far, attempt);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_THAT(tried, ::testing::ElementsAre("n1", "n2"));

  // Past the deadline: the first attempt still runs (it carries the
  // deadline), no second one.
  tried.clear();
  st = ReadWithFailover(*routes, &fresh, 3, absl::Now() - absl::Seconds(1), attempt);
  EXPECT_TRUE(absl::IsUnavailable(st));
  EXPECT_EQ(tried.size(), 1u);
}

// The router's readiness: created, every shard present and led by a healthy
// node; any one of them missing makes it not ready.
TEST(ReplicaChoiceTest, EveryShardLedNeedsACreatedTableWithAHealthyLeaderPerShard) {
  EXPECT_TRUE(EveryShardLed(Table()));

  v1::Placement not_created = Table();
  not_created.set_created(false);
  EXPECT_FALSE(EveryShardLed(not_created));

  v1::Placement missing_shard = Table();
  missing_shard.set_shard_count(2);
  EXPECT_FALSE(EveryShardLed(missing_shard));

  v1::Placement leaderless = Table();
  leaderless.mutable_shards(0)->clear_leader_node_id();
  EXPECT_FALSE(EveryShardLed(leaderless));

  v1::Placement dead_leader = Table();
  SetHealth(dead_leader, "n1", v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_FALSE(EveryShardLed(dead_leader));
  SetHealth(dead_leader, "n1", v1::NODE_HEALTH_HEALTHY);
  SetHealth(dead_leader, "n3", v1::NODE_HEALTH_UNHEALTHY);  // A follower: still led.
  EXPECT_TRUE(EveryShardLed(dead_leader));
}

}  // namespace
}  // namespace dash::router
