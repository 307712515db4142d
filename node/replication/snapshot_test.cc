// Snapshot catch-up end to end: a SnapshotServer over a real ShardHost behind
// a gRPC server on 127.0.0.1:0, FetchSnapshot into a staging directory, and
// ShardHost::InstallSnapshot into a second host. A fake Snapshots service
// stands in for a leader that sends damaged chunks or files.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/rate_limiter.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "node/replication/snapshot_fetcher.h"
#include "node/replication/snapshot_server.h"
#include "node/shard/shard_host.h"
#include "query/test_util.h"

namespace dash::replication {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr size_t kChunk = 64 << 10;
constexpr int kBatches = 30;
constexpr int kClaimsPerBatch = 100;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

// Entries directly in `dir` (0 when it does not exist).
size_t CountEntries(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

// A gRPC server on a free local port serving one service, and a stub to it.
class TestServer {
 public:
  explicit TestServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    stub_ = v1::Snapshots::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }
  ~TestServer() {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
  v1::Snapshots::Stub* stub() { return stub_.get(); }
  bool ok() const { return server_ != nullptr && port_ != 0; }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Snapshots::Stub> stub_;
};

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        (fs::path(::testing::TempDir()) /
         absl::StrCat("snapshot-", ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    fs::remove_all(root_);
    leader_ = OpenHost("leader");
    std::shared_ptr<shard::ShardReplica> r = leader_->replica(0);
    for (int b = 0; b < kBatches; ++b) {
      v1::WriteRequest req;
      req.set_tenant("t");
      for (int i = 0; i < kClaimsPerBatch; ++i) {
        const std::string id = absl::StrCat("c", b * kClaimsPerBatch + i);
        *req.add_ops() = query::testing::ClaimOp(
            id, absl::StrCat("claim ", id, " about sea ice, glaciers and ocean heat ", b * i));
        *req.add_ops() = query::testing::EvidenceOp(id, id + "-e");
      }
      auto w = r->WriteAndWait(req);
      ASSERT_TRUE(w.ok()) << w.status();
    }
    follower_ = OpenHost("follower");
    // A claim the follower has and the leader has not: gone once replaced.
    v1::WriteRequest stale = query::testing::ClaimBatch("t", "stale-only-here");
    ASSERT_TRUE(follower_->replica(0)->WriteAndWait(stale).ok());
  }

  void TearDown() override {
    server_.reset();
    snapshot_server_.reset();
    follower_.reset();
    leader_.reset();
    fs::remove_all(root_);
  }

  std::unique_ptr<shard::ShardHost> OpenHost(const std::string& name, uint32_t shard_count = 1) {
    shard::HostOptions o;
    o.node_id = name;
    o.data_dir = absl::StrCat(root_, "/", name);
    o.shard_count = shard_count;
    o.replica.sync = false;
    auto host = shard::ShardHost::Open(o);
    EXPECT_TRUE(host.ok()) << host.status();
    return host.ok() ? std::move(*host) : nullptr;
  }

  SnapshotServerOptions ServerOptions() {
    SnapshotServerOptions o;
    o.snapshot_dir = absl::StrCat(root_, "/leader/snapshots");
    o.chunk_bytes = kChunk;
    o.clock = &clock_;
    return o;
  }

  void StartServer(const SnapshotServerOptions& options) {
    auto s = SnapshotServer::Create(leader_.get(), options);
    ASSERT_TRUE(s.ok()) << s.status();
    snapshot_server_ = std::move(*s);
    server_ = std::make_unique<TestServer>(snapshot_server_.get());
    ASSERT_TRUE(server_->ok());
  }
  void StartServer() { StartServer(ServerOptions()); }

  uint64_t LeaderEpoch() { return leader_->replica(0)->State().epoch; }

  SnapshotFetchOptions FetchOptions(SnapshotFetchProgress* progress) {
    SnapshotFetchOptions o;
    o.shard = 0;
    o.epoch = LeaderEpoch();
    o.follower_node_id = "follower";
    o.staging_dir = follower_->SnapshotStagingDir(0);
    o.progress = progress;
    return o;
  }

  v1::SnapshotManifest StagedManifest() {
    v1::SnapshotManifest m;
    EXPECT_TRUE(m.ParseFromString(ReadFile(follower_->SnapshotStagingDir(0) + "/MANIFEST")));
    return m;
  }

  // Installs the staged snapshot in the follower and checks it is the
  // leader's replica.
  void ExpectInstalls(const v1::SnapshotManifest& m) {
    const std::string staging = follower_->SnapshotStagingDir(0);
    auto installed = follower_->InstallSnapshot(0, staging);
    ASSERT_TRUE(installed.ok()) << installed.status();
    EXPECT_EQ(follower_->replica(0), *installed);
    auto want = leader_->replica(0)->Checksum();
    auto got = (*installed)->Checksum();
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(got->sha256, want->sha256);
    EXPECT_EQ(got->keys, want->keys);
    EXPECT_EQ((*installed)->State().last_lsn, m.last_lsn());
    EXPECT_EQ(m.last_lsn(), static_cast<uint64_t>(kBatches));
    auto claim = (*installed)->GetClaim("t", "c1234");
    ASSERT_TRUE(claim.ok()) << claim.status();
    EXPECT_THAT(claim->record().claim().text(), HasSubstr("claim c1234 about sea ice"));
    EXPECT_EQ((*installed)->GetClaim("t", "stale-only-here").status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_FALSE(fs::exists(staging));
    // Only the installed replica is left of shard 0 (no replaced copy).
    EXPECT_EQ(CountEntries(root_ + "/follower"), 2u) << "shard-0 and snapshot-staging";
  }

  std::string root_;
  ManualClock clock_{1000000000};
  std::unique_ptr<shard::ShardHost> leader_;
  std::unique_ptr<shard::ShardHost> follower_;
  std::unique_ptr<SnapshotServer> snapshot_server_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(SnapshotTest, FetchedSnapshotInstallsAsTheLeadersReplica) {
  StartServer();
  SnapshotFetchProgress progress;
  auto m = FetchSnapshot(server_->stub(), FetchOptions(&progress));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->shard(), 0u);
  EXPECT_GT(m->files_size(), 1);
  EXPECT_EQ(progress.total_bytes, m->total_bytes());
  EXPECT_EQ(progress.bytes_received, m->total_bytes());
  EXPECT_EQ(progress.bytes_reused, 0u);
  EXPECT_EQ(progress.files_complete, static_cast<uint32_t>(m->files_size()));
  EXPECT_GT(progress.chunks_received, 4u) << "the test needs a snapshot of many chunks";
  EXPECT_EQ(progress.snapshots_created, 1u);
  // Released at the end: the leader keeps nothing.
  EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 0u);
  ExpectInstalls(*m);
}

TEST_F(SnapshotTest, CancelledFetchResumesWhereItStopped) {
  StartServer();
  SnapshotFetchProgress first;
  SnapshotFetchOptions o = FetchOptions(&first);
  o.cancelled = [&] { return first.chunks_received >= 5; };
  EXPECT_EQ(FetchSnapshot(server_->stub(), o).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(first.chunks_received, 5u);
  const v1::SnapshotManifest staged = StagedManifest();

  SnapshotFetchProgress second;
  auto m = FetchSnapshot(server_->stub(), FetchOptions(&second));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->snapshot_id(), staged.snapshot_id()) << "the same snapshot, continued";
  EXPECT_EQ(second.snapshots_created, 0u);
  EXPECT_EQ(second.bytes_reused, first.bytes_received);
  EXPECT_LT(second.bytes_received, m->total_bytes());
  EXPECT_EQ(second.bytes_received + second.bytes_reused, m->total_bytes());
  EXPECT_EQ(second.files_refetched, 0u);
  ExpectInstalls(*m);
}

TEST_F(SnapshotTest, CorruptedStagedFileIsFetchedAgain) {
  StartServer();
  SnapshotFetchProgress first;
  SnapshotFetchOptions o = FetchOptions(&first);
  o.cancelled = [&] { return first.files_complete >= 1; };
  EXPECT_EQ(FetchSnapshot(server_->stub(), o).status().code(), absl::StatusCode::kCancelled);
  const v1::SnapshotManifest staged = StagedManifest();
  const v1::SnapshotFile& done = staged.files(0);
  const std::string path = follower_->SnapshotStagingDir(0) + "/" + done.name();
  ASSERT_EQ(fs::file_size(path), done.size());
  FlipByte(path, done.size() / 2);

  SnapshotFetchProgress second;
  auto m = FetchSnapshot(server_->stub(), FetchOptions(&second));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(second.files_refetched, 1u);
  EXPECT_EQ(second.bytes_received, m->total_bytes()) << "only the first file was staged";
  EXPECT_EQ(Sha256Hex(ReadFile(path)), done.sha256());
  ExpectInstalls(*m);
}

TEST_F(SnapshotTest, SnapshotUnknownToTheLeaderStartsOver) {
  StartServer();
  SnapshotFetchProgress first;
  SnapshotFetchOptions o = FetchOptions(&first);
  o.cancelled = [&] { return first.chunks_received >= 3; };
  EXPECT_EQ(FetchSnapshot(server_->stub(), o).status().code(), absl::StatusCode::kCancelled);
  const v1::SnapshotManifest staged = StagedManifest();
  // The leader restarts: its snapshots are gone.
  server_.reset();
  snapshot_server_.reset();
  StartServer();

  SnapshotFetchProgress second;
  auto m = FetchSnapshot(server_->stub(), FetchOptions(&second));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NE(m->snapshot_id(), staged.snapshot_id());
  EXPECT_EQ(second.snapshots_created, 1u);
  EXPECT_EQ(second.bytes_received, m->total_bytes());
  ExpectInstalls(*m);
}

TEST_F(SnapshotTest, ServerErrorsNameTheProblem) {
  StartServer();
  v1::Snapshots::Stub* stub = server_->stub();
  {
    v1::CreateSnapshotRequest req;
    req.set_shard(0);
    req.set_epoch(LeaderEpoch() + 7);
    v1::SnapshotManifest m;
    grpc::ClientContext ctx;
    const absl::Status s = FromGrpcStatus(stub->CreateSnapshot(&ctx, req, &m), &ctx);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(GetRoutingHint(s).has_value()) << "a stale epoch carries a routing hint";
  }
  {
    v1::CreateSnapshotRequest req;
    req.set_shard(3);  // Not hosted.
    v1::SnapshotManifest m;
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->CreateSnapshot(&ctx, req, &m).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  v1::CreateSnapshotRequest create;
  create.set_shard(0);
  create.set_epoch(LeaderEpoch());
  create.set_follower_node_id("f");
  v1::SnapshotManifest m;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->CreateSnapshot(&ctx, create, &m).ok());
  }
  uint64_t total = 0;
  for (const auto& f : m.files()) {
    total += f.size();
    EXPECT_EQ(Sha256Hex(ReadFile(
                  absl::StrCat(root_, "/leader/snapshots/", m.snapshot_id(), "/", f.name()))),
              f.sha256());
  }
  EXPECT_EQ(m.total_bytes(), total);
  EXPECT_EQ(m.last_lsn(), static_cast<uint64_t>(kBatches));

  // Status and number of chunks of one FetchSnapshotFile.
  auto fetch = [&](const std::string& id, uint32_t shard, const std::string& name,
                   uint64_t offset) {
    v1::FetchSnapshotFileRequest req;
    req.set_snapshot_id(id);
    req.set_shard(shard);
    req.set_name(name);
    req.set_offset(offset);
    grpc::ClientContext ctx;
    auto reader = stub->FetchSnapshotFile(&ctx, req);
    v1::SnapshotChunk chunk;
    int chunks = 0;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.crc32(), Crc32(chunk.data()));
      EXPECT_LE(chunk.data().size(), kChunk);
      ++chunks;
    }
    return std::make_pair(reader->Finish(), chunks);
  };
  const v1::SnapshotFile& file = m.files(0);
  auto [unknown, c1] = fetch("0-doesnotexist", 0, file.name(), 0);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  auto [bad_name, c2] = fetch(m.snapshot_id(), 0, "../shard-0/CURRENT", 0);
  EXPECT_EQ(bad_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_name.error_message(), StartsWith("name:"));
  auto [bad_offset, c3] = fetch(m.snapshot_id(), 0, file.name(), file.size() + 1);
  EXPECT_EQ(bad_offset.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_offset.error_message(), StartsWith("offset:"));
  auto [bad_shard, c4] = fetch(m.snapshot_id(), 1, file.name(), 0);
  EXPECT_EQ(bad_shard.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_shard.error_message(), StartsWith("shard:"));
  auto [at_end, c5] = fetch(m.snapshot_id(), 0, file.name(), file.size());
  EXPECT_TRUE(at_end.ok());
  EXPECT_EQ(c5, 0);
  auto [whole, c6] = fetch(m.snapshot_id(), 0, file.name(), 0);
  EXPECT_TRUE(whole.ok()) << whole.error_message();
  EXPECT_EQ(c6, static_cast<int>((file.size() + kChunk - 1) / kChunk));

  // Release deletes the files; releasing again is fine.
  for (int i = 0; i < 2; ++i) {
    v1::ReleaseSnapshotRequest req;
    req.set_snapshot_id(m.snapshot_id());
    req.set_shard(0);
    v1::ReleaseSnapshotResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub->ReleaseSnapshot(&ctx, req, &resp).ok());
    EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 0u);
  }
  auto [released, c7] = fetch(m.snapshot_id(), 0, file.name(), 0);
  EXPECT_EQ(released.error_code(), grpc::StatusCode::NOT_FOUND);
}

