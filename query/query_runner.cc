#include "query/query_runner.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/thread_pool.h"
#include "query/analyzer.h"
#include "query/batch_validator.h"
#include "query/filter.h"
#include "query/fusion.h"

namespace dash::query {
namespace {

constexpr uint32_t kDefaultQueryK = 10;
constexpr uint32_t kMaxQueryK = 1000;
constexpr size_t kMaxQueryBytes = 16 << 10;
// Parameter bounds: beyond them scores overflow (k1 = 1e308 made BM25 inf/inf)
// and nothing is gained (term-frequency saturation is complete long before).
constexpr double kMaxBm25K1 = 1000;
constexpr double kMaxRrfK = 1e9;
constexpr double kMaxRrfWeight = 1e6;

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckRange(const char* field, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "]"));
  return absl::OkStatus();
}

// The request's parameters with defaults applied.
struct Params {
  Bm25Params bm25;
  fusion::RrfParams rrf;
  fusion::LinearParams linear;
  bool use_linear = false;
};

absl::StatusOr<Params> Parse(const v1::QueryRequest& request) {
  Params p;
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  if (request.text().size() > kMaxQueryBytes) {
    return Bad("text",
               absl::StrCat("is ", request.text().size(), " bytes; the limit is ", kMaxQueryBytes));
  }
  if (!IsValidUtf8(request.text())) return Bad("text", "is not valid UTF-8");
  if (request.text().empty() && request.embedding_size() == 0) {
    return Bad("text", "text or embedding is required");
  }
  for (int i = 0; i < request.embedding_size(); ++i) {
    if (!std::isfinite(request.embedding(i)))
      return Bad(absl::StrCat("embedding[", i, "]"), "must be finite");
  }
  if (request.k() > kMaxQueryK)
    return Bad("k", absl::StrCat(request.k(), " exceeds the limit of ", kMaxQueryK));
  if (request.bm25().has_k1()) {
    p.bm25.k1 = request.bm25().k1();
    DASH_RETURN_IF_ERROR(CheckRange("bm25.k1", p.bm25.k1, 0, kMaxBm25K1));
  }
  if (request.bm25().has_b()) {
    p.bm25.b = request.bm25().b();
    if (!(p.bm25.b >= 0 && p.bm25.b <= 1)) return Bad("bm25.b", "must be in [0, 1]");
  }
  DASH_RETURN_IF_ERROR(ValidateFilter(request.filter()));
  p.use_linear = request.fusion().has_linear();
  if (request.fusion().has_rrf()) {
    const v1::RrfFusion& f = request.fusion().rrf();
    if (f.has_k()) {
      p.rrf.k = f.k();
      if (!(p.rrf.k > 0 && p.rrf.k <= kMaxRrfK)) {
        return Bad("fusion.rrf.k", absl::StrCat("must be > 0 and <= ", kMaxRrfK));
      }
    }
    if (f.has_lexical_weight()) p.rrf.lexical_weight = f.lexical_weight();
    if (f.has_vector_weight()) p.rrf.vector_weight = f.vector_weight();
    DASH_RETURN_IF_ERROR(
        CheckRange("fusion.rrf.lexical_weight", p.rrf.lexical_weight, 0, kMaxRrfWeight));
    DASH_RETURN_IF_ERROR(
        CheckRange("fusion.rrf.vector_weight", p.rrf.vector_weight, 0, kMaxRrfWeight));
  }
  if (p.use_linear && request.fusion().linear().has_alpha()) {
    p.linear.alpha = request.fusion().linear().alpha();
    if (!(p.linear.alpha >= 0 && p.linear.alpha <= 1))
      return Bad("fusion.linear.alpha", "must be in [0, 1]");
  }
  if (!v1::StanceMode_IsValid(request.stance_mode()))
    return Bad("stance_mode", "is not a known mode");
  if (!v1::VectorSearchMode_IsValid(request.vector_mode())) {
    return Bad("vector_mode", "is not a known mode");
  }
  if (!v1::ReadPreference_IsValid(request.read_preference())) {
    return Bad("read_preference", "is not a known preference");
  }
  if (!std::isfinite(request.min_score())) return Bad("min_score", "must be finite");
  return p;
}

}  // namespace

