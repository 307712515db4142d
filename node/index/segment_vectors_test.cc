#include "node/index/segment_vectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/index/segment_file.h"

namespace dash::index {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Hits = std::vector<std::pair<double, uint32_t>>;  // (score, doc)
using Admit = std::function<bool(uint32_t)>;

// A doc's vector as added (prepared).
struct Row {
  uint32_t doc = 0;
  std::vector<float> v;
};

struct TenantRows {
  std::string tenant;
  Metric metric = Metric::kCosine;
  uint32_t dim = 0;
  std::vector<Row> rows;  // Docs ascending.
};

std::vector<float> Prepared(Metric m, std::vector<float> v) {
  absl::StatusOr<std::vector<float>> p =
      PrepareVector(m, static_cast<uint32_t>(v.size()), v.data(), v.size());
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : v;
}

std::vector<float> RandomVector(std::mt19937& rng, Metric m, uint32_t dim) {
  std::normal_distribution<float> g(0, 1);
  std::vector<float> v(dim);
  for (float& x : v) x = g(rng);
  return Prepared(m, std::move(v));
}

// `n` rows of docs first, first + stride, ...; every 7th row repeats an
// earlier row's vector, so that scores tie.
TenantRows MakeTenant(std::mt19937& rng, const std::string& tenant, Metric m, uint32_t dim,
                      size_t n, uint32_t first = 0, uint32_t stride = 1) {
  TenantRows t{tenant, m, dim, {}};
  for (size_t i = 0; i < n; ++i) {
    Row r;
    r.doc = first + static_cast<uint32_t>(i) * stride;
    r.v = i % 7 == 6 ? t.rows[i / 2].v : RandomVector(rng, m, dim);
    t.rows.push_back(std::move(r));
  }
  return t;
}

SegmentVectors Build(const std::vector<TenantRows>& tenants) {
  SegmentVectors out;
  for (const TenantRows& t : tenants) {
    for (const Row& r : t.rows) {
      EXPECT_TRUE(out.Add(r.doc, t.tenant, t.metric, r.v.data(), r.v.size()))
          << t.tenant << " doc " << r.doc;
    }
  }
  EXPECT_TRUE(out.Finish().ok());
  return out;
}

bool Better(const std::pair<double, uint32_t>& a, const std::pair<double, uint32_t>& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

// The reference: every admitted row (and candidate, when given) scored,
// fully sorted by (score desc, doc asc), the first k.
Hits BruteForce(const TenantRows& t, const std::vector<float>& q, size_t k,
                const Admit& admit = nullptr, const std::vector<uint32_t>* candidates = nullptr) {
  Hits all;
  for (const Row& r : t.rows) {
    if (admit != nullptr && !admit(r.doc)) continue;
    if (candidates != nullptr &&
        !std::binary_search(candidates->begin(), candidates->end(), r.doc)) {
      continue;
    }
    all.emplace_back(VectorScore(t.metric, q.data(), r.v.data(), t.dim), r.doc);
  }
  std::sort(all.begin(), all.end(), Better);
  if (all.size() > k) all.resize(k);
  return all;
}

VectorQuery Query(const std::vector<float>& q, size_t k, SearchMode mode) {
  VectorQuery query;
  query.q = q.data();
  query.k = k;
  query.mode = mode;
  return query;
}

Hits MustSearch(const SegmentVectors::Section& s, const VectorQuery& q,
                const Admit& admit = nullptr, const std::vector<uint32_t>* candidates = nullptr,
                bool* used_exact = nullptr) {
  absl::StatusOr<Hits> hits = SegmentVectors::Search(s, q, admit, candidates, used_exact);
  EXPECT_TRUE(hits.ok()) << hits.status();
  return hits.ok() ? *hits : Hits();
}

// The fraction of `want`'s docs that `got` holds.
double Recall(const Hits& got, const Hits& want) {
  if (want.empty()) return 1.0;
  std::set<uint32_t> docs;
  for (const auto& h : got) docs.insert(h.second);
  size_t found = 0;
  for (const auto& h : want) found += docs.count(h.second);
  return static_cast<double>(found) / want.size();
}

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kCosine:
      return "Cosine";
    case Metric::kDot:
      return "Dot";
    case Metric::kL2:
      return "L2";
  }
  return "Unknown";
}