class SnapshotStoreTest : public SnapshotTest {
 protected:
  void SetUp() override {
    SnapshotTest::SetUp();
    SnapshotStoreOptions o;
    o.dir = root_ + "/leader/snapshots";
    o.clock = &clock_;
    o.idle_expiry = absl::Minutes(10);
    o.max_per_shard = 2;
    auto store = SnapshotStore::Open(leader_.get(), o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    SnapshotTest::TearDown();
  }
  absl::StatusCode Probe(const v1::SnapshotManifest& m) {
    return store_->OpenFile(m.snapshot_id(), 0, m.files(0).name(), 0).status().code();
  }
  std::unique_ptr<SnapshotStore> store_;
};

TEST_F(SnapshotStoreTest, IdleSnapshotsExpireAndUsedOnesDoNot) {
  auto used = store_->Create(0, 0, "f1");
  auto idle = store_->Create(0, 0, "f2");
  ASSERT_TRUE(used.ok() && idle.ok());
  clock_.Advance(absl::Minutes(6));
  EXPECT_EQ(Probe(*used), absl::StatusCode::kOk);
  clock_.Advance(absl::Minutes(6));
  EXPECT_EQ(Probe(*idle), absl::StatusCode::kNotFound) << "idle for 12 minutes";
  EXPECT_EQ(Probe(*used), absl::StatusCode::kOk) << "used 6 minutes ago";
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 1u) << "the expired one's files are gone";
  {
    // Being read keeps a snapshot however long the reader takes.
    auto reader = store_->OpenFile(used->snapshot_id(), 0, used->files(0).name(), 0);
    ASSERT_TRUE(reader.ok());
    clock_.Advance(absl::Hours(1));
    EXPECT_EQ(store_->Release("unknown-id", 0).code(), absl::StatusCode::kOk);
    EXPECT_EQ(store_->size(), 1u);
    EXPECT_TRUE((*reader)->Read(0, 10).ok());
  }
  clock_.Advance(absl::Minutes(11));
  EXPECT_EQ(Probe(*used), absl::StatusCode::kNotFound);
  EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 0u);
}

