// dashctl backup against a real cluster (a control plane, three nodes and a
// router as processes, secured as the harness says): a backup holds, per
// shard, exactly the leader's state at its recorded LSN (rebuilt from the
// repository, opened with RocksDB and digested like `dashctl verify` does)
// with every write acknowledged before it; the next backup stores only what
// changed; verify names damaged files; delete and prune keep what other
// backups use; refusals change nothing. A cluster destroyed and restored into
// new data directories (--restore_from) has equal replicas, answers queries
// exactly as before and takes writes; a restore refuses a damaged backup and
// a data directory that is not empty, writing nothing.
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/jwt.h"
#include "dash/v1/node.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "node/shard/state_checksum.h"
#include "node/storage/engine.h"
#include "tests/harness/cluster.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using ::testing::HasSubstr;
using testing::TestSecurity;

class BackupTest : public ::testing::Test {
 protected:
  virtual testing::ClusterOptions Options() const { return testing::ClusterOptions(); }

  void SetUp() override {
    cluster_ = std::make_unique<testing::LocalCluster>(dir_.Sub("cluster"), Options());
    ASSERT_TRUE(cluster_->Start().ok());
    admin_token_ = dir_.Sub("admin.token");
    reader_token_ = dir_.Sub("reader.token");
    if (TestSecurity::Get().secure()) {
      std::ofstream(admin_token_) << TestSecurity::Get().Mint(
          {"*"}, {jwt::Role::kAdmin, jwt::Role::kWrite, jwt::Role::kRead});
      std::ofstream(reader_token_) << TestSecurity::Get().Mint({"*"}, {jwt::Role::kRead});
    }
  }