TEST(PrepareVectorTest, RejectsAWrongSize) {
  const std::vector<float> v = {1, 2, 3};
  for (Metric m : {Metric::kCosine, Metric::kDot, Metric::kL2}) {
    EXPECT_TRUE(absl::IsInvalidArgument(PrepareVector(m, 4, v.data(), v.size()).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(PrepareVector(m, 2, v.data(), v.size()).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(PrepareVector(m, 3, v.data(), 0).status()));
  }
}

TEST(PrepareVectorTest, RejectsNonFiniteComponents) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (size_t at : {0, 2, 4}) {
      std::vector<float> v = {0.5f, 1, 2, 3, 4};
      v[at] = bad;
      for (Metric m : {Metric::kCosine, Metric::kDot, Metric::kL2}) {
        absl::StatusOr<std::vector<float>> p = PrepareVector(m, 5, v.data(), v.size());
        EXPECT_TRUE(absl::IsInvalidArgument(p.status()))
            << MetricName(m) << " " << bad << " at " << at << ": " << p.status();
      }
    }
  }
}

TEST(PrepareVectorTest, RejectsTheZeroVectorOnlyUnderCosine) {
  const std::vector<float> zero(6, 0.0f);
  EXPECT_TRUE(absl::IsInvalidArgument(
      PrepareVector(Metric::kCosine, 6, zero.data(), zero.size()).status()));
  for (Metric m : {Metric::kDot, Metric::kL2}) {
    absl::StatusOr<std::vector<float>> p = PrepareVector(m, 6, zero.data(), zero.size());
    ASSERT_TRUE(p.ok()) << MetricName(m) << ": " << p.status();
    EXPECT_EQ(*p, zero);
  }
}

TEST(PrepareVectorTest, CosineNormalizesAndTheOthersKeepTheValues) {
  const std::vector<float> v = {3, -4, 0, 12};  // Norm 13.
  absl::StatusOr<std::vector<float>> cos = PrepareVector(Metric::kCosine, 4, v.data(), v.size());
  ASSERT_TRUE(cos.ok()) << cos.status();
  ASSERT_EQ(cos->size(), 4u);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR((*cos)[i], v[i] / 13.0, 1e-7) << i;
  double norm2 = 0;
  for (float x : *cos) norm2 += double{x} * x;
  EXPECT_NEAR(norm2, 1.0, 1e-6);
  // Tiny and huge vectors normalize too (the norm is summed in double).
  for (float scale : {1e-20f, 1e20f}) {
    std::vector<float> s;
    for (float x : v) s.push_back(x * scale);
    absl::StatusOr<std::vector<float>> p = PrepareVector(Metric::kCosine, 4, s.data(), s.size());
    ASSERT_TRUE(p.ok()) << scale << ": " << p.status();
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR((*p)[i], v[i] / 13.0, 1e-6) << scale;
  }
  for (Metric m : {Metric::kDot, Metric::kL2}) {
    absl::StatusOr<std::vector<float>> p = PrepareVector(m, 4, v.data(), v.size());
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, v) << MetricName(m);
  }
}

// Every dimension 1..9 (the four-way unrolled loop and its tail).
TEST(VectorScoreTest, MatchesTheDefinitionOfEachMetric) {
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0, 1);
  for (uint32_t dim = 1; dim <= 9; ++dim) {
    std::vector<float> q(dim), x(dim);
    for (float& f : q) f = g(rng);
    for (float& f : x) f = g(rng);
    double dot = 0, l2 = 0;
    for (uint32_t i = 0; i < dim; ++i) {
      dot += double{q[i]} * x[i];
      l2 += (double{q[i]} - x[i]) * (double{q[i]} - x[i]);
    }
    EXPECT_NEAR(VectorScore(Metric::kDot, q.data(), x.data(), dim), dot, 1e-12) << dim;
    EXPECT_NEAR(VectorScore(Metric::kCosine, q.data(), x.data(), dim), dot, 1e-12) << dim;
    EXPECT_NEAR(VectorScore(Metric::kL2, q.data(), x.data(), dim), -l2, 1e-12) << dim;
    EXPECT_EQ(VectorScore(Metric::kL2, q.data(), q.data(), dim), 0.0) << dim;
  }
}

class SegmentVectorsTest : public ::testing::TestWithParam<Metric> {};