TEST_F(SnapshotStoreTest, PerShardLimitEvictsTheLeastRecentlyUsed) {
  auto a = store_->Create(0, 0, "f1");
  clock_.Advance(absl::Seconds(1));
  auto b = store_->Create(0, 0, "f2");
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Probe(*a), absl::StatusCode::kOk);  // Now b is the least recently used.
  clock_.Advance(absl::Seconds(1));
  auto c = store_->Create(0, 0, "f3");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(Probe(*b), absl::StatusCode::kNotFound);
  EXPECT_EQ(Probe(*a), absl::StatusCode::kOk);
  EXPECT_EQ(Probe(*c), absl::StatusCode::kOk);
  EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 2u);

  // A follower asking again gives up its own earlier snapshot, not another's.
  auto c2 = store_->Create(0, 0, "f3");
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(Probe(*c), absl::StatusCode::kNotFound);
  EXPECT_EQ(Probe(*a), absl::StatusCode::kOk);

  // Snapshots being read are never evicted: with both read, no room.
  auto ra = store_->OpenFile(a->snapshot_id(), 0, a->files(0).name(), 0);
  auto rc = store_->OpenFile(c2->snapshot_id(), 0, c2->files(0).name(), 0);
  ASSERT_TRUE(ra.ok() && rc.ok());
  EXPECT_EQ(store_->Create(0, 0, "f4").status().code(), absl::StatusCode::kResourceExhausted);
  ra->reset();
  EXPECT_TRUE(store_->Create(0, 0, "f4").ok());
  EXPECT_EQ(Probe(*a), absl::StatusCode::kNotFound);
}

