// Tests of planner_failover.cc: failover leader choice, failover, promote and fencing.

#include <algorithm>
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
using ::testing::StartsWith;
using namespace planner_testing;  // NOLINT: shared tables and reports

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
