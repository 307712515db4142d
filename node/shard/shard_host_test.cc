#include "node/shard/shard_host.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/test_util.h"

namespace dash::shard {
namespace {

using namespace testing;  // NOLINT: test builders

const char* kTexts[] = {
    "Arctic sea ice extent is declining rapidly",
    "Polar bears depend on sea ice to hunt seals",
    "Global sea level rise is accelerating",
    "Coral reefs bleach when ocean temperatures rise",
    "Glaciers in the Alps are retreating",
    "Ocean acidification harms shell-forming organisms",
    "Sea ice loss amplifies Arctic warming",
    "Permafrost thaw releases methane",
    "Heat waves are becoming more frequent",
    "Antarctic ice sheets lose mass to the ocean",
};

class ShardHostTest : public ::testing::Test {
 protected:
  std::unique_ptr<ShardHost> MakeHost(uint32_t shards) {
    HostOptions o;
    o.node_id = "n";
    o.data_dir = (std::filesystem::path(::testing::TempDir()) /
                  absl::StrCat("host-", shards, "-",
                               ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                     .string();
    std::filesystem::remove_all(o.data_dir);
    dirs_.push_back(o.data_dir);
    o.shard_count = shards;
    auto host = ShardHost::Open(o);
    EXPECT_TRUE(host.ok()) << host.status();
    // The same claims, each written to the shard it belongs to.
    int n = 0;
    for (const char* text : kTexts) {
      const std::string id = absl::StrCat("c", n++);
      v1::WriteRequest req;
      req.set_tenant("t");
      *req.add_ops() = ClaimOp(id, text);
      *req.add_ops() = EvidenceOp(id, "e");
      req.mutable_ops(1)->mutable_evidence()->mutable_citation()->set_quote(
          absl::StrCat("Observation ", n, " about ", text));
      auto r = (*host)->replica(ShardOf("t", id, shards))->WriteAndWait(req);
      EXPECT_TRUE(r.ok()) << r.status();
    }
    return std::move(*host);
  }
  void TearDown() override {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  static std::vector<std::pair<std::string, double>> Ranking(const v1::QueryResponse& r) {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& h : r.hits()) out.emplace_back(h.record().claim().claim_id(), h.score());
    return out;
  }
  std::vector<std::string> dirs_;
};

TEST_F(ShardHostTest, RankingDoesNotDependOnShardCount) {
  auto one = MakeHost(1);
  auto four = MakeHost(4);
  for (const char* q : {"sea ice", "ocean", "arctic warming", "glaciers retreat alps", "ice"}) {
    v1::QueryRequest req;
    req.set_tenant("t");
    req.set_text(q);
    req.set_k(5);
    auto a = one->Query(req);
    auto b = four->Query(req);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(b->read_at_size(), 4);
    const auto ra = Ranking(*a), rb = Ranking(*b);
    ASSERT_EQ(ra.size(), rb.size()) << q;
    ASSERT_FALSE(ra.empty()) << q;
    for (size_t i = 0; i < ra.size(); ++i) {
      EXPECT_EQ(ra[i].first, rb[i].first) << q << " rank " << i + 1;
      EXPECT_NEAR(ra[i].second, rb[i].second, 1e-9) << q;
      EXPECT_EQ(b->hits(i).lexical().rank(), i + 1);
    }
  }
}

TEST_F(ShardHostTest, QueryReturnsEvidenceWhenAsked) {
  auto host = MakeHost(2);
  v1::QueryRequest req;
  req.set_tenant("t");
  req.set_text("permafrost methane");
  auto r = host->Query(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->hits_size(), 1);
  EXPECT_EQ(r->hits(0).record().claim().claim_id(), "c7");
  EXPECT_EQ(r->hits(0).record().evidence_size(), 0);
  req.set_include_evidence(true);
  r = host->Query(req);
  ASSERT_EQ(r->hits(0).record().evidence_size(), 1);
  // Another tenant sees nothing.
  req.set_tenant("other");
  EXPECT_EQ(host->Query(req)->hits_size(), 0);
}

TEST_F(ShardHostTest, BadQueriesNameTheField) {
  auto host = MakeHost(1);
  v1::QueryRequest req;
  req.set_tenant("t");
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("text:"));
  req.set_text("ice");
  req.set_k(5000);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("k:"));
  req.set_k(10);
  req.mutable_bm25()->set_b(1.5);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("bm25.b:"));
  req.mutable_bm25()->clear_b();
  req.mutable_bm25()->set_k1(-1);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("bm25.k1:"));
  req.set_tenant("bad tenant");
  EXPECT_EQ(host->Query(req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dash::shard