absl::Status ValidateQuery(const v1::QueryRequest& request) { return Parse(request).status(); }

absl::StatusOr<v1::QueryResponse> RunQuery(const v1::QueryRequest& request,
                                           const std::map<uint32_t, ShardTarget*>& shards,
                                           uint32_t shard_count, ThreadPool* pool) {
  DASH_ASSIGN_OR_RETURN(const Params params, Parse(request));
  const size_t k = request.k() == 0 ? kDefaultQueryK : request.k();
  const bool lexical_leg = !request.text().empty();
  const bool vector_leg = request.embedding_size() > 0;
  const bool fused = lexical_leg && vector_leg;

  LegRequest legs;
  legs.terms = AnalyzeText(request.text());
  legs.bm25 = params.bm25;
  legs.embedding.assign(request.embedding().begin(), request.embedding().end());
  legs.vector_mode = request.vector_mode();
  // Fusion looks deeper than k so that a hit strong in one leg only can rise.
  legs.depth = fused ? std::min<size_t>(kMaxQueryK, std::max<size_t>(k, 100)) : k;
  legs.filter = request.filter();
  legs.support_only = request.stance_mode() == v1::STANCE_MODE_SUPPORT_ONLY;
  legs.bypass_filter_cache = request.bypass_filter_cache();

  // --- Phase 1: corpus statistics summed over every shard.
  // Every phase asks its shards at once; a failure is reported for the
  // lowest shard id that failed, whatever the order the answers came in.
  std::vector<ShardTarget*> targets;
  for (const auto& [id, target] : shards) targets.push_back(target);
  // Statistics and fetches of local shards take microseconds: waking pool
  // threads for them costs more than it saves (the legs still fan out).
  const bool all_local =
      std::all_of(targets.begin(), targets.end(), [](const ShardTarget* t) { return t->local(); });
  ThreadPool* cheap_pool = all_local ? nullptr : pool;
  if (!legs.terms.empty()) {
    auto stats = RunAll<CorpusStats>(cheap_pool, targets.size(), [&](size_t i) {
      return targets[i]->Stats(request.tenant(), legs.terms);
    });
    for (auto& s : stats) {
      DASH_RETURN_IF_ERROR(s.status());
      legs.stats.Add(*s);
    }
  }
  // --- Phase 2: each shard's legs, merged per leg, then fused once.
  v1::QueryResponse response;
  std::vector<fusion::Candidate> lexical, vector;
  auto leg_results = RunAll<LegResult>(
      pool, targets.size(), [&](size_t i) { return targets[i]->Legs(request.tenant(), legs); });
  for (auto& result : leg_results) {
    DASH_RETURN_IF_ERROR(result.status());
    LegResult& leg = *result;
    for (auto& c : leg.lexical) lexical.push_back(std::move(c));
    for (auto& c : leg.vector) vector.push_back(std::move(c));
    *response.add_read_at() = leg.read_at;
    response.add_vector_plans(leg.vector_plan);
  }
  fusion::SortLeg(lexical);
  fusion::SortLeg(vector);
  if (lexical.size() > legs.depth) lexical.resize(legs.depth);
  if (vector.size() > legs.depth) vector.resize(legs.depth);
  std::vector<fusion::FusedHit> ranked =
      fused ? (params.use_linear ? fusion::FuseLinear(lexical, vector, params.linear)
                                 : fusion::FuseRrf(lexical, vector, params.rrf))
            : fusion::FuseSingle(vector_leg ? vector : lexical, vector_leg);
  // Validated parameters keep every score finite; should one not be, the
  // ranking is meaningless: refuse it rather than answer NaN.
  for (const fusion::FusedHit& f : ranked) {
    if (!std::isfinite(f.score) || (f.lexical && !std::isfinite(f.lexical->score)) ||
        (f.vector && !std::isfinite(f.vector->score))) {
      return absl::InternalError(
          absl::StrCat("claim ", f.id, " scored a non-finite value; the ranking is refused"));
    }
  }
  if (request.has_min_score()) {
    // Ranked: everything after the first hit below the floor is lower.
    auto below = std::find_if(ranked.begin(), ranked.end(), [&](const fusion::FusedHit& f) {
      return f.score < request.min_score();
    });
    ranked.erase(below, ranked.end());
  }

  // --- Phase 3: fetch the hits with their evidence, verified, a window of
  // the ranking at a time (claims deleted since phase 2 are skipped).
  FetchOptions fetch;
  fetch.stance_mode = request.stance_mode();
  fetch.include_evidence = request.include_evidence();
  fetch.include_edges = request.graph().include();
  fetch.terms = legs.terms;
  fetch.bm25 = params.bm25;
  fetch.stats = legs.stats;
  fetch.filter = request.filter();
  std::set<std::string> hit_ids;
  size_t next = 0;
  while (static_cast<size_t>(response.hits_size()) < k && next < ranked.size()) {
    const size_t want = k - response.hits_size();
    const size_t end = std::min(ranked.size(), next + want);
    std::map<uint32_t, std::vector<std::string>> by_shard;
    for (size_t i = next; i < end; ++i) {
      by_shard[ShardOf(request.tenant(), ranked[i].id, shard_count)].push_back(ranked[i].id);
    }
    std::vector<std::pair<ShardTarget*, const std::vector<std::string>*>> asks;
    for (const auto& [shard, ids] : by_shard) {
      auto it = shards.find(shard);
      if (it != shards.end()) asks.emplace_back(it->second, &ids);
    }
    auto answers = RunAll<std::map<std::string, v1::QueryHit>>(
        cheap_pool, asks.size(),
        [&](size_t i) { return asks[i].first->Fetch(request.tenant(), *asks[i].second, fetch); });
    std::map<std::string, v1::QueryHit> fetched;
    for (auto& hits : answers) {
      DASH_RETURN_IF_ERROR(hits.status());
      fetched.merge(*hits);
    }
    for (size_t i = next; i < end; ++i) {
      const fusion::FusedHit& f = ranked[i];
      auto it = fetched.find(f.id);
      if (it == fetched.end()) continue;
      v1::QueryHit hit = std::move(it->second);
      hit.set_score(f.score);
      if (f.lexical) {
        hit.mutable_lexical()->set_score(f.lexical->score);
        hit.mutable_lexical()->set_rank(f.lexical->rank);
      }
      if (f.vector) {
        hit.mutable_vector()->set_score(f.vector->score);
        hit.mutable_vector()->set_rank(f.vector->rank);
      }
      hit_ids.insert(f.id);
      *response.add_hits() = std::move(hit);
    }
    next = end;
  }

  // --- Graph payload: edges among the hits (and one hop out).
  if (request.graph().include()) {
    std::vector<v1::Edge> edges;
    std::set<std::string> neighbors;
    for (auto& hit : *response.mutable_hits()) {
      for (const auto& e : hit.record().edges()) {
        const bool inner = hit_ids.count(e.to_claim()) > 0;
        if (!inner && !request.graph().one_hop()) continue;
        if (!inner) neighbors.insert(e.to_claim());
        edges.push_back(e);
      }
      if (!request.include_evidence()) hit.mutable_record()->clear_edges();
    }
    std::sort(edges.begin(), edges.end(), [](const v1::Edge& a, const v1::Edge& b) {
      return std::make_tuple(a.from_claim(), a.to_claim(), static_cast<int>(a.relation())) <
             std::make_tuple(b.from_claim(), b.to_claim(), static_cast<int>(b.relation()));
    });
    for (auto& e : edges) *response.mutable_graph()->add_edges() = std::move(e);
    for (const auto& n : neighbors) response.mutable_graph()->add_neighbor_claim_ids(n);
  }
  return response;
}

}  // namespace dash::query