  // dashctl with the admin token (or `token`), against the router and the
  // control plane. stderr goes to a file of its own.
  testing::CommandResult Dashctl(std::vector<std::string> args, const std::string& token = "") {
    last_err_ = dir_.Sub(absl::StrCat("dashctl-", ++runs_, ".err"));
    return testing::RunCommand(testing::BinaryPath("dashctl/dashctl"), DashctlArgs(args, token), "",
                               last_err_);
  }
  std::vector<std::string> DashctlArgs(const std::vector<std::string>& args,
                                       const std::string& token = "") {
    std::vector<std::string> all = {
        absl::StrCat("--addr=", cluster_->router().address()),
        absl::StrCat("--controlplane=", cluster_->controlplane().address())};
    if (TestSecurity::Get().secure()) {
      all.push_back(absl::StrCat("--tls-ca=", TestSecurity::Get().dir(), "/ca.pem"));
      all.push_back(absl::StrCat("--token-file=", token.empty() ? admin_token_ : token));
    } else {
      all.push_back("--plaintext");
    }
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }
  std::string LastErr() const {
    std::ifstream in(last_err_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Ingests claims `from`..`to`-1 (each with two quoted pieces of evidence);
  // returns the highest acknowledged LSN per shard.
  std::map<uint32_t, uint64_t> Ingest(int from, int to) {
    const std::string file = dir_.Sub(absl::StrCat("claims-", from, ".jsonl"));
    {
      std::ofstream out(file);
      for (int i = from; i < to; ++i) {
        Json evidence = Json::array();
        for (int e = 0; e < 2; ++e) {
          evidence.push_back(
              {{"evidence_id", absl::StrCat("c", i, "-e", e)},
               {"stance", e == 0 ? "STANCE_SUPPORTS" : "STANCE_CONTRADICTS"},
               {"citation",
                {{"source_uri", absl::StrCat("https://example.org/", i)},
                 {"quote", absl::StrCat("quote ", e, " of claim ", i, " on sea ice")}}}});
        }
        out << Json{{"claim",
                     {{"claim_id", absl::StrCat("c", i)},
                      {"text", absl::StrCat("claim ", i, " about arctic sea ice")}}},
                    {"evidence", evidence}}
                   .dump()
            << "\n";
      }
    }
    testing::CommandResult r = Dashctl({"ingest", file, "--tenant=t"});
    EXPECT_EQ(r.exit_code, 0) << LastErr();
    std::map<uint32_t, uint64_t> acked;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      Json j = Json::parse(line, nullptr, false);
      if (!j.contains("token")) continue;
      const uint32_t shard = j["token"].value("shard", 0u);
      const uint64_t lsn = std::stoull(j["token"]["lsn"].get<std::string>());
      if (lsn > acked[shard]) {
        last_tokens_[shard] =
            absl::StrCat(shard, ":", j["token"]["epoch"].get<std::string>(), ":", lsn);
      }
      acked[shard] = std::max(acked[shard], lsn);
    }
    return acked;
  }

  // The top 10 of a query: claim ids and scores, in order.
  std::vector<std::pair<std::string, double>> Top10(const std::string& text) {
    testing::CommandResult r = Dashctl({"query", "--tenant=t", "-k", "10", "--json", text});
    EXPECT_EQ(r.exit_code, 0) << LastErr();
    std::vector<std::pair<std::string, double>> out;
    const Json j = Json::parse(r.out, nullptr, false);
    if (!j.contains("hits")) return out;
    for (const Json& h : j["hits"]) {
      out.emplace_back(h["record"]["claim"]["claim_id"].get<std::string>(),
                       h["score"].get<double>());
    }
    return out;
  }

  // `dashctl backup archive` into `dest`, sealing often, as a process.
  std::unique_ptr<testing::Process> StartArchiver(const std::string& dest) {
    absl::StatusOr<std::unique_ptr<testing::Process>> archiver = testing::Process::Start(
        testing::BinaryPath("dashctl/dashctl"),
        DashctlArgs({"backup", "archive", "--dest=" + dest, "--seal-interval=0.3"}),
        dir_.Sub(absl::StrCat("archiver-", ++runs_, ".log")));
    EXPECT_TRUE(archiver.ok()) << archiver.status();
    return archiver.ok() ? *std::move(archiver) : nullptr;
  }

  Json CreateBackup(const std::string& dest) {
    testing::CommandResult r =
        Dashctl({"backup", "create", absl::StrCat("--dest=", dest), "--json"});
    EXPECT_EQ(r.exit_code, 0) << LastErr();
    return Json::parse(r.out, nullptr, false);
  }

  // The digest of one shard's replica on `node`, as dashctl verify asks it.
  v1::ReplicaChecksum ReplicaSum(const std::string& node, uint32_t shard) {
    auto stub = v1::NodeAdmin::NewStub(cluster_->node(node).channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ReplicaChecksumRequest req;
    req.set_shard(shard);
    v1::ReplicaChecksum sum;
    grpc::Status st = stub->GetReplicaChecksum(&ctx, req, &sum);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return sum;
  }

  // Rebuilds one shard's checkpoint from the repository (the files under
  // their names, as a restore will) and digests it.
  absl::StatusOr<shard::StateChecksum> BackupSum(const std::string& dest, const std::string& id,
                                                 uint32_t shard) {
    const Json m = Manifest(dest, id);
    const std::string dir = dir_.Sub(absl::StrCat("rebuilt-", id, "-", shard));
    fs::create_directories(dir);
    for (const Json& s : m["shards"]) {
      if (s["shard"] != shard) continue;
      for (const Json& f : s["files"]) {
        const std::string sha = f["sha256"];
        fs::copy_file(fs::path(dest) / "files" / sha.substr(0, 2) / sha,
                      fs::path(dir) / f["name"].get<std::string>());
      }
    }
    storage::EngineOptions options;
    options.create_if_missing = false;
    absl::StatusOr<std::unique_ptr<storage::Engine>> engine =
        storage::OpenRocksEngine(dir, options);
    if (!engine.ok()) return engine.status();
    return shard::ChecksumOf(*(*engine)->NewSnapshot());
  }

  static Json Manifest(const std::string& dest, const std::string& id) {
    std::ifstream in(fs::path(dest) / "backups" / id / "manifest.json");
    return Json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  }

  static int StoredFiles(const std::string& dest) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(fs::path(dest) / "files")) {
      n += e.is_regular_file() ? 1 : 0;
    }
    return n;
  }

  testing::TestDir dir_;
  std::unique_ptr<testing::LocalCluster> cluster_;
  // Per shard, the token of the newest write Ingest saw acknowledged.
  std::map<uint32_t, std::string> last_tokens_;
  std::string admin_token_, reader_token_, last_err_;
  int runs_ = 0;
};

