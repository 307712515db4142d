// Issue 5's fault test: one shard with three replicas under concurrent
// writers, through many rounds of faults, each followed by a check of the
// whole history by a checker:
//  - every acknowledged write is readable, at its latest acknowledged version;
//  - a write retried under its idempotency key is acknowledged with one token
//    only, and no two writes are acknowledged at the same LSN;
//  - writes sent to a deposed, isolated leader (never acknowledged) are gone;
//  - every replica ends at the same LSN with the same state checksum.
// Faults, in turn: SIGKILL of the leader, SIGKILL of a follower, a graceful
// restart, a follower down long enough that the log it needs is gone (it
// catches up from a snapshot), and the leader isolated from its peers by the
// node's transport fault hook (--fault_injection) while clients still reach it.
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/cluster.h"

namespace dash {
namespace {

using namespace query::testing;  // NOLINT: test builders

constexpr char kTenant[] = "acme";
constexpr int kRounds = 30;
constexpr int kWriters = 4;
constexpr uint64_t kRetention = 200;  // Records: the snapshot round outruns it.

std::chrono::system_clock::time_point In(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

// One write the history knows of: a version of a claim, under its own
// idempotency key.
struct Attempt {
  std::string claim_id;
  int version = 0;
  std::string key;
  bool acked = false;
  // Every token it was acknowledged with (retries must all get the same).
  std::vector<std::pair<uint64_t, uint64_t>> tokens;  // (epoch, lsn)
  bool to_isolated_leader = false;                    // Sent straight to a deposed leader.
};

std::string TextOf(const std::string& id, int version) {
  return absl::StrCat("claim ", id, " version ", version, " about sea ice and glaciers");
}

// The record of everything the clients did, shared by the writer threads.
class History {
 public:
  // Registers an attempt; returns its index.
  size_t Add(Attempt a) {
    std::lock_guard<std::mutex> l(mu_);
    attempts_.push_back(std::move(a));
    return attempts_.size() - 1;
  }
  void Acked(size_t i, const v1::CommitToken& t) {
    std::lock_guard<std::mutex> l(mu_);
    attempts_[i].acked = true;
    attempts_[i].tokens.emplace_back(t.epoch(), t.lsn());
  }
  std::vector<Attempt> Snapshot() const {
    std::lock_guard<std::mutex> l(mu_);
    return attempts_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Attempt> attempts_;
};

class ReplicationFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ClusterOptions options;
    options.shard_count = 1;
    options.node_args = {"--fault_injection", "--commit_timeout_ms=1500",
                         absl::StrCat("--log_retention_records=", kRetention)};
    cluster_ = std::make_unique<testing::LocalCluster>(dir_.path(), options);
    absl::Status st = cluster_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }

  // A failed assertion returns from the test with the writers running.
  void TearDown() override { StopWriters(); }

  // Writers: each writes new claims and now and then a new version of one of
  // its earlier claims, every batch retried under its idempotency key until
  // acknowledged or the round ends (its outcome then stays unknown).
  void StartWriters(int round) {
    stop_ = false;
    for (int w = 0; w < kWriters; ++w) {
      writers_.emplace_back([this, w, round] {
        auto stub = v1::Data::NewStub(cluster_->router().channel());
        std::mt19937 rng(round * 100 + w);
        for (int n = 0; !stop_; ++n) {
          Attempt a;
          if (n % 4 == 3 && !mine_[w].empty()) {
            a.claim_id = mine_[w][rng() % mine_[w].size()];
            a.version = ++versions_[w][a.claim_id];
          } else {
            a.claim_id = absl::StrCat("r", round, "-w", w, "-", n);
            a.version = versions_[w][a.claim_id] = 1;
            mine_[w].push_back(a.claim_id);
          }
          a.key = absl::StrCat(a.claim_id, "#", a.version);
          const size_t index = history_.Add(a);
          v1::WriteRequest req;
          req.set_tenant(kTenant);
          req.set_idempotency_key(a.key);
          *req.add_ops() = ClaimOp(a.claim_id, TextOf(a.claim_id, a.version));
          *req.add_ops() = EvidenceOp(a.claim_id, a.claim_id + "-e");
          while (!stop_) {
            grpc::ClientContext ctx;
            ctx.set_deadline(In(absl::Seconds(3)));
            v1::WriteResponse resp;
            if (stub->Write(&ctx, req, &resp).ok()) {
              history_.Acked(index, resp.token());
              break;
            }
            absl::SleepFor(absl::Milliseconds(20));
          }
        }
      });
    }
  }
  void StopWriters() {
    stop_ = true;
    for (auto& t : writers_) t.join();
    writers_.clear();
  }

  v1::NodeInfo Info(const std::string& node) {
    auto admin = v1::NodeAdmin::NewStub(cluster_->node(node).channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(2)));
    v1::NodeInfo info;
    admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info);
    return info;
  }
  static const v1::ReplicaInfo* Shard0(const v1::NodeInfo& info) {
    for (const auto& r : info.replicas()) {
      if (r.shard() == 0) return &r;
    }
    return nullptr;
  }

