#include "node/index/vector_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::index {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

using Vectors = std::vector<std::vector<float>>;

Vectors Gaussian(size_t n, size_t dim, uint32_t seed, float mean = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(mean, 1.0f);
  Vectors out(n, std::vector<float>(dim));
  for (auto& v : out)
    for (float& x : v) x = g(rng);
  return out;
}

std::string Id(size_t i) { return absl::StrCat("c-", i); }

// The reference: scores in double by the textbook formula, full sort.
double Score(Metric m, const std::vector<float>& q, const std::vector<float>& x) {
  double dot = 0, qq = 0, xx = 0, l2 = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    dot += double{q[i]} * x[i];
    qq += double{q[i]} * q[i];
    xx += double{x[i]} * x[i];
    l2 += (double{q[i]} - x[i]) * (double{q[i]} - x[i]);
  }
  switch (m) {
    case Metric::kCosine:
      return dot / std::sqrt(qq * xx);
    case Metric::kDot:
      return dot;
    case Metric::kL2:
      return -l2;
  }
  return 0;
}

std::vector<VectorHit> BruteForce(Metric m, const Vectors& data, const std::vector<float>& q,
                                  size_t k, const absl::flat_hash_set<std::string>* allowed) {
  std::vector<VectorHit> all;
  for (size_t i = 0; i < data.size(); ++i) {
    if (allowed == nullptr || allowed->contains(Id(i)))
      all.push_back({Id(i), Score(m, q, data[i])});
  }
  std::sort(all.begin(), all.end(), [](const VectorHit& a, const VectorHit& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  });
  all.resize(std::min(k, all.size()));
  return all;
}

std::vector<std::string> Ids(const std::vector<VectorHit>& hits) {
  std::vector<std::string> ids;
  for (const VectorHit& h : hits) ids.push_back(h.claim_id);
  return ids;
}

void Load(VectorIndex& index, const Vectors& data) {
  std::vector<std::string> ids;
  std::vector<float> flat;
  for (size_t i = 0; i < data.size(); ++i) {
    ids.push_back(Id(i));
    flat.insert(flat.end(), data[i].begin(), data[i].end());
  }
  ASSERT_TRUE(index.UpsertBatch(ids, flat.data(), flat.size()).ok());
}

std::vector<VectorHit> MustSearch(const VectorIndex& index, const std::vector<float>& q, size_t k,
                                  const absl::flat_hash_set<std::string>* allowed = nullptr,
                                  SearchMode mode = SearchMode::kAuto, bool* used_exact = nullptr) {
  auto hits = index.Search(q.data(), q.size(), k, allowed, mode, used_exact);
  EXPECT_TRUE(hits.ok()) << hits.status();
  return hits.ok() ? *hits : std::vector<VectorHit>();
}

// Sorted by score descending, ties by id, no id twice.
void ExpectWellFormed(const std::vector<VectorHit>& hits) {
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < hits.size(); ++i) {
    EXPECT_TRUE(seen.insert(hits[i].claim_id).second) << "duplicate " << hits[i].claim_id;
    if (i > 0) {
      EXPECT_TRUE(hits[i - 1].score > hits[i].score ||
                  (hits[i - 1].score == hits[i].score && hits[i - 1].claim_id < hits[i].claim_id))
          << "out of order at " << i;
    }
  }
}

class PerMetric : public ::testing::TestWithParam<Metric> {};

INSTANTIATE_TEST_SUITE_P(Metrics, PerMetric,
                         ::testing::Values(Metric::kCosine, Metric::kDot, Metric::kL2),
                         [](const auto& info) {
                           switch (info.param) {
                             case Metric::kCosine:
                               return "Cosine";
                             case Metric::kDot:
                               return "Dot";
                             case Metric::kL2:
                               return "L2";
                           }
                           return "Unknown";
                         });

TEST_P(PerMetric, ExactSearchEqualsBruteForce) {
  const Metric m = GetParam();
  const Vectors data = Gaussian(400, 26, 1);  // 26: not a multiple of the 4-way unrolling.
  VectorIndex index(26, m);
  for (size_t i = 0; i < data.size(); ++i) {
    ASSERT_TRUE(index.Upsert(Id(i), data[i].data(), data[i].size()).ok());
  }
  for (const auto& q : Gaussian(20, 26, 2)) {
    bool used_exact = false;
    auto hits = MustSearch(index, q, 10, nullptr, SearchMode::kExact, &used_exact);
    EXPECT_TRUE(used_exact);
    auto want = BruteForce(m, data, q, 10, nullptr);
    ASSERT_EQ(Ids(hits), Ids(want));
    for (size_t i = 0; i < hits.size(); ++i) EXPECT_NEAR(hits[i].score, want[i].score, 1e-5);
  }
}

