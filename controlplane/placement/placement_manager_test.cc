#include "controlplane/placement/placement_manager.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

using ::testing::HasSubstr;

class FakeClock final : public Clock {
 public:
  int64_t NowMicros() const override { return now_.load(); }
  void Advance(absl::Duration d) { now_ += absl::ToInt64Microseconds(d); }

 private:
  std::atomic<int64_t> now_{1000000};
};

// The durable bytes outlive each MemoryStore, like a directory outlives a
// process.
struct Disk {
  absl::Mutex mu;
  std::optional<v1::Placement> table;
  int saves = 0;
  bool fail = false;
};

class MemoryStore final : public PlacementStore {
 public:
  explicit MemoryStore(Disk* disk) : disk_(disk) {}
  absl::StatusOr<std::optional<v1::Placement>> Load() override {
    absl::MutexLock lock(&disk_->mu);
    return disk_->table;
  }
  absl::Status Save(const v1::Placement& placement) override {
    absl::MutexLock lock(&disk_->mu);
    if (disk_->fail) return absl::UnavailableError("disk full");
    disk_->table = placement;
    ++disk_->saves;
    return absl::OkStatus();
  }

 private:
  Disk* disk_;
};

class PlacementManagerTest : public ::testing::Test {
 protected:
  std::unique_ptr<PlacementManager> Open() {
    ManagerOptions options;
    options.shard_count = 2;
    options.replication_factor = 3;
    options.monotonic_clock = &clock_;
    options.run_ticker = false;
    auto manager = PlacementManager::Open(std::make_unique<MemoryStore>(&disk_), options);
    EXPECT_TRUE(manager.ok()) << manager.status();
    return std::move(*manager);
  }

  static void Register(PlacementManager* m, const std::string& node) {
    v1::RegisterNodeRequest request;
    request.set_node_id(node);
    request.set_address(node + ":1");
    ASSERT_TRUE(m->RegisterNode(request).ok());
  }

  // A heartbeat reporting every replica the node hosts, at the shard's epoch.
  static void Beat(PlacementManager* m, const std::string& node, uint64_t lsn,
                   bool paused = false) {
    v1::Placement p = m->GetPlacement();
    v1::HeartbeatRequest request;
    request.set_node_id(node);
    for (const auto& shard : p.shards()) {
      for (const auto& r : shard.replicas()) {
        if (r.node_id() != node) continue;
        v1::ReplicaReport* report = request.add_replicas();
        report->set_shard(shard.shard());
        report->set_epoch(shard.epoch());
        report->set_role(r.role());
        report->set_last_epoch(shard.epoch());
        report->set_last_lsn(lsn);
        report->set_writes_paused(paused && shard.transfer_to() != "");
      }
    }
    ASSERT_TRUE(m->Heartbeat(request).ok());
  }

  FakeClock clock_;
  Disk disk_;
};

TEST_F(PlacementManagerTest, CreatesClusterAndPersistsBeforePublishing) {
  auto m = Open();
  EXPECT_EQ(m->GetPlacement().version(), 1u);
  EXPECT_EQ(disk_.saves, 1) << "the empty table is persisted at once";
  Register(m.get(), "n1");
  Register(m.get(), "n2");
  EXPECT_FALSE(m->GetPlacement().created());
  Register(m.get(), "n3");
  v1::Placement p = m->GetPlacement();
  EXPECT_TRUE(p.created());
  EXPECT_EQ(p.version(), 4u);
  EXPECT_EQ(disk_.table->version(), 4u);

  disk_.fail = true;
  v1::PromoteRequest promote;
  promote.set_shard(0);
  promote.set_node_id("n2");
  auto failed = m->Promote(promote);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(m->GetPlacement().version(), 4u) << "nothing published when the persist failed";
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
  disk_.fail = false;
  auto promoted = m->Promote(promote);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->placement().version(), 5u);
  EXPECT_EQ(disk_.table->version(), 5u);
}

TEST_F(PlacementManagerTest, HeartbeatFromUnknownNodeIsNotFound) {
  auto m = Open();
  v1::HeartbeatRequest request;
  request.set_node_id("ghost");
  EXPECT_EQ(m->Heartbeat(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PlacementManagerTest, RestartGivesGraceThenFailsOverOnce) {
  {
    auto m = Open();
    for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
    for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 10);
    m->Tick();
  }
  const uint64_t before = disk_.table->version();
  clock_.Advance(absl::Seconds(10));  // The restart took a while.
  auto m = Open();
  EXPECT_EQ(m->GetPlacement().version(), before);
  m->Tick();
  EXPECT_EQ(m->GetPlacement().version(), before) << "grace: nobody is unhealthy yet";

  clock_.Advance(absl::Milliseconds(500));
  Beat(m.get(), "n2", 10);
  Beat(m.get(), "n3", 10);
  m->Tick();
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
  clock_.Advance(absl::Milliseconds(300));  // n1 silent 800 ms since the restart.
  Beat(m.get(), "n2", 10);
  Beat(m.get(), "n3", 10);
  m->Tick();
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.version(), before + 1) << "one tick, one version";
  EXPECT_EQ(p.shards(0).leader_node_id(), "n2");
  EXPECT_EQ(p.shards(0).epoch(), 2u);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Milliseconds(100));
    Beat(m.get(), "n2", 10);
    Beat(m.get(), "n3", 10);
    m->Tick();
  }
  EXPECT_EQ(m->GetPlacement().shards(0).epoch(), 2u) << "failed over exactly once";
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n2");
}