TEST_F(SnapshotTest, SharedLimiterPacesTheStreams) {
  constexpr uint64_t kRate = 128 << 10;  // Bytes per second.
  RateLimiter limiter(kRate, kChunk, &clock_, [this](absl::Duration d) { clock_.Advance(d); });
  SnapshotServerOptions options = ServerOptions();
  options.limiter = &limiter;
  StartServer(options);
  const int64_t start = clock_.NowMicros();
  SnapshotFetchProgress progress;
  auto m = FetchSnapshot(server_->stub(), FetchOptions(&progress));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_GT(m->total_bytes(), 4 * limiter.burst_bytes()) << "too small to show the pacing";
  // The bucket starts full; the rest is paid for at kRate.
  const double expected_s = static_cast<double>(m->total_bytes() - limiter.burst_bytes()) / kRate;
  EXPECT_NEAR((clock_.NowMicros() - start) / 1e6, expected_s, 0.01);
}

TEST_F(SnapshotTest, StopEndsAThrottledStream) {
  // 1 KiB/s: after the first chunk (the burst) the next one waits a minute.
  RateLimiter limiter(1 << 10, kChunk);
  SnapshotServerOptions options = ServerOptions();
  options.limiter = &limiter;
  options.clock = Clock::Real();
  StartServer(options);
  SnapshotFetchProgress progress;
  absl::Status result;
  std::thread fetch(
      [&] { result = FetchSnapshot(server_->stub(), FetchOptions(&progress)).status(); });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (progress.chunks_received < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(progress.chunks_received, 1u);
  snapshot_server_->Stop();
  fetch.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable) << result;
  EXPECT_EQ(CountEntries(root_ + "/leader/snapshots"), 0u) << "Stop deletes the snapshots";
}

