#include "node/shard/replica_log.h"

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/undo_capture.h"
#include "node/storage/keys.h"

namespace dash::shard {
namespace {

using storage::Family;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
namespace keys = storage::keys;

class ReplicaLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            ("replica-log-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    log_.reset();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    log_.reset();
    engine_.reset();
    auto engine = storage::OpenRocksEngine(dir_, {});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    auto log = ReplicaLog::Open(engine_.get(), 0, 1, dir_, /*index_format=*/1);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::make_unique<ReplicaLog>(std::move(*log));
  }
  // Appends one record per (epoch, claim value) in one commit; each record
  // sets claim "c1" of tenant "t" to its value, undo captured.
  void Append(const std::vector<std::pair<uint64_t, std::string>>& records,
              uint64_t commit_lsn = 0) {
    auto ws = engine_->NewWriteSet();
    LogAppend append = log_->BeginAppend(ws.get());
    for (const auto& [epoch, value] : records) {
      storage::LogRecord record;
      record.epoch = epoch;
      record.lsn = append.last_lsn() + 1;
      record.commit_time_micros = 1000 * record.lsn;
      record.payload = value;
      UndoCapture undo(ws.get());
      undo.Put(Family::kClaims, keys::Claim("t", "c1"), value);
      append.Add(record, storage::EncodeLogRecord(record), undo.Encoded());
    }
    log_->Seal(&append, commit_lsn);
    ASSERT_TRUE(engine_->Commit(*ws, true).ok());
    log_->Committed(append);
  }
  std::string Claim() {
    auto raw = engine_->NewSnapshot()->Get(Family::kClaims, keys::Claim("t", "c1"));
    return raw.ok() && raw->has_value() ? **raw : "<none>";
  }

  std::string dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<ReplicaLog> log_;
};

TEST_F(ReplicaLogTest, ANewReplicaStartsAtEpochOneWithAnEmptyLog) {
  EXPECT_EQ(log_->meta().epoch(), 1u);
  EXPECT_EQ(log_->meta().last_lsn(), 0u);
  EXPECT_EQ(log_->meta().index_format(), 1u);
  EXPECT_EQ(log_->log_start_lsn(), 0u);
  EXPECT_TRUE(log_->epochs().empty());
  auto other = ReplicaLog::Open(engine_.get(), 1, 2, dir_, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(other.status())) << other.status();
  EXPECT_THAT(other.status().message(), HasSubstr("holds shard 0 of 1"));
}

TEST_F(ReplicaLogTest, AnAppendMovesTheLogEndAndEpochHistoryAndSurvivesAReopen) {
  Append({{1, "v1"}, {1, "v2"}, {2, "v3"}}, /*commit_lsn=*/2);
  for (int reopen = 0; reopen < 2; ++reopen) {
    SCOPED_TRACE(reopen ? "after a reopen" : "in memory");
    EXPECT_EQ(log_->meta().last_lsn(), 3u);
    EXPECT_EQ(log_->meta().last_epoch(), 2u);
    EXPECT_EQ(log_->meta().epoch(), 2u) << "a record of a newer epoch advances the adopted one";
    EXPECT_EQ(log_->meta().commit_lsn(), 2u);
    EXPECT_EQ(log_->meta().last_commit_time_micros(), 3000);
    EXPECT_EQ(log_->log_start_lsn(), 1u);
    EXPECT_THAT(log_->epochs(), ElementsAre(Pair(1, 1), Pair(2, 3)));
    auto rec = ReplicaLog::ReadRecord(*engine_, 2);
    ASSERT_TRUE(rec.ok()) << rec.status();
    auto decoded = storage::DecodeLogRecord(*rec);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->payload, "v2");
    EXPECT_TRUE(absl::IsNotFound(ReplicaLog::ReadRecord(*engine_, 4).status()));
    Reopen();
  }
}

TEST_F(ReplicaLogTest, TruncationUndoesTheRemovedRecordsAndTheirEpochs) {
  Append({{1, "v1"}, {2, "v2"}, {2, "v3"}});
  ASSERT_EQ(Claim(), "v3");
  std::vector<std::pair<std::string, std::string>> touched;
  ASSERT_TRUE(log_->TruncateAfter(1, /*commit_lsn=*/1, &touched).ok());
  EXPECT_EQ(Claim(), "v1") << "the oldest before-image of the removed records stays";
  EXPECT_THAT(touched, ElementsAre(Pair("t", "c1"), Pair("t", "c1")));
  EXPECT_EQ(log_->meta().last_lsn(), 1u);
  EXPECT_EQ(log_->meta().last_epoch(), 1u);
  EXPECT_EQ(log_->meta().last_commit_time_micros(), 1000) << "the commit time goes back too";
  EXPECT_THAT(log_->epochs(), ElementsAre(Pair(1, 1)));
  EXPECT_TRUE(absl::IsNotFound(ReplicaLog::ReadRecord(*engine_, 2).status()));
  Reopen();
  EXPECT_EQ(log_->meta().last_lsn(), 1u);
  EXPECT_THAT(log_->epochs(), ElementsAre(Pair(1, 1)));
  // A truncation to nothing empties the log and the state it logged.
  ASSERT_TRUE(log_->TruncateAfter(0, 0, &touched).ok());
  EXPECT_EQ(Claim(), "<none>");
  EXPECT_EQ(log_->log_start_lsn(), 0u);
}