TEST_F(BackupTest, ABackupHoldsEachLeadersStateAtItsCutAndTheNextOneOnlyWhatChanged) {
  const std::map<uint32_t, uint64_t> acked = Ingest(0, 300);
  ASSERT_EQ(acked.size(), 4u);  // Every shard got writes.
  const std::string dest = dir_.Sub("backups");
  const Json first = CreateBackup(dest);
  ASSERT_TRUE(first.is_object()) << LastErr();
  EXPECT_EQ(first["shards"], 4);
  EXPECT_GT(first["total_bytes"].get<uint64_t>(), 0u);
  // Each file comes once; identical ones (shards' equal OPTIONS files) are
  // linked to the copy already stored.
  EXPECT_EQ(first["copied_bytes"].get<uint64_t>() + first["reused_bytes"].get<uint64_t>(),
            first["total_bytes"].get<uint64_t>());

  absl::StatusOr<v1::Placement> placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok());
  for (const Json& cut : first["cut"]) {
    const uint32_t shard = cut["shard"];
    // Every write acknowledged before the backup is inside its cut...
    EXPECT_GE(cut["last_lsn"].get<uint64_t>(), acked.at(shard)) << "shard " << shard;
    // ...and the backup is the leader's state at that LSN, exactly.
    const v1::ShardEntry& entry = placement->shards(shard);
    EXPECT_EQ(cut["leader"], entry.leader_node_id());
    const v1::ReplicaChecksum live = ReplicaSum(entry.leader_node_id(), shard);
    ASSERT_EQ(live.last_lsn(), cut["last_lsn"].get<uint64_t>()) << "no writes since the backup";
    absl::StatusOr<shard::StateChecksum> saved = BackupSum(dest, first["id"], shard);
    ASSERT_TRUE(saved.ok()) << saved.status();
    EXPECT_EQ(saved->last_lsn, live.last_lsn());
    EXPECT_EQ(saved->sha256, live.sha256()) << "shard " << shard;
    EXPECT_EQ(saved->keys, live.keys());
  }

  // More writes, a second backup: what did not change is linked, not copied.
  const int files_after_first = StoredFiles(dest);
  const std::map<uint32_t, uint64_t> more = Ingest(300, 340);
  const Json second = CreateBackup(dest);
  ASSERT_TRUE(second.is_object()) << LastErr();
  EXPECT_NE(second["id"], first["id"]);
  EXPECT_EQ(second["copied_bytes"].get<uint64_t>() + second["reused_bytes"].get<uint64_t>(),
            second["total_bytes"].get<uint64_t>());
  // Whatever the first backup stored is not copied again.
  const Json m1 = Manifest(dest, first["id"]), m2 = Manifest(dest, second["id"]);
  std::set<std::string> stored_before;
  for (const Json& s : m1["shards"]) {
    for (const Json& f : s["files"]) stored_before.insert(f["sha256"].get<std::string>());
  }
  uint64_t unchanged = 0;
  for (const Json& s : m2["shards"]) {
    for (const Json& f : s["files"]) {
      if (stored_before.count(f["sha256"].get<std::string>()) > 0)
        unchanged += f["size"].get<uint64_t>();
    }
  }
  EXPECT_GT(unchanged, 0u);
  EXPECT_LE(second["copied_bytes"].get<uint64_t>(),
            second["total_bytes"].get<uint64_t>() - unchanged);
  for (const Json& cut : second["cut"]) {
    const uint32_t shard = cut["shard"];
    if (more.count(shard) > 0) EXPECT_GE(cut["last_lsn"].get<uint64_t>(), more.at(shard));
  }
  EXPECT_GT(StoredFiles(dest), files_after_first);

  testing::CommandResult list = Dashctl({"backup", "list", "--dest=" + dest, "--json"});
  ASSERT_EQ(list.exit_code, 0) << LastErr();
  const Json listed = Json::parse(list.out);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]["id"], first["id"]);
  EXPECT_EQ(listed[1]["id"], second["id"]);
  EXPECT_EQ(Dashctl({"backup", "verify", "--dest=" + dest}).exit_code, 0) << LastErr();

  // Deleting the first keeps every file the second uses: it still verifies
  // and still rebuilds to its shards' state.
  testing::CommandResult del =
      Dashctl({"backup", "delete", "--dest=" + dest, first["id"].get<std::string>()});
  ASSERT_EQ(del.exit_code, 0) << LastErr();
  EXPECT_THAT(del.out, HasSubstr("deleted 1 backups"));
  EXPECT_EQ(Dashctl({"backup", "verify", "--dest=" + dest}).exit_code, 0) << LastErr();
  for (uint32_t shard = 0; shard < 4; ++shard) {
    EXPECT_TRUE(BackupSum(dest, second["id"], shard).ok()) << "shard " << shard;
  }
  // Retention: keeping the newest one deletes nothing more.
  testing::CommandResult prune =
      Dashctl({"backup", "prune", "--dest=" + dest, "--keep-last=1", "--json"});
  ASSERT_EQ(prune.exit_code, 0) << LastErr();
  EXPECT_EQ(Json::parse(prune.out)["deleted"].size(), 0u);
}

