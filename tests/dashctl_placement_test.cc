// dashctl's placement commands against a real dash-controlplane. The test
// plays the shard nodes: it registers them and heartbeats for them over gRPC,
// reporting the LSNs each test chooses, then runs the real dashctl binary.
#include <arpa/inet.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kDefaultLsn = 100;

// Shard nodes played by the test: registers them, then heartbeats every
// 100 ms for each, reporting every replica the current placement gives the
// node (its role and the shard's epoch) with the LSN the test set; a leader
// also reports its followers' lag (in sync within 1000 records). Each node
// answers NodeAdmin.FenceShard (which failover and promote send first) on its
// own port with that LSN.
class FakeNodes {
 public:
  FakeNodes(std::shared_ptr<grpc::Channel> channel, std::vector<std::string> ids)
      : stub_(v1::ControlPlane::NewStub(channel)), ids_(std::move(ids)) {}
  ~FakeNodes() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& server : servers_) server->Shutdown();
  }

  absl::Status RegisterAll() {
    for (size_t i = 0; i < ids_.size(); ++i) {
      fencers_.push_back(std::make_unique<FenceService>(this, ids_[i]));
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort(
          "127.0.0.1:0", testing::TestSecurity::Get().MemberSecurity()->ServerCredentials(), &port);
      builder.RegisterService(fencers_.back().get());
      servers_.push_back(builder.BuildAndStart());
      if (servers_.back() == nullptr || port == 0) return absl::InternalError("cannot serve");
      v1::RegisterNodeRequest req;
      req.set_node_id(ids_[i]);
      req.set_address(absl::StrCat("127.0.0.1:", port));
      v1::RegisterNodeResponse resp;
      grpc::ClientContext ctx;
      grpc::Status st = stub_->RegisterNode(&ctx, req, &resp);
      if (!st.ok())
        return absl::InternalError("RegisterNode " + ids_[i] + ": " + st.error_message());
    }
    return absl::OkStatus();
  }

  void StartHeartbeats() {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> l(mu_);
      while (!stop_) {
        l.unlock();
        BeatOnce();
        l.lock();
        cv_.wait_for(l, std::chrono::milliseconds(100), [this] { return stop_; });
      }
    });
  }

  void SetLsn(const std::string& node, uint32_t shard, uint64_t lsn) {
    std::lock_guard<std::mutex> l(mu_);
    lsn_[{node, shard}] = lsn;
  }

 private:
  // A node's NodeAdmin.FenceShard: adopts any epoch, answers its LSN.
  class FenceService final : public v1::NodeAdmin::Service {
   public:
    FenceService(FakeNodes* nodes, std::string id) : nodes_(nodes), id_(std::move(id)) {}
    grpc::Status FenceShard(grpc::ServerContext* ctx, const v1::FenceShardRequest* request,
                            v1::FenceShardResponse* response) override {
      response->set_shard(request->shard());
      response->set_epoch(request->epoch());
      response->set_last_epoch(1);
      response->set_last_lsn(nodes_->Lsn(id_, request->shard()));
      return grpc::Status::OK;
    }

   private:
    FakeNodes* const nodes_;
    const std::string id_;
  };

  uint64_t Lsn(const std::string& node, uint32_t shard) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = lsn_.find({node, shard});
    return it == lsn_.end() ? kDefaultLsn : it->second;
  }

  void BeatOnce() {
    v1::Placement p;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      if (!stub_->GetPlacement(&ctx, v1::GetPlacementRequest(), &p).ok()) return;
    }
    for (const std::string& id : ids_) {
      v1::HeartbeatRequest req;
      req.set_node_id(id);
      for (const auto& s : p.shards()) {
        for (const auto& r : s.replicas()) {
          if (r.node_id() != id) continue;
          v1::ReplicaReport* rep = req.add_replicas();
          rep->set_shard(s.shard());
          rep->set_epoch(s.epoch());
          rep->set_role(r.role());
          rep->set_last_epoch(s.epoch());
          rep->set_last_lsn(Lsn(id, s.shard()));
          rep->set_writes_paused(r.role() == v1::REPLICA_ROLE_LEADER && !s.transfer_to().empty());
          if (r.role() != v1::REPLICA_ROLE_LEADER) continue;
          for (const auto& other : s.replicas()) {
            if (other.node_id() == id) continue;
            const uint64_t mine = Lsn(id, s.shard());
            const uint64_t theirs = Lsn(other.node_id(), s.shard());
            const uint64_t behind = mine > theirs ? mine - theirs : 0;
            v1::FollowerLag* lag = rep->add_followers();
            lag->set_node_id(other.node_id());
            lag->set_acked_lsn(theirs);
            lag->set_lag_records(behind);
            lag->set_lag_bytes(behind * 100);
            lag->set_lag_seconds(behind > 0 ? 0.5 : 0.0);
            lag->set_in_sync(behind <= 1000);
          }
        }
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::HeartbeatResponse resp;
      (void)stub_->Heartbeat(&ctx, req, &resp);  // A missed beat is retried next period.
    }
  }

  const std::unique_ptr<v1::ControlPlane::Stub> stub_;
  const std::vector<std::string> ids_;
  std::vector<std::unique_ptr<FenceService>> fencers_;  // Outlive servers_.
  std::vector<std::unique_ptr<grpc::Server>> servers_;
  std::thread thread_;

  std::mutex mu_;  // Guards the fields below.
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::pair<std::string, uint32_t>, uint64_t> lsn_;
};

