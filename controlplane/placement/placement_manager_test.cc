#include "controlplane/placement/placement_manager.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/sync_point.h"
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

// Answers FenceShard for the nodes: OK with the LSN the test set (last epoch
// 1), or the error the test set for a node. Records every call.
class FakeFencer final : public Fencer {
 public:
  std::vector<absl::StatusOr<v1::FenceShardResponse>> Fence(const std::vector<FenceCall>& calls,
                                                            absl::Duration timeout) override {
    std::function<void()> during;
    {
      absl::MutexLock lock(&mu_);
      during = during_;
    }
    if (during) during();  // The manager's lock is not held here.
    absl::MutexLock lock(&mu_);
    std::vector<absl::StatusOr<v1::FenceShardResponse>> out;
    for (const FenceCall& call : calls) {
      calls_.push_back(call);
      auto error = errors_.find(call.node_id);
      if (error != errors_.end()) {
        out.push_back(error->second);
        continue;
      }
      v1::FenceShardResponse response;
      response.set_shard(call.shard);
      response.set_epoch(call.epoch);
      response.set_last_epoch(1);
      response.set_last_lsn(lsn_[{call.shard, call.node_id}]);
      out.push_back(response);
    }
    return out;
  }
  void Fail(const std::string& node, absl::Status status) {
    absl::MutexLock lock(&mu_);
    errors_[node] = std::move(status);
  }
  void Heal(const std::string& node) {
    absl::MutexLock lock(&mu_);
    errors_.erase(node);
  }
  void SetLsn(uint32_t shard, const std::string& node, uint64_t lsn) {
    absl::MutexLock lock(&mu_);
    lsn_[{shard, node}] = lsn;
  }
  std::vector<FenceCall> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Runs `during` in every Fence() call, before answering.
  void SetDuring(std::function<void()> during) {
    absl::MutexLock lock(&mu_);
    during_ = std::move(during);
  }

 private:
  absl::Mutex mu_;
  std::function<void()> during_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, std::string>, uint64_t> lsn_ ABSL_GUARDED_BY(mu_);
  std::vector<FenceCall> calls_ ABSL_GUARDED_BY(mu_);
};

class PlacementManagerTest : public ::testing::Test {
 protected:
  ManagerOptions Options() {
    ManagerOptions options;
    options.shard_count = 2;
    options.replication_factor = 3;
    options.monotonic_clock = &clock_;
    options.run_ticker = false;
    options.fencer = &fencer_;
    return options;
  }
  std::unique_ptr<PlacementManager> Open() {
    auto manager = PlacementManager::Open(std::make_unique<MemoryStore>(&disk_), Options());
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
  // `leader_silent_ms` >= 0: each follower says how long its leader's log
  // stream has been silent.
  static void Beat(PlacementManager* m, const std::string& node, uint64_t lsn, bool paused = false,
                   int64_t leader_silent_ms = -1) {
    ASSERT_TRUE(m->Heartbeat(BeatRequest(m, node, lsn, paused, leader_silent_ms)).ok());
  }
  static v1::HeartbeatRequest BeatRequest(PlacementManager* m, const std::string& node,
                                          uint64_t lsn, bool paused = false,
                                          int64_t leader_silent_ms = -1) {
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
        if (leader_silent_ms >= 0 && r.role() == v1::REPLICA_ROLE_FOLLOWER) {
          report->mutable_follow()->set_state("pulling");
          report->mutable_follow()->set_leader_silent_ms(static_cast<uint64_t>(leader_silent_ms));
        }
      }
    }
    return request;
  }

  FakeClock clock_;
  Disk disk_;
  FakeFencer fencer_;
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

  // n1 died while the control plane was down: its followers stopped hearing
  // its log stream.
  clock_.Advance(absl::Milliseconds(500));
  Beat(m.get(), "n2", 10, false, /*leader_silent_ms=*/10000);
  Beat(m.get(), "n3", 10, false, /*leader_silent_ms=*/10000);
  m->Tick();
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
  clock_.Advance(absl::Milliseconds(300));  // n1 silent 800 ms since the restart.
  Beat(m.get(), "n2", 10, false, 10300);
  Beat(m.get(), "n3", 10, false, 10300);
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