TEST_F(BackupTest, VerifyNamesTruncatedFlippedAndMissingFiles) {
  Ingest(0, 60);
  const std::string dest = dir_.Sub("backups");
  const Json backup = CreateBackup(dest);
  ASSERT_TRUE(backup.is_object()) << LastErr();
  const Json m = Manifest(dest, backup["id"]);
  // The largest file only shard 0 has gets one bit flipped; shard 1's is
  // truncated, shard 2's deleted.
  std::map<std::string, int> uses;
  for (const Json& s : m["shards"]) {
    for (const Json& f : s["files"]) ++uses[f["sha256"].get<std::string>()];
  }
  auto largest = [&](int shard) {
    Json best;
    for (const Json& f : m["shards"][shard]["files"]) {
      if (uses[f["sha256"].get<std::string>()] > 1) continue;
      if (best.is_null() || f["size"] > best["size"]) best = f;
    }
    const std::string sha = best["sha256"];
    return std::make_pair(best["name"].get<std::string>(),
                          (fs::path(dest) / "files" / sha.substr(0, 2) / sha).string());
  };
  const auto [flipped_name, flipped] = largest(0);
  const auto [truncated_name, truncated] = largest(1);
  const auto [missing_name, missing] = largest(2);
  ASSERT_NE(flipped, truncated);
  {
    fs::permissions(flipped, fs::perms::owner_write, fs::perm_options::add);
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(fs::file_size(flipped) / 2);
    const char c = static_cast<char>(f.get());
    f.seekp(fs::file_size(flipped) / 2);
    f.put(static_cast<char>(c ^ 0x10));
  }
  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  fs::remove(missing);

  testing::CommandResult verify = Dashctl({"backup", "verify", "--dest=" + dest});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_THAT(verify.out, HasSubstr(absl::StrCat("shard 0: ", flipped_name, " (", flipped,
                                                 "): SHA-256 differs")));
  EXPECT_THAT(verify.out, HasSubstr(absl::StrCat("shard 1: ", truncated_name)));
  EXPECT_THAT(verify.out, HasSubstr("instead of"));
  EXPECT_THAT(verify.out,
              HasSubstr(absl::StrCat("shard 2: ", missing_name, " (", missing, "): missing")));
}

