#include "node/index/lexical_index.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/storage/keys.h"
#include "query/analyzer.h"

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
    const auto terms = dash::query::AnalyzeText(query);
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

// The exhaustive ranking SearchBm25 must reproduce exactly: every posting of
// every query term scored, term after term.
std::vector<ScoredClaim> Exhaustive(const storage::Reader& r, const std::vector<std::string>& terms,
                                    size_t k, const Bm25Params& params, const CorpusStats& stats,
                                    const absl::flat_hash_set<std::string>* allowed) {
  std::map<std::string, int> qtf;
  for (const auto& t : terms) ++qtf[t];
  const double avgdl =
      std::max(1.0, static_cast<double>(stats.total_length) / static_cast<double>(stats.docs));
  std::map<std::string, double> scores;
  for (const auto& [term, q] : qtf) {
    auto it = stats.df.find(term);
    const double df = it == stats.df.end() ? 0 : static_cast<double>(it->second);
    if (df == 0) continue;
    const double n = static_cast<double>(stats.docs);
    const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
    const std::string prefix = keys::ClaimPrefix("t", term);
    for (auto c = r.Scan(Family::kPostings, prefix); c->Valid(); c->Next()) {
      const std::string id(keys::Suffix(c->key(), prefix));
      if (allowed != nullptr && !allowed->contains(id)) continue;
      const auto v = c->value();
      auto u32 = [&](int at) {
        uint32_t x = 0;
        for (int i = 0; i < 4; ++i) x = (x << 8) | static_cast<uint8_t>(v[at + i]);
        return x;
      };
      const uint32_t tf = u32(0), dl = u32(4);
      const double norm = params.k1 * (1.0 - params.b + params.b * dl / avgdl);
      scores[id] += q * idf * (tf * (params.k1 + 1.0)) / (tf + norm);
    }
  }
  std::vector<ScoredClaim> out;
  for (const auto& [id, score] : scores) out.push_back({id, score});
  std::sort(out.begin(), out.end(), [](const ScoredClaim& a, const ScoredClaim& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

TEST_F(LexicalIndexTest, PrunedSearchRanksExactlyAsScoringEveryPosting) {
  // 400 claims over a Zipf-like vocabulary: a few terms in most claims, many
  // in few, some repeated within a claim; ties on purpose (duplicate texts).
  std::mt19937 rng(7);
  std::vector<std::string> vocab;
  for (int i = 0; i < 60; ++i) vocab.push_back(absl::StrCat("w", i, "x"));
  std::vector<double> weights;
  for (int i = 0; i < 60; ++i) weights.push_back(1.0 / (i + 1));
  std::discrete_distribution<int> zipf(weights.begin(), weights.end());
  std::uniform_int_distribution<int> len(1, 25);
  std::vector<std::string> texts;
  for (int c = 0; c < 400; ++c) {
    std::string text;
    if (c % 37 == 5 && !texts.empty()) {
      text = texts[c / 2];  // The same text as an earlier claim: equal scores.
    } else {
      for (int n = len(rng); n > 0; --n) absl::StrAppend(&text, vocab[zipf(rng)], " ");
    }
    texts.push_back(text);
    PutClaim(absl::StrCat("c", c), text);
  }
  auto snap = engine_->NewSnapshot();
  absl::flat_hash_set<std::string> allowed;
  for (int c = 0; c < 400; c += 3) allowed.insert(absl::StrCat("c", c));
  std::uniform_int_distribution<int> qlen(1, 6);
  std::uniform_int_distribution<int> any_word(0, 59);
  int compared = 0;
  for (int q = 0; q < 120; ++q) {
    std::vector<std::string> terms;
    for (int n = qlen(rng); n > 0; --n) {
      terms.push_back(q % 2 == 0 ? vocab[zipf(rng)] : vocab[any_word(rng)]);
    }
    if (q % 5 == 0) terms.push_back(terms.front());  // A repeated query term.
    if (q % 7 == 0) terms.push_back("absentterm");
    auto stats = ReadStats(*snap, "t", terms);
    ASSERT_TRUE(stats.ok());
    if (q % 4 == 1) {  // Statistics summed over several shards, as a router sends.
      stats->docs *= 3;
      stats->total_length *= 3;
      for (auto& [term, df] : stats->df) df = df * 3 + 1;
    }
    if (q % 23 == 3) {  // A document frequency above the document count: idf <= 0.
      stats->df[terms.front()] = stats->docs * 4;
    }
    Bm25Params params;  // The defaults, or the ends of the accepted ranges.
    if (q % 3 == 1) params.k1 = 0;
    if (q % 3 == 2) {
      params.k1 = 2.5;
      params.b = 1;
    }
    for (const size_t k : {1u, 3u, 10u, 50u, 1000u}) {
      for (const bool filtered : {false, true}) {
        const auto* filter = filtered ? &allowed : nullptr;
        auto got = SearchBm25(*snap, "t", terms, k, params, *stats, filter);
        ASSERT_TRUE(got.ok()) << got.status();
        const auto want = Exhaustive(*snap, terms, k, params, *stats, filter);
        ASSERT_EQ(Ids(*got), Ids(want)) << "query " << q << " k " << k << " filtered " << filtered;
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ((*got)[i].score, want[i].score) << "query " << q << " rank " << i;
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 120 * 5 * 2);
}

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
  const auto terms = query::AnalyzeText("ocean");
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