// A leader serving one file "f" of three 1000-byte chunks, that can damage
// what it sends.
class FakeLeader final : public v1::Snapshots::Service {
 public:
  static constexpr size_t kFakeChunk = 1000;
  FakeLeader() {
    for (int i = 0; i < 3000; ++i) content_.push_back(static_cast<char>('a' + i % 26));
  }

  grpc::Status CreateSnapshot(grpc::ServerContext*, const v1::CreateSnapshotRequest* request,
                              v1::SnapshotManifest* m) override {
    m->set_snapshot_id("0-fake");
    m->set_shard(request->shard());
    m->set_last_lsn(7);
    v1::SnapshotFile* f = m->add_files();
    f->set_name("f");
    f->set_size(content_.size());
    f->set_sha256(lie_about_sha_ ? Sha256Hex("something else") : Sha256Hex(content_));
    m->set_total_bytes(content_.size());
    return grpc::Status::OK;
  }
  grpc::Status FetchSnapshotFile(grpc::ServerContext*, const v1::FetchSnapshotFileRequest* request,
                                 grpc::ServerWriter<v1::SnapshotChunk>* writer) override {
    if (request->snapshot_id() != "0-fake") return grpc::Status(grpc::StatusCode::NOT_FOUND, "");
    for (uint64_t off = request->offset(); off < content_.size(); off += kFakeChunk) {
      v1::SnapshotChunk chunk;
      chunk.set_offset(off);
      chunk.set_data(content_.substr(off, kFakeChunk));
      chunk.set_crc32(Crc32(chunk.data()));
      if (off == bad_crc_at_) {
        chunk.set_crc32(chunk.crc32() ^ 1);
        bad_crc_at_ = UINT64_MAX;  // Once.
      }
      if (!writer->Write(chunk)) break;
    }
    return grpc::Status::OK;
  }
  grpc::Status ReleaseSnapshot(grpc::ServerContext*, const v1::ReleaseSnapshotRequest*,
                               v1::ReleaseSnapshotResponse*) override {
    ++releases_;
    return grpc::Status::OK;
  }

