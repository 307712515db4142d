// A replica over storage that fails: every I/O error becomes a clean refusal
// that changes nothing, and the replica carries on once storage heals.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/storage/fault_injection_engine.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::HasSubstr;
using namespace query::testing;  // NOLINT: test builders
using Op = storage::FaultInjectionEngine::Op;

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            ("storage-fault-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    std::filesystem::remove_all(dir_);
    options_.dir = dir_;
  }
  void TearDown() override {
    replica_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::remove_all(dir_ + "-follower");
  }
  // Opens `options` over a fault-injecting engine; `engine` points at it.
  std::unique_ptr<ShardReplica> OpenFaulty(const ReplicaOptions& options,
                                           storage::FaultInjectionEngine** engine) {
    auto base = storage::OpenRocksEngine(options.dir, options.engine);
    EXPECT_TRUE(base.ok()) << base.status();
    auto faulty = std::make_unique<storage::FaultInjectionEngine>(std::move(*base));
    *engine = faulty.get();
    auto r = ShardReplica::Open(options, std::move(faulty));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : nullptr;
  }
  std::vector<std::string> Ids(const ShardReplica& r) {
    std::vector<std::string> ids;
    auto page = r.ListClaims("acme", "", 100, false);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const auto& rec : page->records) ids.push_back(rec.claim().claim_id());
    }
    return ids;
  }

  std::string dir_;
  ReplicaOptions options_;
  std::unique_ptr<ShardReplica> replica_;
};

TEST_F(StorageFaultTest, AFailedCommitRefusesItsGroupAndChangesNothing) {
  storage::FaultInjectionEngine* engine = nullptr;
  replica_ = OpenFaulty(options_, &engine);
  ASSERT_NE(replica_, nullptr);
  ASSERT_TRUE(replica_->WriteAndWait(ClaimBatch("acme", "c1")).ok());
  auto before = replica_->Checksum();
  ASSERT_TRUE(before.ok());

  engine->Fail(Op::kCommit, absl::UnavailableError("disk full"), 1);
  v1::WriteRequest second = ClaimBatch("acme", "c2");
  second.set_idempotency_key("k2");
  auto refused = replica_->WriteAndWait(second);
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("commit failed: disk full"));
  EXPECT_EQ(engine->failed(Op::kCommit), 1);
  EXPECT_EQ(replica_->State().last_lsn, 1u);
  EXPECT_EQ(replica_->State().commit_lsn, 1u);
  EXPECT_TRUE(absl::IsNotFound(replica_->GetClaim("acme", "c2").status()));
  EXPECT_EQ(replica_->Checksum()->sha256, before->sha256);

  // Storage heals: the retry (same idempotency key) is applied once, at the
  // next LSN, with no gap in the log.
  auto retried = replica_->WriteAndWait(second);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_FALSE(retried->replayed);
  EXPECT_EQ(retried->token.lsn(), 2u);
  EXPECT_THAT(Ids(*replica_), ::testing::ElementsAre("c1", "c2"));
  auto after = replica_->Checksum();
  replica_.reset();
  auto reopened = ShardReplica::Open(options_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->State().last_lsn, 2u);
  EXPECT_EQ((*reopened)->Checksum()->sha256, after->sha256);
  EXPECT_TRUE((*reopened)->ReadLogRecord(2).ok());
}

TEST_F(StorageFaultTest, AFollowerWhoseAppendFailsKeepsItsLogAndTakesTheRetry) {
  replica_ = std::move(*ShardReplica::Open(options_));
  for (const char* id : {"c1", "c2", "c3"}) {
    ASSERT_TRUE(replica_->WriteAndWait(ClaimBatch("acme", id)).ok());
  }
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));

  ReplicaOptions fo = options_;
  fo.dir = dir_ + "-follower";
  fo.managed = true;
  std::filesystem::remove_all(fo.dir);
  storage::FaultInjectionEngine* engine = nullptr;
  std::unique_ptr<ShardReplica> follower = OpenFaulty(fo, &engine);
  ASSERT_NE(follower, nullptr);
  ASSERT_TRUE(follower->ApplyEncodedRecords({records[0]}).ok());
  engine->Fail(Op::kCommit, absl::UnavailableError("I/O error"), 1);
  absl::Status st = follower->ApplyEncodedRecords({records[1], records[2]});
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(follower->State().last_lsn, 1u) << "all or none";
  EXPECT_EQ(follower->EpochHistory(), (std::map<uint64_t, uint64_t>{{1, 1}}));
  ASSERT_TRUE(follower->ApplyEncodedRecords({records[1], records[2]}).ok());
  EXPECT_EQ(follower->State().last_lsn, 3u);
  follower->OnLeaderCommit(3);
  EXPECT_EQ(Ids(*follower), Ids(*replica_));
  EXPECT_EQ(follower->Checksum()->sha256, replica_->Checksum()->sha256);
}

