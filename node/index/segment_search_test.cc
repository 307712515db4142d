#include "node/index/segment_search.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dash::index {
namespace {

// Exhaustive BM25: every document scored, contributions summed in query
// order, sorted by score then doc id.
std::vector<ScoredDoc> BruteForce(const std::map<uint32_t, std::vector<std::string>>& corpus,
                                  const SegmentPostings& segment,
                                  const std::vector<WeightedTerm>& terms, size_t k,
                                  const query::Bm25Params& params, double avgdl,
                                  const std::function<bool(uint32_t)>& allowed) {
  std::vector<ScoredDoc> all;
  for (const auto& [doc, words] : corpus) {
    if (allowed && !allowed(doc)) continue;
    double score = 0;
    bool matched = false;
    for (const WeightedTerm& t : terms) {
      const uint32_t tf = static_cast<uint32_t>(std::count(words.begin(), words.end(), t.term));
      double s = 0;
      if (tf > 0) {
        matched = true;
        const double length = segment.DocLength(doc);
        const double norm = params.k1 * (1.0 - params.b + params.b * length / avgdl);
        s = t.weight * (tf * (params.k1 + 1.0)) / (tf + norm);
      }
      score += s;
    }
    if (matched) all.push_back({doc, score});
  }
  std::sort(all.begin(), all.end(), [](const ScoredDoc& a, const ScoredDoc& b) {
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
  });
  if (all.size() > k) all.resize(k);
  return all;
}

TEST(SegmentSearchTest, MaxScoreRanksExactlyLikeScoringEveryDocument) {
  std::mt19937 rng(9);
  std::map<uint32_t, std::vector<std::string>> corpus;
  SegmentPostingsWriter writer;
  for (uint32_t doc = 0; doc < 4000; ++doc) {
    std::vector<std::string>& words = corpus[doc];
    const int length = 3 + static_cast<int>(rng() % 40);
    for (int i = 0; i < length; ++i) {
      // Zipf-ish: a few terms in most documents, many rare ones.
      const uint32_t rank = std::min<uint32_t>(rng() % 200, std::min(rng() % 200, rng() % 200));
      words.push_back("w" + std::to_string(rank));
    }
    ASSERT_TRUE(writer.AddDoc(doc, words).ok());
  }
  auto bodies = writer.Finish();
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok()) << segment.status();
  const double avgdl = static_cast<double>(segment->total_length()) / segment->doc_count();
  int compared = 0;
  for (int trial = 0; trial < 150; ++trial) {
    std::set<std::string> picked;
    const int n = 1 + static_cast<int>(rng() % 5);
    while (static_cast<int>(picked.size()) < n) picked.insert("w" + std::to_string(rng() % 210));
    std::vector<WeightedTerm> terms;
    for (const auto& t : picked) {
      const auto info = segment->Find(t);
      const double df = info ? info->df : 0;
      terms.push_back({t, std::log(1.0 + (4000 - df + 0.5) / (df + 0.5))});
    }
    std::shuffle(terms.begin(), terms.end(), rng);
    query::Bm25Params params;
    params.k1 = trial % 3 == 0 ? 0.9 : std::uniform_real_distribution<double>(0, 2)(rng);
    params.b = trial % 3 == 0 ? 0.4 : std::uniform_real_distribution<double>(0, 1)(rng);
    std::function<bool(uint32_t)> allowed;
    if (trial % 2 == 1) allowed = [](uint32_t doc) { return doc % 3 != 0; };
    for (size_t k : {size_t{1}, size_t{10}, size_t{100}}) {
      auto got = SearchSegment(*segment, terms, k, params, avgdl, allowed);
      ASSERT_TRUE(got.ok()) << got.status();
      const auto want = BruteForce(corpus, *segment, terms, k, params, avgdl, allowed);
      ASSERT_EQ(got->size(), want.size()) << "trial " << trial << " k " << k;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ((*got)[i].doc, want[i].doc) << "trial " << trial << " k " << k << " rank " << i;
        ASSERT_EQ((*got)[i].score, want[i].score) << "bit for bit";
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, 450);
}

// A frequent term beside a rare one: until ten "rare" documents are kept (doc
// 900) every document is a candidate; from then on "common" alone cannot
// compete, and its list is only probed for the "rare" documents.
TEST(SegmentSearchTest, AFrequentTermIsOnlyProbedOnceKDocumentsAreKept) {
  SegmentPostingsWriter writer;
  for (uint32_t doc = 0; doc < 20000; ++doc) {
    std::vector<std::string> words = {"common", "filler", "words"};
    if (doc % 100 == 0) words.push_back("rare");
    ASSERT_TRUE(writer.AddDoc(doc, words).ok());
  }
  auto bodies = writer.Finish();
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok());
  const std::vector<WeightedTerm> terms = {{"common", 0.01}, {"rare", 4.6}};
  SegmentSearchStats stats;
  auto got = SearchSegment(*segment, terms, 10, query::Bm25Params(), 3.01, nullptr, &stats);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 10u);
  EXPECT_EQ((*got)[0].doc, 0u);
  EXPECT_LE(stats.candidates, 901u + 191u) << "not 20,000";
  EXPECT_LT(stats.blocks_decoded, 20000u / kBlockSize + 10);
  std::printf("candidates %llu, blocks decoded %llu of %zu\n",
              static_cast<unsigned long long>(stats.candidates),
              static_cast<unsigned long long>(stats.blocks_decoded), 2 * (20000 / kBlockSize) + 2);
}

TEST(SegmentSearchTest, TermsTheSegmentLacksAndZeroKAnswerNothing) {
  SegmentPostingsWriter writer;
  ASSERT_TRUE(writer.AddDoc(0, {"a", "b"}).ok());
  auto bodies = writer.Finish();
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok());
  query::Bm25Params params;
  EXPECT_TRUE(SearchSegment(*segment, {{"zzz", 1.0}}, 10, params, 2)->empty());
  EXPECT_TRUE(SearchSegment(*segment, {{"a", 1.0}}, 0, params, 2)->empty());
  auto one = SearchSegment(*segment, {{"zzz", 1.0}, {"a", 1.0}}, 10, params, 2);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].doc, 0u);
}

TEST(SegmentSearchTest, ADamagedListIsDataLoss) {
  SegmentPostingsWriter writer;
  for (uint32_t doc = 0; doc < 300; ++doc) ASSERT_TRUE(writer.AddDoc(doc, {"a"}).ok());
  auto bodies = writer.Finish();
  // Break the second block's stream (its header stays readable).
  std::string postings = bodies.postings;
  size_t first = 0;
  ASSERT_TRUE(ReadImpact(postings, &first).ok());
  postings[first + 12] = static_cast<char>(postings[first + 12] ^ 0x7f);
  auto segment = SegmentPostings::Open(bodies.dict, postings);
  ASSERT_TRUE(segment.ok());
  auto got = SearchSegment(*segment, {{"a", 1.0}}, 1000, query::Bm25Params(), 1);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
}

}  // namespace
}  // namespace dash::index
