// Vector index benchmark: recall@k of the HNSW path against exact search, and
// per-query latency of each path, on synthetic embeddings.
//
// Loads N vectors with UpsertBatch (the start-up path, `--threads` OpenMP
// threads), times single Upserts on top, then for each ef_search measures
// recall@k (MeasureRecallAtK: ANN vs exact over the same queries) and ANN
// latency; then exact latency, and filtered searches as the kAuto planner
// routes them (1% filter -> exact, 50% filter -> ANN inside the filter).
// Queries are drawn from the data's distribution, not from the data. Prints a
// table and one JSON scorecard line.
//
//   vector_recall_bench [--n=20000] [--dim=384] [--queries=200] [--k=10]
//                       [--threads=2] [--data=latent|clustered|random] [--seed=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "node/index/vector_index.h"

namespace {

using Clock = std::chrono::steady_clock;
using dash::index::SearchMode;
using dash::index::VectorIndex;

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
    if (!ok || n < 200 || dim == 0) {
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
  const size_t extra = 200;  // Inserted one by one after the bulk load.
  const auto vectors = Generate(n + extra, dim, kind, model, rng);
  const auto qs = Generate(queries, dim, kind, model, rng);

  dash::index::VectorIndexOptions options;
  options.build_threads = threads;
  VectorIndex index(static_cast<uint32_t>(dim), dash::index::Metric::kCosine, options);
  printf(
      "DASH vector index benchmark: %zu x %zu %s vectors, cosine, HNSW M=%d efC=%d, "
      "%zu queries, k=%zu, %d build threads (searches: 1 thread each)\n",
      n + extra, dim, data.c_str(), options.hnsw_m, options.ef_construction, queries, k, threads);

  std::vector<std::string> ids;
  std::vector<float> flat;
  flat.reserve(n * dim);
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(absl::StrCat("c", i));
    flat.insert(flat.end(), vectors[i].begin(), vectors[i].end());
  }
  auto t = Clock::now();
  if (auto s = index.UpsertBatch(ids, flat.data(), flat.size()); !s.ok()) {
    fprintf(stderr, "vector_recall_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  const double build_s = Seconds(t);
  t = Clock::now();
  for (size_t i = n; i < n + extra; ++i) {
    if (!index.Upsert(absl::StrCat("c", i), vectors[i].data(), dim).ok()) return 1;
  }
  const double upsert_ms = Seconds(t) * 1e3 / extra;
  printf("bulk load (UpsertBatch) %zu vectors: %.1f s; single Upsert: %.2f ms each\n", n, build_s,
         upsert_ms);

  auto search = [&](size_t i, size_t kk, const absl::flat_hash_set<std::string>* allowed,
                    SearchMode mode, bool* used_exact = nullptr) {
    auto r = index.Search(qs[i].data(), dim, kk, allowed, mode, used_exact);
    if (!r.ok()) {
      fprintf(stderr, "vector_recall_bench: %s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    return *r;
  };

  printf("%-28s %9s %10s %10s %10s\n", "search", "recall@k", "mean ms", "p50 ms", "p99 ms");
  std::string json = absl::StrFormat(
      R"({"bench":"vector_recall","n":%d,"dim":%d,"data":"%s","k":%d,"build_s":%.2f,"upsert_ms":%.3f)",
      n + extra, dim, data, k, build_s, upsert_ms);
  for (int ef : {16, 32, 64, 128}) {
    index.set_ef_search(ef);
    const double recall = dash::index::MeasureRecallAtK(index, qs, k);
    const Latency l =
        Time(queries, [&](size_t i) { search(i, k, nullptr, SearchMode::kApproximate); });
    printf("%-28s %9.4f %10.3f %10.3f %10.3f\n", absl::StrCat("ANN ef_search=", ef).c_str(), recall,
           l.mean_ms, l.p50_ms, l.p99_ms);
    absl::StrAppendFormat(&json, R"(,"ef%d":{"recall":%.4f,"mean_ms":%.3f,"p99_ms":%.3f})", ef,
                          recall, l.mean_ms, l.p99_ms);
  }
  index.set_ef_search(options.ef_search);

  const Latency exact = Time(queries, [&](size_t i) { search(i, k, nullptr, SearchMode::kExact); });
  printf("%-28s %9s %10.3f %10.3f %10.3f\n", "exact (brute force)", "1", exact.mean_ms,
         exact.p50_ms, exact.p99_ms);

  // Filters as the planner routes them; recall of the filtered answer against
  // the exact answer under the same filter.
  for (size_t every : {100, 2}) {
    absl::flat_hash_set<std::string> allowed;
    for (size_t i = 0; i < n + extra; i += every) allowed.insert(absl::StrCat("c", i));
    size_t exact_calls = 0;
    std::vector<std::vector<dash::index::VectorHit>> answers(queries);
    const Latency l = Time(queries, [&](size_t i) {
      bool used_exact = false;
      answers[i] = search(i, k, &allowed, SearchMode::kAuto, &used_exact);
      exact_calls += used_exact ? 1 : 0;
    });
    double found = 0;
    for (size_t i = 0; i < queries; ++i) {
      absl::flat_hash_set<std::string> got;
      for (const auto& h : answers[i]) got.insert(h.claim_id);
      for (const auto& h : search(i, k, &allowed, SearchMode::kExact))
        found += got.count(h.claim_id);
    }
    const double recall = found / static_cast<double>(queries * std::min(k, allowed.size()));
    const std::string label =
        absl::StrFormat("filter %zu%% auto (%zu/%zu exact)", 100 / every, exact_calls, queries);
    printf("%-28s %9.4f %10.3f %10.3f %10.3f\n", label.c_str(), recall, l.mean_ms, l.p50_ms,
           l.p99_ms);
    absl::StrAppendFormat(&json, R"(,"filter%zu":{"recall":%.4f,"mean_ms":%.3f,"exact":%d})",
                          100 / every, recall, l.mean_ms, exact_calls);
  }
  absl::StrAppendFormat(&json, R"(,"exact_mean_ms":%.3f})", exact.mean_ms);
  printf("%s\n", json.c_str());
  return 0;
}
