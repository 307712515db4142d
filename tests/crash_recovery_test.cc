// Crash recovery: a dash-node is SIGKILLed at random points while writers
// stream batches into it, then restarted, many times. After every restart
// every acknowledged batch must be readable, no batch may be partly applied,
// and the log positions must account for every batch exactly once.
//
// Rounds: $DASH_CRASH_ROUNDS (default 30). Seed: $DASH_CRASH_SEED (default:
// time), printed so a failure can be replayed.
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using namespace query::testing;  // NOLINT: test builders

constexpr int kEvidencePerClaim = 3;
constexpr int kWriters = 4;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v ? std::atoi(v) : fallback;
}

struct Acked {
  std::string claim_id;
  v1::CommitToken token;
};

// The sum over the node's shards of their last LSN: the number of batches
// the node has committed (every batch is one log record).
uint64_t CommittedBatches(const testing::NodeProcess& node,
                          std::map<uint32_t, uint64_t>* per_shard = nullptr) {
  grpc::ClientContext ctx;
  v1::NodeInfo info;
  EXPECT_TRUE(v1::NodeAdmin::NewStub(node.channel())
                  ->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info)
                  .ok());
  uint64_t total = 0;
  for (const auto& r : info.replicas()) {
    total += r.last_lsn();
    if (per_shard != nullptr) (*per_shard)[r.shard()] = r.last_lsn();
  }
  return total;
}

TEST(CrashRecoveryTest, SigkillDuringWritesLosesNoAcknowledgedBatch) {
  const int rounds = EnvInt("DASH_CRASH_ROUNDS", 30);
  const unsigned seed =
      static_cast<unsigned>(EnvInt("DASH_CRASH_SEED", static_cast<int>(time(nullptr))));
  std::mt19937 rng(seed);
  std::printf("[crash] rounds=%d seed=%u\n", rounds, seed);

  testing::TestDir dir;
  testing::NodeProcess node(dir.Sub("node"), {"--shard_count=2"});
  ASSERT_TRUE(node.Start().ok());

  std::vector<Acked> acked;         // Every acknowledged batch, all rounds.
  std::set<std::string> attempted;  // Every claim id ever sent.
  std::mutex mu;
  int total_acked_this_round = 0;

  for (int round = 0; round < rounds; ++round) {
    std::atomic<bool> stop{false};
    std::atomic<int> acked_now{0};
    std::vector<std::thread> writers;
    auto channel = testing::MemberChannel(node.address());
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        auto stub = v1::Data::NewStub(channel);
        for (int seq = 0; !stop.load(); ++seq) {
          const std::string id = absl::StrCat("r", round, "-w", w, "-", seq);
          {
            std::lock_guard<std::mutex> l(mu);
            attempted.insert(id);
          }
          v1::WriteRequest req = ClaimBatch("crash", id, kEvidencePerClaim);
          req.set_idempotency_key(id);
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::WriteResponse resp;
          if (!stub->Write(&ctx, req, &resp).ok()) return;  // The node died.
          std::lock_guard<std::mutex> l(mu);
          acked.push_back({id, resp.token()});
          acked_now.fetch_add(1);
        }
      });
    }
    // Let some writes through, then kill at a random point.
    ASSERT_TRUE(testing::PollUntil([&] { return acked_now.load() >= 5; }, absl::Seconds(30),
                                   "first acknowledged writes")
                    .ok());
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(0, 150)(rng)));
    node.Kill();
    stop = true;
    for (auto& t : writers) t.join();
    total_acked_this_round = acked_now.load();
    ASSERT_TRUE(node.Start().ok()) << "round " << round;

    // 1. Every acknowledged batch is there, whole.
    auto stub = v1::Data::NewStub(node.channel());
    std::map<uint32_t, std::set<uint64_t>> lsns_by_shard;
    for (const Acked& a : acked) {
      grpc::ClientContext ctx;
      v1::GetClaimRequest get;
      get.set_tenant("crash");
      get.set_claim_id(a.claim_id);
      v1::GetClaimResponse resp;
      grpc::Status st = stub->GetClaim(&ctx, get, &resp);
      ASSERT_TRUE(st.ok()) << "round " << round << ": acknowledged " << a.claim_id
                           << " lost: " << st.error_message();
      ASSERT_EQ(resp.record().evidence_size(), kEvidencePerClaim) << a.claim_id;
      // 2. No two acknowledged batches share a log position.
      ASSERT_TRUE(lsns_by_shard[a.token.shard()].insert(a.token.lsn()).second)
          << "lsn " << a.token.lsn() << " acknowledged twice on shard " << a.token.shard();
    }
    // 3. Nothing partial: every stored claim is whole, and the number of
    // batches in the log equals the number of claims stored.
    size_t stored = 0;
    v1::ListClaimsRequest list;
    list.set_tenant("crash");
    list.set_page_size(1000);
    list.set_include_evidence(true);
    for (;;) {
      grpc::ClientContext ctx;
      v1::ListClaimsResponse resp;
      ASSERT_TRUE(stub->ListClaims(&ctx, list, &resp).ok());
      for (const auto& r : resp.records()) {
        ASSERT_EQ(r.evidence_size(), kEvidencePerClaim) << "partial batch " << r.claim().claim_id();
        ASSERT_TRUE(attempted.count(r.claim().claim_id())) << r.claim().claim_id();
      }
      stored += resp.records_size();
      if (resp.next_page_token().empty()) break;
      list.set_page_token(resp.next_page_token());
    }
    std::map<uint32_t, uint64_t> last_lsn;
    const uint64_t log_records = CommittedBatches(node, &last_lsn);
    for (const auto& [shard, lsns] : lsns_by_shard) {
      if (!lsns.empty()) EXPECT_GE(last_lsn[shard], *lsns.rbegin()) << "shard " << shard;
    }
    ASSERT_EQ(log_records, stored) << "round " << round;
    ASSERT_GE(stored, acked.size());
    std::printf("[crash] round %d: %d acked this round, %zu acked total, %zu stored\n", round,
                total_acked_this_round, acked.size(), stored);
  }

  // 4. Retrying every attempted batch with its idempotency key applies the
  // unacknowledged ones once and replays the rest: afterwards everything
  // attempted is stored, and the log grew by exactly the batches that were new.
  auto stub = v1::Data::NewStub(node.channel());
  size_t replayed = 0;
  for (const std::string& id : attempted) {
    v1::WriteRequest req = ClaimBatch("crash", id, kEvidencePerClaim);
    req.set_idempotency_key(id);
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    ASSERT_TRUE(stub->Write(&ctx, req, &resp).ok()) << id;
    if (resp.replayed()) ++replayed;
  }
  EXPECT_GE(replayed, acked.size());
  const uint64_t log_records = CommittedBatches(node);
  EXPECT_EQ(log_records, attempted.size());
}

}  // namespace
}  // namespace dash
