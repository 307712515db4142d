// ShardReplica: majority commit, committed reads, leases and follower lag.

#include <atomic>

#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/sync_point.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/shard/shard_replica_test_util.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::HasSubstr;
using namespace query::testing;         // NOLINT: test builders
using namespace shard_replica_testing;  // NOLINT: shared fixtures

#ifdef DASH_TEST_HOOKS  // Waits on a sync point.
TEST_F(ShardReplicaTest, ALeaderAnswersOnceAMajorityHoldsTheWrite) {
  SyncPointScope sync;
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  std::atomic<bool> answered{false};
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  replica_->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> r) {
    result = std::move(r);
    answered = true;
    done.Notify();
  });
  // LSN 1 is the leader's epoch_start record. Once the commit thread has
  // made LSN 2 durable here and released what it could: one replica of three
  // is not a majority.
  ASSERT_TRUE(SyncPoint::Get()->WaitFor("ShardReplica::CommitGroup:Released", 1, absl::Seconds(5)));
  EXPECT_EQ(replica_->State().last_lsn, 2u);
  EXPECT_FALSE(answered) << "acknowledged before a follower held it";
  replica_->OnFollowerAck("x", 2);  // Not a replica of the shard: does not count.
  EXPECT_FALSE(answered);
  replica_->OnFollowerAck("b", 2);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->token.lsn(), 2u);
  EXPECT_EQ(replica_->State().commit_lsn, 2u);
}
#endif  // DASH_TEST_HOOKS

TEST_F(ShardReplicaTest, AWriteNoMajorityAcknowledgesFailsAsOutcomeUnknown) {
  options_.commit_timeout = absl::Milliseconds(300);
  Reopen();
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  ASSERT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("outcome is unknown"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("same idempotency key"));
}

TEST_F(ShardReplicaTest, LosingLeadershipFailsTheWritesStillWaitingForAMajority) {
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  replica_->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> r) {
    result = std::move(r);
    done.Notify();
  });
  ASSERT_EQ(replica_->WaitForLsn(2, absl::Seconds(5)), 2u);
  Role follower;
  follower.leader = false;
  follower.epoch = 2;
  follower.leader_node_id = "b";
  ASSERT_TRUE(replica_->AdoptRole(follower).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

TEST_F(ManagedReplicaTest, ALeaderCommitsOnlyFromItsOwnEpochsFirstRecord) {
  // Three records of epoch 1, written by the fixture's standalone leader.
  for (int i = 0; i < 3; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  auto r = OpenManaged("r");
  ASSERT_TRUE(r->AdoptRole(FollowerOf(1)).ok());
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  ASSERT_TRUE(r->ApplyEncodedRecords(records, 1).ok());
  // Promoted at epoch 2: its epoch_start record is LSN 4.
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(2)).ok());
  EXPECT_EQ(r->State().last_lsn, 4u);
  // A majority holding LSN 3 does not commit it (Raft's figure 8: an older
  // epoch's records are committed only by a record of the leader's own).
  r->OnFollowerAck("b", 3);
  EXPECT_EQ(r->State().commit_lsn, 0u);
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "reads wait for the epoch to commit";
  r->OnFollowerAck("b", 4);
  EXPECT_EQ(r->State().commit_lsn, 4u);
  EXPECT_EQ(r->State().read_lsn, 4u);
  EXPECT_TRUE(r->GetClaim("acme", "c2").ok());
}

TEST_F(ManagedReplicaTest, FollowersServeOnlyCommittedStateAcrossRestarts) {
  for (int i = 0; i < 5; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 5; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  // Views are per applied batch: 1-3, then 4-5.
  ASSERT_TRUE(f->ApplyEncodedRecords({records.begin(), records.begin() + 3}, 1).ok());
  ASSERT_TRUE(f->ApplyEncodedRecords({records.begin() + 3, records.end()}, 1).ok());
  EXPECT_TRUE(absl::IsNotFound(f->GetClaim("acme", "c0").status()));
  f->OnLeaderCommit(3);
  EXPECT_TRUE(f->GetClaim("acme", "c2").ok());
  EXPECT_TRUE(absl::IsNotFound(f->GetClaim("acme", "c3").status()));
  auto got = f->GetClaim("acme", "c0");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->read_at().lsn(), 3u) << "the token names the state read";
  // The leader's commit may run ahead of what the follower holds.
  f->OnLeaderCommit(100);
  EXPECT_EQ(f->State().commit_lsn, 5u);
  EXPECT_TRUE(f->GetClaim("acme", "c4").ok());

  // Restarted holding records beyond the commit LSN it had persisted: no
  // reads until the leader confirms them.
  auto g = OpenManaged("g");
  ASSERT_TRUE(g->ApplyEncodedRecords(records, 0).ok());
  g.reset();
  ReplicaOptions o;
  o.dir = dir_.string() + "-g";
  o.managed = true;
  auto reopened = ShardReplica::Open(o);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE((*reopened)->State().readable);
  EXPECT_TRUE(absl::IsUnavailable((*reopened)->GetClaim("acme", "c0").status()));
  (*reopened)->OnLeaderCommit(5);
  EXPECT_TRUE((*reopened)->GetClaim("acme", "c0").ok());
}