TEST_F(BackupTest, RefusalsChangeNothing) {
  Ingest(0, 20);
  // A directory that is not a repository is not written into.
  const std::string foreign = dir_.Sub("foreign");
  fs::create_directories(foreign);
  std::ofstream(foreign + "/precious") << "keep me";
  testing::CommandResult r = Dashctl({"backup", "create", "--dest=" + foreign});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(LastErr(), HasSubstr("not a DASH backup repository"));
  EXPECT_EQ(std::distance(fs::directory_iterator(foreign), fs::directory_iterator()), 1);

  const std::string dest = dir_.Sub("backups");
  if (TestSecurity::Get().secure()) {
    // A token without the admin role cannot copy the cluster's data.
    r = Dashctl({"backup", "create", "--dest=" + dest}, reader_token_);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(LastErr(), HasSubstr("PERMISSION_DENIED"));
    if (fs::exists(dest)) {
      EXPECT_FALSE(fs::exists(fs::path(dest) / "backups") &&
                   !fs::is_empty(fs::path(dest) / "backups"));
    }
  }
  EXPECT_EQ(Dashctl({"backup", "list", "--dest=" + dir_.Sub("nothing")}).exit_code, 1);
  EXPECT_THAT(LastErr(), HasSubstr("not a DASH backup repository"));
  ASSERT_TRUE(CreateBackup(dest).is_object());
  r = Dashctl({"backup", "delete", "--dest=" + dest, "19990101T000000Z"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(LastErr(), HasSubstr("19990101T000000Z"));
  r = Dashctl({"backup", "prune", "--dest=" + dest, "--keep-within=soon"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(LastErr(), HasSubstr("--keep-within"));
  testing::CommandResult list = Dashctl({"backup", "list", "--dest=" + dest, "--json"});
  EXPECT_EQ(Json::parse(list.out).size(), 1u);
}

TEST_F(BackupTest, ARestoredClusterHasTheBackupsDataAnswersAsBeforeAndTakesWrites) {
  const std::map<uint32_t, uint64_t> acked = Ingest(0, 300);
  const std::vector<std::string> queries = {"arctic sea ice", "claim 17", "quote of claim 250"};
  std::vector<std::vector<std::pair<std::string, double>>> before;
  for (const std::string& q : queries) {
    before.push_back(Top10(q));
    ASSERT_EQ(before.back().size(), 10u) << q;
  }
  testing::CommandResult c17 = Dashctl({"get", "--tenant=t", "c17"});
  ASSERT_EQ(c17.exit_code, 0) << LastErr();
  const std::string dest = dir_.Sub("backups");
  const Json backup = CreateBackup(dest);
  ASSERT_TRUE(backup.is_object()) << LastErr();
  const std::string id = backup["id"];

  // Every process killed, every data directory gone with them: a new cluster
  // in new directories, on new ports, restored from the backup.
  cluster_.reset();
  fs::remove_all(dir_.Sub("cluster"));
  testing::ClusterOptions options;
  const std::vector<std::string> restore = {"--restore_from=" + dest, "--restore_backup=" + id};
  options.controlplane_args = restore;
  options.node_args = restore;
  cluster_ = std::make_unique<testing::LocalCluster>(dir_.Sub("restored"), options);
  ASSERT_TRUE(cluster_->Start().ok());

  // The new table: the backup's shards, leaders and replicas, at higher epochs.
  absl::StatusOr<v1::Placement> placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok());
  ASSERT_EQ(placement->shard_count(), 4u);
  for (const Json& cut : backup["cut"]) {
    const v1::ShardEntry& s = placement->shards(cut["shard"].get<int>());
    EXPECT_GT(s.epoch(), cut["epoch"].get<uint64_t>());
    // Every replica holds the backup's state (plus the record the new leader
    // opens its epoch with), and nothing acknowledged before the backup is
    // lost.
    for (const v1::ReplicaEntry& r : s.replicas()) {
      const v1::ReplicaChecksum sum = ReplicaSum(r.node_id(), s.shard());
      EXPECT_GE(sum.last_lsn(), cut["last_lsn"].get<uint64_t>()) << r.node_id();
      EXPECT_LE(sum.last_lsn(), cut["last_lsn"].get<uint64_t>() + 1) << r.node_id();
      EXPECT_GE(sum.last_lsn(), acked.at(s.shard()));
    }
  }
  EXPECT_EQ(Dashctl({"verify"}).exit_code, 0) << LastErr();
  for (size_t i = 0; i < queries.size(); ++i) EXPECT_EQ(Top10(queries[i]), before[i]) << queries[i];
  testing::CommandResult again = Dashctl({"get", "--tenant=t", "c17"});
  ASSERT_EQ(again.exit_code, 0) << LastErr();
  EXPECT_EQ(Json::parse(again.out)["record"], Json::parse(c17.out)["record"]);

  // It takes writes, and a node restarted with the flags still given keeps
  // its data (the restore is done, not repeated).
  const std::map<uint32_t, uint64_t> after = Ingest(300, 320);
  EXPECT_FALSE(after.empty());
  ASSERT_TRUE(cluster_->node("n2").Restart().ok());
  EXPECT_TRUE(cluster_
                  ->WaitForPlacement(
                      [](const v1::Placement& p) {
                        for (const v1::ShardEntry& s : p.shards()) {
                          for (const v1::ReplicaEntry& r : s.replicas()) {
                            if (r.node_id() != s.leader_node_id() && !r.in_sync()) return false;
                          }
                        }
                        return testing::LocalCluster::AllShardsLed(p);
                      },
                      absl::Seconds(60), "n2 back in sync")
                  .ok());
  EXPECT_EQ(Dashctl({"verify"}).exit_code, 0) << LastErr();
  testing::CommandResult late = Dashctl({"get", "--tenant=t", "c310"});
  EXPECT_EQ(late.exit_code, 0) << LastErr();
}

// Restoring into nodes with other ids (--node-map): here the same three
// processes, each taking another's replicas (n1 gets n3's, n2 n1's, n3
// n2's); the leaders follow their data, and the cluster answers as before.
TEST_F(BackupTest, ARestoreIntoRenamedNodesMovesEachNodesReplicasAndLeadership) {
  Ingest(0, 120);
  const std::vector<std::pair<std::string, double>> before = Top10("arctic sea ice");
  const std::string dest = dir_.Sub("backups");
  const Json backup = CreateBackup(dest);
  ASSERT_TRUE(backup.is_object()) << LastErr();
  // Refused: a node the backup does not have, and two nodes made one.
  EXPECT_EQ(Dashctl({"restore", "--from=" + dest, "--force", "--node-map=n9=n1"}).exit_code, 2);
  EXPECT_THAT(LastErr(), HasSubstr("n9 is not a node of backup"));
  EXPECT_EQ(Dashctl({"restore", "--from=" + dest, "--force", "--node-map=n1=n2"}).exit_code, 2);
  EXPECT_THAT(LastErr(), HasSubstr("would both be n2"));
  const std::map<std::string, std::string> renamed = {{"n1", "n2"}, {"n2", "n3"}, {"n3", "n1"}};
  testing::CommandResult r =
      Dashctl({"restore", "--from=" + dest, "--force", "--json", "--node-map=n1=n2,n2=n3,n3=n1"});
  ASSERT_EQ(r.exit_code, 0) << LastErr();
  const Json plan = Json::parse(r.out);

  cluster_.reset();
  fs::remove_all(dir_.Sub("cluster"));
  testing::ClusterOptions options;
  options.controlplane_args = plan["flags"].get<std::vector<std::string>>();
  options.node_args = options.controlplane_args;
  cluster_ = std::make_unique<testing::LocalCluster>(dir_.Sub("renamed"), options);
  ASSERT_TRUE(cluster_->Start().ok());
  absl::StatusOr<v1::Placement> placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok());
  int checked = 0;
  for (const Json& cut : backup["cut"]) {
    const v1::ShardEntry& s = placement->shards(cut["shard"].get<int>());
    // Led by the node that now holds the old leader's checkpoint, unless a
    // failover moved it since (then at a later epoch).
    if (s.epoch() == cut["epoch"].get<uint64_t>() + 1) {
      EXPECT_EQ(s.leader_node_id(), renamed.at(cut["leader"].get<std::string>())) << s.shard();
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "every shard failed over: nothing shows where leadership went";
  EXPECT_EQ(Dashctl({"verify"}).exit_code, 0) << LastErr();
  EXPECT_EQ(Top10("arctic sea ice"), before);
}

TEST_F(BackupTest, ARestoreRefusesADamagedBackupAndAFullDataDirectoryWritingNothing) {
  Ingest(0, 40);
  const std::string dest = dir_.Sub("backups");
  const Json backup = CreateBackup(dest);
  ASSERT_TRUE(backup.is_object()) << LastErr();
  auto restore_node = [&](const std::string& data_dir) {
    const std::string err = dir_.Sub(absl::StrCat("restore-", ++runs_, ".err"));
    testing::CommandResult r = testing::RunCommand(
        testing::BinaryPath("node/dash-node"),
        {"--node_id=n1", "--data_dir=" + data_dir, "--listen=127.0.0.1:0", "--restore_from=" + dest,
         "--restore_backup=" + backup["id"].get<std::string>(), "--insecure_no_auth"},
        "", err);
    std::ifstream in(err);
    return std::make_pair(r.exit_code, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  // A data directory holding anything: refused, left as it was.
  const std::string full = dir_.Sub("full");
  fs::create_directories(full + "/shard-0");
  auto [code, err] = restore_node(full);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(err, HasSubstr("is not empty"));
  EXPECT_EQ(std::distance(fs::directory_iterator(full), fs::directory_iterator()), 1);
  EXPECT_TRUE(fs::is_empty(full + "/shard-0"));

  // One stored file of n1's replicas flipped: refused, naming it; the data
  // directory is not even created.
  const Json m = Manifest(dest, backup["id"]);
  const Json file = m["shards"][0]["files"][0];
  const std::string sha = file["sha256"];
  const std::string stored = (fs::path(dest) / "files" / sha.substr(0, 2) / sha).string();
  {
    fs::permissions(stored, fs::perms::owner_write, fs::perm_options::add);
    std::fstream f(stored, std::ios::in | std::ios::out | std::ios::binary);
    const char c = static_cast<char>(f.get());
    f.seekp(0);
    f.put(static_cast<char>(c ^ 0x01));
  }
  const std::string fresh = dir_.Sub("fresh");
  std::tie(code, err) = restore_node(fresh);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(err, HasSubstr(file["name"].get<std::string>()));
  EXPECT_THAT(err, HasSubstr("damaged"));
  EXPECT_FALSE(fs::exists(fresh));
  // So does the control plane, for a backup that is not there.
  const std::string cp_err = dir_.Sub("cp.err");
  testing::CommandResult cp = testing::RunCommand(
      testing::BinaryPath("controlplane/dash-controlplane"),
      {"--data_dir=" + dir_.Sub("cp"), "--listen=127.0.0.1:0", "--restore_from=" + dest,
       "--restore_backup=19990101T000000Z", "--insecure_no_auth"},
      "", cp_err);
  EXPECT_EQ(cp.exit_code, 1);
  std::ifstream in(cp_err);
  EXPECT_THAT(std::string(std::istreambuf_iterator<char>(in), {}), HasSubstr("19990101T000000Z"));
  EXPECT_FALSE(fs::exists(dir_.Sub("cp")));
}

// Log archiving and point-in-time restore: `dashctl backup archive` runs
// beside the cluster through a failover; the cluster is then destroyed twice
// and restored from one backup plus the archive, once to the tokens of
// writes acknowledged mid-way (later writes absent) and once to the
// archive's end (every acknowledged write present: no loss).
TEST_F(BackupTest, PointInTimeRestoreReplaysTheArchivedLogToATokenOrToItsEnd) {
  Ingest(0, 100);
  const std::string dest = dir_.Sub("backups");
  const Json first = CreateBackup(dest);
  ASSERT_TRUE(first.is_object()) << LastErr();
  std::unique_ptr<testing::Process> archiver = StartArchiver(dest);
  ASSERT_NE(archiver, nullptr);
  Ingest(100, 200);
  const std::map<uint32_t, std::string> mid = last_tokens_;
  ASSERT_EQ(mid.size(), 4u);
  // Shard 0's leader replaced mid-archive: the archiver follows the new one.
  const uint64_t epoch0 = cluster_->Placement()->shards(0).epoch();
  ASSERT_EQ(Dashctl({"failover", "--shard=0"}).exit_code, 0) << LastErr();
  ASSERT_TRUE(cluster_
                  ->WaitForPlacement(
                      [epoch0](const v1::Placement& p) {
                        return p.shards(0).epoch() > epoch0 &&
                               testing::LocalCluster::AllShardsLed(p);
                      },
                      absl::Seconds(30), "shard 0 led again")
                  .ok());
  const std::map<uint32_t, uint64_t> end = Ingest(200, 300);
  ASSERT_EQ(end.size(), 4u);

  // `restore` plans, and says how far the archive goes.
  auto plan = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"restore", "--from=" + dest, "--json", "--force"});
    testing::CommandResult r = Dashctl(args);
    EXPECT_EQ(r.exit_code, 0) << LastErr();
    return Json::parse(r.out, nullptr, false);
  };
  ASSERT_TRUE(testing::PollUntil(
                  [&] {
                    const Json j = plan({});
                    if (!j.contains("shards")) return false;
                    for (const Json& s : j["shards"]) {
                      if (s["archived_lsn"].get<uint64_t>() < end.at(s["shard"].get<uint32_t>())) {
                        return false;
                      }
                    }
                    return true;
                  },
                  absl::Seconds(30), "every acknowledged write archived", absl::Milliseconds(200))
                  .ok());
  // Killed, not stopped: what it synced is what it has.
  archiver->Signal(SIGKILL);
  archiver->Wait();
  // A cluster answering at --controlplane: no plan without --force.
  EXPECT_EQ(Dashctl({"restore", "--from=" + dest}).exit_code, 1);
  EXPECT_THAT(LastErr(), HasSubstr("--force"));

  std::vector<std::string> to;
  for (const auto& [shard, token] : mid) to.push_back(token);
  const Json to_mid = plan({"--to-token=" + absl::StrJoin(to, ",")});
  ASSERT_TRUE(to_mid.contains("flags")) << LastErr();
  for (const Json& s : to_mid["shards"]) {
    const uint32_t shard = s["shard"];
    EXPECT_EQ(
        absl::StrCat(shard, ":", s["to_epoch"].get<uint64_t>(), ":", s["to_lsn"].get<uint64_t>()),
        mid.at(shard));
    EXPECT_GT(s["replayed_records"].get<uint64_t>(), 0u) << shard;
  }
  const Json to_end = plan({});

  auto destroy_and_restore = [&](const Json& p, const std::string& name) {
    cluster_.reset();
    fs::remove_all(dir_.Sub("cluster"));
    testing::ClusterOptions options;
    options.controlplane_args = p["flags"].get<std::vector<std::string>>();
    options.node_args = options.controlplane_args;
    cluster_ = std::make_unique<testing::LocalCluster>(dir_.Sub(name), options);
    ASSERT_TRUE(cluster_->Start().ok());
    absl::StatusOr<v1::Placement> placement = cluster_->Placement();
    ASSERT_TRUE(placement.ok());
    for (const Json& s : p["shards"]) {
      EXPECT_GT(placement->shards(s["shard"].get<int>()).epoch(), s["to_epoch"].get<uint64_t>());
    }
    EXPECT_EQ(Dashctl({"verify"}).exit_code, 0) << LastErr();
  };
  auto present = [&](int i) {
    return Dashctl({"get", "--tenant=t", absl::StrCat("c", i)}).exit_code == 0;
  };

  destroy_and_restore(to_mid, "to-mid");
  for (int i = 0; i < 300; i += 7) EXPECT_EQ(present(i), i < 200) << "c" << i;
  EXPECT_TRUE(present(199));
  EXPECT_FALSE(present(200));

  destroy_and_restore(to_end, "to-end");
  for (int i = 0; i < 300; i += 7) EXPECT_TRUE(present(i)) << "c" << i;
  EXPECT_TRUE(present(299));

  // Archive retention: a backup of the restored cluster, then the first
  // backup deleted; the archive's sealed segments, all before the new cut,
  // go with it, and a restore plans from the new backup alone.
  const Json second = CreateBackup(dest);
  ASSERT_TRUE(second.is_object()) << LastErr();
  testing::CommandResult del =
      Dashctl({"backup", "delete", "--dest=" + dest, "--json", first["id"].get<std::string>()});
  ASSERT_EQ(del.exit_code, 0) << LastErr();
  EXPECT_GT(Json::parse(del.out)["archive_segments_removed"].get<int>(), 0) << del.out;
  const Json after = plan({});
  ASSERT_TRUE(after.contains("backup")) << LastErr();
  EXPECT_EQ(after["backup"], second["id"]);
}

// Nodes that keep only the last 4 records of each shard's log.
class ShortLogBackupTest : public BackupTest {
 protected:
  testing::ClusterOptions Options() const override {
    testing::ClusterOptions options;
    options.node_args = {"--log_retention_records=4"};
    return options;
  }
};

// An archiver cannot skip records the leaders no longer hold: with an empty
// archive it asks for a backup first; behind the leaders' logs it names the
// gap and stops, and what it archived before stays restorable.
TEST_F(ShortLogBackupTest, AnArchiverBehindTheLeadersLogsNamesTheGapAndStops) {
  // The archiver as a process that must stop on its own: (exited, its output).
  auto archive_until_exit = [&](const std::string& dest) {
    const std::string log = dir_.Sub(absl::StrCat("archiver-", ++runs_, ".log"));
    absl::StatusOr<std::unique_ptr<testing::Process>> p =
        testing::Process::Start(testing::BinaryPath("dashctl/dashctl"),
                                DashctlArgs({"backup", "archive", "--dest=" + dest}), log);
    EXPECT_TRUE(p.ok());
    const bool exited = p.ok() && testing::PollUntil([&] { return !(*p)->Running(); },
                                                     absl::Seconds(30), "the archiver to stop")
                                      .ok();
    const int status = exited ? (*p)->Wait() : -1;
    std::ifstream in(log);
    return std::make_pair(exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                          std::string(std::istreambuf_iterator<char>(in), {}));
  };
  for (int k = 0; k < 6; ++k) Ingest(40 * k, 40 * k + 40);
  const std::string dest = dir_.Sub("backups");
  auto [code, out] = archive_until_exit(dest);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("take a backup"));

  ASSERT_TRUE(CreateBackup(dest).is_object()) << LastErr();
  {
    std::unique_ptr<testing::Process> archiver = StartArchiver(dest);
    ASSERT_NE(archiver, nullptr);
    const std::map<uint32_t, uint64_t> acked = Ingest(240, 280);
    ASSERT_TRUE(testing::PollUntil(
                    [&] {
                      testing::CommandResult p =
                          Dashctl({"restore", "--from=" + dest, "--json", "--force"});
                      const Json j = Json::parse(p.out, nullptr, false);
                      if (!j.contains("shards")) return false;
                      for (const Json& s : j["shards"]) {
                        const uint32_t shard = s["shard"];
                        if (acked.count(shard) != 0 &&
                            s["archived_lsn"].get<uint64_t>() < acked.at(shard)) {
                          return false;
                        }
                      }
                      return true;
                    },
                    absl::Seconds(30), "the archive to catch up", absl::Milliseconds(200))
                    .ok());
  }  // The archiver is SIGKILLed here.
  const Json before =
      Json::parse(Dashctl({"restore", "--from=" + dest, "--json", "--force"}).out, nullptr, false);
  ASSERT_TRUE(before.contains("shards")) << LastErr();
  // Writes it misses, beyond the leaders' retention.
  for (int k = 7; k < 13; ++k) Ingest(40 * k, 40 * k + 40);
  std::tie(code, out) = archive_until_exit(dest);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("archive gap"));
  EXPECT_THAT(out, HasSubstr("no longer in the leader's log"));
  // What it had is still there, and restorable.
  const Json after =
      Json::parse(Dashctl({"restore", "--from=" + dest, "--json", "--force"}).out, nullptr, false);
  ASSERT_TRUE(after.contains("shards")) << LastErr();
  EXPECT_EQ(after["restore_to"], before["restore_to"]);
}

}  // namespace
}  // namespace dash
