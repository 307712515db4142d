// Multi-process tests of dash-controlplane: the real binary, with this test
// process playing the nodes (RegisterNode + Heartbeat from threads, and a
// small NodeAdmin server per node answering FenceShard), so that failures,
// flapping, fencing and restarts are driven exactly.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using ::dash::testing::ControlPlaneProcess;
using ::dash::testing::PollUntil;
using ::dash::testing::TestDir;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

// How a fake node answers NodeAdmin.FenceShard.
enum class FenceMode {
  kAnswer,  // Adopts the epoch (unless it adopted a newer one) and answers its log end.
  kRefuse,  // FAILED_PRECONDITION.
  kHang,    // Never answers (the control plane's deadline ends the call).
};

// A node as the control plane sees it: registers with the address of its own
// small gRPC server (NodeAdmin.FenceShard only), then every 50 ms reads the
// placement (adopting each shard's epoch) and heartbeats a report for every
// replica the table gives it, at the LSNs the test sets. A fenced replica
// reports the fenced epoch (as a follower) until the table catches up.
class FakeNode final : public v1::NodeAdmin::Service {
 public:
  FakeNode(std::string id, std::shared_ptr<grpc::Channel> channel)
      : id_(std::move(id)), channel_(std::move(channel)) {}
  ~FakeNode() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (server_ != nullptr) server_->Shutdown(Deadline(absl::Seconds(1)));
  }

  const std::string& id() const { return id_; }

  void Start() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(
        "127.0.0.1:0", testing::TestSecurity::Get().MemberSecurity()->ServerCredentials(), &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr && port > 0) << id_ << ": cannot serve";
    address_ = absl::StrCat("127.0.0.1:", port);
    thread_ = std::thread([this] {
      while (!stop_) {
        if (!silent_) BeatOnce();
        beats_++;
        absl::SleepFor(absl::Milliseconds(50));
      }
    });
  }
  // A silent node sends nothing and answers no fence (as if it died or was
  // partitioned).
  void SetSilent(bool silent) { silent_ = silent; }
  void SetFenceMode(FenceMode mode) {
    absl::MutexLock lock(&mu_);
    fence_mode_ = mode;
  }
  void SetLsn(uint32_t shard, uint64_t lsn) {
    absl::MutexLock lock(&mu_);
    lsn_[shard] = lsn;
  }
  // Leaders pause writes when the table names a transfer (as dash-node does).
  void SetChannel(std::shared_ptr<grpc::Channel> channel) {
    absl::MutexLock lock(&mu_);
    channel_ = std::move(channel);
  }
  // Waits until the node sent `n` more rounds.
  void WaitRounds(int n) {
    const int target = beats_ + n;
    while (beats_ < target) absl::SleepFor(absl::Milliseconds(10));
  }
  // The epochs of the FenceShard calls received for `shard`, answered or not.
  std::vector<uint64_t> FenceEpochs(uint32_t shard) {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (const auto& [s, epoch] : fence_calls_) {
      if (s == shard) out.push_back(epoch);
    }
    return out;
  }
  uint32_t last_lease_ms() const { return last_lease_ms_; }

  grpc::Status FenceShard(grpc::ServerContext* ctx, const v1::FenceShardRequest* request,
                          v1::FenceShardResponse* response) override {
    FenceMode mode;
    {
      absl::MutexLock lock(&mu_);
      fence_calls_.emplace_back(request->shard(), request->epoch());
      mode = fence_mode_;
    }
    if (silent_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, id_ + " is down");
    if (mode == FenceMode::kRefuse) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, id_ + " refuses");
    }
    if (mode == FenceMode::kHang) {
      while (!ctx->IsCancelled() && !stop_) absl::SleepFor(absl::Milliseconds(5));
      return grpc::Status(grpc::StatusCode::CANCELLED, "gave up");
    }
    absl::MutexLock lock(&mu_);
    uint64_t& adopted = adopted_[request->shard()];
    if (request->epoch() < adopted) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("adopted epoch ", adopted, " already"));
    }
    adopted = request->epoch();
    response->set_shard(request->shard());
    response->set_epoch(adopted);
    response->set_last_epoch(1);
    response->set_last_lsn(lsn_[request->shard()]);
    return grpc::Status::OK;
  }

 private:
  void BeatOnce() {
    std::shared_ptr<grpc::Channel> channel;
    std::map<uint32_t, uint64_t> lsns;
    {
      absl::MutexLock lock(&mu_);
      channel = channel_;
      lsns = lsn_;
    }
    auto stub = v1::ControlPlane::NewStub(channel);
    if (!registered_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(absl::Milliseconds(500)));
      v1::RegisterNodeRequest request;
      request.set_node_id(id_);
      request.set_address(address_);
      v1::RegisterNodeResponse response;
      registered_ = stub->RegisterNode(&ctx, request, &response).ok();
      if (!registered_) return;
    }
    v1::Placement placement;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(absl::Milliseconds(500)));
      if (!stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement).ok()) return;
    }
    v1::HeartbeatRequest request;
    request.set_node_id(id_);
    {
      absl::MutexLock lock(&mu_);
      for (const v1::ShardEntry& shard : placement.shards()) {
        for (const v1::ReplicaEntry& replica : shard.replicas()) {
          if (replica.node_id() != id_) continue;
          uint64_t& adopted = adopted_[shard.shard()];
          adopted = std::max(adopted, shard.epoch());
          const bool current = adopted == shard.epoch();
          v1::ReplicaReport* report = request.add_replicas();
          report->set_shard(shard.shard());
          report->set_epoch(adopted);
          report->set_role(current ? replica.role() : v1::REPLICA_ROLE_FOLLOWER);
          report->set_last_epoch(1);
          report->set_last_lsn(lsns[shard.shard()]);
          report->set_writes_paused(current && shard.leader_node_id() == id_ &&
                                    !shard.transfer_to().empty());
        }
      }
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Milliseconds(500)));
    v1::HeartbeatResponse response;
    grpc::Status status = stub->Heartbeat(&ctx, request, &response);
    if (status.ok()) last_lease_ms_ = response.lease_ms();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) registered_ = false;
  }

  const std::string id_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;  // Of server_; set before the thread starts.
  absl::Mutex mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, uint64_t> lsn_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, uint64_t> adopted_ ABSL_GUARDED_BY(mu_);
  FenceMode fence_mode_ ABSL_GUARDED_BY(mu_) = FenceMode::kAnswer;
  std::vector<std::pair<uint32_t, uint64_t>> fence_calls_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<int> beats_{0};
  std::atomic<uint32_t> last_lease_ms_{0};
  bool registered_ = false;  // Only the node's thread touches it.
  std::thread thread_;
};