TEST_F(ManagedReplicaTest, LeaderOnlyReadsNeedALease) {
  auto r = OpenManaged("r");
  Role role = LeaderOf3(1);
  role.replicas = {"a"};
  ASSERT_TRUE(r->AdoptRole(role).ok());
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "no lease yet";
  r->SetLeaseUntil(absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(r->CheckLeaderRead().ok());
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "the lease ran out";
  r->SetLeaseUntil(absl::Now() + absl::Seconds(30));
  EXPECT_TRUE(r->CheckLeaderRead().ok());
  ASSERT_TRUE(r->AdoptRole(FollowerOf(2)).ok());
  absl::Status st = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->leader_node_id(), "b");
  // A standalone replica always leads.
  EXPECT_TRUE(replica_->CheckLeaderRead().ok());
}

// The explicit weaker mode: answered on the leader's own durability, while
// reads still see only what a majority holds.
TEST_F(ManagedReplicaTest, LeaderAckModeAnswersBeforeAMajorityButReadsWaitForIt) {
  ReplicaOptions o;
  o.ack_leader_only = true;
  auto r = OpenManaged("r", o);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  auto w = r->WriteAndWait(ClaimBatch("acme", "c1"));  // No follower ever acks.
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->token.lsn(), 2u);
  EXPECT_EQ(r->State().commit_lsn, 0u);
  EXPECT_TRUE(absl::IsNotFound(r->GetClaim("acme", "c1").status()));
  r->OnFollowerAck("b", 2);
  EXPECT_TRUE(r->GetClaim("acme", "c1").ok());
  // The default waits for the majority (see ALeaderAnswersOnceAMajorityHoldsTheWrite).
}

TEST_F(ManagedReplicaTest, TheLeaderReportsEachFollowersLag) {
  ReplicaOptions o;
  o.in_sync_max_lag_records = 2;
  o.commit_timeout = absl::Seconds(30);
  auto r = OpenManaged("r", o);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  for (int i = 0; i < 4; ++i) {
    r->Write(ClaimBatch("acme", "c" + std::to_string(i)), [](absl::StatusOr<WriteResult>) {});
  }
  ASSERT_EQ(r->WaitForLsn(5, absl::Seconds(5)), 5u);
  r->OnFollowerAck("b", 5);
  absl::SleepFor(absl::Milliseconds(20));
  auto lags = r->FollowerLags();
  ASSERT_EQ(lags.size(), 2u);
  EXPECT_EQ(lags[0].node_id, "b");
  EXPECT_EQ(lags[0].lag_records, 0u);
  EXPECT_EQ(lags[0].lag_bytes, 0u);
  EXPECT_EQ(lags[0].lag_seconds, 0);
  EXPECT_TRUE(lags[0].in_sync);
  EXPECT_EQ(lags[1].node_id, "c");
  EXPECT_EQ(lags[1].acked_lsn, 0u);
  EXPECT_EQ(lags[1].lag_records, 5u);
  EXPECT_GT(lags[1].lag_bytes, 100u);
  EXPECT_GT(lags[1].lag_seconds, 0.01);
  EXPECT_FALSE(lags[1].in_sync) << "5 records behind, bound 2";
  r->OnFollowerAck("c", 4);
  lags = r->FollowerLags();
  EXPECT_EQ(lags[1].lag_records, 1u);
  EXPECT_TRUE(lags[1].in_sync);
  EXPECT_TRUE(OpenManaged("f")->FollowerLags().empty()) << "a follower reports none";
}

}  // namespace
}  // namespace dash::shard