  std::string Leader() {
    absl::StatusOr<v1::Placement> p = cluster_->Placement();
    return p.ok() ? testing::LocalCluster::LeaderOf(*p, 0) : "";
  }
  std::string AFollower(std::mt19937& rng) {
    const std::string leader = Leader();
    std::vector<std::string> f;
    for (const auto& id : cluster_->node_ids()) {
      if (id != leader) f.push_back(id);
    }
    return f[rng() % f.size()];
  }
  void SetIsolated(const std::string& node, bool isolated) {
    std::ofstream out(cluster_->node(node).dir() + "/data/FAULTS", std::ios::trunc);
    out << (isolated ? "isolate\n" : "\n");
  }

  // Waits until the shard has a healthy leader that has committed its
  // epoch, and every replica holds, has applied and knows committed the same
  // last LSN. Returns that LSN.
  uint64_t WaitForConvergence(const std::string& what) {
    uint64_t lsn = 0;
    absl::Status st = testing::PollUntil(
        [&] {
          absl::StatusOr<v1::Placement> p = cluster_->Placement();
          if (!p.ok() || !testing::LocalCluster::AllShardsLed(*p)) return false;
          std::set<uint64_t> last, commit;
          for (const auto& id : cluster_->node_ids()) {
            const v1::NodeInfo info = Info(id);
            const v1::ReplicaInfo* r = Shard0(info);
            if (r == nullptr || r->epoch() != p->shards(0).epoch()) return false;
            last.insert(r->last_lsn());
            commit.insert(r->commit_lsn());
          }
          if (last.size() != 1 || commit != last) return false;
          lsn = *last.begin();
          return true;
        },
        absl::Seconds(60), what, absl::Milliseconds(50));
    EXPECT_TRUE(st.ok()) << st;
    return lsn;
  }

