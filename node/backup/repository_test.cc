#include "node/backup/repository.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::backup {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("backup_repo_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "src");
  }
  void TearDown() override { fs::remove_all(root_); }

  // A staged file with `content`, as a snapshot fetch leaves it.
  FileRef Stage(const std::string& staging, const std::string& name, const std::string& content) {
    fs::create_directories(staging);
    std::ofstream(fs::path(staging) / name, std::ios::binary) << content;
    return FileRef{name, content.size(), Sha256Hex(content)};
  }

  // Stores one backup of two shards; shard 1's "big" file is `shared` so that
  // two backups can share it.
  Manifest Take(Repository& repo, absl::Time at, const std::string& changing,
                const std::string& shared) {
    Manifest m;
    m.id = repo.NewId(at);
    m.created = at;
    m.dash_version = "test";
    m.placement_json = R"({"version":"7","shard_count":2})";
    m.shard_count = 2;
    for (uint32_t shard : {0u, 1u}) {
      const std::string staging = repo.StagingDir(m.id, shard);
      ShardCut cut{shard, 3, "n1", 10 + shard, 3, {}};
      cut.files.push_back(Stage(staging, "000001.sst", shard == 0 ? changing : shared));
      cut.files.push_back(Stage(staging, "MANIFEST-000004", absl::StrCat("m", shard, changing)));
      for (const FileRef& f : cut.files) {
        EXPECT_TRUE(repo.Store(staging + "/" + f.name, f).ok());
      }
      m.shards.push_back(cut);
    }
    EXPECT_TRUE(repo.Commit(m).ok());
    EXPECT_TRUE(repo.RemoveStaging(m.id).ok());
    return m;
  }

  fs::path root_;
};

TEST_F(RepositoryTest, OpensOnlyWhatItCreatedAndRefusesAForeignDirectory) {
  EXPECT_TRUE(absl::IsNotFound(Repository::Open((root_ / "none").string(), false).status()));
  ASSERT_TRUE(Repository::Open((root_ / "repo").string(), true).ok());
  EXPECT_TRUE(Repository::Open((root_ / "repo").string(), false).ok());
  std::ofstream(root_ / "src" / "precious") << "x";
  absl::Status foreign = Repository::Open((root_ / "src").string(), true).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(foreign)) << foreign;
  EXPECT_TRUE(fs::exists(root_ / "src" / "precious"));
  EXPECT_FALSE(fs::exists(root_ / "src" / "DASH-BACKUP"));
  std::ofstream(root_ / "repo" / "DASH-BACKUP", std::ios::trunc)
      << R"({"format":"dash-backup","version":99})";
  EXPECT_THAT(Repository::Open((root_ / "repo").string(), false).status().message(),
              HasSubstr("version 99"));
}