// A restart of the control plane is invisible while the leaders live: a
// leader whose heartbeats are slow to come back is kept as long as its
// followers still hear its log stream, and a follower node nobody reports on
// keeps its health for the restart grace limit.
TEST_F(PlacementManagerTest, RestartKeepsALeaderItsFollowersStillHear) {
  {
    auto m = Open();
    for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
    for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 10);
    m->Tick();
  }
  const v1::Placement before = *disk_.table;
  clock_.Advance(absl::Seconds(10));
  auto m = Open();
  // n2 and n3 are back and hear n1 (the leader of shard 0; also a follower
  // of shard 1); n1's heartbeats have not come back yet.
  for (int i = 0; i < 30; ++i) {  // 3 s: four failure timeouts.
    clock_.Advance(absl::Milliseconds(100));
    Beat(m.get(), "n2", 10, false, /*leader_silent_ms=*/80);
    Beat(m.get(), "n3", 10, false, 80);
    m->Tick();
  }
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.version(), before.version()) << "nothing changed";
  for (const auto& n : p.nodes()) EXPECT_EQ(n.health(), v1::NODE_HEALTH_HEALTHY) << n.node_id();
  for (int s = 0; s < p.shards_size(); ++s) {
    EXPECT_EQ(p.shards(s).epoch(), before.shards(s).epoch());
    EXPECT_EQ(p.shards(s).leader_node_id(), before.shards(s).leader_node_id());
  }
  EXPECT_TRUE(fencer_.calls().empty()) << "nobody was fenced";
  // n1 comes back: it is heard, and kept.
  Beat(m.get(), "n1", 10);
  clock_.Advance(absl::Seconds(2));  // Past the restart grace limit (3.75 s).
  Beat(m.get(), "n1", 10);
  Beat(m.get(), "n2", 10, false, 80);
  Beat(m.get(), "n3", 10, false, 80);
  m->Tick();
  EXPECT_EQ(m->GetPlacement().version(), before.version());
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
}

TEST_F(PlacementManagerTest, RestartGraceEndsAtItsLimitWithoutWordFromTheNode) {
  {
    auto m = Open();
    for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
    for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 10);
    m->Tick();
  }
  clock_.Advance(absl::Seconds(10));
  auto m = Open();
  // The followers report nothing about their leader (an older node, or no
  // stream yet): n1 keeps its health for the limit, five failure timeouts.
  for (int i = 0; i < 35; ++i) {
    clock_.Advance(absl::Milliseconds(100));
    Beat(m.get(), "n2", 10);
    Beat(m.get(), "n3", 10);
    m->Tick();
  }
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1") << "3.5 s: within the limit";
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Milliseconds(100));
    Beat(m.get(), "n2", 10);
    Beat(m.get(), "n3", 10);
    m->Tick();
  }
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.shards(0).leader_node_id(), "n2") << "4 s: past the limit, failed over";
  EXPECT_EQ(p.shards(0).epoch(), 2u);
}