  // The checker. Reads the whole tenant through the router (LEADER_ONLY)
  // and every replica's checksum, and holds them against the history.
  void CheckHistory(int round, const std::string& fault) {
    SCOPED_TRACE(absl::StrCat("round ", round, " (", fault, ")"));
    const uint64_t lsn = WaitForConvergence(absl::StrCat("convergence after ", fault));
    // Identical state at the same LSN on every replica.
    std::set<std::string> digests;
    for (const auto& id : cluster_->node_ids()) {
      auto admin = v1::NodeAdmin::NewStub(cluster_->node(id).channel());
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Seconds(5)));
      v1::ReplicaChecksumRequest req;
      req.set_shard(0);
      v1::ReplicaChecksum sum;
      ASSERT_TRUE(admin->GetReplicaChecksum(&ctx, req, &sum).ok());
      ASSERT_EQ(sum.last_lsn(), lsn) << id;
      digests.insert(sum.sha256());
    }
    EXPECT_EQ(digests.size(), 1u) << "replicas at lsn " << lsn << " differ";

    // The state as clients see it.
    std::map<std::string, std::string> texts;
    auto data = v1::Data::NewStub(cluster_->router().channel());
    std::string token;
    do {
      v1::ListClaimsRequest req;
      req.set_tenant(kTenant);
      req.set_page_size(1000);
      req.set_page_token(token);
      v1::ListClaimsResponse resp;
      absl::Status st;
      for (int attempt = 0; attempt < 50; ++attempt) {  // Leases come back with heartbeats.
        grpc::ClientContext ctx;
        ctx.set_deadline(In(absl::Seconds(10)));
        st = FromGrpcStatus(data->ListClaims(&ctx, req, &resp), &ctx);
        if (st.ok()) break;
        absl::SleepFor(absl::Milliseconds(100));
      }
      ASSERT_TRUE(st.ok()) << st;
      for (const auto& rec : resp.records()) texts[rec.claim().claim_id()] = rec.claim().text();
      token = resp.next_page_token();
    } while (!token.empty());

    const std::vector<Attempt> history = history_.Snapshot();
    std::map<std::string, int> latest_acked;                  // claim -> version
    std::map<std::string, std::set<int>> attempted;           // claim -> versions
    std::map<std::pair<uint64_t, uint64_t>, std::string> at;  // token -> key
    int acked = 0;
    for (const Attempt& a : history) {
      if (!a.to_isolated_leader) attempted[a.claim_id].insert(a.version);
      if (a.to_isolated_leader) {
        EXPECT_FALSE(a.acked) << a.key << " was acknowledged by an isolated leader";
        EXPECT_EQ(texts.count(a.claim_id), 0u)
            << a.key << ", sent only to a deposed leader, survived its truncation";
        continue;
      }
      if (!a.acked) continue;
      ++acked;
      std::set<std::pair<uint64_t, uint64_t>> distinct(a.tokens.begin(), a.tokens.end());
      EXPECT_EQ(distinct.size(), 1u) << a.key << " acknowledged under different tokens";
      auto [it, inserted] = at.emplace(a.tokens.front(), a.key);
      EXPECT_TRUE(inserted || it->second == a.key)
          << a.key << " and " << it->second << " were both acknowledged at lsn "
          << a.tokens.front().second;
      int& v = latest_acked[a.claim_id];
      v = std::max(v, a.version);
    }
    int missing = 0;
    for (const auto& [id, version] : latest_acked) {
      auto found = texts.find(id);
      if (found == texts.end()) {
        if (++missing <= 5) ADD_FAILURE() << "acknowledged claim " << id << " is gone";
        continue;
      }
      // The text is the latest acknowledged version, or a later attempt
      // whose outcome the client never learned.
      bool ok = false;
      for (int later : attempted[id]) {
        if (later >= version && found->second == TextOf(id, later)) ok = true;
      }
      EXPECT_TRUE(ok) << id << " reads \"" << found->second << "\", older than version " << version
                      << ", which was acknowledged";
    }
    EXPECT_EQ(missing, 0);
    for (const auto& [id, text] : texts) {
      EXPECT_TRUE(attempted.count(id) > 0) << id << " was never written";
    }
    std::cout << "round " << round << " (" << fault << "): lsn " << lsn << ", " << acked
              << " writes acknowledged so far, " << texts.size() << " claims, replicas agree\n";
  }

  // Sends writes straight to `node` (a deposed leader cut off from its
  // peers): it may take them but can never commit them.
  void WriteToIsolated(const std::string& node, int round) {
    auto stub = v1::Data::NewStub(cluster_->node(node).channel());
    for (int i = 0; i < 3; ++i) {
      Attempt a;
      a.claim_id = absl::StrCat("isolated-r", round, "-", i);
      a.version = 1;
      a.key = a.claim_id;
      a.to_isolated_leader = true;
      const size_t index = history_.Add(a);
      v1::WriteRequest req;
      req.set_tenant(kTenant);
      req.set_idempotency_key(a.key);
      *req.add_ops() = ClaimOp(a.claim_id, TextOf(a.claim_id, 1));
      *req.add_ops() = EvidenceOp(a.claim_id, a.claim_id + "-e");
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Milliseconds(500)));
      v1::WriteResponse resp;
      if (stub->Write(&ctx, req, &resp).ok()) history_.Acked(index, resp.token());
    }
  }

  // How often `node`'s log (kept across its restarts) says `what`: how the
  // test knows which repair path a round took.
  int LogCount(const std::string& node, const std::string& what) {
    std::ifstream in(cluster_->node(node).log_path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    int n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  }

  testing::TestDir dir_;
  std::unique_ptr<testing::LocalCluster> cluster_;
  History history_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
  // Per writer: its claims; per claim: its newest version (each claim is
  // written by one writer only).
  std::vector<std::string> mine_[kWriters];
  std::map<std::string, int> versions_[kWriters];
};