TEST_P(PerMetric, AnnRecallAtTenIsAtLeastNinetyPercent) {
  const Metric m = GetParam();
  VectorIndex index(32, m);
  Load(index, Gaussian(3000, 32, 3));
  const Vectors queries = Gaussian(100, 32, 4);
  const double recall = MeasureRecallAtK(index, queries, 10);
  EXPECT_GE(recall, 0.9);
  // The ANN path is really approximate: a tiny candidate list loses recall.
  index.set_ef_search(10);
  EXPECT_LT(MeasureRecallAtK(index, queries, 10), recall);
  index.set_ef_search(64);
  bool used_exact = true;
  EXPECT_EQ(
      MustSearch(index, queries[0], 10, nullptr, SearchMode::kApproximate, &used_exact).size(),
      10u);
  EXPECT_FALSE(used_exact);
}

TEST(VectorIndexTest, ScoresAreCosineDotAndNegativeSquaredL2) {
  const std::vector<float> a = {3, 4}, b = {1, 0}, q = {1, 0};
  VectorIndex cosine(2, Metric::kCosine), dot(2, Metric::kDot), l2(2, Metric::kL2);
  for (VectorIndex* index : {&cosine, &dot, &l2}) {
    ASSERT_TRUE(index->Upsert("a", a.data(), 2).ok());
    ASSERT_TRUE(index->Upsert("b", b.data(), 2).ok());
  }
  auto c = MustSearch(cosine, q, 2, nullptr, SearchMode::kExact);
  ASSERT_THAT(Ids(c), ElementsAre("b", "a"));
  EXPECT_NEAR(c[0].score, 1.0, 1e-6);
  EXPECT_NEAR(c[1].score, 0.6, 1e-6);
  auto d = MustSearch(dot, q, 2, nullptr, SearchMode::kExact);
  ASSERT_THAT(Ids(d), ElementsAre("a", "b"));
  EXPECT_DOUBLE_EQ(d[0].score, 3.0);
  EXPECT_DOUBLE_EQ(d[1].score, 1.0);
  auto e = MustSearch(l2, q, 2, nullptr, SearchMode::kExact);
  ASSERT_THAT(Ids(e), ElementsAre("b", "a"));
  EXPECT_DOUBLE_EQ(e[0].score, 0.0);
  EXPECT_DOUBLE_EQ(e[1].score, -20.0);  // (3-1)^2 + 4^2, not its square root
  // The ANN path reports the same scores.
  auto f = MustSearch(l2, q, 2, nullptr, SearchMode::kApproximate);
  ASSERT_THAT(Ids(f), ElementsAre("b", "a"));
  EXPECT_DOUBLE_EQ(f[1].score, -20.0);
}