INSTANTIATE_TEST_SUITE_P(Metrics, SegmentVectorsTest,
                         ::testing::Values(Metric::kCosine, Metric::kDot, Metric::kL2),
                         [](const auto& info) { return MetricName(info.param); });

TEST_P(SegmentVectorsTest, ExactSearchEqualsBruteForce) {
  const Metric m = GetParam();
  std::mt19937 rng(11);
  // Two tenants, docs interleaved with gaps: row r is not doc r.
  const std::vector<TenantRows> tenants = {MakeTenant(rng, "a", m, 12, 300, 0, 3),
                                           MakeTenant(rng, "b", m, 12, 200, 1000, 2)};
  const SegmentVectors vectors = Build(tenants);
  ASSERT_EQ(vectors.sections().size(), 2u);
  EXPECT_EQ(vectors.rows(), 500u);
  EXPECT_EQ(vectors.graphs(), 0u);
  const Admit no_thirds = [](uint32_t doc) { return doc % 3 != 0 && doc % 4 != 1; };
  const Admit none = [](uint32_t) { return false; };
  for (const TenantRows& t : tenants) {
    const SegmentVectors::Section* s = vectors.Find(t.tenant);
    ASSERT_NE(s, nullptr) << t.tenant;
    EXPECT_EQ(s->dim, t.dim);
    EXPECT_EQ(s->metric, m);
    EXPECT_FALSE(s->graph);
    // A candidate list mixing the tenant's docs, docs it lacks and docs of
    // the other tenant.
    std::vector<uint32_t> candidates;
    for (uint32_t d = 0; d < 1500; ++d) {
      if (rng() % 3 == 0) candidates.push_back(d);
    }
    for (int iq = 0; iq < 20; ++iq) {
      // Some queries are stored vectors: their best score ties with a copy.
      const std::vector<float> q = iq % 4 == 0 ? t.rows[6 + 7 * iq].v : RandomVector(rng, m, t.dim);
      for (size_t k : {1, 5, 10, 64, 1000}) {
        for (SearchMode mode : {SearchMode::kExact, SearchMode::kAuto, SearchMode::kApproximate}) {
          SCOPED_TRACE(
              absl::StrCat(t.tenant, " query ", iq, " k ", k, " mode ", static_cast<int>(mode)));
          bool used_exact = false;
          EXPECT_EQ(MustSearch(*s, Query(q, k, mode), nullptr, nullptr, &used_exact),
                    BruteForce(t, q, k));
          EXPECT_TRUE(used_exact) << "no graph: exact";
          EXPECT_EQ(MustSearch(*s, Query(q, k, mode), no_thirds), BruteForce(t, q, k, no_thirds));
          EXPECT_THAT(MustSearch(*s, Query(q, k, mode), none), ElementsAre());
          EXPECT_EQ(MustSearch(*s, Query(q, k, mode), nullptr, &candidates),
                    BruteForce(t, q, k, nullptr, &candidates));
          EXPECT_EQ(MustSearch(*s, Query(q, k, mode), no_thirds, &candidates),
                    BruteForce(t, q, k, no_thirds, &candidates));
        }
      }
    }
  }
}

TEST_P(SegmentVectorsTest, ZeroKOrNoCandidatesFindNothing) {
  const Metric m = GetParam();
  std::mt19937 rng(12);
  const TenantRows t = MakeTenant(rng, "a", m, 8, 50);
  const SegmentVectors vectors = Build({t});
  const std::vector<float> q = RandomVector(rng, m, 8);
  EXPECT_THAT(MustSearch(*vectors.Find("a"), Query(q, 0, SearchMode::kExact)), ElementsAre());
  const std::vector<uint32_t> empty;
  EXPECT_THAT(MustSearch(*vectors.Find("a"), Query(q, 10, SearchMode::kExact), nullptr, &empty),
              ElementsAre());
  const std::vector<uint32_t> absent = {50, 51, 1000};
  EXPECT_THAT(MustSearch(*vectors.Find("a"), Query(q, 10, SearchMode::kExact), nullptr, &absent),
              ElementsAre());
}