class ControlPlaneProcessTest : public ::testing::Test {
 protected:
  // Starts the control plane (4 shards, RF 3) and nodes n1..n<count>, and
  // waits until the cluster is created.
  void StartCluster(int count, std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {"--tick_ms=20", "--failure_timeout_ms=600"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    cp_ = std::make_unique<ControlPlaneProcess>(dir_.Sub("cp"), args);
    absl::Status started = cp_->Start();
    ASSERT_TRUE(started.ok()) << started;
    for (int i = 1; i <= count; ++i) {
      nodes_.push_back(std::make_unique<FakeNode>(absl::StrCat("n", i), cp_->channel()));
      ASSERT_NO_FATAL_FAILURE(nodes_.back()->Start());
    }
    ASSERT_TRUE(PollUntil([&] { return Placement().created(); }, kWait, "cluster creation").ok());
  }

  FakeNode& node(int i) { return *nodes_[i - 1]; }

  v1::Placement Placement() {
    auto stub = v1::ControlPlane::NewStub(cp_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(2)));
    v1::Placement placement;
    grpc::Status status = stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement);
    return status.ok() ? placement : v1::Placement();
  }

  static const v1::ShardEntry& Shard(const v1::Placement& p, uint32_t s) { return p.shards(s); }
  static const v1::ReplicaEntry* Replica(const v1::Placement& p, uint32_t s,
                                         const std::string& node) {
    for (const auto& r : p.shards(s).replicas()) {
      if (r.node_id() == node) return &r;
    }
    return nullptr;
  }
  static bool Healthy(const v1::Placement& p, const std::string& node) {
    for (const auto& n : p.nodes()) {
      if (n.node_id() == node) return n.health() == v1::NODE_HEALTH_HEALTHY;
    }
    return false;
  }

  // Until the table shows every node's LSNs for `shard` and all followers in sync.
  absl::Status WaitReported(uint32_t shard, const std::map<std::string, uint64_t>& lsns,
                            bool in_sync = true) {
    return PollUntil(
        [&] {
          v1::Placement p = Placement();
          if (p.shards_size() <= static_cast<int>(shard)) return false;
          for (const auto& [id, lsn] : lsns) {
            const v1::ReplicaEntry* r = Replica(p, shard, id);
            // The fake nodes report last_epoch 1: 0 means no report yet, and
            // an LSN of 0 alone would not tell.
            if (r == nullptr || r->last_epoch() == 0 || r->last_lsn() != lsn) return false;
            if (in_sync && !r->in_sync()) return false;
          }
          return true;
        },
        kWait, absl::StrCat("shard ", shard, " LSN reports"));
  }

  absl::StatusOr<v1::PlacementChange> Promote(uint32_t shard, const std::string& node,
                                              uint64_t expected_epoch,
                                              bool accept_data_loss = false) {
    auto stub = v1::ControlPlane::NewStub(cp_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    v1::PromoteRequest request;
    request.set_shard(shard);
    request.set_node_id(node);
    request.set_expected_epoch(expected_epoch);
    request.set_accept_data_loss(accept_data_loss);
    v1::PlacementChange change;
    grpc::Status status = stub->Promote(&ctx, request, &change);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return change;
  }

  absl::StatusOr<v1::PlacementChange> Failover(uint32_t shard) {
    auto stub = v1::ControlPlane::NewStub(cp_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    v1::FailoverRequest request;
    request.set_shard(shard);
    v1::PlacementChange change;
    grpc::Status status = stub->Failover(&ctx, request, &change);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return change;
  }

  // How many times the control plane's log holds `text` so far.
  int LogCount(const std::string& text) {
    std::ifstream in(cp_->log_path());
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string log = buffer.str();
    int count = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++count;
    return count;
  }

  absl::StatusOr<v1::PlacementChange> Transfer(uint32_t shard, const std::string& node,
                                               uint32_t timeout_ms) {
    auto stub = v1::ControlPlane::NewStub(cp_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(30)));
    v1::TransferLeaderRequest request;
    request.set_shard(shard);
    request.set_node_id(node);
    request.set_timeout_ms(timeout_ms);
    v1::PlacementChange change;
    grpc::Status status = stub->TransferLeader(&ctx, request, &change);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return change;
  }

  TestDir dir_;
  std::unique_ptr<ControlPlaneProcess> cp_;
  std::vector<std::unique_ptr<FakeNode>> nodes_;  // Destroyed before cp_.
};

