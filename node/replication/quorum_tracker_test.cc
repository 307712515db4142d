#include "node/replication/quorum_tracker.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::replication {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kStart = 1'700'000'000'000'000;

// A tracker of replica "a" among a, b, c (quorum 2), leading from epoch start
// LSN 1, whose log ends at `durable`.
struct Fixture {
  explicit Fixture(uint64_t durable = 0, QuorumOptions options = {})
      : clock(kStart), tracker(WithClock(options, &clock), durable, 0, /*leading=*/false) {
    tracker.SetRole(true, {"a", "b", "c"}, "a", 1, /*new_leadership=*/true);
  }
  static QuorumOptions WithClock(QuorumOptions o, Clock* c) {
    o.clock = c;
    return o;
  }
  // Waits for `lsn`, recording its answer in `answers`.
  void Await(uint64_t lsn) {
    tracker.Await(lsn, [this, lsn](absl::Status st) { answers.emplace_back(lsn, st); });
  }
  // Releases and runs the answers, as the replica does.
  uint64_t Release(const absl::Status& fail_all = absl::OkStatus()) {
    QuorumTracker::Released r = tracker.Release(fail_all);
    for (auto& [done, st] : r.answers) done(st);
    return r.commit_lsn;
  }
  std::vector<uint64_t> Answered() const {
    std::vector<uint64_t> out;
    for (const auto& [lsn, st] : answers) out.push_back(lsn);
    return out;
  }

  ManualClock clock;
  QuorumTracker tracker;
  std::vector<std::pair<uint64_t, absl::Status>> answers;
};

TEST(QuorumTrackerTest, AWriteIsAnsweredOnceAMajorityHoldsIt) {
  Fixture f;
  f.tracker.SetDurable(3);
  f.Await(1);
  f.Await(2);
  f.Await(3);
  EXPECT_EQ(f.Release(), 0u) << "one replica of three is no majority";
  EXPECT_TRUE(f.answers.empty());
  f.tracker.OnFollowerAck("x", 3);  // Not a replica of the shard.
  EXPECT_EQ(f.Release(), 0u);
  f.tracker.OnFollowerAck("b", 2);
  EXPECT_EQ(f.Release(), 2u);
  EXPECT_THAT(f.Answered(), ElementsAre(1, 2));
  for (const auto& [lsn, st] : f.answers) EXPECT_TRUE(st.ok()) << st;
  f.tracker.OnFollowerAck("c", 3);
  EXPECT_EQ(f.Release(), 3u);
  EXPECT_THAT(f.Answered(), ElementsAre(1, 2, 3));
  EXPECT_EQ(f.tracker.commit_lsn(), 3u);
}

TEST(QuorumTrackerTest, AFollowerAckCountsOnlyUpToWhatTheLeaderHolds) {
  Fixture f(/*durable=*/2);
  f.tracker.OnFollowerAck("b", 9);  // A follower of a longer, older log.
  EXPECT_EQ(f.Release(), 2u);
}

TEST(QuorumTrackerTest, RecordsBeforeTheLeadersEpochAreNotCommittedByCounting) {
  Fixture f(/*durable=*/5);
  // This leadership's epoch starts at LSN 5: a majority holding LSN 4 proves
  // nothing about the older epoch's records (Raft's rule).
  f.tracker.SetRole(true, {"a", "b", "c"}, "a", 5, /*new_leadership=*/true);
  f.tracker.OnFollowerAck("b", 4);
  EXPECT_EQ(f.Release(), 0u);
  f.tracker.OnFollowerAck("b", 5);
  EXPECT_EQ(f.Release(), 5u);
}

TEST(QuorumTrackerTest, ANewLeadershipForgetsAcksHeardBefore) {
  Fixture f(/*durable=*/4);
  f.tracker.OnFollowerAck("b", 4);
  f.tracker.SetRole(true, {"a", "b", "c"}, "a", 4, /*new_leadership=*/true);
  EXPECT_EQ(f.Release(), 0u) << "b's position was reported to an earlier leadership";
  f.tracker.OnFollowerAck("c", 4);
  EXPECT_EQ(f.Release(), 4u);
}

TEST(QuorumTrackerTest, OneReplicaIsItsOwnMajority) {
  Fixture f(/*durable=*/3);
  f.tracker.SetRole(true, {"a"}, "a", 1, /*new_leadership=*/false);
  f.Await(3);
  EXPECT_EQ(f.Release(), 3u);
  EXPECT_THAT(f.Answered(), ElementsAre(3));
}

