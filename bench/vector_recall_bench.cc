// Segment vectors benchmark: recall@k of the HNSW path against exact search,
// and per-query latency of each path, on synthetic embeddings, for one
// SegmentVectors section (the vectors of one tenant in one index segment).
//
// Builds the section from N vectors (Add per row, Finish), times the HNSW
// build (BuildGraphs, `--threads` OpenMP threads) and the restart cost
// (Serialize, then Parse of the section: a reopened segment reads its graph
// back; the bench fails unless the parsed section answers exactly like the
// original), then for each ef_search measures recall@k (kApproximate vs kExact
// over the same queries, unfiltered) and ANN latency; then exact latency, and
// filtered searches (an admit function letting 1% or 50% of the docs
// through): ANN inside the filter, and for the 1% filter also the exact scan
// of the resolved `candidates`, which is the path LexicalStore takes for a
// filter that selective. Queries are drawn from the data's distribution, not
// from the data. Prints a table and one JSON scorecard line.
//
//   vector_recall_bench [--n=20000] [--dim=384] [--queries=200] [--k=10]
//                       [--threads=2] [--data=latent|clustered|random] [--seed=1]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "node/index/segment_vectors.h"

namespace {

using Clock = std::chrono::steady_clock;
using dash::index::Metric;
using dash::index::SearchMode;
using dash::index::SegmentVectors;
using dash::index::VectorQuery;
using Hits = std::vector<std::pair<double, uint32_t>>;  // (score, doc), best first.

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// "clustered": 100 Gaussian centres, points spread around them (well-separated
// topics; easy for a graph index). "latent": a random linear image of a
// 32-dimensional Gaussian plus a little noise (low intrinsic dimension, like
// real text embeddings). "random": i.i.d. Gaussian, where every distance is
// nearly the same and no graph index can do well: the adversarial case.
enum class Kind { kClustered, kLatent, kRandom };

struct Model {
  std::vector<std::vector<float>> centres;  // kClustered: 100 x dim
  std::vector<std::vector<float>> basis;    // kLatent: 32 x dim
};

Model MakeModel(Kind kind, size_t dim, std::mt19937& rng) {
  std::normal_distribution<float> g(0, 1);
  Model m;
  auto& rows = kind == Kind::kLatent ? m.basis : m.centres;
  rows.assign(kind == Kind::kLatent ? 32 : 100, std::vector<float>(dim));
  for (auto& r : rows)
    for (float& x : r) x = g(rng);
  return m;
}

std::vector<std::vector<float>> Generate(size_t n, size_t dim, Kind kind, const Model& m,
                                         std::mt19937& rng) {
  std::normal_distribution<float> g(0, 1);
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (auto& v : out) {
    switch (kind) {
      case Kind::kClustered: {
        const auto& c = m.centres[std::uniform_int_distribution<size_t>(0, 99)(rng)];
        for (size_t i = 0; i < dim; ++i) v[i] = c[i] + 0.5f * g(rng);
        break;
      }
      case Kind::kLatent: {
        for (const auto& b : m.basis) {
          const float z = g(rng);
          for (size_t i = 0; i < dim; ++i) v[i] += z * b[i];
        }
        for (float& x : v) x += 0.5f * g(rng);
        break;
      }
      case Kind::kRandom:
        for (float& x : v) x = g(rng);
        break;
    }
  }
  return out;
}

struct Latency {
  double mean_ms = 0, p50_ms = 0, p99_ms = 0;
};

// Runs `search` once per query and summarizes the wall time per call.
template <typename F>
Latency Time(size_t queries, F search) {
  std::vector<double> ms;
  for (size_t i = 0; i < queries; ++i) {
    const auto t = Clock::now();
    search(i);
    ms.push_back(Seconds(t) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  Latency l;
  for (double x : ms) l.mean_ms += x / ms.size();
  l.p50_ms = ms[ms.size() / 2];
  l.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return l;
}

// Mean over queries of |got ∩ truth| / |truth| (1 for an empty truth).
double Recall(const std::vector<Hits>& got, const std::vector<Hits>& truth) {
  double sum = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    if (truth[i].empty()) {
      sum += 1;
      continue;
    }
    std::set<uint32_t> docs;
    for (const auto& h : got[i]) docs.insert(h.second);
    size_t found = 0;
    for (const auto& h : truth[i]) found += docs.count(h.second);
    sum += static_cast<double>(found) / static_cast<double>(truth[i].size());
  }
  return truth.empty() ? 1 : sum / static_cast<double>(truth.size());
}

void Check(const absl::Status& s) {
  if (!s.ok()) {
    fprintf(stderr, "vector_recall_bench: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 20000, dim = 384, queries = 200, k = 10;
  int threads = 2;
  uint32_t seed = 1;
  std::string data = "latent";
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    bool ok = true;
    if (absl::ConsumePrefix(&a, "--n=")) {
      ok = absl::SimpleAtoi(a, &n);
    } else if (absl::ConsumePrefix(&a, "--dim=")) {
      ok = absl::SimpleAtoi(a, &dim);
    } else if (absl::ConsumePrefix(&a, "--queries=")) {
      ok = absl::SimpleAtoi(a, &queries) && queries > 0;
    } else if (absl::ConsumePrefix(&a, "--k=")) {
      ok = absl::SimpleAtoi(a, &k);
    } else if (absl::ConsumePrefix(&a, "--threads=")) {
      ok = absl::SimpleAtoi(a, &threads);
    } else if (absl::ConsumePrefix(&a, "--seed=")) {
      ok = absl::SimpleAtoi(a, &seed);
    } else if (absl::ConsumePrefix(&a, "--data=")) {
      data = std::string(a);
      ok = data == "clustered" || data == "latent" || data == "random";
    } else {
      ok = false;
    }
    if (!ok || n < 200 || n > UINT32_MAX || dim == 0) {
      fprintf(stderr,
              "usage: vector_recall_bench [--n=N>=200] [--dim=D] [--queries=Q] [--k=K] "
              "[--threads=T] [--data=clustered|latent|random] [--seed=S]\n");
      return 2;
    }
  }
  const Kind kind = data == "clustered" ? Kind::kClustered
                    : data == "latent"  ? Kind::kLatent
                                        : Kind::kRandom;
  std::mt19937 rng(seed);
  const Model model = MakeModel(kind, dim, rng);
  const auto vectors = Generate(n, dim, kind, model, rng);
  const auto raw_queries = Generate(queries, dim, kind, model, rng);
  const uint32_t d32 = static_cast<uint32_t>(dim);

  // Vectors and queries as stored: normalized for cosine.
  std::vector<std::vector<float>> qs;
  for (const auto& q : raw_queries) {
    auto p = dash::index::PrepareVector(Metric::kCosine, d32, q.data(), q.size());
    Check(p.status());
    qs.push_back(*std::move(p));
  }

  dash::index::VectorGraphOptions graphs;
  graphs.min_rows = 0;
  graphs.hnsw_m = 32;
  graphs.ef_construction = 64;
  graphs.build_threads = threads;
  printf(
      "DASH segment vectors benchmark: %zu x %zu %s vectors, cosine, HNSW M=%d efC=%d, "
      "%zu queries, k=%zu, %d build threads (searches: 1 thread each)\n",
      n, dim, data.c_str(), graphs.hnsw_m, graphs.ef_construction, queries, k, threads);

  auto t = Clock::now();
  SegmentVectors vecs;
  for (size_t i = 0; i < n; ++i) {
    auto p = dash::index::PrepareVector(Metric::kCosine, d32, vectors[i].data(), dim);
    Check(p.status());
    if (!vecs.Add(static_cast<uint32_t>(i), "t", Metric::kCosine, p->data(), p->size())) {
      fprintf(stderr, "vector_recall_bench: Add refused row %zu\n", i);
      return 1;
    }
  }
  Check(vecs.Finish());
  const double load_s = Seconds(t);
  t = Clock::now();
  Check(vecs.BuildGraphs(graphs));
  const double build_s = Seconds(t);
  const SegmentVectors::Section& section = *vecs.Find("t");
  if (!section.graph) {
    fprintf(stderr, "vector_recall_bench: no graph was built\n");
    return 1;
  }
  printf("load (Add, Finish) %zu vectors: %.2f s; HNSW build (BuildGraphs): %.1f s\n", n, load_s,
         build_s);

  // The restart cost: the section written as the segment's VECS body and read
  // back, graph included.
  t = Clock::now();
  absl::StatusOr<std::string> body = vecs.Serialize();
  Check(body.status());
  const double serialize_ms = Seconds(t) * 1e3;
  t = Clock::now();
  absl::StatusOr<SegmentVectors> parsed =
      SegmentVectors::Parse(*body, "bench", static_cast<uint32_t>(n));
  Check(parsed.status());
  const double parse_ms = Seconds(t) * 1e3;
  const double mib = static_cast<double>(body->size()) / (1 << 20);
  printf("serialized: %.1f MiB; Serialize %.1f ms, Parse %.1f ms\n", mib, serialize_ms, parse_ms);

  auto search = [&](const SegmentVectors::Section& s, size_t i, int ef, SearchMode mode,
                    const std::function<bool(uint32_t)>& admit,
                    const std::vector<uint32_t>* candidates, bool* used_exact = nullptr) {
    VectorQuery q;
    q.q = qs[i].data();
    q.k = k;
    q.ef_search = ef;
    q.mode = mode;
    auto r = SegmentVectors::Search(s, q, admit, candidates, used_exact);
    Check(r.status());
    return *std::move(r);
  };

  // Exact answers, unfiltered; timed as the exact path.
  std::vector<Hits> truth(queries);
  const Latency exact = Time(queries, [&](size_t i) {
    truth[i] = search(section, i, 64, SearchMode::kExact, nullptr, nullptr);
  });

  printf("%-28s %9s %10s %10s %10s\n", "search", "recall@k", "mean ms", "p50 ms", "p99 ms");
  std::string json = absl::StrFormat(
      R"({"bench":"vector_recall","n":%d,"dim":%d,"data":"%s","k":%d,"build_s":%.2f,)"
      R"("vecs_mib":%.1f,"serialize_ms":%.1f,"parse_ms":%.1f)",
      n, dim, data, k, build_s, mib, serialize_ms, parse_ms);
  for (int ef : {16, 32, 64, 128}) {
    std::vector<Hits> answers(queries);
    const Latency l = Time(queries, [&](size_t i) {
      answers[i] = search(section, i, ef, SearchMode::kApproximate, nullptr, nullptr);
    });
    const double recall = Recall(answers, truth);
    printf("%-28s %9.4f %10.3f %10.3f %10.3f\n", absl::StrCat("ANN ef_search=", ef).c_str(), recall,
           l.mean_ms, l.p50_ms, l.p99_ms);
    absl::StrAppendFormat(&json, R"(,"ef%d":{"recall":%.4f,"mean_ms":%.3f,"p99_ms":%.3f})", ef,
                          recall, l.mean_ms, l.p99_ms);
  }
  printf("%-28s %9s %10.3f %10.3f %10.3f\n", "exact (brute force)", "1", exact.mean_ms,
         exact.p50_ms, exact.p99_ms);

  // The parsed section must answer exactly as the one it was written from.
  size_t same = 0;
  for (size_t i = 0; i < queries; ++i) {
    same += search(*parsed->Find("t"), i, 64, SearchMode::kApproximate, nullptr, nullptr) ==
            search(section, i, 64, SearchMode::kApproximate, nullptr, nullptr);
  }
  if (same != queries) {
    fprintf(stderr, "vector_recall_bench: the parsed section differs on %zu of %zu queries\n",
            queries - same, queries);
    return 1;
  }

  // Filters as an admit function; recall of the filtered answer against the
  // exact answer under the same filter. ANN walks the graph through the
  // filter (and falls back to exact when it finds fewer than k); the 1%
  // filter also runs as LexicalStore routes it, resolved to `candidates` and
  // scanned exactly.
  for (uint32_t every : {100u, 2u}) {
    const std::function<bool(uint32_t)> admit = [every](uint32_t doc) { return doc % every == 0; };
    std::vector<Hits> filtered_truth(queries);
    for (size_t i = 0; i < queries; ++i) {
      filtered_truth[i] = search(section, i, 64, SearchMode::kExact, admit, nullptr);
    }
    size_t exact_calls = 0;
    std::vector<Hits> answers(queries);
    const Latency l = Time(queries, [&](size_t i) {
      bool used_exact = false;
      answers[i] = search(section, i, 64, SearchMode::kApproximate, admit, nullptr, &used_exact);
      exact_calls += used_exact ? 1 : 0;
    });
    const double recall = Recall(answers, filtered_truth);
    const std::string label =
        absl::StrFormat("filter %u%% ANN (%zu/%zu exact)", 100 / every, exact_calls, queries);
    printf("%-28s %9.4f %10.3f %10.3f %10.3f\n", label.c_str(), recall, l.mean_ms, l.p50_ms,
           l.p99_ms);
    absl::StrAppendFormat(&json, R"(,"filter%u":{"recall":%.4f,"mean_ms":%.3f,"exact":%d})",
                          100 / every, recall, l.mean_ms, exact_calls);
    if (every < 100) continue;
    std::vector<uint32_t> candidates;
    for (uint32_t doc = 0; doc < n; doc += every) candidates.push_back(doc);
    const Latency lc = Time(queries, [&](size_t i) {
      answers[i] = search(section, i, 64, SearchMode::kAuto, admit, &candidates);
    });
    const double recall_c = Recall(answers, filtered_truth);
    printf("%-28s %9.4f %10.3f %10.3f %10.3f\n",
           absl::StrFormat("filter %u%% candidates", 100 / every).c_str(), recall_c, lc.mean_ms,
           lc.p50_ms, lc.p99_ms);
    absl::StrAppendFormat(&json, R"(,"filter%u_candidates":{"recall":%.4f,"mean_ms":%.3f})",
                          100 / every, recall_c, lc.mean_ms);
  }
  absl::StrAppendFormat(&json, R"(,"exact_mean_ms":%.3f})", exact.mean_ms);
  printf("%s\n", json.c_str());
  return 0;
}