template <typename M>
bool ParseJson(const std::string& json, M* m) {
  return google::protobuf::util::JsonStringToMessage(json, m).ok();
}

const v1::ReplicaEntry* Replica(const v1::ShardEntry& s, const std::string& node) {
  for (const auto& r : s.replicas()) {
    if (r.node_id() == node) return &r;
  }
  return nullptr;
}

// The follower of a shard with two replicas.
std::string Follower(const v1::ShardEntry& s) {
  for (const auto& r : s.replicas()) {
    if (r.node_id() != s.leader_node_id()) return r.node_id();
  }
  return "";
}

class DashctlPlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cp_ = std::make_unique<testing::ControlPlaneProcess>(
        dir_.Sub("cp"), std::vector<std::string>{"--shard_count=2", "--replication_factor=2",
                                                 "--failure_timeout_ms=2000"});
    ASSERT_TRUE(cp_->Start().ok()) << "see " << cp_->log_path();
    stub_ = v1::ControlPlane::NewStub(cp_->channel());
    nodes_ =
        std::make_unique<FakeNodes>(cp_->channel(), std::vector<std::string>{"n1", "n2", "n3"});
    ASSERT_TRUE(nodes_->RegisterAll().ok());
    nodes_->StartHeartbeats();
    // Created, every node healthy, every shard led with its followers in sync.
    ASSERT_TRUE(WaitFor(
                    [](const v1::Placement& p) {
                      if (!p.created() || p.shards_size() != 2 || p.nodes_size() != 3) return false;
                      for (const auto& n : p.nodes()) {
                        if (n.health() != v1::NODE_HEALTH_HEALTHY) return false;
                      }
                      for (const auto& s : p.shards()) {
                        if (s.leader_node_id().empty() || s.replicas_size() != 2) return false;
                        for (const auto& r : s.replicas()) {
                          if (!r.in_sync() || r.last_lsn() != kDefaultLsn) return false;
                        }
                      }
                      return true;
                    },
                    "a created, healthy, in-sync cluster")
                    .ok());
  }

  v1::Placement Placement() {
    grpc::ClientContext ctx;
    v1::Placement p;
    grpc::Status st = stub_->GetPlacement(&ctx, v1::GetPlacementRequest(), &p);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return p;
  }

  absl::Status WaitFor(const std::function<bool(const v1::Placement&)>& condition,
                       const std::string& what) {
    return testing::PollUntil([&] { return condition(Placement()); }, absl::Seconds(20), what);
  }

  // Runs dashctl against the control plane; its stderr lands in *err.
  testing::CommandResult Ctl(std::vector<std::string> args, std::string* err = nullptr) {
    args.insert(args.begin(), "--controlplane=" + cp_->address());
    return Run(args, err);
  }
  testing::CommandResult Run(const std::vector<std::string>& args, std::string* err = nullptr) {
    const std::string err_path = dir_.Sub(absl::StrCat("dashctl-", ++runs_, ".err"));
    auto result = testing::RunCommand(testing::BinaryPath("dashctl/dashctl"), args, "", err_path);
    if (err != nullptr) {
      std::ifstream in(err_path);
      std::stringstream ss;
      ss << in.rdbuf();
      *err = ss.str();
    }
    return result;
  }

  testing::TestDir dir_;
  std::unique_ptr<testing::ControlPlaneProcess> cp_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;
  std::unique_ptr<FakeNodes> nodes_;
  int runs_ = 0;
};

