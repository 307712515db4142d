#include "node/backup/log_archive.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/backup/pitr.h"
#include "node/backup/repository.h"

namespace dash::backup {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Commit times: record n at second 1000 + n.
int64_t TimeOf(uint64_t lsn) { return (1000 + static_cast<int64_t>(lsn)) * 1000000; }

std::string Record(uint64_t lsn, uint64_t epoch) {
  storage::LogRecord r;
  r.epoch = epoch;
  r.lsn = lsn;
  r.commit_time_micros = TimeOf(lsn);
  r.payload = absl::StrCat("payload ", lsn);
  return storage::EncodeLogRecord(r);
}

std::vector<std::string> Records(uint64_t from, uint64_t to, uint64_t epoch) {
  std::vector<std::string> out;
  for (uint64_t lsn = from; lsn <= to; ++lsn) out.push_back(Record(lsn, epoch));
  return out;
}

class LogArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("log_archive_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string repo() const { return root_.string(); }
  std::string Dir() const { return ArchiveDir(repo(), 0); }

  // (lsn, epoch) of every record ReadArchive visits from `from`.
  absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> Read(uint64_t from) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    absl::Status st = ReadArchive(repo(), 0, from, [&](const ArchivedRecord& r) {
      out.emplace_back(r.lsn, r.epoch);
      return true;
    });
    if (!st.ok()) return st;
    return out;
  }

  fs::path root_;
};

TEST_F(LogArchiveTest, AppendsSealsAndReopensWhereItWas) {
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->Append(Records(1, 3, 1)).ok());
  ASSERT_TRUE(a->Append(Records(4, 5, 2)).ok());
  ASSERT_TRUE(a->Seal(3).ok());
  EXPECT_EQ(a->sealed_lsn(), 3u);
  EXPECT_TRUE(fs::exists(fs::path(Dir()) / "00000000000000000001-00000000000000000003.seg"));

  absl::StatusOr<ShardArchive> again = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->last_lsn(), 5u);
  EXPECT_EQ(again->last_epoch(), 2u);
  EXPECT_EQ(again->sealed_lsn(), 3u);
  EXPECT_EQ(again->tail_records(), 2u);
  EXPECT_EQ(again->EpochEnd(1), 3u);
  auto read = Read(2);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(*read, ElementsAre(std::make_pair(2, 1), std::make_pair(3, 1), std::make_pair(4, 2),
                                 std::make_pair(5, 2)));
  absl::StatusOr<ArchiveExtent> extent = ArchiveExtentOf(repo(), 0);
  ASSERT_TRUE(extent.ok());
  EXPECT_EQ(extent->first_lsn, 1u);
  EXPECT_EQ(extent->last_lsn, 5u);
  EXPECT_EQ(extent->segments, 1u);
}

TEST_F(LogArchiveTest, RefusesRecordsThatDoNotFollowWritingNothing) {
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Append(Records(7, 8, 2)).ok());  // An archive may start anywhere.
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append(Records(10, 10, 2))));
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append({Record(9, 2), Record(11, 2)})));
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append(Records(9, 9, 1))));  // An older epoch.
  EXPECT_EQ(a->last_lsn(), 8u);
  absl::StatusOr<ShardArchive> again = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->last_lsn(), 8u);
}

TEST_F(LogArchiveTest, ATornAppendIsTrimmedAndACrashBetweenSealAndTailLosesNothing) {
  {
    absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a->Append(Records(1, 4, 1)).ok());
  }
  const fs::path tail = fs::path(Dir()) / "open.seg";
  const fs::path saved = root_ / "tail-before-seal";
  fs::copy_file(tail, saved);
  // Half a record at the end: a crash mid-append.
  const std::string next = Record(5, 1);
  std::ofstream(tail, std::ios::app | std::ios::binary)
      << std::string("\0\0\0", 3) << static_cast<char>(next.size()) << next.substr(0, 9);
  {
    absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->last_lsn(), 4u);
    ASSERT_TRUE(a->Append(Records(5, 5, 1)).ok());
    ASSERT_TRUE(a->Seal(5).ok());
  }
  // The tail as it was before sealing: its records are in the segment too.
  fs::copy_file(saved, tail, fs::copy_options::overwrite_existing);
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->last_lsn(), 5u);
  EXPECT_EQ(a->tail_records(), 0u);
  auto read = Read(1);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 5u);
}