TEST(SegmentVectorsAddTest, AMismatchedDimensionOrMetricIsNotIndexed) {
  const std::vector<float> v4a = {1, 0, 0, 0}, v4b = {0, 1, 0, 0}, v4c = {0, 0, 1, 0};
  const std::vector<float> v5 = {1, 1, 1, 1, 1}, v3 = {1, 2, 3};
  SegmentVectors vectors;
  EXPECT_TRUE(vectors.Add(0, "a", Metric::kDot, v4a.data(), v4a.size()));
  EXPECT_FALSE(vectors.Add(1, "a", Metric::kDot, v5.data(), v5.size()));
  EXPECT_FALSE(vectors.Add(2, "a", Metric::kDot, v3.data(), v3.size()));
  EXPECT_FALSE(vectors.Add(3, "a", Metric::kL2, v4b.data(), v4b.size()));
  EXPECT_FALSE(vectors.Add(4, "a", Metric::kCosine, v4b.data(), v4b.size()));
  EXPECT_FALSE(vectors.Add(5, "a", Metric::kDot, v4b.data(), 0));
  EXPECT_TRUE(vectors.Add(6, "a", Metric::kDot, v4c.data(), v4c.size()));
  // Another tenant has its own dimension and metric.
  EXPECT_TRUE(vectors.Add(7, "b", Metric::kL2, v5.data(), v5.size()));
  EXPECT_FALSE(vectors.Add(8, "b", Metric::kL2, v4a.data(), v4a.size()));
  EXPECT_TRUE(vectors.Add(9, "b", Metric::kL2, v5.data(), v5.size()));
  ASSERT_TRUE(vectors.Finish().ok());

  ASSERT_EQ(vectors.sections().size(), 2u);
  EXPECT_EQ(vectors.rows(), 4u);
  const SegmentVectors::Section* a = vectors.Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dim, 4u);
  EXPECT_EQ(a->metric, Metric::kDot);
  EXPECT_THAT(a->docs, ElementsAre(0, 6));
  EXPECT_EQ(a->RowOf(6), 1);
  for (uint32_t doc : {1, 2, 3, 4, 5}) EXPECT_EQ(a->RowOf(doc), -1) << doc;
  // The rows are the accepted vectors, in order: the rejected ones left no
  // trace.
  EXPECT_THAT(std::vector<float>(a->row(0), a->row(0) + 4), ElementsAre(1, 0, 0, 0));
  EXPECT_THAT(std::vector<float>(a->row(1), a->row(1) + 4), ElementsAre(0, 0, 1, 0));
  const std::vector<float> q = {0, 1, 1, 0};
  EXPECT_THAT(MustSearch(*a, Query(q, 10, SearchMode::kExact)),
              ElementsAre(std::make_pair(1.0, 6u), std::make_pair(0.0, 0u)));

  const SegmentVectors::Section* b = vectors.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dim, 5u);
  EXPECT_EQ(b->metric, Metric::kL2);
  EXPECT_THAT(b->docs, ElementsAre(7, 9));
  EXPECT_EQ(vectors.Find("c"), nullptr);
}

// 2000 random 16-d rows under a graph; the ANN answers measured against
// the exact ones.
class SegmentVectorsGraphTest : public SegmentVectorsTest {
 protected:
  void SetUp() override {
    rng_.seed(21);
    big_ = MakeTenant(rng_, "big", GetParam(), 16, 2000, 0, 2);
    small_ = MakeTenant(rng_, "small", GetParam(), 16, 49, 10000);
    vectors_ = Build({big_, small_});
    VectorGraphOptions graphs;
    graphs.min_rows = 50;
    ASSERT_TRUE(vectors_.BuildGraphs(graphs).ok());
    section_ = vectors_.Find("big");
    ASSERT_NE(section_, nullptr);
  }

  std::mt19937 rng_;
  TenantRows big_, small_;
  SegmentVectors vectors_;
  const SegmentVectors::Section* section_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Metrics, SegmentVectorsGraphTest,
                         ::testing::Values(Metric::kCosine, Metric::kDot, Metric::kL2),
                         [](const auto& info) { return MetricName(info.param); });

TEST_P(SegmentVectorsGraphTest, BuildGraphsGraphsOnlySectionsOfMinRows) {
  EXPECT_EQ(vectors_.graphs(), 1u);
  EXPECT_TRUE(section_->graph);
  EXPECT_FALSE(vectors_.Find("small")->graph) << "49 rows < min_rows 50";
  // The rows are still the vectors added.
  ASSERT_EQ(section_->rows(), big_.rows.size());
  for (size_t r = 0; r < big_.rows.size(); ++r) {
    ASSERT_EQ(section_->docs[r], big_.rows[r].doc);
    ASSERT_EQ(std::memcmp(section_->row(r), big_.rows[r].v.data(), 16 * sizeof(float)), 0) << r;
  }
  // A second build changes nothing.
  VectorGraphOptions graphs;
  graphs.min_rows = 1;
  ASSERT_TRUE(vectors_.BuildGraphs(graphs).ok());
  EXPECT_EQ(vectors_.graphs(), 2u);
  EXPECT_TRUE(section_->graph);
}