TEST_F(StorageFaultTest, AFailedTruncationLeavesTheDivergedSuffixToBeTruncatedAgain) {
  options_.managed = true;
  storage::FaultInjectionEngine* engine = nullptr;
  replica_ = OpenFaulty(options_, &engine);
  ASSERT_NE(replica_, nullptr);
  // Records of a leader that lost them: nothing is committed here.
  ReplicaOptions lo;
  lo.dir = dir_ + "-follower";
  std::filesystem::remove_all(lo.dir);
  {
    auto leader = ShardReplica::Open(lo);
    ASSERT_TRUE(leader.ok());
    for (const char* id : {"c1", "c2", "c3"}) {
      ASSERT_TRUE((*leader)->WriteAndWait(ClaimBatch("acme", id)).ok());
    }
    std::vector<std::string> records;
    for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*(*leader)->ReadLogRecord(lsn));
    ASSERT_TRUE(replica_->ApplyEncodedRecords(records).ok());
  }
  engine->Fail(Op::kCommit, absl::UnavailableError("I/O error"), 1);
  absl::Status st = replica_->TruncateLogAfter(1);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(replica_->State().last_lsn, 3u);
  EXPECT_TRUE(replica_->ReadLogRecord(3).ok());
  ASSERT_TRUE(replica_->TruncateLogAfter(1).ok());
  EXPECT_EQ(replica_->State().last_lsn, 1u);
  EXPECT_TRUE(absl::IsNotFound(replica_->ReadLogRecord(2).status()));
  replica_->OnLeaderCommit(1);
  EXPECT_THAT(Ids(*replica_), ::testing::ElementsAre("c1"));
}

TEST_F(StorageFaultTest, FailedLogRetentionKeepsTheLogAndWritesGoOn) {
  options_.log_retention_records = 8;
  storage::FaultInjectionEngine* engine = nullptr;
  replica_ = OpenFaulty(options_, &engine);
  ASSERT_NE(replica_, nullptr);
  engine->Fail(Op::kDeleteRange, absl::UnavailableError("I/O error"));
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(replica_->WriteAndWait(ClaimBatch("acme", "c" + std::to_string(i))).ok());
  }
  EXPECT_GT(engine->failed(Op::kDeleteRange), 0);
  EXPECT_EQ(replica_->State().log_start_lsn, 1u) << "nothing was removed";
  EXPECT_TRUE(replica_->ReadLogRecord(1).ok());
  engine->Heal();
  ASSERT_TRUE(replica_->WriteAndWait(ClaimBatch("acme", "c20")).ok());
  EXPECT_EQ(replica_->State().log_start_lsn, 21u - 8 + 1);
  EXPECT_TRUE(absl::IsNotFound(replica_->ReadLogRecord(1).status()));
}

TEST_F(StorageFaultTest, AFailedCheckpointIsReportedAndLeavesNoCopy) {
  storage::FaultInjectionEngine* engine = nullptr;
  replica_ = OpenFaulty(options_, &engine);
  ASSERT_NE(replica_, nullptr);
  ASSERT_TRUE(replica_->WriteAndWait(ClaimBatch("acme", "c1")).ok());
  engine->Fail(Op::kCheckpoint, absl::UnavailableError("no space"), 1);
  const std::string copy = dir_ + "-checkpoint";
  std::filesystem::remove_all(copy);
  auto failed = replica_->CreateCheckpoint(copy);
  EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
  EXPECT_FALSE(std::filesystem::exists(copy));
  auto made = replica_->CreateCheckpoint(copy);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->first, 1u);
  std::filesystem::remove_all(copy);
}

}  // namespace
}  // namespace dash::shard