TEST_F(ControlPlaneProcessTest, ThreeNodesGetALeaderAndTwoFollowersPerShard) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  v1::Placement p = Placement();
  EXPECT_EQ(p.shard_count(), 4u);
  EXPECT_EQ(p.replication_factor(), 3u);
  ASSERT_EQ(p.shards_size(), 4);
  const std::vector<std::string> ids = {"n1", "n2", "n3"};
  for (uint32_t s = 0; s < 4; ++s) {
    const v1::ShardEntry& shard = p.shards(s);
    EXPECT_EQ(shard.shard(), s);
    EXPECT_EQ(shard.epoch(), 1u);
    EXPECT_EQ(shard.leader_node_id(), ids[s % 3]);
    ASSERT_EQ(shard.replicas_size(), 3);
    int leaders = 0;
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(shard.replicas(i).node_id(), ids[i]);
      if (shard.replicas(i).role() == v1::REPLICA_ROLE_LEADER) ++leaders;
    }
    EXPECT_EQ(leaders, 1);
  }
  // An unknown node is told to register.
  auto stub = v1::ControlPlane::NewStub(cp_->channel());
  grpc::ClientContext ctx;
  v1::HeartbeatRequest beat;
  beat.set_node_id("stranger");
  v1::HeartbeatResponse response;
  EXPECT_EQ(stub->Heartbeat(&ctx, beat, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext ctx2;
  v1::RegisterNodeRequest bad;
  bad.set_node_id("no spaces");
  bad.set_address("x:1");
  v1::RegisterNodeResponse registered;
  grpc::Status invalid = stub->RegisterNode(&ctx2, bad, &registered);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(invalid.error_message(), ::testing::StartsWith("node_id"));
}

TEST_F(ControlPlaneProcessTest, LeaderSilentFailsOverToHighestLsnFollower) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  // n1 leads shards 0 and 3.
  node(1).SetLsn(0, 100);
  node(2).SetLsn(0, 90);
  node(3).SetLsn(0, 95);
  node(1).SetLsn(3, 100);
  node(2).SetLsn(3, 96);
  node(3).SetLsn(3, 95);
  ASSERT_TRUE(WaitReported(0, {{"n1", 100}, {"n2", 90}, {"n3", 95}}).ok());
  ASSERT_TRUE(WaitReported(3, {{"n1", 100}, {"n2", 96}, {"n3", 95}}).ok());
  const uint64_t version = Placement().version();

  node(1).SetSilent(true);
  ASSERT_TRUE(PollUntil(
                  [&] {
                    v1::Placement p = Placement();
                    return Shard(p, 0).leader_node_id() != "n1" &&
                           Shard(p, 3).leader_node_id() != "n1";
                  },
                  kWait, "failover of shards 0 and 3")
                  .ok());
  v1::Placement p = Placement();
  EXPECT_GT(p.version(), version);
  EXPECT_FALSE(Healthy(p, "n1"));
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n3");
  EXPECT_EQ(Shard(p, 0).epoch(), 2u);
  EXPECT_EQ(Shard(p, 3).leader_node_id(), "n2");
  EXPECT_EQ(Shard(p, 3).epoch(), 2u);
  EXPECT_EQ(Replica(p, 0, "n1")->role(), v1::REPLICA_ROLE_FOLLOWER);
  EXPECT_FALSE(Replica(p, 0, "n1")->in_sync());
  EXPECT_EQ(Replica(p, 0, "n1")->health(), v1::NODE_HEALTH_UNHEALTHY);
  // Shards n1 only follows keep their leader and epoch.
  EXPECT_EQ(Shard(p, 1).epoch(), 1u);
  EXPECT_EQ(Shard(p, 2).epoch(), 1u);
}