  std::string content_;
  std::atomic<uint64_t> bad_crc_at_{UINT64_MAX};
  std::atomic<bool> lie_about_sha_{false};
  std::atomic<int> releases_{0};
};

class FakeLeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    staging_ = (fs::path(::testing::TempDir()) /
                absl::StrCat("fake-leader-",
                             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                   .string();
    fs::remove_all(staging_);
    server_ = std::make_unique<TestServer>(&leader_);
    ASSERT_TRUE(server_->ok());
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(staging_);
  }
  SnapshotFetchOptions Options(SnapshotFetchProgress* progress) {
    SnapshotFetchOptions o;
    o.shard = 0;
    o.staging_dir = staging_;
    o.progress = progress;
    return o;
  }
  std::string staging_;
  FakeLeader leader_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(FakeLeaderTest, BadChunkCrcIsDataLossAndKeepsTheGoodPrefix) {
  leader_.bad_crc_at_ = 1000;
  SnapshotFetchProgress first;
  auto failed = FetchSnapshot(server_->stub(), Options(&first));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss) << failed.status();
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("CRC"));
  EXPECT_EQ(fs::file_size(staging_ + "/f"), 1000u) << "cut back to the last good chunk";
  EXPECT_EQ(leader_.releases_, 0);

  SnapshotFetchProgress second;
  auto m = FetchSnapshot(server_->stub(), Options(&second));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(second.bytes_reused, 1000u);
  EXPECT_EQ(second.bytes_received, 2000u);
  EXPECT_EQ(ReadFile(staging_ + "/f"), leader_.content_);
  EXPECT_EQ(leader_.releases_, 1);
}

TEST_F(FakeLeaderTest, DamagedResumedPrefixIsFetchedAgainWhole) {
  SnapshotFetchProgress first;
  SnapshotFetchOptions o = Options(&first);
  o.cancelled = [&] { return first.chunks_received >= 1; };
  EXPECT_EQ(FetchSnapshot(server_->stub(), o).status().code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(fs::file_size(staging_ + "/f"), 1000u);
  FlipByte(staging_ + "/f", 10);

  SnapshotFetchProgress second;
  auto m = FetchSnapshot(server_->stub(), Options(&second));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(second.files_refetched, 1u);
  EXPECT_EQ(second.bytes_received, 2000u + 3000u);
  EXPECT_EQ(ReadFile(staging_ + "/f"), leader_.content_);
}

TEST_F(FakeLeaderTest, FileNotMatchingItsManifestIsDataLoss) {
  leader_.lie_about_sha_ = true;
  SnapshotFetchProgress progress;
  auto m = FetchSnapshot(server_->stub(), Options(&progress));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_FALSE(fs::exists(staging_ + "/f"));
}

TEST_F(FakeLeaderTest, AManifestNamingFilesOutsideTheStagingDirIsRefused) {
  class Evil final : public v1::Snapshots::Service {
    grpc::Status CreateSnapshot(grpc::ServerContext*, const v1::CreateSnapshotRequest*,
                                v1::SnapshotManifest* m) override {
      m->set_snapshot_id("0-evil");
      m->add_files()->set_name("../escaped");
      return grpc::Status::OK;
    }
  } evil;
  TestServer server(&evil);
  auto m = FetchSnapshot(server.stub(), Options(nullptr));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInternal) << m.status();
  EXPECT_FALSE(fs::exists(fs::path(staging_).parent_path() / "escaped"));
}

// InstallSnapshot's refusals leave the old replica in service.
class InstallTest : public SnapshotTest {
 protected:
  // A checkpoint of the leader's replica, as a fetch would stage it.
  std::string Stage() {
    const std::string staging = follower_->SnapshotStagingDir(0);
    fs::create_directories(fs::path(staging).parent_path());
    auto end = leader_->replica(0)->CreateCheckpoint(staging);
    EXPECT_TRUE(end.ok()) << end.status();
    std::ofstream(staging + "/MANIFEST") << "staged manifest";
    return staging;
  }
  bool HasStaleClaim(shard::ShardHost& host, uint32_t shard = 0) {
    auto r = host.replica(shard);
    return r != nullptr && r->GetClaim("t", "stale-only-here").ok();
  }
};