TEST_F(LogArchiveTest, DivergenceTruncatesTheTailButNeverASealedRecord) {
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Append(Records(1, 5, 3)).ok());
  ASSERT_TRUE(a->Seal(2).ok());
  // A new leader of epoch 4 started at lsn 4: its epoch 3 ends at 3.
  EXPECT_EQ(a->EpochEnd(3), 5u);
  ASSERT_TRUE(a->TruncateAfter(3).ok());
  ASSERT_TRUE(a->Append(Records(4, 4, 4)).ok());
  absl::Status sealed = a->TruncateAfter(1);
  EXPECT_TRUE(absl::IsFailedPrecondition(sealed)) << sealed;
  EXPECT_THAT(sealed.message(), HasSubstr("sealed"));
  absl::StatusOr<ShardArchive> again = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(again.ok());
  auto read = Read(1);
  ASSERT_TRUE(read.ok());
  EXPECT_THAT(*read, ElementsAre(std::make_pair(1, 3), std::make_pair(2, 3), std::make_pair(3, 3),
                                 std::make_pair(4, 4)));
}

TEST_F(LogArchiveTest, DamageAndMissingSegmentsAreNamed) {
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Append(Records(1, 3, 1)).ok());
  ASSERT_TRUE(a->Seal(3).ok());
  ASSERT_TRUE(a->Append(Records(4, 6, 1)).ok());
  ASSERT_TRUE(a->Seal(6).ok());
  const fs::path first = fs::path(Dir()) / "00000000000000000001-00000000000000000003.seg";
  {
    std::fstream f(first, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(40);
    const char c = static_cast<char>(f.get());
    f.seekp(40);
    f.put(static_cast<char>(c ^ 0x10));
  }
  absl::Status damaged = Read(1).status();
  EXPECT_TRUE(absl::IsDataLoss(damaged)) << damaged;
  EXPECT_THAT(damaged.message(), HasSubstr(first.filename().string()));
  // Reading after the damaged segment does not need it.
  EXPECT_TRUE(Read(4).ok());
  ASSERT_TRUE(a->Append(Records(7, 9, 1)).ok());
  ASSERT_TRUE(a->Seal(9).ok());
  fs::remove(fs::path(Dir()) / "00000000000000000004-00000000000000000006.seg");
  absl::Status gap = Read(7).status();
  EXPECT_TRUE(absl::IsDataLoss(gap)) << gap;
  EXPECT_THAT(gap.message(), HasSubstr("not consecutive"));
}

TEST_F(LogArchiveTest, RetentionDropsWholeSegmentsBeforeTheOldestCutAndKeepsTheChain) {
  absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(a.ok());
  for (uint64_t first : {1, 4, 7}) {
    ASSERT_TRUE(a->Append(Records(first, first + 2, 1)).ok());
    ASSERT_TRUE(a->Seal(first + 2).ok());
  }
  ASSERT_TRUE(a->Append(Records(10, 11, 1)).ok());  // The tail is never dropped.
  // A backup at lsn 5 needs the segment holding it (4-6) and everything after.
  absl::StatusOr<ArchiveDropStats> dropped = DropArchiveBefore(repo(), 0, 5);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->segments, 1);
  EXPECT_GT(dropped->bytes, 0u);
  auto read = Read(5);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->front().first, 5u);
  EXPECT_EQ(read->back().first, 11u);
  EXPECT_TRUE(absl::IsNotFound(Read(2).status()));
  // Past the end of every sealed segment: the tail stays.
  dropped = DropArchiveBefore(repo(), 0, 100);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->segments, 2);
  read = Read(10);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 2u);
  absl::StatusOr<ShardArchive> again = ShardArchive::Open(repo(), 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->last_lsn(), 11u);
}

// Planning: a repository with backups of one shard at lsn 10 (taken at
// second 1005) and lsn 20 (second 1015), archived from lsn 8 to 30.
class PitrTest : public LogArchiveTest {
 protected:
  void SetUp() override {
    LogArchiveTest::SetUp();
    absl::StatusOr<Repository> r = Repository::Open(repo(), /*create=*/true);
    ASSERT_TRUE(r.ok());
    Take(*r, 10, absl::FromUnixSeconds(1005));
    Take(*r, 20, absl::FromUnixSeconds(1015));
    absl::StatusOr<ShardArchive> a = ShardArchive::Open(repo(), 0);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a->Append(Records(8, 24, 1)).ok());
    ASSERT_TRUE(a->Append(Records(25, 30, 2)).ok());
    ASSERT_TRUE(a->Seal(27).ok());
  }

  void Take(Repository& r, uint64_t lsn, absl::Time at) {
    Manifest m;
    m.id = r.NewId(at);
    m.created = at;
    m.dash_version = "test";
    m.placement_json = "{}";
    m.shard_count = 1;
    const std::string staging = r.StagingDir(m.id, 0);
    fs::create_directories(staging);
    const std::string content = absl::StrCat("checkpoint at ", lsn);
    std::ofstream(fs::path(staging) / "CURRENT") << content;
    FileRef f{"CURRENT", content.size(), Sha256Hex(content)};
    ASSERT_TRUE(r.Store(staging + "/CURRENT", f).ok());
    m.shards.push_back(ShardCut{0, 1, "n1", lsn, 1, {f}});
    ASSERT_TRUE(r.Commit(m).ok());
    ids_.push_back(m.id);
  }

  absl::StatusOr<RestorePlan> Plan(const RestoreTarget& target, const std::string& id = "") {
    absl::StatusOr<Repository> r = Repository::Open(repo(), /*create=*/false);
    if (!r.ok()) return r.status();
    return PlanRestore(*r, id, target);
  }

  std::vector<std::string> ids_;
};