TEST_F(ControlPlaneProcessTest, LeaderAndFollowerLostTogetherKeepsTheLeaderUntilAManualPromote) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  // Shard 0: leader n1 and n2 at 100 (a majority: writes up to 100 may be
  // acknowledged), n3 at 90, in sync by the lag bound.
  node(1).SetLsn(0, 100);
  node(2).SetLsn(0, 100);
  node(3).SetLsn(0, 90);
  ASSERT_TRUE(WaitReported(0, {{"n1", 100}, {"n2", 100}, {"n3", 90}}).ok());
  node(1).SetSilent(true);
  node(2).SetSilent(true);
  ASSERT_TRUE(PollUntil(
                  [&] {
                    v1::Placement p = Placement();
                    return !Healthy(p, "n1") && !Healthy(p, "n2");
                  },
                  kWait, "n1 and n2 unhealthy")
                  .ok());
  node(3).WaitRounds(10);  // Plenty of ticks.
  v1::Placement p = Placement();
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n1") << "n3 alone may lack acknowledged writes";
  EXPECT_EQ(Shard(p, 0).epoch(), 1u);
  EXPECT_EQ(Shard(p, 1).leader_node_id(), "n2") << "the same for shard 1 (leader n2)";
  EXPECT_EQ(Shard(p, 1).epoch(), 1u);

  const std::string why =
      "shard 0: only 1 of 3 replicas reachable; promoting could lose acknowledged writes: use "
      "`dashctl promote --accept-data-loss`";
  EXPECT_EQ(LogCount(why), 1) << "said once, see " << cp_->log_path();
  absl::StatusOr<v1::PlacementChange> failover = Failover(0);
  EXPECT_EQ(failover.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(failover.status().message(), why);

  // The operator decides: Promote names what the lost replicas reported.
  absl::StatusOr<v1::PlacementChange> refused = Promote(0, "n3", 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("would discard LSNs (90, 100] reported by n1"));
  EXPECT_EQ(Shard(Placement(), 0).leader_node_id(), "n1");
  absl::StatusOr<v1::PlacementChange> promoted = Promote(0, "n3", 1, /*accept_data_loss=*/true);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(Shard(promoted->placement(), 0).leader_node_id(), "n3");
  EXPECT_EQ(Shard(promoted->placement(), 0).epoch(), 2u);
  ASSERT_EQ(promoted->lost_size(), 1);
  EXPECT_EQ(promoted->lost(0).from_lsn(), 90u);
  EXPECT_EQ(promoted->lost(0).to_lsn(), 100u);
}