TEST_F(RepositoryTest, ABackupRoundTripsAndSharesUnchangedFilesWithTheNext) {
  absl::StatusOr<Repository> repo = Repository::Open((root_ / "repo").string(), true);
  ASSERT_TRUE(repo.ok());
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const std::string big(100'000, 'b');
  const Manifest first = Take(*repo, t0, "one", big);
  const Manifest second = Take(*repo, t0 + absl::Hours(1), "two", big);
  EXPECT_NE(first.id, second.id);
  EXPECT_FALSE(fs::exists(root_ / "repo" / "staging"));

  absl::StatusOr<std::vector<Manifest>> all = repo->List();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, first.id);
  EXPECT_EQ((*all)[0].shards[1].last_lsn, 11u);
  EXPECT_EQ((*all)[0].shards[0].files[0].sha256, Sha256Hex("one"));
  EXPECT_EQ((*all)[0].placement_json, R"({"shard_count":2,"version":"7"})");
  EXPECT_EQ((*all)[1].created, t0 + absl::Hours(1));

  // 4 files per backup, the big one stored once: 7 files in the store.
  int stored = 0;
  for (const auto& e : fs::recursive_directory_iterator(root_ / "repo" / "files")) {
    stored += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(stored, 7);
  // A later fetch may take the stored copy instead of copying it again.
  const std::string path = (root_ / "src" / "000001.sst").string();
  EXPECT_TRUE(repo->LinkStored(first.shards[1].files[0], path));
  EXPECT_EQ(fs::file_size(path), big.size());
  EXPECT_FALSE(
      repo->LinkStored(FileRef{"x", 1, Sha256Hex("never stored")}, (root_ / "src" / "x").string()));

  absl::StatusOr<std::vector<Damage>> damage = repo->Verify({});
  ASSERT_TRUE(damage.ok());
  EXPECT_THAT(*damage, IsEmpty());
}

TEST_F(RepositoryTest, VerifyNamesEveryDamagedFileAndManifest) {
  absl::StatusOr<Repository> repo = Repository::Open((root_ / "repo").string(), true);
  ASSERT_TRUE(repo.ok());
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const Manifest m = Take(*repo, t0, "one", std::string(5000, 's'));
  const Manifest other = Take(*repo, t0 + absl::Minutes(1), "two", "other");

  // Shard 1's big file: one bit flipped. Shard 0's MANIFEST: truncated.
  // Backup `other`: its manifest edited by hand.
  const std::string flipped = repo->StoredPath(m.shards[1].files[0].sha256);
  {
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1234);
    f.put('s' ^ 0x01);
  }
  fs::resize_file(repo->StoredPath(m.shards[0].files[1].sha256), 2);
  const fs::path other_manifest = root_ / "repo" / "backups" / other.id / "manifest.json";
  std::string text;
  {
    std::ifstream in(other_manifest);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  text.replace(text.find("\"last_lsn\": 10"), 14, "\"last_lsn\": 99");
  std::ofstream(other_manifest, std::ios::trunc) << text;

  absl::StatusOr<std::vector<Damage>> damage = repo->Verify({});
  ASSERT_TRUE(damage.ok()) << damage.status();
  ASSERT_EQ(damage->size(), 3u);
  EXPECT_EQ((*damage)[0].backup_id, m.id);
  EXPECT_EQ((*damage)[0].shard, 0u);
  EXPECT_EQ((*damage)[0].file, "MANIFEST-000004");
  EXPECT_THAT((*damage)[0].problem, HasSubstr("size 2 instead of"));
  EXPECT_EQ((*damage)[1].shard, 1u);
  EXPECT_EQ((*damage)[1].file, "000001.sst");
  EXPECT_EQ((*damage)[1].path, flipped);
  EXPECT_THAT((*damage)[1].problem, HasSubstr("SHA-256"));
  EXPECT_EQ((*damage)[2].backup_id, other.id);
  EXPECT_EQ((*damage)[2].file, "manifest.json");
  EXPECT_THAT((*damage)[2].problem, HasSubstr("SHA-256"));

  fs::remove(flipped);
  damage = repo->Verify({m.id});
  ASSERT_TRUE(damage.ok());
  ASSERT_EQ(damage->size(), 2u);
  EXPECT_EQ((*damage)[1].problem, "missing");
  EXPECT_TRUE(absl::IsNotFound(repo->Verify({"19990101T000000Z"}).status()));
  // List refuses to guess around a damaged manifest, naming it.
  EXPECT_THAT(repo->List().status().message(), HasSubstr(other.id));
}

TEST_F(RepositoryTest, DeleteRemovesOnlyFilesNoRemainingBackupUses) {
  absl::StatusOr<Repository> repo = Repository::Open((root_ / "repo").string(), true);
  ASSERT_TRUE(repo.ok());
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const std::string big(10'000, 'b');
  const Manifest first = Take(*repo, t0, "one", big);
  const Manifest second = Take(*repo, t0 + absl::Hours(1), "two", big);

  EXPECT_TRUE(absl::IsNotFound(repo->Delete({first.id, "nope"}).status()));
  ASSERT_EQ(repo->List()->size(), 2u);  // Nothing deleted.

  absl::StatusOr<Repository::DeleteStats> stats = repo->Delete({first.id});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->backups, 1);
  EXPECT_EQ(stats->files_removed, 3);  // Its own files; the shared big one stays.
  EXPECT_TRUE(fs::exists(repo->StoredPath(Sha256Hex(big))));
  absl::StatusOr<std::vector<Manifest>> left = repo->List();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, second.id);
  EXPECT_THAT(*repo->Verify({}), IsEmpty());
}

TEST_F(RepositoryTest, OneWriterAtATime) {
  absl::StatusOr<Repository> repo = Repository::Open((root_ / "repo").string(), true);
  ASSERT_TRUE(repo.ok());
  {
    absl::StatusOr<Repository::WriterLock> first = repo->LockForWriting();
    ASSERT_TRUE(first.ok()) << first.status();
    // flock locks belong to open file descriptions: a second open conflicts
    // even within one process, as another dashctl would.
    absl::Status second = repo->LockForWriting().status();
    EXPECT_TRUE(absl::IsFailedPrecondition(second)) << second;
    EXPECT_THAT(second.message(), HasSubstr(absl::StrCat("pid ", getpid())));
  }
  EXPECT_TRUE(repo->LockForWriting().ok());  // Released with the first.
}

TEST(SelectExpiredTest, KeepsTheNewestNAndTheYoungAndAlwaysTheLast) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  std::vector<Manifest> backups;
  for (int age_h : {96, 72, 48, 24, 1}) {
    Manifest m;
    m.id = absl::StrCat("b", age_h);
    m.created = now - absl::Hours(age_h);
    backups.push_back(m);
  }
  EXPECT_THAT(SelectExpired(backups, 2, std::nullopt, now), ElementsAre("b96", "b72", "b48"));
  EXPECT_THAT(SelectExpired(backups, std::nullopt, absl::Hours(50), now),
              ElementsAre("b96", "b72"));
  // Both: only what is outside the newest N *and* too old.
  EXPECT_THAT(SelectExpired(backups, 4, absl::Hours(50), now), ElementsAre("b96"));
  EXPECT_THAT(SelectExpired(backups, std::nullopt, absl::ZeroDuration(), now),
              ElementsAre("b96", "b72", "b48", "b24"));
  EXPECT_THAT(SelectExpired(backups, std::nullopt, std::nullopt, now), IsEmpty());
}

}  // namespace
}  // namespace dash::backup