// A replica fenced at a newer epoch while it copied a snapshot of an older
// leader keeps that epoch: the installed copy must not acknowledge the
// deposed leader again.
TEST_F(InstallTest, TheInstalledReplicaKeepsTheEpochItWasFencedAt) {
  const std::string staging = Stage();
  const uint64_t leader_epoch = leader_->replica(0)->State().epoch;
  auto fenced = follower_->replica(0)->Fence(leader_epoch + 5);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  auto installed = follower_->InstallSnapshot(0, staging);
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_TRUE((*installed)->GetClaim("t", "c7").ok()) << "the snapshot's data";
  EXPECT_EQ((*installed)->State().epoch, leader_epoch + 5);
  shard::Role old_role;
  old_role.leader = false;
  old_role.epoch = leader_epoch;
  EXPECT_EQ((*installed)->AdoptRole(old_role).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(InstallTest, WaitsForTheReplicaToBeReleased) {
  const std::string staging = Stage();
  std::shared_ptr<shard::ShardReplica> held = follower_->replica(0);
  auto refused = follower_->InstallSnapshot(0, staging, absl::Milliseconds(50));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(follower_->replica(0), held) << "back in service";
  EXPECT_TRUE(fs::exists(staging + "/CURRENT"));

  // Released while InstallSnapshot waits.
  std::thread drop([&] {
    absl::SleepFor(absl::Milliseconds(20));
    held.reset();
  });
  auto installed = follower_->InstallSnapshot(0, staging);
  drop.join();
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_FALSE(HasStaleClaim(*follower_));
  EXPECT_TRUE((*installed)->GetClaim("t", "c7").ok());
  EXPECT_FALSE(fs::exists(staging + "/MANIFEST"));
  EXPECT_FALSE(fs::exists(root_ + "/follower/shard-0/MANIFEST"))
      << "the staged manifest is no replica file";
}

TEST_F(InstallTest, StagingDirWithoutACheckpointIsRefused) {
  const std::string staging = follower_->SnapshotStagingDir(0);
  fs::create_directories(staging);
  auto refused = follower_->InstallSnapshot(0, staging);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasStaleClaim(*follower_));
}

TEST_F(InstallTest, CheckpointOfAnotherShardRollsBack) {
  // The leader's replica is shard 0 of 1; this host's shard 1 of 2 cannot
  // take it.
  auto host = OpenHost("two-shards", 2);
  const uint32_t shard = ShardOf("t", "stale-only-here", 2);
  ASSERT_TRUE(
      host->replica(shard)->WriteAndWait(query::testing::ClaimBatch("t", "stale-only-here")).ok());
  const std::string staging = host->SnapshotStagingDir(shard);
  fs::create_directories(fs::path(staging).parent_path());
  ASSERT_TRUE(leader_->replica(0)->CreateCheckpoint(staging).ok());
  auto refused = host->InstallSnapshot(shard, staging);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_TRUE(HasStaleClaim(*host, shard)) << "the old replica is back";
  EXPECT_TRUE(fs::exists(staging + "/CURRENT")) << "the snapshot is back in staging";
  EXPECT_EQ(CountEntries(root_ + "/two-shards"), 3u) << "shard-0, shard-1, snapshot-staging";
}

TEST_F(InstallTest, ShardNotHostedIsJustInstalled) {
  ASSERT_TRUE(follower_->RemoveReplica(0, "test").ok());
  ASSERT_EQ(follower_->replica(0), nullptr);
  const std::string staging = Stage();
  auto installed = follower_->InstallSnapshot(0, staging);
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(follower_->replica(0), *installed);
  EXPECT_EQ((*installed)->Checksum()->sha256, leader_->replica(0)->Checksum()->sha256);
  EXPECT_TRUE(fs::exists(root_ + "/follower/shard-0.removed-test")) << "untouched";
}

}  // namespace
}  // namespace dash::replication