TEST_P(SegmentVectorsGraphTest, ExactSearchOfAGraphSectionEqualsBruteForce) {
  for (int iq = 0; iq < 10; ++iq) {
    const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
    bool used_exact = false;
    EXPECT_EQ(
        MustSearch(*section_, Query(q, 10, SearchMode::kExact), nullptr, nullptr, &used_exact),
        BruteForce(big_, q, 10));
    EXPECT_TRUE(used_exact);
  }
}

TEST_P(SegmentVectorsGraphTest, AnnRecallAtTenIsAtLeastNinetyPercent) {
  double recall = 0;
  const int queries = 50;
  for (int iq = 0; iq < queries; ++iq) {
    const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
    bool used_exact = true;
    const Hits ann = MustSearch(*section_, Query(q, 10, SearchMode::kApproximate), nullptr, nullptr,
                                &used_exact);
    EXPECT_FALSE(used_exact) << "query " << iq << ": the graph answered";
    ASSERT_EQ(ann.size(), 10u);
    // Well formed: distinct docs of the section, exact scores, best first.
    std::set<uint32_t> docs;
    for (size_t i = 0; i < ann.size(); ++i) {
      const int64_t row = section_->RowOf(ann[i].second);
      ASSERT_GE(row, 0) << ann[i].second;
      EXPECT_TRUE(docs.insert(ann[i].second).second) << "doc " << ann[i].second << " twice";
      EXPECT_EQ(ann[i].first, VectorScore(GetParam(), q.data(), big_.rows[row].v.data(), 16));
      if (i > 0) {
        EXPECT_TRUE(Better(ann[i - 1], ann[i])) << "out of order at " << i;
      }
    }
    recall += Recall(ann, BruteForce(big_, q, 10));
  }
  recall /= queries;
  EXPECT_GE(recall, 0.9);
}

TEST_P(SegmentVectorsGraphTest, AutoGoesExactBelowTheThreshold) {
  const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
  VectorQuery query = Query(q, 10, SearchMode::kAuto);
  query.exact_threshold = 2001;  // More than the section's rows.
  bool used_exact = false;
  EXPECT_EQ(MustSearch(*section_, query, nullptr, nullptr, &used_exact), BruteForce(big_, q, 10));
  EXPECT_TRUE(used_exact);
  query.exact_threshold = 100;
  MustSearch(*section_, query, nullptr, nullptr, &used_exact);
  EXPECT_FALSE(used_exact);
}

TEST_P(SegmentVectorsGraphTest, AnnNeverReturnsADocAdmitRejects) {
  // Three of four docs, then one in ten, then one in fifty.
  for (uint32_t every : {4, 10, 50}) {
    const Admit admit = every == 4 ? Admit([](uint32_t doc) { return doc % 8 != 0; })
                                   : Admit([every](uint32_t doc) { return doc / 2 % every == 3; });
    double recall = 0;
    int answered_by_graph = 0;
    const int queries = 30;
    for (int iq = 0; iq < queries; ++iq) {
      const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
      bool used_exact = true;
      const Hits hits = MustSearch(*section_, Query(q, 10, SearchMode::kApproximate), admit,
                                   nullptr, &used_exact);
      ASSERT_EQ(hits.size(), 10u) << "at least 10 docs are admitted";
      for (const auto& [score, doc] : hits) {
        EXPECT_TRUE(admit(doc)) << "every " << every << ": doc " << doc << " is not admitted";
      }
      const Hits exact = BruteForce(big_, q, 10, admit);
      if (used_exact) {
        EXPECT_EQ(hits, exact) << "every " << every;
      } else {
        ++answered_by_graph;
      }
      recall += Recall(hits, exact);
    }
    recall /= queries;
    if (every == 4) {
      // Under a selective filter a graph walk finds fewer of the best
      // admitted rows (FAISS's HNSW stops by the distances of every row
      // it met, admitted or not): recall is asserted only here.
      EXPECT_GE(recall, 0.9);
      EXPECT_EQ(answered_by_graph, queries) << "three of four admitted: the graph answers";
    }
  }
}