TEST(QuorumTrackerTest, LosingLeadershipFailsWaitersButAnswersTheCommittedOnes) {
  Fixture f(/*durable=*/3);
  f.Await(2);
  f.Await(3);
  f.tracker.OnFollowerAck("b", 2);
  EXPECT_EQ(f.Release(), 2u);
  // Deposed: acks stop counting, and what is not committed fails.
  f.tracker.StopLeading();
  f.tracker.OnFollowerAck("c", 3);
  EXPECT_EQ(f.Release(absl::UnavailableError("stopped leading")), 2u);
  ASSERT_EQ(f.answers.size(), 2u);
  EXPECT_EQ(f.answers[0].first, 2u);
  EXPECT_TRUE(f.answers[0].second.ok()) << f.answers[0].second;
  EXPECT_EQ(f.answers[1].first, 3u);
  EXPECT_TRUE(absl::IsUnavailable(f.answers[1].second));
}

TEST(QuorumTrackerTest, AWriteWaitingPastTheCommitTimeoutIsAnsweredOutcomeUnknown) {
  QuorumOptions options;
  options.commit_timeout = absl::Seconds(5);
  Fixture f(/*durable=*/1, options);
  f.Await(1);
  f.clock.Advance(absl::Seconds(4));
  f.Release();
  EXPECT_TRUE(f.answers.empty());
  f.clock.Advance(absl::Seconds(2));
  f.Release();
  ASSERT_EQ(f.answers.size(), 1u);
  EXPECT_TRUE(absl::IsUnavailable(f.answers[0].second));
  EXPECT_THAT(f.answers[0].second.message(), HasSubstr("same idempotency key"));
}

TEST(QuorumTrackerTest, LeaderOnlyAcksAnswerWhatThisReplicaHolds) {
  QuorumOptions options;
  options.ack_leader_only = true;
  Fixture f(/*durable=*/2, options);
  f.Await(2);
  f.Await(3);
  EXPECT_EQ(f.Release(), 0u) << "the commit LSN still needs a majority";
  EXPECT_THAT(f.Answered(), ElementsAre(2));
}

TEST(QuorumTrackerTest, AFollowerLearnsTheCommitLsnCappedAtWhatItHolds) {
  ManualClock clock(kStart);
  QuorumOptions options;
  options.clock = &clock;
  QuorumTracker follower(options, /*durable_lsn=*/3, /*commit_lsn=*/1, /*leading=*/false);
  EXPECT_EQ(follower.OnLeaderCommit(2), 2u);
  EXPECT_EQ(follower.OnLeaderCommit(10), 3u);
  EXPECT_EQ(follower.OnLeaderCommit(1), 3u) << "the commit LSN never goes back";
  follower.SetRole(true, {"a"}, "a", 4, false);
  EXPECT_EQ(follower.OnLeaderCommit(10), std::nullopt) << "a leader counts for itself";
}

TEST(QuorumTrackerTest, TheLeaseOnlyGrowsAndRunsOut) {
  Fixture f;
  EXPECT_FALSE(f.tracker.LeaseValid());
  const absl::Time now = absl::FromUnixMicros(kStart);
  f.tracker.ExtendLease(now + absl::Seconds(2));
  f.tracker.ExtendLease(now + absl::Seconds(1));
  f.clock.Advance(absl::Milliseconds(1500));
  EXPECT_TRUE(f.tracker.LeaseValid());
  f.clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(f.tracker.LeaseValid());
}

TEST(QuorumTrackerTest, FollowerLagCountsRecordsBytesAndTheAgeOfTheOldestMissing) {
  QuorumOptions options;
  options.in_sync_max_lag_records = 10;
  options.in_sync_max_lag = absl::Seconds(2);
  Fixture f(/*durable=*/0, options);
  f.tracker.SetDurable(4);
  f.tracker.RecordGroup(4, 400);  // LSNs 1-4, 400 bytes.
  f.clock.Advance(absl::Seconds(1));
  f.tracker.SetDurable(6);
  f.tracker.RecordGroup(6, 200);  // LSNs 5-6.
  f.tracker.OnFollowerAck("b", 4);
  f.clock.Advance(absl::Seconds(2));
  std::vector<FollowerLag> lags = f.tracker.FollowerLags();
  ASSERT_EQ(lags.size(), 2u);
  EXPECT_EQ(lags[0].node_id, "b");
  EXPECT_EQ(lags[0].acked_lsn, 4u);
  EXPECT_EQ(lags[0].lag_records, 2u);
  EXPECT_EQ(lags[0].lag_bytes, 200u);
  EXPECT_DOUBLE_EQ(lags[0].lag_seconds, 2.0);
  EXPECT_TRUE(lags[0].in_sync);
  EXPECT_EQ(lags[1].node_id, "c");
  EXPECT_EQ(lags[1].lag_records, 6u);
  EXPECT_EQ(lags[1].lag_bytes, 600u);
  EXPECT_DOUBLE_EQ(lags[1].lag_seconds, 3.0);
  EXPECT_FALSE(lags[1].in_sync) << "its oldest missing record is older than 2 s";
  f.tracker.StopLeading();
  EXPECT_TRUE(f.tracker.FollowerLags().empty()) << "only a leader reports lag";
}

}  // namespace
}  // namespace dash::replication
