// ShardReplica: roles, epochs and fencing.

#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/shard/shard_replica_test_util.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::StartsWith;
using namespace query::testing;         // NOLINT: test builders
using namespace shard_replica_testing;  // NOLINT: shared fixtures

TEST_F(ShardReplicaTest, StaleExpectedEpochCarriesARoutingHint) {
  v1::WriteRequest req = ClaimBatch("acme", "c1");
  req.set_expected_epoch(5);
  auto r = replica_->WriteAndWait(req);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  auto hint = GetRoutingHint(r.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 1u);
  req.set_expected_epoch(1);
  MustWrite(req);
}

TEST_F(ShardReplicaTest, AFollowerRefusesWritesNamingItsLeader) {
  Role role;
  role.leader = false;
  role.epoch = 3;
  role.leader_node_id = "n2";
  role.leader_address = "127.0.0.1:7102";
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  auto hint = GetRoutingHint(r.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 3u);
  EXPECT_EQ(hint->leader_node_id(), "n2");
  EXPECT_EQ(hint->leader_address(), "127.0.0.1:7102");
  EXPECT_EQ(replica_->State().last_lsn, 0u) << "nothing applied";
}

TEST_F(ShardReplicaTest, AnAdoptedEpochIsPersistedAndNeverGoesBack) {
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(4)).ok());
  Reopen();
  EXPECT_EQ(replica_->State().epoch, 4u) << "adopted epochs survive a restart";
  Role older = LeaderOf3(3);
  EXPECT_TRUE(absl::IsFailedPrecondition(replica_->AdoptRole(older)));
  // Readers routing by another epoch are told the current one.
  absl::Status st = replica_->CheckEpoch(2);
  ASSERT_TRUE(absl::IsFailedPrecondition(st));
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->current_epoch(), 4u);
  EXPECT_TRUE(replica_->CheckEpoch(4).ok());
  EXPECT_TRUE(replica_->CheckEpoch(0).ok());
}

TEST_F(ShardReplicaTest, PausedWritesAreRetryableAndLeaveTheLogAlone) {
  Role role = LeaderOf3(2);
  role.replicas = {"a"};
  role.writes_paused = true;
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  const uint64_t before = replica_->State().last_lsn;  // The epoch_start record.
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(replica_->State().last_lsn, before);
  role.writes_paused = false;
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  MustWrite(ClaimBatch("acme", "c1"));
}

TEST_F(ManagedReplicaTest, FencingDeposesALeaderAndRefusesItsRecords) {
  auto r = OpenManaged("r");
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  r->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> w) {
    result = std::move(w);
    done.Notify();
  });
  ASSERT_EQ(r->WaitForLsn(2, absl::Seconds(5)), 2u);
  auto fenced = r->Fence(2);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->epoch, 2u);
  EXPECT_EQ(fenced->last_lsn, 2u);
  EXPECT_FALSE(fenced->leader);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  // Deposed, it knows no leader until the new placement arrives: retry.
  auto refused = r->WriteAndWait(ClaimBatch("acme", "c2"));
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(r->State().last_lsn, 2u);
  // A follower fenced at 2 applies nothing more from the leader of epoch 1.
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  ASSERT_TRUE(f->Fence(2).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(f->ApplyEncodedRecords({Record(1, 1)}, 1)));
  EXPECT_EQ(f->State().last_lsn, 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(f->Fence(1).status())) << "epochs never go back";
}

// A caller ahead of a managed replica (it has yet to apply the newer
// placement) is told to retry, not to fix its state: the replica will catch
// up. A caller behind it must refresh (FAILED_PRECONDITION).
TEST_F(ManagedReplicaTest, ACallerAheadOfTheReplicasEpochRetriesOneBehindRefreshes) {
  std::unique_ptr<ShardReplica> r = OpenManaged("ahead");
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(4)).ok());
  absl::Status st = r->CheckEpoch(5);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->current_epoch(), 4u);
  EXPECT_TRUE(absl::IsFailedPrecondition(r->CheckEpoch(3)));
  v1::WriteRequest ahead = ClaimBatch("t", "c-ahead");
  ahead.set_expected_epoch(5);
  auto w = r->WriteAndWait(ahead);
  EXPECT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  ahead.set_expected_epoch(3);
  w = r->WriteAndWait(ahead);
  EXPECT_TRUE(absl::IsFailedPrecondition(w.status())) << w.status();
  EXPECT_EQ(r->State().last_lsn, 1u) << "only its epoch_start record";
}

// FenceShard is open to any client until authentication lands: an epoch no
// control plane would issue (2^64 - 1 left nothing to move on to) is refused
// and changes nothing.
TEST_F(ManagedReplicaTest, AFenceFarAboveTheAdoptedEpochIsRefused) {
  std::unique_ptr<ShardReplica> r = OpenManaged("bogus-fence");
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(4)).ok());
  auto bogus = r->Fence(UINT64_MAX);
  ASSERT_TRUE(absl::IsInvalidArgument(bogus.status())) << bogus.status();
  EXPECT_THAT(std::string(bogus.status().message()), StartsWith("epoch: "));
  EXPECT_EQ(r->State().epoch, 4u);
  EXPECT_TRUE(r->State().leader) << "still leading: nothing was fenced";
  EXPECT_TRUE(absl::IsInvalidArgument(r->Fence(4 + 1001).status()));
  auto ok = r->Fence(4 + 1000);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->epoch, 1004u);
  // Fenced, it knows no leader until the new placement names one: a
  // LEADER_ONLY read there is to be retried (not a misroute).
  absl::Status read = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsUnavailable(read)) << read;
  ASSERT_TRUE(r->AdoptRole(FollowerOf(1004)).ok());
  read = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsFailedPrecondition(read)) << "a leader is named elsewhere: " << read;
}

}  // namespace
}  // namespace dash::shard