TEST_F(DashctlPlacementTest, ShowNamesEachShardsLeader) {
  const v1::Placement want = Placement();

  auto json = Ctl({"placement", "show", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.out;
  v1::Placement got;
  ASSERT_TRUE(ParseJson(json.out, &got)) << json.out;
  ASSERT_EQ(got.shards_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(got.shards(i).leader_node_id().empty());
    EXPECT_EQ(got.shards(i).leader_node_id(), want.shards(i).leader_node_id());
  }

  auto human = Ctl({"placement", "show"});
  ASSERT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.out, HasSubstr("shards, replication factor 2"));
  std::vector<std::string> lines = absl::StrSplit(human.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << human.out;  // Header, column names, two shards.
  EXPECT_THAT(lines[1], HasSubstr("LEADER"));
  for (int i = 0; i < 2; ++i) {
    const auto& s = want.shards(i);
    EXPECT_THAT(lines[2 + i], ::testing::StartsWith(absl::StrCat(s.shard(), " ")));
    EXPECT_THAT(lines[2 + i], HasSubstr(absl::StrCat(s.leader_node_id(), "(L,lsn=100)")));
    EXPECT_THAT(lines[2 + i],
                HasSubstr(absl::StrCat(Follower(s), "(F,in-sync,lsn=100,lag=0r/0B/0.0s)")));
  }
}

TEST_F(DashctlPlacementTest, ShowPrintsEachFollowersInSyncFlagAndLag) {
  const v1::ShardEntry s = Placement().shards(0);
  const std::string leader = s.leader_node_id();
  const std::string follower = Follower(s);
  nodes_->SetLsn(leader, 0, 130);  // The follower trails by 30 records (in sync).
  ASSERT_TRUE(WaitFor(
                  [&](const v1::Placement& p) {
                    const auto* f = Replica(p.shards(0), follower);
                    return f != nullptr && f->lag().lag_records() == 30;
                  },
                  "the leader's lag report")
                  .ok());
  auto human = Ctl({"placement", "show"});
  ASSERT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.out,
              HasSubstr(absl::StrCat(follower, "(F,in-sync,lsn=100,lag=30r/3000B/0.5s)")))
      << human.out;

  auto json = Ctl({"placement", "show", "--json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"in_sync\""));
  EXPECT_THAT(json.out, HasSubstr("\"lag_records\""));
  EXPECT_THAT(json.out, HasSubstr("\"lag_bytes\""));
  EXPECT_THAT(json.out, HasSubstr("\"lag_seconds\""));
  v1::Placement got;
  ASSERT_TRUE(ParseJson(json.out, &got)) << json.out;
  const v1::ReplicaEntry* f = Replica(got.shards(0), follower);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->in_sync());
  EXPECT_EQ(f->lag().lag_records(), 30u);
  EXPECT_EQ(f->lag().lag_bytes(), 3000u);
  EXPECT_DOUBLE_EQ(f->lag().lag_seconds(), 0.5);

  // Out of sync by the leader's verdict: shown as behind.
  nodes_->SetLsn(leader, 0, 1200);
  ASSERT_TRUE(WaitFor(
                  [&](const v1::Placement& p) {
                    const auto* r = Replica(p.shards(0), follower);
                    return r != nullptr && !r->in_sync();
                  },
                  "the follower out of sync")
                  .ok());
  human = Ctl({"placement", "show"});
  EXPECT_THAT(human.out, HasSubstr(absl::StrCat(follower, "(F,behind,lsn=100,lag=1100r/")))
      << human.out;
}

