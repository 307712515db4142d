#include <filesystem>

#include "gtest/gtest.h"
#include "node/storage/engine.h"

namespace dash::storage {
namespace {

class RocksEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        ("engine-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    engine_.reset();
    auto e = OpenRocksEngine(dir_.string(), EngineOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
  }
  std::optional<std::string> Get(Family f, const std::string& k) {
    auto snap = engine_->NewSnapshot();
    auto v = snap->Get(f, k);
    EXPECT_TRUE(v.ok());
    return *v;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(RocksEngineTest, WriteSetReadsItsOwnWritesBeforeCommit) {
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kClaims, "t/c1", "v1");
  auto got = ws->Get(Family::kClaims, "t/c1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(""), "v1");
  EXPECT_FALSE(Get(Family::kClaims, "t/c1").has_value());
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  EXPECT_EQ(Get(Family::kClaims, "t/c1").value_or(""), "v1");
}

TEST_F(RocksEngineTest, RollbackToSavePointUndoesOnlyLaterChanges) {
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kClaims, "a", "1");
  ws->SetSavePoint();
  ws->Put(Family::kClaims, "b", "2");
  ws->Put(Family::kClaims, "a", "changed");
  ws->RollbackToSavePoint();
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  EXPECT_EQ(Get(Family::kClaims, "a").value_or(""), "1");
  EXPECT_FALSE(Get(Family::kClaims, "b").has_value());
}

TEST_F(RocksEngineTest, ScanMergesPendingWritesAndStaysInPrefix) {
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kEvidence, std::string("t\0c\0e1", 6), "1");
  ws->Put(Family::kEvidence, std::string("t\0c\0e3", 6), "3");
  ws->Put(Family::kEvidence, std::string("t\0d\0e1", 6), "other claim");
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  auto ws2 = engine_->NewWriteSet();
  ws2->Put(Family::kEvidence, std::string("t\0c\0e2", 6), "2");
  ws2->Delete(Family::kEvidence, std::string("t\0c\0e3", 6));
  std::vector<std::string> values;
  for (auto c = ws2->Scan(Family::kEvidence, std::string("t\0c\0", 4)); c->Valid(); c->Next()) {
    values.emplace_back(c->value());
  }
  EXPECT_EQ(values, (std::vector<std::string>{"1", "2"}));
}

TEST_F(RocksEngineTest, SeekMovesACursorToAnotherPrefixAndStaysInIt) {
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kEvidence, std::string("t\0a\0e1", 6), "a1");
  ws->Put(Family::kEvidence, std::string("t\0c\0e1", 6), "c1");
  ws->Put(Family::kEvidence, std::string("t\0d\0e1", 6), "d1");
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  auto ws2 = engine_->NewWriteSet();
  ws2->Put(Family::kEvidence, std::string("t\0c\0e2", 6), "c2");  // Pending only.
  auto values = [](Cursor* c) {
    std::vector<std::string> out;
    for (; c->Valid(); c->Next()) out.emplace_back(c->value());
    return out;
  };
  auto check = [&](const Reader& r, const std::vector<std::string>& in_c) {
    auto c = r.Scan(Family::kEvidence, std::string("t\0a\0", 4));
    EXPECT_EQ(values(c.get()), (std::vector<std::string>{"a1"}));
    c->Seek(std::string("t\0c\0", 4));
    EXPECT_EQ(values(c.get()), in_c);
    c->Seek(std::string("t\0b\0", 4));  // No key: not the next prefix's keys.
    EXPECT_FALSE(c->Valid());
    c->Seek(std::string("t\0a\0", 4));  // Backwards too.
    EXPECT_EQ(values(c.get()), (std::vector<std::string>{"a1"}));
    EXPECT_TRUE(c->status().ok());
  };
  check(*ws2, {"c1", "c2"});
  check(*engine_->NewSnapshot(), {"c1"});
}

TEST_F(RocksEngineTest, SnapshotDoesNotSeeLaterCommits) {
  auto snap = engine_->NewSnapshot();
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kMeta, "k", "v");
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  EXPECT_FALSE(snap->Get(Family::kMeta, "k")->has_value());
  EXPECT_TRUE(Get(Family::kMeta, "k").has_value());
}

TEST_F(RocksEngineTest, CommittedDataSurvivesReopen) {
  auto ws = engine_->NewWriteSet();
  for (int i = 0; i < 100; ++i) ws->Put(Family::kLog, "k" + std::to_string(i), "v");
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  ASSERT_TRUE(engine_->DeleteRange(Family::kLog, "k0", "k5").ok());
  Reopen();
  EXPECT_FALSE(Get(Family::kLog, "k1").has_value());
  EXPECT_TRUE(Get(Family::kLog, "k5").has_value());
  EXPECT_TRUE(Get(Family::kLog, "k99").has_value());
}

}  // namespace
}  // namespace dash::storage