TEST_F(ReplicaLogTest, UndoCaptureKeepsTheFirstImageOfKeysItReadBeforeChanging) {
  {
    auto ws = engine_->NewWriteSet();
    ws->Put(Family::kClaims, "a", "old a");
    ws->Put(Family::kClaims, "d", "old d");
    ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  }
  auto ws = engine_->NewWriteSet();
  UndoCapture undo(ws.get());
  ASSERT_EQ(undo.Get(Family::kClaims, "a")->value_or("<none>"), "old a");
  ASSERT_FALSE(undo.Get(Family::kClaims, "b")->has_value());
  undo.Put(Family::kClaims, "a", "new a");
  EXPECT_EQ(undo.Get(Family::kClaims, "a")->value_or("<none>"), "new a");
  undo.Put(Family::kClaims, "a", "newer a");
  undo.Put(Family::kClaims, "b", "new b");
  ASSERT_EQ(undo.Get(Family::kClaims, "d")->value_or("<none>"), "old d");
  undo.Delete(Family::kClaims, "d");
  undo.Put(Family::kClaims, "e", "never read");  // Read at its change.
  ASSERT_TRUE(undo.status().ok());
  storage::UndoRecord record;
  ASSERT_TRUE(record.ParseFromString(undo.Encoded()));
  std::map<std::string, std::string> images;
  for (const auto& e : record.entries()) {
    EXPECT_EQ(e.family(), storage::FamilyName(Family::kClaims));
    EXPECT_TRUE(images.emplace(e.key(), e.existed() ? e.value() : "<none>").second) << e.key();
  }
  EXPECT_THAT(images, ElementsAre(Pair("a", "old a"), Pair("b", "<none>"), Pair("d", "old d"),
                                  Pair("e", "<none>")));
}

TEST_F(ReplicaLogTest, CommittedRecordsAreNeverTruncated) {
  Append({{1, "v1"}, {1, "v2"}});
  std::vector<std::pair<std::string, std::string>> touched;
  absl::Status st = log_->TruncateAfter(0, /*commit_lsn=*/1, &touched);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("needs a snapshot"));
  EXPECT_EQ(log_->meta().last_lsn(), 2u);
  EXPECT_EQ(Claim(), "v2");
}

TEST_F(ReplicaLogTest, TruncationNeedsTheUndoOfEveryRemovedRecord) {
  for (int i = 0; i < 1100; ++i) Append({{1, "v" + std::to_string(i)}});
  log_->MaybeDropUndo(/*commit_lsn=*/1030);
  std::vector<std::pair<std::string, std::string>> touched;
  absl::Status st = log_->TruncateAfter(1000, /*commit_lsn=*/0, &touched);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("no undo record for lsn 1030"));
  EXPECT_TRUE(log_->TruncateAfter(1030, 0, &touched).ok());
}

TEST_F(ReplicaLogTest, RetentionKeepsTheNewestRecordsInSteps) {
  for (int i = 0; i < 30; ++i) Append({{1, "v"}});
  EXPECT_FALSE(log_->MaybeTruncate(0)) << "0 keeps the whole log";
  EXPECT_TRUE(log_->MaybeTruncate(16));
  EXPECT_EQ(log_->log_start_lsn(), 15u);
  EXPECT_TRUE(absl::IsNotFound(ReplicaLog::ReadRecord(*engine_, 14).status()));
  EXPECT_TRUE(ReplicaLog::ReadRecord(*engine_, 15).ok());
  Append({{1, "v"}});
  EXPECT_FALSE(log_->MaybeTruncate(16)) << "steps are at least 1/8 of the window";
  EXPECT_EQ(log_->log_start_lsn(), 15u);
  Append({{1, "v"}});
  EXPECT_TRUE(log_->MaybeTruncate(16));
  EXPECT_EQ(log_->log_start_lsn(), 17u);
}

TEST_F(ReplicaLogTest, EpochEndsAndTheDivergencePointFollowTheHistory) {
  Append({{1, "a"}, {1, "b"}, {3, "c"}, {3, "d"}, {5, "e"}});  // Epochs 1@1, 3@3, 5@5.
  EXPECT_THAT(log_->EpochEndOffset(0), Pair(0, 0));
  EXPECT_THAT(log_->EpochEndOffset(1), Pair(1, 2));
  EXPECT_THAT(log_->EpochEndOffset(2), Pair(1, 2)) << "the largest epoch <= 2";
  EXPECT_THAT(log_->EpochEndOffset(4), Pair(3, 4));
  EXPECT_THAT(log_->EpochEndOffset(9), Pair(5, 5));
  // This log's epoch 3 ends at 4; a leader whose epoch 3 ends at 3 diverges after 3.
  EXPECT_EQ(log_->DivergencePoint(3, 3), 3u);
  EXPECT_EQ(log_->DivergencePoint(3, 10), 4u);
  EXPECT_EQ(log_->DivergencePoint(0, 0), 0u) << "no common epoch";
}

}  // namespace
}  // namespace dash::shard