TEST(VectorIndexTest, SelectiveFilterSearchesExactlyAndReturnsK) {
  const Vectors data = Gaussian(3000, 16, 5);
  VectorIndex index(16, Metric::kL2);
  Load(index, data);
  absl::flat_hash_set<std::string> allowed = {"no-such-claim"};
  for (size_t i = 0; i < data.size(); i += 75) allowed.insert(Id(i));  // 40 of 3000
  for (const auto& q : Gaussian(20, 16, 6)) {
    bool used_exact = false;
    auto hits = MustSearch(index, q, 10, &allowed, SearchMode::kAuto, &used_exact);
    EXPECT_TRUE(used_exact);
    EXPECT_EQ(Ids(hits), Ids(BruteForce(Metric::kL2, data, q, 10, &allowed)));
  }
  // The planner's thresholds, not the fallback, choose the exact path: 1500
  // allowed (< exact_threshold 2000) is easy for HNSW yet searched exactly.
  absl::flat_hash_set<std::string> half;
  for (size_t i = 0; i < data.size(); i += 2) half.insert(Id(i));
  bool used_exact = false;
  MustSearch(index, data[1], 10, &half, SearchMode::kAuto, &used_exact);
  EXPECT_TRUE(used_exact);
  MustSearch(index, data[1], 10, &half, SearchMode::kApproximate, &used_exact);
  EXPECT_FALSE(used_exact);
  // Fewer allowed than k: all of them.
  absl::flat_hash_set<std::string> three = {Id(1), Id(2), Id(3), "no-such-claim"};
  EXPECT_EQ(MustSearch(index, data[0], 10, &three).size(), 3u);
  // A filter made mostly of ids without a vector looks broad to the planner;
  // the answer is still every allowed vector there is.
  absl::flat_hash_set<std::string> sparse = {Id(10), Id(20), Id(30), Id(40), Id(50)};
  for (int i = 0; i < 5000; ++i) sparse.insert(absl::StrCat("absent-", i));
  auto got = Ids(MustSearch(index, data[0], 10, &sparse));
  std::sort(got.begin(), got.end());
  EXPECT_THAT(got, ElementsAre(Id(10), Id(20), Id(30), Id(40), Id(50)));
  absl::flat_hash_set<std::string> none = {"no-such-claim"};
  EXPECT_TRUE(MustSearch(index, data[0], 10, &none).empty());
}

TEST(VectorIndexTest, BroadFilterSearchesApproximatelyInsideTheFilterAndReturnsK) {
  const Vectors data = Gaussian(3000, 16, 7);
  VectorIndexOptions options;
  options.exact_threshold = 100;
  options.exact_fraction = 0.01;
  VectorIndex index(16, Metric::kL2, options);
  Load(index, data);
  // 10%: a post-filter over HNSW's ~64 candidates would keep ~6 and have to
  // fall back to exact; filtering inside the walk keeps the ANN path.
  absl::flat_hash_set<std::string> allowed;
  for (size_t i = 0; i < data.size(); i += 10) allowed.insert(Id(i));
  double overlap = 0;
  const Vectors queries = Gaussian(30, 16, 8);
  for (const auto& q : queries) {
    bool used_exact = true;
    auto hits = MustSearch(index, q, 10, &allowed, SearchMode::kAuto, &used_exact);
    EXPECT_FALSE(used_exact);
    ASSERT_EQ(hits.size(), 10u);
    ExpectWellFormed(hits);
    absl::flat_hash_set<std::string> truth;
    for (const auto& h : BruteForce(Metric::kL2, data, q, 10, &allowed)) truth.insert(h.claim_id);
    for (const auto& h : hits) {
      EXPECT_TRUE(allowed.contains(h.claim_id)) << h.claim_id;
      overlap += truth.contains(h.claim_id) ? 1 : 0;
    }
  }
  EXPECT_GE(overlap / (10.0 * queries.size()), 0.9);
}

TEST(VectorIndexTest, ApproximateSearchFallsBackToExactWhenTheFilterStarvesHnsw) {
  // 2000 vectors near +10 on every axis, 12 near -10; only the far 12 are
  // allowed. A graph walk from the query's neighbourhood finds few or none.
  Vectors data = Gaussian(2000, 16, 9, 10.0f);
  const Vectors far = Gaussian(12, 16, 10, -10.0f);
  data.insert(data.end(), far.begin(), far.end());
  VectorIndex index(16, Metric::kL2);
  Load(index, data);
  absl::flat_hash_set<std::string> allowed;
  for (size_t i = 2000; i < data.size(); ++i) allowed.insert(Id(i));
  int fallbacks = 0;
  for (const auto& q : Gaussian(10, 16, 11, 10.0f)) {
    bool used_exact = false;
    auto hits = MustSearch(index, q, 10, &allowed, SearchMode::kApproximate, &used_exact);
    fallbacks += used_exact ? 1 : 0;
    EXPECT_EQ(Ids(hits), Ids(BruteForce(Metric::kL2, data, q, 10, &allowed)));
  }
  EXPECT_GT(fallbacks, 0);
}