TEST_F(PitrTest, PlansToTheEndToATimeAndToATokenFromTheRightBackup) {
  RestoreTarget end;
  end.kind = RestoreTarget::Kind::kEnd;
  absl::StatusOr<RestorePlan> p = Plan(end);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->backup.id, ids_[1]);
  EXPECT_EQ(p->shards[0].cut_lsn, 20u);
  EXPECT_EQ(p->shards[0].to_lsn, 30u);
  EXPECT_EQ(p->shards[0].max_epoch, 2u);
  EXPECT_EQ(p->Tokens(), "0:2:30");

  // Second 1012: before the newer backup's cut record (second 1020), so from
  // the older one, up to lsn 12.
  RestoreTarget by_time;
  by_time.kind = RestoreTarget::Kind::kTime;
  by_time.time = absl::FromUnixSeconds(1012) + absl::Milliseconds(500);
  p = Plan(by_time);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->backup.id, ids_[0]);
  EXPECT_EQ(p->Tokens(), "0:1:12");
  EXPECT_EQ(p->shards[0].to_time_micros, TimeOf(12));
  std::vector<uint64_t> replayed;
  absl::StatusOr<Repository> r = Repository::Open(repo(), false);
  ASSERT_TRUE(ForEachReplayBatch(*r, p->shards[0], 1, [&](const std::vector<std::string>& batch) {
                for (const std::string& e : batch) {
                  replayed.push_back(storage::DecodeLogRecord(e)->lsn);
                }
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(replayed, ElementsAre(11, 12));

  absl::StatusOr<RestoreTarget> token = ServerRestoreTarget("0:2:26");
  ASSERT_TRUE(token.ok());
  p = Plan(*token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->backup.id, ids_[1]);
  EXPECT_EQ(p->shards[0].to_lsn, 26u);

  // The backup's cut alone.
  p = Plan(RestoreTarget(), ids_[0]);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Tokens(), "0:1:10");
}

TEST_F(PitrTest, RefusesTargetsTheArchiveDoesNotReach) {
  // A token of another history (lsn 26 is of epoch 2 here).
  absl::StatusOr<RestorePlan> p = Plan(*ServerRestoreTarget("0:1:26"));
  EXPECT_TRUE(absl::IsNotFound(p.status())) << p.status();
  EXPECT_THAT(p.status().message(), HasSubstr("epoch 2"));
  // Beyond the archive's end.
  p = Plan(*ServerRestoreTarget("0:2:31"));
  EXPECT_TRUE(absl::IsNotFound(p.status())) << p.status();
  // Before every backup.
  p = Plan(*ServerRestoreTarget("0:1:9"));
  EXPECT_TRUE(absl::IsNotFound(p.status())) << p.status();
  // Malformed tokens, and one missing for a shard on the servers' flag.
  EXPECT_TRUE(absl::IsInvalidArgument(ServerRestoreTarget("0:2").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ServerRestoreTarget("0:0:5").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ServerRestoreTarget("0:1:5,0:1:6").status()));
  RestoreTarget partial;
  partial.kind = RestoreTarget::Kind::kTokens;
  partial.exact = true;
  partial.tokens[1] = {1, 5};
  EXPECT_TRUE(absl::IsInvalidArgument(Plan(partial).status()));
  // A gap: the archive's first segment lost, the older backup cannot reach
  // anything after its cut.
  fs::remove(fs::path(Dir()) / "00000000000000000008-00000000000000000027.seg");
  p = Plan(*ServerRestoreTarget("0:2:28"), ids_[0]);
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_THAT(p.status().message(), HasSubstr("lsn 11 to 27"));
}

}  // namespace
}  // namespace dash::backup
