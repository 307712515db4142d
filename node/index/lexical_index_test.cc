#include "node/index/lexical_index.h"

#include <cmath>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/index/analyzer.h"
#include "node/storage/keys.h"

namespace dash::index {
namespace {

using storage::Family;
namespace keys = storage::keys;

class LexicalIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        ("lexical-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    engine_ = *storage::OpenRocksEngine(dir_.string(), storage::EngineOptions());
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Stores a claim with the given evidence quotes and re-indexes it, committed.
  void PutClaim(const std::string& id, const std::string& text,
                const std::vector<std::string>& quotes = {}) {
    auto ws = engine_->NewWriteSet();
    v1::Claim c;
    c.set_claim_id(id);
    c.set_text(text);
    ws->Put(Family::kClaims, keys::Claim("t", id), c.SerializeAsString());
    for (size_t i = 0; i < quotes.size(); ++i) {
      v1::Evidence e;
      e.set_claim_id(id);
      e.set_evidence_id("e" + std::to_string(i));
      e.mutable_citation()->set_quote(quotes[i]);
      ws->Put(Family::kEvidence, keys::Evidence("t", id, e.evidence_id()), e.SerializeAsString());
    }
    Reindex(*ws, id);
  }
  void DeleteClaim(const std::string& id) {
    auto ws = engine_->NewWriteSet();
    ws->Delete(Family::kClaims, keys::Claim("t", id));
    Reindex(*ws, id);
  }
  void Reindex(storage::WriteSet& ws, const std::string& id) {
    auto raw = ws.Get(Family::kTenants, "t");
    storage::TenantState state;
    if (raw->has_value()) state.ParseFromString(**raw);
    ASSERT_TRUE(ReindexClaim("t", id, &ws, &state).ok());
    ws.Put(Family::kTenants, "t", state.SerializeAsString());
    ASSERT_TRUE(engine_->Commit(ws, false).ok());
  }
  std::vector<ScoredClaim> Search(const std::string& query, size_t k = 10) {
    auto snap = engine_->NewSnapshot();
    const auto terms = AnalyzeText(query);
    auto stats = ReadStats(*snap, "t", terms);
    EXPECT_TRUE(stats.ok());
    auto hits = SearchBm25(*snap, "t", terms, k, Bm25Params(), *stats);
    EXPECT_TRUE(hits.ok());
    return *hits;
  }
  std::vector<std::string> Ids(const std::vector<ScoredClaim>& hits) {
    std::vector<std::string> ids;
    for (const auto& h : hits) ids.push_back(h.claim_id);
    return ids;
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage::Engine> engine_;
};

TEST_F(LexicalIndexTest, ScoresMatchTheBm25Formula) {
  PutClaim("a", "polar bears hunt seals");
  PutClaim("b", "polar ice melts");
  PutClaim("c", "seals seals seals");
  const auto hits = Search("seals");
  ASSERT_EQ(hits.size(), 2u);
  // N=3, df(seal)=2, lengths 4,3,3 -> avgdl 10/3; k1=0.9, b=0.4.
  const double idf = std::log(1 + (3 - 2 + 0.5) / (2 + 0.5));
  auto bm25 = [&](double tf, double dl) {
    return idf * tf * 1.9 / (tf + 0.9 * (1 - 0.4 + 0.4 * dl / (10.0 / 3)));
  };
  EXPECT_EQ(hits[0].claim_id, "c");
  EXPECT_NEAR(hits[0].score, bm25(3, 3), 1e-9);
  EXPECT_EQ(hits[1].claim_id, "a");
  EXPECT_NEAR(hits[1].score, bm25(1, 4), 1e-9);
}

TEST_F(LexicalIndexTest, EvidenceQuotesAreSearchable) {
  PutClaim("a", "Sea level is rising", {"Satellite altimetry shows acceleration."});
  PutClaim("b", "Sea level is stable");
  EXPECT_THAT(Ids(Search("altimetry")), ::testing::ElementsAre("a"));
  EXPECT_THAT(Ids(Search("sea level")), ::testing::UnorderedElementsAre("a", "b"));
}

TEST_F(LexicalIndexTest, UpdatesAndDeletesLeaveNoGhostHits) {
  PutClaim("a", "glaciers retreat");
  PutClaim("b", "glaciers advance");
  PutClaim("a", "coral bleaching");  // a's old terms must disappear
  EXPECT_THAT(Ids(Search("glaciers")), ::testing::ElementsAre("b"));
  EXPECT_THAT(Ids(Search("retreat")), ::testing::IsEmpty());
  EXPECT_THAT(Ids(Search("coral")), ::testing::ElementsAre("a"));
  DeleteClaim("b");
  EXPECT_THAT(Ids(Search("glaciers")), ::testing::IsEmpty());
  auto snap = engine_->NewSnapshot();
  auto stats = *ReadStats(*snap, "t", {"glacier", "coral"});
  EXPECT_EQ(stats.docs, 1u);
  EXPECT_EQ(stats.total_length, 2u);  // "coral bleach"
  EXPECT_EQ(stats.df["glacier"], 0u);
  EXPECT_EQ(stats.df["coral"], 1u);
  // No terms or postings are left behind for the deleted vocabulary.
  EXPECT_FALSE(snap->Scan(Family::kPostings, keys::ClaimPrefix("t", "glacier"))->Valid());
  EXPECT_FALSE(snap->Get(Family::kTerms, keys::Claim("t", "glacier"))->has_value());
}

TEST_F(LexicalIndexTest, TiesBreakByClaimIdAndKLimits) {
  for (const char* id : {"d", "b", "c", "a"}) PutClaim(id, "identical text here");
  EXPECT_THAT(Ids(Search("identical", 3)), ::testing::ElementsAre("a", "b", "c"));
}

TEST_F(LexicalIndexTest, GlobalStatsChangeScoresNotMembership) {
  PutClaim("a", "ocean heat content rises");
  auto snap = engine_->NewSnapshot();
  const auto terms = AnalyzeText("ocean");
  CorpusStats local = *ReadStats(*snap, "t", terms);
  CorpusStats global = local;
  global.docs = 1000;  // As if other shards held many documents without the term.
  global.total_length = 4000;
  auto l = *SearchBm25(*snap, "t", terms, 10, Bm25Params(), local);
  auto g = *SearchBm25(*snap, "t", terms, 10, Bm25Params(), global);
  ASSERT_EQ(l.size(), 1u);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_GT(g[0].score, l[0].score);  // A rarer term is worth more.
}

}  // namespace
}  // namespace dash::index