#ifdef DASH_TEST_HOOKS  // Waits on a sync point.
TEST_F(PlacementManagerTest, TransferCompletesWhenLeaderPausedAndTargetCaughtUp) {
  SyncPointScope sync;
  std::atomic<bool> saw_paused{false};
  absl::Notification waits_paused;
  SyncPoint::Get()->SetCallBack("PlacementManager::TransferLocked:Waiting", [&](void* paused) {
    if (*static_cast<bool*>(paused) && !saw_paused.exchange(true)) waits_paused.Notify();
  });
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
  // The transfer saw the paused leader, and waits on: its target is behind.
  ASSERT_TRUE(waits_paused.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1") << "target still behind";
  Beat(m.get(), "n3", 9);
  caller.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->placement().shards(0).leader_node_id(), "n3");
  EXPECT_EQ(result->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(result->placement().shards(0).transfer_to(), "");
}
#endif  // DASH_TEST_HOOKS

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

TEST_F(PlacementManagerTest, LeaseMustBeShorterThanTheFailureTimeout) {
  EXPECT_EQ(DefaultLease(absl::Milliseconds(750)), absl::Milliseconds(500));
  EXPECT_TRUE(ValidateLease(absl::Milliseconds(500), absl::Milliseconds(750)).ok());
  EXPECT_TRUE(ValidateLease(absl::ZeroDuration(), absl::Milliseconds(750)).ok()) << "no leases";
  absl::Status equal = ValidateLease(absl::Milliseconds(750), absl::Milliseconds(750));
  EXPECT_EQ(equal.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(equal.message()),
              ::testing::StartsWith("lease_ms: 750 must be below failure_timeout_ms (750)"));
  ManagerOptions options = Options();
  options.lease = absl::Milliseconds(800);
  auto refused = PlacementManager::Open(std::make_unique<MemoryStore>(&disk_), options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.fencer = nullptr;
  EXPECT_EQ(PlacementManager::Open(std::make_unique<MemoryStore>(&disk_), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PlacementManagerTest, HeartbeatsOfHealthyNodesGrantTheLease) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  v1::HeartbeatRequest beat;
  beat.set_node_id("n2");
  auto answer = m->Heartbeat(beat);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->lease_ms(), 500u);

  // A node heard again is healthy as of that heartbeat (the table follows
  // at the next tick): a lease for what it leads.
  clock_.Advance(absl::Seconds(1));
  m->Tick();
  ASSERT_EQ(m->GetPlacement().nodes(1).health(), v1::NODE_HEALTH_UNHEALTHY);
  v1::ReplicaReport* led = beat.add_replicas();
  led->set_shard(1);  // Led by n2.
  led->set_epoch(1);
  led->set_role(v1::REPLICA_ROLE_LEADER);
  answer = m->Heartbeat(beat);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->lease_ms(), 500u);

  // A node that still believes it leads a shard the table gave away gets none.
  v1::ReplicaReport* deposed = beat.add_replicas();
  deposed->set_shard(0);  // Led by n1.
  deposed->set_epoch(1);
  deposed->set_role(v1::REPLICA_ROLE_LEADER);
  EXPECT_EQ(m->Heartbeat(beat)->lease_ms(), 0u);

  // Nor does the leader of a shard being fenced, while it is (the others do).
  uint32_t leader_lease = 1;
  uint32_t other_lease = 0;
  // A heartbeat reporting what the table gives the node, at its epochs.
  auto full_beat = [&](const std::string& node) {
    return m->Heartbeat(BeatRequest(m.get(), node, 0))->lease_ms();
  };
  fencer_.SetDuring([&] {
    leader_lease = full_beat("n1");
    other_lease = full_beat("n3");
  });
  v1::FailoverRequest failover;
  failover.set_shard(0);  // Led by n1.
  for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 0);
  m->Tick();
  ASSERT_TRUE(m->Failover(failover).ok());
  EXPECT_EQ(leader_lease, 0u);
  EXPECT_EQ(other_lease, 500u);
  fencer_.SetDuring(nullptr);
  EXPECT_EQ(full_beat("n1"), 500u) << "a follower of shard 0 now, and told so";
}

TEST_F(PlacementManagerTest, LeaderReportsDecideInSyncAndLagIsServedFromMemory) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  // n1 leads shard 0 (followers n2, n3).
  auto leader_beat = [&](uint64_t n3_lag, bool n3_in_sync) {
    v1::HeartbeatRequest request;
    request.set_node_id("n1");
    for (uint32_t shard : {0u, 1u}) {
      v1::ReplicaReport* report = request.add_replicas();
      report->set_shard(shard);
      report->set_epoch(1);
      report->set_role(shard == 0 ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
      report->set_last_epoch(1);
      report->set_last_lsn(100);
      if (shard != 0) continue;
      v1::FollowerLag* n2 = report->add_followers();
      n2->set_node_id("n2");
      n2->set_acked_lsn(100);
      n2->set_in_sync(true);
      v1::FollowerLag* n3 = report->add_followers();
      n3->set_node_id("n3");
      n3->set_acked_lsn(100 - n3_lag);
      n3->set_lag_records(n3_lag);
      n3->set_lag_bytes(n3_lag * 64);
      n3->set_lag_seconds(n3_lag / 100.0);
      n3->set_in_sync(n3_in_sync);
    }
    ASSERT_TRUE(m->Heartbeat(request).ok());
  };
  Beat(m.get(), "n2", 100);
  Beat(m.get(), "n3", 90);
  leader_beat(10, true);
  m->Tick();
  const uint64_t version = m->GetPlacement().version();
  v1::Placement p = m->GetPlacement();
  ASSERT_EQ(p.shards(0).replicas(2).node_id(), "n3");
  EXPECT_TRUE(p.shards(0).replicas(2).in_sync());
  EXPECT_EQ(p.shards(0).replicas(2).lag().lag_records(), 10u);
  EXPECT_EQ(p.shards(0).replicas(2).lag().lag_bytes(), 640u);
  EXPECT_FALSE(p.shards(0).replicas(0).has_lag()) << "the leader trails nobody";

  // New lag numbers: visible at once, no new version.
  leader_beat(20, true);
  m->Tick();
  p = m->GetPlacement();
  EXPECT_EQ(p.version(), version);
  EXPECT_EQ(p.shards(0).replicas(2).lag().lag_records(), 20u);
  EXPECT_DOUBLE_EQ(p.shards(0).replicas(2).lag().lag_seconds(), 0.2);
  EXPECT_EQ(m->ListNodes().placement_version(), version);

  // The leader's verdict flips: persisted and published before it is served.
  const int saves = disk_.saves;
  leader_beat(30, false);
  m->Tick();
  p = m->GetPlacement();
  EXPECT_EQ(p.version(), version + 1);
  EXPECT_FALSE(p.shards(0).replicas(2).in_sync());
  EXPECT_EQ(disk_.saves, saves + 1);
  EXPECT_FALSE(disk_.table->shards(0).replicas(2).in_sync());
  EXPECT_EQ(disk_.table->shards(0).replicas(2).lag().lag_records(), 30u);
}