TEST_P(SegmentVectorsGraphTest, FewerThanKAdmittedAreExactlyThoseAdmitted) {
  const std::set<uint32_t> allowed = {2, 400, 1002, 2500, 3998};
  const Admit admit = [&](uint32_t doc) { return allowed.count(doc) > 0; };
  for (int iq = 0; iq < 10; ++iq) {
    const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
    for (size_t k : {5, 10, 100}) {
      bool used_exact = false;
      const Hits hits =
          MustSearch(*section_, Query(q, k, SearchMode::kApproximate), admit, nullptr, &used_exact);
      EXPECT_EQ(hits, BruteForce(big_, q, k, admit)) << "k " << k;
      EXPECT_EQ(hits.size(), 5u);
      if (k > 5) {
        EXPECT_TRUE(used_exact);
      }
    }
    EXPECT_THAT(MustSearch(*section_, Query(q, 10, SearchMode::kApproximate),
                           [](uint32_t) { return false; }),
                ElementsAre());
  }
}

TEST_P(SegmentVectorsGraphTest, CandidatesAreScannedExactlyEvenUnderApproximate) {
  std::vector<uint32_t> candidates;
  for (uint32_t d = 0; d < 4000; d += 1 + rng_() % 40) candidates.push_back(d);
  const Admit odd_rows = [](uint32_t doc) { return doc / 2 % 2 == 1; };
  for (int iq = 0; iq < 10; ++iq) {
    const std::vector<float> q = RandomVector(rng_, GetParam(), 16);
    bool used_exact = false;
    EXPECT_EQ(MustSearch(*section_, Query(q, 10, SearchMode::kApproximate), nullptr, &candidates,
                         &used_exact),
              BruteForce(big_, q, 10, nullptr, &candidates));
    EXPECT_TRUE(used_exact);
    EXPECT_EQ(MustSearch(*section_, Query(q, 10, SearchMode::kApproximate), odd_rows, &candidates),
              BruteForce(big_, q, 10, odd_rows, &candidates));
  }
}

// Sections of each kind and metric, for the round trip.
std::vector<TenantRows> MixedTenants(std::mt19937& rng) {
  return {MakeTenant(rng, "a", Metric::kCosine, 16, 300, 0, 2),
          MakeTenant(rng, "b", Metric::kL2, 5, 30, 600),
          MakeTenant(rng, "c", Metric::kDot, 16, 120, 630, 3),
          MakeTenant(rng, "d", Metric::kL2, 16, 80, 1000)};
}

TEST(SegmentVectorsSerializeTest, ParseRoundTripsSectionsGraphsAndSearches) {
  std::mt19937 rng(31);
  const std::vector<TenantRows> tenants = MixedTenants(rng);
  SegmentVectors vectors = Build(tenants);
  VectorGraphOptions graphs;
  graphs.min_rows = 50;
  ASSERT_TRUE(vectors.BuildGraphs(graphs).ok());
  EXPECT_EQ(vectors.graphs(), 3u) << "b has 30 rows";
  absl::StatusOr<std::string> body = vectors.Serialize();
  ASSERT_TRUE(body.ok()) << body.status();
  absl::StatusOr<SegmentVectors> parsed = SegmentVectors::Parse(*body, "seg.vec", 1080);
  ASSERT_TRUE(parsed.ok()) << parsed.status();

  ASSERT_EQ(parsed->sections().size(), vectors.sections().size());
  EXPECT_EQ(parsed->rows(), vectors.rows());
  EXPECT_EQ(parsed->graphs(), vectors.graphs());
  for (size_t i = 0; i < tenants.size(); ++i) {
    const SegmentVectors::Section& was = vectors.sections()[i];
    const SegmentVectors::Section& now = parsed->sections()[i];
    SCOPED_TRACE(was.tenant);
    EXPECT_EQ(now.tenant, was.tenant);
    EXPECT_EQ(now.dim, was.dim);
    EXPECT_EQ(now.metric, was.metric);
    EXPECT_EQ(now.docs, was.docs);
    EXPECT_EQ(now.graph, was.graph);
    EXPECT_EQ(parsed->Find(was.tenant), &now);
    for (size_t r = 0; r < was.rows(); ++r) {
      ASSERT_EQ(std::memcmp(now.row(r), was.row(r), was.dim * sizeof(float)), 0) << "row " << r;
    }
    const Admit admit = [](uint32_t doc) { return doc % 5 != 2; };
    for (int iq = 0; iq < 10; ++iq) {
      const std::vector<float> q = RandomVector(rng, was.metric, was.dim);
      for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate, SearchMode::kAuto}) {
        for (const Admit& a : {Admit(), admit}) {
          bool exact_was = false, exact_now = true;
          const Hits before = MustSearch(was, Query(q, 10, mode), a, nullptr, &exact_was);
          const Hits after = MustSearch(now, Query(q, 10, mode), a, nullptr, &exact_now);
          EXPECT_EQ(after, before) << "query " << iq << " mode " << static_cast<int>(mode);
          EXPECT_EQ(exact_now, exact_was);
          if (mode == SearchMode::kExact) {
            EXPECT_EQ(after, BruteForce(tenants[i], q, 10, a));
          }
        }
      }
    }
  }
  // Nothing lost or added: the parsed vectors serialize to the same bytes.
  absl::StatusOr<std::string> again = parsed->Serialize();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(*again == *body);
}