TEST(VectorIndexTest, RemoveAndReplaceLeaveNoGhostsBeforeAndAfterRebuild) {
  const size_t n = 200;
  const Vectors data = Gaussian(n, 8, 12);
  VectorIndex index(8, Metric::kL2);
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(index.Upsert(Id(i), data[i].data(), 8).ok());
  absl::flat_hash_set<std::string> live;
  for (size_t i = 0; i < n; ++i) live.insert(Id(i));

  // Every mode returns exactly the live set when asked for everything, and a
  // claim's own vector finds it first (score 0) unless it was removed.
  auto check = [&](const std::vector<std::vector<float>>& current) {
    SCOPED_TRACE(absl::StrCat("live=", live.size()));
    ASSERT_EQ(index.size(), live.size());
    for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate}) {
      auto all = MustSearch(index, data[0], n + 10, nullptr, mode);
      ExpectWellFormed(all);
      std::vector<std::string> got = Ids(all), want(live.begin(), live.end());
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want);
      for (size_t i = 0; i < n; ++i) {
        auto top = MustSearch(index, current[i], 1, nullptr, mode);
        ASSERT_EQ(top.size(), 1u);
        if (live.contains(Id(i))) {
          EXPECT_EQ(top[0].claim_id, Id(i));
          EXPECT_EQ(top[0].score, 0.0);
        } else {
          EXPECT_NE(top[0].claim_id, Id(i));
        }
      }
    }
  };

  Vectors current = data;
  index.Remove(Id(5));
  index.Remove("never-there");
  live.erase(Id(5));
  // Replace c-7 by a vector far from its old one.
  current[7] = std::vector<float>(8, 50.0f);
  ASSERT_TRUE(index.Upsert(Id(7), current[7].data(), 8).ok());
  EXPECT_EQ(index.stats().tombstones, 2u);
  EXPECT_EQ(index.stats().rebuilds, 0u);
  check(current);
  auto near_old = MustSearch(index, data[7], 5, nullptr, SearchMode::kApproximate);
  for (const auto& h : near_old) EXPECT_NE(h.claim_id, Id(7));

  // Remove until the tombstones pass 20% of the graph and it is rebuilt.
  size_t next = 10;
  while (index.stats().rebuilds == 0) {
    ASSERT_LT(next, n);
    index.Remove(Id(next));
    live.erase(Id(next));
    next += 2;
  }
  EXPECT_EQ(index.stats().tombstones, 0u);
  check(current);

  // And after the rebuild, which renumbered the graph: remove, replace, filter
  // on claims whose slots moved, and re-add a removed claim.
  index.Remove(Id(n - 1));
  live.erase(Id(n - 1));
  current[n - 2] = std::vector<float>(8, -50.0f);
  ASSERT_TRUE(index.Upsert(Id(n - 2), current[n - 2].data(), 8).ok());
  const absl::flat_hash_set<std::string> one = {Id(n - 3)};
  for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate}) {
    EXPECT_THAT(Ids(MustSearch(index, data[0], 5, &one, mode)), ElementsAre(Id(n - 3)));
  }
  ASSERT_TRUE(index.Upsert(Id(5), current[5].data(), 8).ok());
  live.insert(Id(5));
  check(current);
}