TEST_F(ControlPlaneProcessTest, LeaderAloneLostFailsOverToTheHigherLsnFollowerNotTheInSyncOne) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  ASSERT_TRUE(WaitReported(0, {{"n1", 0}, {"n2", 0}, {"n3", 0}}).ok());  // All in sync.
  // Shard 0: leader n1 reports 100, n2 99 (in sync), n3 105: ahead of the
  // leader's report, so flagged out of sync. n3 holds the most.
  node(1).SetLsn(0, 100);
  node(2).SetLsn(0, 99);
  node(3).SetLsn(0, 105);
  ASSERT_TRUE(WaitReported(0, {{"n1", 100}, {"n2", 99}, {"n3", 105}}, false).ok());
  ASSERT_TRUE(PollUntil(
                  [&] {
                    v1::Placement p = Placement();
                    return !Replica(p, 0, "n3")->in_sync() && Replica(p, 0, "n2")->in_sync();
                  },
                  kWait, "n3 out of sync, n2 in sync")
                  .ok());
  EXPECT_GE(LogCount("shard 0: n3 out of sync: ahead of the leader: diverged"), 1);
  node(1).SetSilent(true);
  ASSERT_TRUE(PollUntil([&] { return Shard(Placement(), 0).leader_node_id() != "n1"; }, kWait,
                        "failover of shard 0")
                  .ok());
  v1::Placement p = Placement();
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n3") << "never the lower-LSN in-sync follower";
  EXPECT_EQ(Shard(p, 0).epoch(), 2u);
}

TEST_F(ControlPlaneProcessTest, FlappingNodeFailsOverOnceAndDoesNotTakeLeadershipBack) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  ASSERT_TRUE(WaitReported(0, {{"n1", 0}, {"n2", 0}, {"n3", 0}}).ok());
  for (int round = 0; round < 4; ++round) {
    node(1).SetSilent(true);
    ASSERT_TRUE(PollUntil([&] { return !Healthy(Placement(), "n1"); }, kWait, "n1 unhealthy").ok());
    node(1).SetSilent(false);
    ASSERT_TRUE(PollUntil([&] { return Healthy(Placement(), "n1"); }, kWait, "n1 healthy").ok());
  }
  // And once it is back in sync, nothing else moves.
  ASSERT_TRUE(
      PollUntil([&] { return Replica(Placement(), 0, "n1")->in_sync(); }, kWait, "n1 back in sync")
          .ok());
  node(1).WaitRounds(10);
  v1::Placement p = Placement();
  for (uint32_t s : {0u, 3u}) {
    EXPECT_NE(Shard(p, s).leader_node_id(), "n1") << "shard " << s;
    EXPECT_EQ(Shard(p, s).epoch(), 2u) << "shard " << s << " failed over exactly once";
  }
  for (uint32_t s : {1u, 2u}) EXPECT_EQ(Shard(p, s).epoch(), 1u) << "shard " << s;
}

