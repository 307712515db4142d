// The segment index pieces alone (node/index/segment_*), before they serve:
// builds one segment of N synthetic documents (Zipf vocabulary, lengths
// 20-200), reports its size per posting and build time, then times exact
// BM25 top-10 (MaxScore) for random 1-4 term queries and prints p50/p99 and
// the documents scored. A scorecard, not a test: this machine is shared.
//   build/bench/segment_bench [--docs=100000] [--queries=1000]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "node/index/segment_search.h"

namespace {

int Flag(int argc, char** argv, const char* name, int fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::atoi(argv[i] + prefix.size());
    }
  }
  return fallback;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const int docs = Flag(argc, argv, "docs", 100000);
  const int queries = Flag(argc, argv, "queries", 1000);
  constexpr int kVocabulary = 50000;
  std::mt19937 rng(42);
  // Zipf(1) ranks by inverse transform over a precomputed CDF.
  std::vector<double> cdf(kVocabulary);
  double sum = 0;
  for (int r = 0; r < kVocabulary; ++r) cdf[r] = (sum += 1.0 / (r + 1));
  auto term = [&] {
    const double u = std::uniform_real_distribution<double>(0, sum)(rng);
    return static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  };

  const auto build_start = Clock::now();
  dash::index::SegmentPostingsWriter writer;
  uint64_t postings = 0;
  for (int d = 0; d < docs; ++d) {
    std::vector<std::string> words;
    const int length = 20 + static_cast<int>(rng() % 181);
    for (int i = 0; i < length; ++i) words.push_back("t" + std::to_string(term()));
    if (!writer.AddDoc(static_cast<uint32_t>(d), words).ok()) return 1;
    std::sort(words.begin(), words.end());
    postings += static_cast<uint64_t>(std::unique(words.begin(), words.end()) - words.begin());
  }
  const auto bodies = writer.Finish();
  const double build_s = std::chrono::duration<double>(Clock::now() - build_start).count();
  auto segment = dash::index::SegmentPostings::Open(bodies.dict, bodies.postings);
  if (!segment.ok()) {
    std::fprintf(stderr, "%s\n", segment.status().ToString().c_str());
    return 1;
  }
  const double avgdl = static_cast<double>(segment->total_length()) / segment->doc_count();

  std::vector<double> ms;
  std::vector<double> scored;
  const dash::query::Bm25Params params;
  for (int q = 0; q < queries; ++q) {
    std::vector<dash::index::WeightedTerm> terms;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      // Query terms from the middle of the distribution, as real queries mix.
      const std::string t = "t" + std::to_string(static_cast<int>(rng() % 5000));
      bool dup = false;
      for (const auto& w : terms) dup = dup || w.term == t;
      if (dup) continue;
      const auto info = segment->Find(t);
      const double df = info ? info->df : 0;
      terms.push_back({t, std::log(1.0 + (docs - df + 0.5) / (df + 0.5))});
    }
    dash::index::SegmentSearchStats stats;
    const auto start = Clock::now();
    auto hits = dash::index::SearchSegment(*segment, terms, 10, params, avgdl, nullptr, &stats);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!hits.ok()) return 1;
    scored.push_back(static_cast<double>(stats.candidates));
  }
  std::printf(
      "{\"bench\":\"segment\",\"docs\":%d,\"postings\":%llu,\"build_s\":%.2f,"
      "\"dict_bytes\":%zu,\"postings_bytes\":%zu,\"bytes_per_posting\":%.2f,"
      "\"top10_p50_ms\":%.3f,\"top10_p99_ms\":%.3f,\"docs_scored_p50\":%.0f}\n",
      docs, static_cast<unsigned long long>(postings), build_s, bodies.dict.size(),
      bodies.postings.size(), static_cast<double>(bodies.postings.size()) / postings,
      Percentile(ms, 0.5), Percentile(ms, 0.99), Percentile(scored, 0.5));
  return 0;
}