TEST_F(PlacementManagerTest, FailoverFencesTheNextEpochAndChoosesByTheAnswers) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 50);
  fencer_.SetLsn(0, "n2", 60);  // Fresher than the reports (50).
  fencer_.SetLsn(0, "n3", 70);
  v1::FailoverRequest request;
  request.set_shard(0);
  fencer_.Fail("n3", absl::DeadlineExceededError("no answer"));
  auto refused = m->Failover(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("not fenced: n3: DEADLINE"));
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
  std::vector<FenceCall> calls = fencer_.calls();
  ASSERT_EQ(calls.size(), 3u) << "every replica, the leader too";
  for (const FenceCall& call : calls) {
    EXPECT_EQ(call.shard, 0u);
    EXPECT_EQ(call.epoch, 2u);
    EXPECT_EQ(call.address, call.node_id + ":1");
  }

  fencer_.Heal("n3");
  auto done = m->Failover(request);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->placement().shards(0).leader_node_id(), "n3") << "by the answers";
  EXPECT_EQ(done->placement().shards(0).epoch(), 2u);
  EXPECT_EQ(fencer_.calls().back().epoch, 2u) << "the fence epoch is the new epoch";
}

TEST_F(PlacementManagerTest, PromoteOfAnUnfencedTargetIsRefused) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  for (auto* n : {"n1", "n2", "n3"}) {
    Beat(m.get(), n, 50);
    fencer_.SetLsn(0, n, 50);
  }
  fencer_.Fail("n2", absl::UnavailableError("down"));
  v1::PromoteRequest promote;
  promote.set_shard(0);
  promote.set_node_id("n2");
  auto refused = m->Promote(promote);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("n2 did not answer the fence"));
  EXPECT_EQ(m->GetPlacement().shards(0).leader_node_id(), "n1");
  promote.set_node_id("n3");
  fencer_.Fail("n1", absl::UnavailableError("down"));  // The old leader: best effort.
  auto promoted = m->Promote(promote);
  EXPECT_EQ(promoted.status().code(), absl::StatusCode::kUnavailable)
      << "n3 alone is too few of 3: " << promoted.status();
  fencer_.Heal("n2");
  promoted = m->Promote(promote);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(promoted->placement().shards(0).leader_node_id(), "n3");
}

TEST_F(PlacementManagerTest, AutomaticFailoverWaitsUntilEnoughReplicasAreFenced) {
  auto m = Open();
  for (auto* n : {"n1", "n2", "n3"}) Register(m.get(), n);
  for (auto* n : {"n1", "n2", "n3"}) Beat(m.get(), n, 5);
  m->Tick();
  fencer_.Fail("n1", absl::UnavailableError("dead"));
  fencer_.Fail("n3", absl::DeadlineExceededError("partitioned"));
  for (int i = 0; i < 8; ++i) {  // n1 goes silent.
    clock_.Advance(absl::Milliseconds(200));
    Beat(m.get(), "n2", 5);
    Beat(m.get(), "n3", 5);
    m->Tick();
  }
  v1::Placement p = m->GetPlacement();
  EXPECT_EQ(p.nodes(0).health(), v1::NODE_HEALTH_UNHEALTHY);
  EXPECT_EQ(p.shards(0).leader_node_id(), "n1") << "writes fail closed";
  EXPECT_EQ(p.shards(0).epoch(), 1u);
  EXPECT_FALSE(fencer_.calls().empty());
  fencer_.Heal("n3");
  m->Tick();
  p = m->GetPlacement();
  EXPECT_EQ(p.shards(0).leader_node_id(), "n2");
  EXPECT_EQ(p.shards(0).epoch(), 2u);
  EXPECT_EQ(fencer_.calls().back().epoch, 2u);
}

}  // namespace
}  // namespace dash::controlplane