TEST_F(PlacementManagerTest, TransferCompletesWhenLeaderPausedAndTargetCaughtUp) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  absl::StatusOr<v1::PlacementChange> result;
  std::thread caller([&] {
    v1::TransferLeaderRequest request;
    request.set_shard(0);
    request.set_node_id("n3");
    result = m->TransferLeader(request);
  });
  while (m->GetPlacement().shards(0).transfer_to().empty()) absl::SleepFor(absl::Milliseconds(5));
  Beat(m.get(), "n3", 7);  // Behind the leader.
  Beat(m.get(), "n1", 9, /*paused=*/true);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1") << "target still behind";
  Beat(m.get(), "n3", 9);
  caller.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->placement().shards(0).leader_node_id(), "n3");
  EXPECT_EQ(result->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(result->placement().shards(0).transfer_to(), "");
}

TEST_F(PlacementManagerTest, TransferTimesOutAndResumesOldLeader) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  absl::StatusOr<v1::PlacementChange> result;
  std::thread caller([&] {
    v1::TransferLeaderRequest request;
    request.set_shard(0);
    request.set_node_id("n2");
    request.set_timeout_ms(1000);
    result = m->TransferLeader(request);
  });
  while (m->GetPlacement().shards(0).transfer_to().empty()) absl::SleepFor(absl::Milliseconds(5));
  Beat(m.get(), "n1", 20, /*paused=*/true);
  Beat(m.get(), "n2", 15);
  clock_.Advance(absl::Milliseconds(1001));
  caller.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("lag 5"));
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.shards(0).transfer_to(), "");
  EXPECT_EQ(p.shards(0).leader_node_id(), "n1");
  EXPECT_EQ(p.shards(0).epoch(), 1u);
}

TEST_F(PlacementManagerTest, DrainMovesLeadershipAwayAndMarksTheNode) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  std::atomic<bool> done{false};
  std::thread nodes([&] {  // Nodes that pause on transfer and are always caught up.
    while (!done) {
      for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 5, /*paused=*/true);
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  v1::DrainNodeRequest drain;
  drain.set_node_id("n1");
  auto drained = m->DrainNode(drain);
  done = true;
  nodes.join();
  ASSERT_TRUE(drained.ok()) << drained.status();
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.shards(0).leader_node_id(), "n2") << "tie: smallest node id";
  EXPECT_EQ(p.shards(0).epoch(), 2u);
  EXPECT_EQ(p.shards(1).leader_node_id(), "n2") << "n1 did not lead shard 1";
  EXPECT_EQ(p.shards(1).epoch(), 1u);
  EXPECT_TRUE(p.nodes(0).draining());
  EXPECT_THAT(drained->shards_changed(), ::testing::ElementsAre(0u));

  // A draining node is never promoted.
  v1::PromoteRequest promote;
  promote.set_shard(0);
  promote.set_node_id("n1");
  EXPECT_EQ(m->Promote(promote).status().code(), absl::StatusCode::kFailedPrecondition);
  drain.set_undrain(true);
  ASSERT_TRUE(m->DrainNode(drain).ok());
  EXPECT_FALSE(m->GetPlacement().nodes(0).draining());
}

TEST_F(PlacementManagerTest, DrainReportsShardsThatCannotMove) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 0);
  clock_.Advance(absl::Seconds(1));  // n2 and n3 go silent.
  Beat(m.get(), "n1", 0);
  m->Tick();
  v1::DrainNodeRequest drain;
  drain.set_node_id("n1");
  auto drained = m->DrainNode(drain);
  EXPECT_EQ(drained.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(drained.status().message()), HasSubstr("shard 0"));
  EXPECT_TRUE(m->GetPlacement().nodes(0).draining()) << "the mark stays";
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
}

TEST_F(PlacementManagerTest, ShutdownWakesWatchers) {
  auto m = Open();
  std::thread watcher([&] { EXPECT_EQ(m->WaitForNewer(100, absl::Hours(1)), std::nullopt); });
  absl::SleepFor(absl::Milliseconds(20));
  m->Shutdown();
  watcher.join();
}

}  // namespace
}  // namespace dash::controlplane