TEST(SegmentVectorsSerializeTest, NoSectionsRoundTrip) {
  SegmentVectors empty;
  ASSERT_TRUE(empty.Finish().ok());
  absl::StatusOr<std::string> body = empty.Serialize();
  ASSERT_TRUE(body.ok()) << body.status();
  absl::StatusOr<SegmentVectors> parsed = SegmentVectors::Parse(*body, "seg.vec", 0);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->sections().empty());
  EXPECT_EQ(parsed->Find("a"), nullptr);
}

// A small body: a graph section (docs 0..39) and a flat one (docs
// 100..129) of a 130-doc segment, so that any flipped byte of a doc id or
// row count breaks the doc table's order or range.
std::string SmallBody(std::vector<TenantRows>* tenants) {
  std::mt19937 rng(41);
  *tenants = {MakeTenant(rng, "a", Metric::kCosine, 6, 40, 0),
              MakeTenant(rng, "bb", Metric::kL2, 4, 30, 100)};
  SegmentVectors vectors = Build(*tenants);
  VectorGraphOptions graphs;
  graphs.min_rows = 35;
  EXPECT_TRUE(vectors.BuildGraphs(graphs).ok());
  EXPECT_EQ(vectors.graphs(), 1u);
  absl::StatusOr<std::string> body = vectors.Serialize();
  EXPECT_TRUE(body.ok()) << body.status();
  return body.ok() ? *body : "";
}
constexpr uint32_t kSmallDocCount = 130;