TEST_F(ControlPlaneProcessTest, SigkillRightAfterLeaderWentSilentFailsOverOnceAfterRestart) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3, {"--failure_timeout_ms=1500"}));
  ASSERT_TRUE(WaitReported(0, {{"n1", 0}, {"n2", 0}, {"n3", 0}}).ok());
  const v1::Placement before = Placement();

  // Versions seen by a poller must never go backwards, across the restart too.
  std::atomic<bool> stop_poller{false};
  std::atomic<bool> went_backwards{false};
  absl::Mutex channel_mu;
  std::shared_ptr<grpc::Channel> channel = cp_->channel();
  std::thread poller([&] {
    uint64_t highest = 0;
    while (!stop_poller) {
      std::shared_ptr<grpc::Channel> ch;
      {
        absl::MutexLock lock(&channel_mu);
        ch = channel;
      }
      auto stub = v1::ControlPlane::NewStub(ch);
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(absl::Milliseconds(300)));
      v1::Placement p;
      if (stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &p).ok()) {
        if (p.version() < highest) went_backwards = true;
        highest = std::max(highest, p.version());
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });

  node(1).SetSilent(true);
  cp_->Kill();
  absl::SleepFor(absl::Milliseconds(500));
  absl::Status restarted_ok = cp_->Start();
  ASSERT_TRUE(restarted_ok.ok()) << restarted_ok;
  {
    absl::MutexLock lock(&channel_mu);
    channel = cp_->channel();
  }
  for (auto& n : nodes_) n->SetChannel(cp_->channel());
  v1::Placement restarted = Placement();
  EXPECT_GE(restarted.version(), before.version());
  EXPECT_EQ(Shard(restarted, 0).epoch(), 1u) << "the grace period: no failover yet";
  EXPECT_EQ(Shard(restarted, 0).leader_node_id(), "n1");

  ASSERT_TRUE(PollUntil([&] { return Shard(Placement(), 0).leader_node_id() != "n1"; }, kWait,
                        "failover after the restart")
                  .ok());
  node(2).WaitRounds(20);  // A second failure timeout or so.
  v1::Placement p = Placement();
  EXPECT_EQ(Shard(p, 0).epoch(), 2u) << "exactly one failover";
  EXPECT_EQ(Shard(p, 3).epoch(), 2u);
  EXPECT_EQ(Shard(p, 1).epoch(), 1u);
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n2") << "tie on (epoch, lsn): smallest node id";
  stop_poller = true;
  poller.join();
  EXPECT_FALSE(went_backwards);
}

TEST_F(ControlPlaneProcessTest, ConcurrentPromotesWithTheSameExpectedEpochOneWins) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  ASSERT_TRUE(WaitReported(0, {{"n1", 0}, {"n2", 0}, {"n3", 0}}).ok());
  absl::StatusOr<v1::PlacementChange> a, b;
  std::thread ta([&] { a = Promote(0, "n2", 1); });
  std::thread tb([&] { b = Promote(0, "n3", 1); });
  ta.join();
  tb.join();
  ASSERT_NE(a.ok(), b.ok()) << a.status() << " / " << b.status();
  const absl::Status& loser = a.ok() ? b.status() : a.status();
  EXPECT_EQ(loser.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(loser.message(), "expected_epoch: shard 0 is at epoch 2");
  const v1::PlacementChange& won = a.ok() ? *a : *b;
  EXPECT_EQ(Shard(won.placement(), 0).epoch(), 2u);
  EXPECT_EQ(Shard(Placement(), 0).leader_node_id(), a.ok() ? "n2" : "n3");
}

TEST_F(ControlPlaneProcessTest, WatchDeliversIncreasingVersions) {
  cp_ = std::make_unique<ControlPlaneProcess>(
      dir_.Sub("cp"), std::vector<std::string>{"--tick_ms=20", "--failure_timeout_ms=600"});
  ASSERT_TRUE(cp_->Start().ok());
  grpc::ClientContext ctx;
  auto stub = v1::ControlPlane::NewStub(cp_->channel());
  v1::WatchPlacementRequest request;
  auto reader = stub->WatchPlacement(&ctx, request);
  absl::Mutex mu;
  std::vector<uint64_t> versions;
  std::thread watcher([&] {
    v1::Placement p;
    while (reader->Read(&p)) {
      absl::MutexLock lock(&mu);
      versions.push_back(p.version());
    }
  });
  // The stream connects lazily: only start the nodes once it is established.
  ASSERT_TRUE(PollUntil(
                  [&] {
                    absl::MutexLock lock(&mu);
                    return !versions.empty();
                  },
                  kWait, "the first table on the watch")
                  .ok());
  for (int i = 1; i <= 3; ++i) {
    nodes_.push_back(std::make_unique<FakeNode>(absl::StrCat("n", i), cp_->channel()));
    ASSERT_NO_FATAL_FAILURE(nodes_.back()->Start());
  }
  ASSERT_TRUE(PollUntil([&] { return Placement().created(); }, kWait, "creation").ok());
  node(1).SetSilent(true);
  ASSERT_TRUE(
      PollUntil([&] { return Shard(Placement(), 0).leader_node_id() != "n1"; }, kWait, "failover")
          .ok());
  const uint64_t current = Placement().version();
  ASSERT_TRUE(PollUntil(
                  [&] {
                    absl::MutexLock lock(&mu);
                    return !versions.empty() && versions.back() >= current;
                  },
                  kWait, "the watcher to see the latest version")
                  .ok());
  ctx.TryCancel();
  watcher.join();
  absl::MutexLock lock(&mu);
  ASSERT_GE(versions.size(), 3u);
  EXPECT_EQ(versions.front(), 1u) << "the current table at once";
  for (size_t i = 1; i < versions.size(); ++i) EXPECT_GT(versions[i], versions[i - 1]);
}