TEST(VectorIndexTest, RejectsBadInput) {
  VectorIndex index(4, Metric::kCosine);
  const std::vector<float> ok = {1, 2, 3, 4}, three = {1, 2, 3}, zero = {0, 0, 0, 0};
  const std::vector<float> nan = {1, NAN, 3, 4}, inf = {1, 2, INFINITY, 4};
  EXPECT_EQ(index.Upsert("a", three.data(), 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Upsert("a", ok.data(), 5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Upsert("a", nan.data(), 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Upsert("a", zero.data(), 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.size(), 0u);
  ASSERT_TRUE(index.Upsert("a", ok.data(), 4).ok());
  EXPECT_EQ(index.Search(three.data(), 3, 10, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Search(inf.data(), 4, 10, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Search(zero.data(), 4, 10, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A batch with one bad row changes nothing.
  std::vector<float> rows = ok;
  rows.insert(rows.end(), nan.begin(), nan.end());
  EXPECT_EQ(index.UpsertBatch({"b", "c"}, rows.data(), rows.size()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.UpsertBatch({"b", "c"}, rows.data(), 4).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.size(), 1u);
  // k == 0 and an empty index are not errors.
  EXPECT_TRUE(MustSearch(index, ok, 0).empty());
  VectorIndex empty(4, Metric::kL2);
  EXPECT_TRUE(MustSearch(empty, ok, 10, nullptr, SearchMode::kApproximate).empty());
}

TEST(VectorIndexTest, TiesBreakByClaimIdInEveryMode) {
  VectorIndex index(8, Metric::kCosine);
  Load(index, Gaussian(300, 8, 13));
  const std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> twice = v;
  for (float& x : twice) x *= 2;  // Same direction: the same cosine.
  for (const char* id : {"tie-e", "tie-c", "tie-a", "tie-d"}) {
    ASSERT_TRUE(index.Upsert(id, v.data(), v.size()).ok());
  }
  ASSERT_TRUE(index.Upsert("tie-b", twice.data(), twice.size()).ok());
  for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate, SearchMode::kAuto}) {
    auto hits = MustSearch(index, v, 5, nullptr, mode);
    EXPECT_THAT(Ids(hits), ElementsAre("tie-a", "tie-b", "tie-c", "tie-d", "tie-e"));
    EXPECT_EQ(hits[0].score, hits[4].score);
    EXPECT_EQ(Ids(MustSearch(index, v, 3, nullptr, mode)),
              std::vector<std::string>({"tie-a", "tie-b", "tie-c"}));
  }
}

TEST(VectorIndexTest, ReUpsertingTheSameVectorIsANoOpAndLaterBatchRowsWin) {
  VectorIndex index(2, Metric::kL2);
  const std::vector<float> a = {1, 1}, b = {5, 5};
  ASSERT_TRUE(index.Upsert("x", a.data(), 2).ok());
  ASSERT_TRUE(index.Upsert("x", a.data(), 2).ok());
  EXPECT_EQ(index.stats().tombstones, 0u);
  const std::vector<float> rows = {9, 9, 5, 5, 0, 0};
  ASSERT_TRUE(index.UpsertBatch({"y", "y", "z"}, rows.data(), rows.size()).ok());
  EXPECT_EQ(index.size(), 3u);
  auto hits = MustSearch(index, b, 1, nullptr, SearchMode::kExact);
  EXPECT_THAT(Ids(hits), ElementsAre("y"));
  EXPECT_EQ(hits[0].score, 0.0);
  // Reloading the same rows (a restart) changes nothing.
  ASSERT_TRUE(index.UpsertBatch({"y", "y", "z"}, rows.data(), rows.size()).ok());
  EXPECT_EQ(index.stats().tombstones, 0u);
}

TEST(VectorIndexTest, SearchesRunWhileWritersUpsertRemoveAndRebuild) {
  // Readers search a stable subset; a writer churns the rest, forcing rebuilds.
  const Vectors stable = Gaussian(600, 16, 14), churn = Gaussian(400, 16, 15);
  VectorIndexOptions options;
  options.exact_threshold = 100;  // The stable filter (600 of ~1000) takes the ANN path.
  VectorIndex index(16, Metric::kL2, options);
  Load(index, stable);
  absl::flat_hash_set<std::string> allowed;
  for (size_t i = 0; i < stable.size(); ++i) allowed.insert(Id(i));
  const Vectors queries = Gaussian(8, 16, 16);
  std::vector<std::vector<std::string>> expected;
  for (const auto& q : queries)
    expected.push_back(Ids(BruteForce(Metric::kL2, stable, q, 10, nullptr)));

  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  std::atomic<int> searches{0};
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      for (size_t i = t; !done.load(); i = (i + 1) % queries.size()) {
        auto exact = MustSearch(index, queries[i], 10, &allowed, SearchMode::kExact);
        EXPECT_EQ(Ids(exact), expected[i]);
        auto ann = MustSearch(index, queries[i], 10, &allowed, SearchMode::kAuto);
        EXPECT_EQ(ann.size(), 10u);
        for (const auto& h : ann) EXPECT_TRUE(allowed.contains(h.claim_id)) << h.claim_id;
        searches.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < churn.size(); ++i) {
      const std::string id = absl::StrCat("w-", i);
      EXPECT_TRUE(index.Upsert(id, churn[(i + round) % churn.size()].data(), 16).ok());
    }
    for (size_t i = 0; i < churn.size(); i += 2) index.Remove(absl::StrCat("w-", i));
  }
  done.store(true);
  for (auto& r : readers) r.join();
  EXPECT_GT(index.stats().rebuilds, 0u);
  EXPECT_GT(searches.load(), 0);
  EXPECT_EQ(index.size(), stable.size() + churn.size() / 2);
}

}  // namespace
}  // namespace dash::index