uint32_t U32At(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

TEST(SegmentVectorsSerializeTest, EveryTruncationIsDataLossNamingTheFile) {
  std::vector<TenantRows> tenants;
  const std::string body = SmallBody(&tenants);
  ASSERT_TRUE(SegmentVectors::Parse(body, "seg.vec", kSmallDocCount).ok());
  for (size_t cut = 0; cut < body.size(); ++cut) {
    absl::StatusOr<SegmentVectors> p =
        SegmentVectors::Parse(absl::string_view(body).substr(0, cut), "seg.vec", kSmallDocCount);
    ASSERT_TRUE(absl::IsDataLoss(p.status())) << "cut at " << cut << ": " << p.status();
    ASSERT_THAT(std::string(p.status().message()), HasSubstr("seg.vec"));
  }
  absl::StatusOr<SegmentVectors> trailing =
      SegmentVectors::Parse(body + '\0', "seg.vec", kSmallDocCount);
  EXPECT_TRUE(absl::IsDataLoss(trailing.status())) << trailing.status();
}

// Every byte of the sections' headers but the tenant names (which nothing
// inside the body can check: the file's CRC covers them), and the FAISS
// headers' type, dimension and row count: flipped, the body is DATA_LOSS.
TEST(SegmentVectorsSerializeTest, AFlippedHeaderByteIsDataLoss) {
  std::vector<TenantRows> tenants;
  const std::string body = SmallBody(&tenants);
  std::vector<size_t> offsets = {0, 1, 2, 3};  // The section count.
  size_t at = 4;
  for (const TenantRows& t : tenants) {
    const uint32_t len = U32At(body, at);
    ASSERT_EQ(len, t.tenant.size());
    for (size_t i = 0; i < 4; ++i) offsets.push_back(at + i);  // Tenant length.
    at += 4 + len;
    ASSERT_EQ(U32At(body, at + 8), t.rows.size());
    // dim, metric, rows, the doc table, the kind.
    const size_t ints = 3 + t.rows.size() + 1;
    for (size_t i = 0; i < 4 * ints; ++i) offsets.push_back(at + i);
    at += 4 * ints;
    const uint64_t blob = U32At(body, at) | uint64_t{U32At(body, at + 4)} << 32;
    for (size_t i = 0; i < 8; ++i) offsets.push_back(at + i);  // Blob length.
    at += 8;
    // FAISS's fourcc, d (int) and ntotal (int64).
    for (size_t i = 0; i < 16; ++i) offsets.push_back(at + i);
    at += blob;
  }
  ASSERT_EQ(at, body.size());
  for (size_t off : offsets) {
    std::string damaged = body;
    damaged[off] = static_cast<char>(damaged[off] ^ 0xff);
    absl::StatusOr<SegmentVectors> p = SegmentVectors::Parse(damaged, "seg.vec", kSmallDocCount);
    EXPECT_TRUE(absl::IsDataLoss(p.status())) << "byte " << off << " flipped: " << p.status();
  }
}

TEST(SegmentVectorsSerializeTest, ADocAtOrPastTheDocCountIsDataLoss) {
  const std::vector<float> v = {1, 2};
  SegmentVectors vectors;
  for (uint32_t doc : {0, 5, 9}) ASSERT_TRUE(vectors.Add(doc, "t", Metric::kL2, v.data(), 2));
  ASSERT_TRUE(vectors.Finish().ok());
  absl::StatusOr<std::string> body = vectors.Serialize();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(SegmentVectors::Parse(*body, "seg.vec", 10).ok());
  for (uint32_t doc_count : {9, 6, 3, 2, 0}) {
    absl::StatusOr<SegmentVectors> p = SegmentVectors::Parse(*body, "seg.vec", doc_count);
    EXPECT_TRUE(absl::IsDataLoss(p.status())) << doc_count << " docs: " << p.status();
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("seg.vec"));
  }
}

// The v1 fixture, written by a script from segment_format.md alone
// (testdata/README.md): the framing, the section layout and FAISS's flat
// index layout of the documented version still read.
TEST(SegmentVectorsFormatTest, TheV1FixtureReads) {
  const SegmentFileInfo expected{"VECS", 1, std::string("fixture-vec-v1\0\0", 16)};
  const std::string path = std::string(DASH_INDEX_TESTDATA_DIR) + "/vectors_v1.vec";
  absl::StatusOr<std::string> body = ReadSegmentFile(path, expected);
  ASSERT_TRUE(body.ok()) << body.status();
  absl::StatusOr<SegmentVectors> v = SegmentVectors::Parse(*body, path, /*doc_count=*/6);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->sections().size(), 1u);
  const SegmentVectors::Section* s = v->Find("acme");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->dim, 2u);
  EXPECT_EQ(s->metric, Metric::kL2);
  EXPECT_FALSE(s->graph);
  EXPECT_THAT(s->docs, ElementsAre(0u, 2u, 5u));
  EXPECT_EQ(s->row(2)[0], 5.0f);
  EXPECT_EQ(s->row(2)[1], 6.0f);
  const float q[2] = {3.0f, 4.5f};
  VectorQuery query;
  query.q = q;
  query.k = 3;
  bool exact = false;
  absl::StatusOr<Hits> hits = SegmentVectors::Search(*s, query, nullptr, nullptr, &exact);
  ASSERT_TRUE(hits.ok()) << hits.status();
  EXPECT_TRUE(exact);
  // Negative squared distances: (3, 4) is 0.25 away, (5, 6) 6.25, (1, 2) 10.25.
  EXPECT_THAT(*hits, ElementsAre(std::make_pair(-0.25, 2u), std::make_pair(-6.25, 5u),
                                 std::make_pair(-10.25, 0u)));
  // The same section as DASH writes it reads back the same.
  absl::StatusOr<std::string> again = v->Serialize();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *body) << "the fixture is byte-for-byte what the current writer produces";
}

}  // namespace
}  // namespace dash::index