TEST_F(ControlPlaneProcessTest, SigtermEndsWatchersAndExitsCleanly) {
  cp_ = std::make_unique<ControlPlaneProcess>(dir_.Sub("cp"));
  ASSERT_TRUE(cp_->Start().ok());
  grpc::ClientContext ctx;
  auto stub = v1::ControlPlane::NewStub(cp_->channel());
  v1::WatchPlacementRequest request;
  request.set_after_version(1000);  // Nothing to send: the watcher waits.
  auto reader = stub->WatchPlacement(&ctx, request);
  std::thread watcher([&] {
    v1::Placement p;
    while (reader->Read(&p)) {
    }
  });
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(cp_->Stop().ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "a watcher must not hold up shutdown";
  watcher.join();
}

TEST_F(ControlPlaneProcessTest, TransferWaitsForPausedLeaderAndCaughtUpTarget) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  node(1).SetLsn(0, 50);
  node(2).SetLsn(0, 40);
  node(3).SetLsn(0, 50);
  ASSERT_TRUE(WaitReported(0, {{"n1", 50}, {"n2", 40}, {"n3", 50}}).ok());
  absl::StatusOr<v1::PlacementChange> result;
  std::thread caller([&] { result = Transfer(0, "n2", 10000); });
  ASSERT_TRUE(PollUntil([&] { return Shard(Placement(), 0).transfer_to() == "n2"; }, kWait,
                        "transfer_to published")
                  .ok());
  node(2).WaitRounds(5);
  EXPECT_EQ(Shard(Placement(), 0).leader_node_id(), "n1") << "n2 is still behind";
  node(2).SetLsn(0, 50);
  caller.join();
  ASSERT_TRUE(result.ok()) << result.status();
  const v1::ShardEntry& shard = Shard(result->placement(), 0);
  EXPECT_EQ(shard.leader_node_id(), "n2");
  EXPECT_EQ(shard.epoch(), 2u);
  EXPECT_EQ(shard.transfer_to(), "");
  EXPECT_THAT(result->summary(), ::testing::Contains(HasSubstr("leader n1 -> n2, epoch 1 -> 2")));
  EXPECT_TRUE(Replica(result->placement(), 0, "n1")->in_sync());
}

TEST_F(ControlPlaneProcessTest, TransferTimesOutWhenTargetDoesNotCatchUp) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  node(1).SetLsn(0, 50);
  node(2).SetLsn(0, 40);
  ASSERT_TRUE(WaitReported(0, {{"n1", 50}, {"n2", 40}}).ok());
  const uint64_t version = Placement().version();
  absl::StatusOr<v1::PlacementChange> result = Transfer(0, "n2", 800);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("lag 10"));
  v1::Placement p = Placement();
  EXPECT_EQ(Shard(p, 0).transfer_to(), "");
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n1");
  EXPECT_EQ(Shard(p, 0).epoch(), 1u);
  EXPECT_GE(p.version(), version + 2) << "transfer_to set, then cleared: two versions";
}