TEST_F(ReplicationFaultTest, ThirtyRoundsOfFaultsLoseNoAcknowledgedWrite) {
  std::mt19937 rng(5);
  const char* kFaults[] = {"sigkill leader", "sigkill follower", "restart a node",
                           "follower outruns the log", "isolate the leader"};
  std::map<std::string, int> done;
  for (int round = 0; round < kRounds; ++round) {
    const std::string fault = kFaults[round % 5];
    StartWriters(round);
    absl::SleepFor(absl::Milliseconds(400));
    if (fault == "sigkill leader") {
      const std::string victim = Leader();
      cluster_->node(victim).Kill();
      absl::SleepFor(absl::Milliseconds(300));
      {
        absl::Status restarted = cluster_->RestartNode(victim, /*wipe=*/false);
        ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted;
      }
    } else if (fault == "sigkill follower") {
      const std::string victim = AFollower(rng);
      cluster_->node(victim).Kill();
      absl::SleepFor(absl::Milliseconds(300));
      {
        absl::Status restarted = cluster_->RestartNode(victim, /*wipe=*/false);
        ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted;
      }
    } else if (fault == "restart a node") {
      const std::string victim = cluster_->node_ids()[rng() % cluster_->node_ids().size()];
      ASSERT_TRUE(cluster_->node(victim).Stop().ok());
      {
        absl::Status restarted = cluster_->RestartNode(victim, /*wipe=*/false);
        ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted;
      }
    } else if (fault == "follower outruns the log") {
      const std::string victim = AFollower(rng);
      const std::string leader = Leader();
      cluster_->node(victim).Kill();
      // The follower cannot hold more than the leader had when it died.
      const v1::ReplicaInfo* at_kill = Shard0(Info(leader));
      ASSERT_NE(at_kill, nullptr);
      const uint64_t held_at_most = at_kill->last_lsn();
      absl::Status st = testing::PollUntil(
          [&] {
            const v1::NodeInfo info = Info(leader);
            const v1::ReplicaInfo* r = Shard0(info);
            return r != nullptr && r->log_start_lsn() > held_at_most + 1;
          },
          absl::Seconds(60), "the leader's log to drop what the follower needs",
          absl::Milliseconds(50));
      ASSERT_TRUE(st.ok()) << st;
      const int snapshots = LogCount(victim, "installed a snapshot");
      {
        absl::Status restarted = cluster_->RestartNode(victim, /*wipe=*/false);
        ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted;
      }
      st = testing::PollUntil([&] { return LogCount(victim, "installed a snapshot") > snapshots; },
                              absl::Seconds(60), "the follower to install a snapshot",
                              absl::Milliseconds(100));
      EXPECT_TRUE(st.ok()) << st;
    } else {  // isolate the leader
      const std::string victim = Leader();
      SetIsolated(victim, true);
      absl::Status st = testing::PollUntil(
          [&] {
            const std::string now = Leader();
            return !now.empty() && now != victim;
          },
          absl::Seconds(30), "a new leader while the old one is isolated", absl::Milliseconds(50));
      ASSERT_TRUE(st.ok()) << st;
      WriteToIsolated(victim, round);
      const int repairs = LogCount(victim, "truncated the log after lsn") +
                          LogCount(victim, "installed a snapshot");
      SetIsolated(victim, false);
      // The writes it took can never commit: it must drop them to follow.
      st = testing::PollUntil(
          [&] {
            return LogCount(victim, "truncated the log after lsn") +
                       LogCount(victim, "installed a snapshot") >
                   repairs;
          },
          absl::Seconds(60), "the deposed leader to repair its log", absl::Milliseconds(100));
      EXPECT_TRUE(st.ok()) << st;
    }
    absl::SleepFor(absl::Milliseconds(300));
    StopWriters();
    ASSERT_NO_FATAL_FAILURE(CheckHistory(round, fault));
    ++done[fault];
  }
  for (const char* f : kFaults) EXPECT_GE(done[f], kRounds / 5) << f;
}

}  // namespace
}  // namespace dash