TEST_F(DashctlPlacementTest, NodesListsEveryNodeHealthy) {
  auto human = Ctl({"nodes"});
  ASSERT_EQ(human.exit_code, 0);
  std::vector<std::string> lines = absl::StrSplit(human.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << human.out;
  EXPECT_THAT(lines[0], HasSubstr("LAST_HEARTBEAT"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(lines[1 + i], ::testing::StartsWith(absl::StrCat("n", i + 1, " ")));
    EXPECT_THAT(lines[1 + i], HasSubstr(" healthy "));
  }
  EXPECT_THAT(human.out, Not(HasSubstr("unhealthy")));

  auto json = Ctl({"--json", "nodes"});
  ASSERT_EQ(json.exit_code, 0);
  v1::ListNodesResponse resp;
  ASSERT_TRUE(ParseJson(json.out, &resp)) << json.out;
  ASSERT_EQ(resp.nodes_size(), 3);
  for (const auto& n : resp.nodes()) EXPECT_EQ(n.health(), v1::NODE_HEALTH_HEALTHY) << n.node_id();
}

TEST_F(DashctlPlacementTest, WatchPrintsOneJsonLinePerVersion) {
  auto json = Ctl({"placement", "watch", "--count", "1", "--json"});
  ASSERT_EQ(json.exit_code, 0);
  std::vector<std::string> lines = absl::StrSplit(json.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << json.out;
  v1::Placement p;
  ASSERT_TRUE(ParseJson(lines[0], &p)) << lines[0];
  EXPECT_TRUE(p.created());
  EXPECT_GT(p.version(), 0u);

  // The next version: a change made while the watch waits for it.
  const v1::Placement before = Placement();
  std::thread change([&] {
    // The watch may connect after the change; --after-version covers both.
    v1::AddReplicaRequest req;
    req.set_shard(0);
    req.set_node_id("n3");
    grpc::ClientContext ctx;
    v1::PlacementChange resp;
    EXPECT_TRUE(stub_->AddReplica(&ctx, req, &resp).ok());
  });
  auto next =
      Ctl({"placement", "watch", "--count=1", absl::StrCat("--after-version=", before.version())});
  change.join();
  ASSERT_EQ(next.exit_code, 0);
  EXPECT_THAT(next.out, ::testing::StartsWith("version "));
  EXPECT_THAT(next.out, HasSubstr("n3(F,"));
}

TEST_F(DashctlPlacementTest, PromotingALaggingFollowerNeedsAcceptDataLoss) {
  const v1::ShardEntry before = Placement().shards(0);
  const std::string leader = before.leader_node_id();
  const std::string follower = Follower(before);
  nodes_->SetLsn(leader, 0, 1200);
  nodes_->SetLsn(follower, 0, 40);
  ASSERT_TRUE(WaitFor(
                  [&](const v1::Placement& p) {
                    const auto* l = Replica(p.shards(0), leader);
                    const auto* f = Replica(p.shards(0), follower);
                    return l && f && l->last_lsn() == 1200 && f->last_lsn() == 40;
                  },
                  "the reported LSNs")
                  .ok());

  std::string err;
  auto refused = Ctl({"promote", "--shard=0", "--node=" + follower}, &err);
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_THAT(err, AnyOf(HasSubstr("accept_data_loss"), HasSubstr("discard")));
  EXPECT_THAT(err, HasSubstr("--accept-data-loss"));
  EXPECT_EQ(Placement().shards(0).leader_node_id(), leader);

  auto promoted = Ctl({"promote", "--shard=0", "--node=" + follower, "--accept-data-loss"}, &err);
  ASSERT_EQ(promoted.exit_code, 0) << err;
  EXPECT_THAT(promoted.out,
              HasSubstr(absl::StrCat("LOST shard 0: LSNs (40, 1200] reported by ", leader)));
  EXPECT_THAT(promoted.out, HasSubstr("shards changed: 0"));

  auto show = Ctl({"placement", "show", "--json"});
  ASSERT_EQ(show.exit_code, 0);
  v1::Placement after;
  ASSERT_TRUE(ParseJson(show.out, &after));
  EXPECT_EQ(after.shards(0).leader_node_id(), follower);
  EXPECT_GT(after.shards(0).epoch(), before.epoch());
}

TEST_F(DashctlPlacementTest, FailoverChangesLeaderAndEpoch) {
  const v1::ShardEntry before = Placement().shards(0);

  std::string err;
  auto stale = Ctl({"failover", "--shard=0", absl::StrCat("--epoch=", before.epoch() + 7)}, &err);
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_THAT(err, HasSubstr("FAILED_PRECONDITION"));

  auto done = Ctl({"failover", "--shard", "0", "--epoch", absl::StrCat(before.epoch())}, &err);
  ASSERT_EQ(done.exit_code, 0) << err;
  EXPECT_THAT(done.out, HasSubstr("shards changed: 0"));
  const v1::ShardEntry after = Placement().shards(0);
  EXPECT_EQ(after.leader_node_id(), Follower(before));
  EXPECT_GT(after.epoch(), before.epoch());
}

TEST_F(DashctlPlacementTest, ReplicaCommandsChangeTheReplicaSet) {
  const v1::ShardEntry before = Placement().shards(0);
  const std::string follower = Follower(before);

  std::string err;
  auto add = Ctl({"replicas", "add", "--shard=0", "--node=n3"}, &err);
  ASSERT_EQ(add.exit_code, 0) << err;
  EXPECT_NE(Replica(Placement().shards(0), "n3"), nullptr);
  auto remove = Ctl({"replicas", "remove", "--shard=0", "--node=n3"}, &err);
  ASSERT_EQ(remove.exit_code, 0) << err;
  EXPECT_EQ(Replica(Placement().shards(0), "n3"), nullptr);

  // The new replica catches up (its reports say so), then the old one goes.
  auto move =
      Ctl({"--json", "replicas", "move", "--shard=0", "--from=" + follower, "--to=n3"}, &err);
  ASSERT_EQ(move.exit_code, 0) << err;
  v1::PlacementChange change;
  ASSERT_TRUE(ParseJson(move.out, &change)) << move.out;
  EXPECT_EQ(change.placement().shards(0).moving_from(), follower);
  ASSERT_TRUE(WaitFor(
                  [&](const v1::Placement& p) {
                    const auto& s = p.shards(0);
                    return s.moving_from().empty() && Replica(s, follower) == nullptr &&
                           Replica(s, "n3") != nullptr;
                  },
                  "the move to finish")
                  .ok());
}

TEST_F(DashctlPlacementTest, TransferAndDrainMoveLeadership) {
  const v1::ShardEntry before = Placement().shards(0);
  const std::string target = Follower(before);

  std::string err;
  auto transfer = Ctl({"transfer", "--shard=0", "--node=" + target, "--timeout-ms=10000"}, &err);
  ASSERT_EQ(transfer.exit_code, 0) << err;
  EXPECT_THAT(transfer.out, HasSubstr("shards changed: 0"));
  v1::ShardEntry after = Placement().shards(0);
  EXPECT_EQ(after.leader_node_id(), target);
  EXPECT_GT(after.epoch(), before.epoch());
  EXPECT_TRUE(after.transfer_to().empty());

  // `target` now leads both shards; draining moves that away, which needs
  // in-sync followers that reported at the new epochs (until they do, the
  // ticker counts the old leader out of sync).
  ASSERT_TRUE(WaitFor(
                  [&](const v1::Placement& p) {
                    for (const auto& s : p.shards()) {
                      for (const auto& r : s.replicas()) {
                        if (!r.in_sync() || r.last_epoch() != s.epoch()) return false;
                      }
                    }
                    return true;
                  },
                  "in-sync followers at the current epochs")
                  .ok());
  auto drain = Ctl({"drain", "--node=" + target}, &err);
  ASSERT_EQ(drain.exit_code, 0) << err;
  const v1::Placement drained = Placement();
  for (const auto& s : drained.shards()) EXPECT_NE(s.leader_node_id(), target);
  auto nodes = Ctl({"nodes"});
  std::vector<std::string> lines = absl::StrSplit(nodes.out, '\n', absl::SkipEmpty());
  int listed = 0;
  for (const auto& line : lines) {
    if (absl::StartsWith(line, target + " ")) {
      ++listed;
      EXPECT_THAT(line, ::testing::EndsWith(" yes"));
    }
  }
  EXPECT_EQ(listed, 1) << nodes.out;
  auto undrain = Ctl({"drain", "--node=" + target, "--undrain"}, &err);
  EXPECT_EQ(undrain.exit_code, 0) << err;
  const v1::Placement undrained = Placement();
  for (const auto& n : undrained.nodes()) EXPECT_FALSE(n.draining()) << n.node_id();
}

TEST_F(DashctlPlacementTest, RefusalsUsageErrorsAndUnreachable) {
  const v1::ShardEntry s = Placement().shards(0);
  std::string err;
  auto leader = Ctl({"replicas", "remove", "--shard=0", "--node=" + s.leader_node_id()}, &err);
  EXPECT_EQ(leader.exit_code, 1);
  EXPECT_THAT(err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_EQ(Placement().shards(0).replicas_size(), 2);

  EXPECT_EQ(Ctl({"failover"}).exit_code, 2);              // --shard missing
  EXPECT_EQ(Ctl({"promote", "--shard=0"}).exit_code, 2);  // --node missing
  EXPECT_EQ(Ctl({"replicas", "move", "--shard=0", "--from=n1"}).exit_code, 2);
  EXPECT_EQ(Ctl({"failover", "--shard=7"}, &err).exit_code, 2);  // INVALID_ARGUMENT
  EXPECT_THAT(err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(Ctl({"promote", "--shard=0", "--node=nobody"}).exit_code, 1);  // NOT_FOUND

  const std::string closed = absl::StrCat("--controlplane=127.0.0.1:", testing::UnusedPort());
  EXPECT_EQ(Run({closed, "--timeout=2", "placement", "show"}).exit_code, 3);
  EXPECT_EQ(Run({closed, "--timeout=2", "failover", "--shard=0"}).exit_code, 3);
  EXPECT_EQ(Run({closed, "placement", "watch", "--count=1"}).exit_code, 3);
}

}  // namespace
}  // namespace dash