TEST_F(ControlPlaneProcessTest, AReplicaThatIsNotFencedIsNotPromotedAndTooFewFencedPromoteNobody) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  // Shard 0: leader n1; n3 holds the most of the followers.
  node(1).SetLsn(0, 100);
  node(2).SetLsn(0, 90);
  node(3).SetLsn(0, 95);
  ASSERT_TRUE(WaitReported(0, {{"n1", 100}, {"n2", 90}, {"n3", 95}}).ok());
  node(3).SetFenceMode(FenceMode::kRefuse);
  node(1).SetSilent(true);
  ASSERT_TRUE(PollUntil([&] { return !Healthy(Placement(), "n1"); }, kWait, "n1 unhealthy").ok());
  // n2 alone is fenced: 1 of the 2 needed. Nobody is promoted (not n2, which
  // may lack writes n1 and n3 acknowledged): writes fail closed.
  ASSERT_TRUE(PollUntil([&] { return LogCount("not fenced: n3: FAILED_PRECONDITION") > 0; }, kWait,
                        "the refused fence in the log")
                  .ok());
  node(3).SetFenceMode(FenceMode::kHang);  // Now it does not answer at all.
  ASSERT_TRUE(PollUntil([&] { return LogCount("not fenced: n3: DEADLINE_EXCEEDED") > 0; }, kWait,
                        "the unanswered fence in the log")
                  .ok());
  node(2).WaitRounds(5);
  v1::Placement p = Placement();
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n1");
  EXPECT_EQ(Shard(p, 0).epoch(), 1u);
  EXPECT_FALSE(Replica(p, 0, "n2")->in_sync()) << "fenced at epoch 2, refusing n1";
  EXPECT_THAT(node(2).FenceEpochs(0), ::testing::Contains(2u));

  // Once n3 answers, the one holding the most leads, at the fenced epoch.
  node(3).SetFenceMode(FenceMode::kAnswer);
  ASSERT_TRUE(PollUntil([&] { return Shard(Placement(), 0).leader_node_id() != "n1"; }, kWait,
                        "failover once n3 answers")
                  .ok());
  p = Placement();
  EXPECT_EQ(Shard(p, 0).leader_node_id(), "n3");
  EXPECT_EQ(Shard(p, 0).epoch(), 2u);
  EXPECT_THAT(node(3).FenceEpochs(0), ::testing::Each(Shard(p, 0).epoch()))
      << "the fence epoch is the shard's new epoch";
  EXPECT_THAT(node(1).FenceEpochs(0), ::testing::Contains(2u)) << "the old leader too";
}

TEST_F(ControlPlaneProcessTest, ManualFailoverWithTooFewFencedIsUnavailableAndTheLeaderResumes) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  ASSERT_TRUE(WaitReported(0, {{"n1", 0}, {"n2", 0}, {"n3", 0}}).ok());
  node(3).SetFenceMode(FenceMode::kRefuse);
  absl::StatusOr<v1::PlacementChange> refused = Failover(0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("only 1 of 3 replicas fenced at epoch 2, 2 needed (not fenced: n3: "
                        "FAILED_PRECONDITION)"));
  absl::StatusOr<v1::PlacementChange> promote = Promote(0, "n3", 0);
  EXPECT_EQ(promote.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(promote.status().message()), HasSubstr("n3 did not answer the fence"));
  // n1 and n2 were fenced at the next epoch though nobody was promoted: the
  // shard moves to that epoch with its healthy leader, and everyone follows
  // again. (The promote may have fenced once more, after a first repair.)
  ASSERT_TRUE(PollUntil(
                  [&] {
                    v1::Placement p = Placement();
                    return Shard(p, 0).epoch() >= 2 && Replica(p, 0, "n2")->in_sync() &&
                           Replica(p, 0, "n3")->in_sync();
                  },
                  kWait, "the epoch repaired")
                  .ok());
  EXPECT_EQ(Shard(Placement(), 0).leader_node_id(), "n1");
  EXPECT_GE(LogCount("shard 0: epoch 1 -> 2, leader n1 kept ("), 1);
}

TEST_F(ControlPlaneProcessTest, HealthyNodesGetALeaseShorterThanTheFailureTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));  // --failure_timeout_ms=600.
  ASSERT_TRUE(
      PollUntil([&] { return node(1).last_lease_ms() == 400; }, kWait, "the default lease").ok());
  node(1).SetSilent(true);
  ASSERT_TRUE(PollUntil([&] { return !Healthy(Placement(), "n1"); }, kWait, "n1 unhealthy").ok());
  EXPECT_EQ(node(2).last_lease_ms(), 400u);

  // A lease as long as the failure timeout is refused at start.
  const std::string err = dir_.Sub("refused.err");
  testing::CommandResult refused =
      testing::RunCommand(testing::BinaryPath("controlplane/dash-controlplane"),
                          {"--data_dir=" + dir_.Sub("refused"), "--listen=127.0.0.1:0",
                           "--failure_timeout_ms=600", "--lease_ms=600"},
                          "", err);
  EXPECT_EQ(refused.exit_code, 2);
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("--lease_ms: 600 must be below failure_timeout_ms (600)"));
}

}  // namespace
}  // namespace dash
