#include "node/shard/shard_host.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/fusion.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "node/index/analyzer.h"
#include "node/index/filter.h"
#include "node/shard/batch_validator.h"

namespace dash::shard {
namespace {
constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr uint32_t kDefaultQueryK = 10;
constexpr uint32_t kMaxQueryK = 1000;
constexpr size_t kMaxQueryBytes = 16 << 10;
}  // namespace

absl::StatusOr<std::unique_ptr<ShardHost>> ShardHost::Open(const HostOptions& options) {
  if (options.shard_count == 0) return absl::InvalidArgumentError("shard_count must be positive");
  HostOptions opts = options;
  if (opts.shards.empty()) {
    for (uint32_t s = 0; s < opts.shard_count; ++s) opts.shards.push_back(s);
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", opts.data_dir, ": ", ec.message()));
  }
  auto host = std::unique_ptr<ShardHost>(new ShardHost(opts));
  for (uint32_t s : opts.shards) {
    ReplicaOptions ro = opts.replica;
    ro.shard_id = s;
    ro.shard_count = opts.shard_count;
    ro.dir = absl::StrCat(opts.data_dir, "/shard-", s);
    DASH_ASSIGN_OR_RETURN(auto replica, ShardReplica::Open(ro));
    host->replicas_.emplace(s, std::move(replica));
  }
  return host;
}

ShardReplica* ShardHost::replica(uint32_t shard) const {
  auto it = replicas_.find(shard);
  return it == replicas_.end() ? nullptr : it->second.get();
}

void ShardHost::Write(v1::WriteRequest request, ShardReplica::WriteDone done) {
  absl::Status valid = ValidateBatch(request, options_.replica.limits);
  if (!valid.ok()) return done(valid);
  absl::StatusOr<uint32_t> shard = ShardOfBatch(request, options_.shard_count);
  if (!shard.ok()) return done(shard.status());
  ShardReplica* r = replica(*shard);
  if (r == nullptr) {
    return done(absl::FailedPreconditionError(
        absl::StrCat("shard ", *shard, " is not hosted on node ", options_.node_id)));
  }
  r->Write(std::move(request), std::move(done));
}

absl::StatusOr<v1::GetClaimResponse> ShardHost::GetClaim(const v1::GetClaimRequest& request) const {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  DASH_RETURN_IF_ERROR(ValidateId(request.claim_id(), "claim_id"));
  const uint32_t shard = ShardOf(request.tenant(), request.claim_id(), options_.shard_count);
  ShardReplica* r = replica(shard);
  if (r == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, " is not hosted on node ", options_.node_id));
  }
  return r->GetClaim(request.tenant(), request.claim_id());
}

absl::StatusOr<v1::ListClaimsResponse> ShardHost::ListClaims(
    const v1::ListClaimsRequest& request) const {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " exceeds the limit of ", kMaxPageSize));
  }
  const size_t limit = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  std::string start_after;
  if (!request.page_token().empty() &&
      (!absl::WebSafeBase64Unescape(request.page_token(), &start_after) || start_after.empty())) {
    return absl::InvalidArgumentError("page_token: not a token from a previous answer");
  }
  v1::ListClaimsResponse response;
  std::vector<v1::ClaimRecord> merged;
  bool more = false;
  for (const auto& [id, r] : replicas_) {
    DASH_ASSIGN_OR_RETURN(ListPage page, r->ListClaims(request.tenant(), start_after, limit,
                                                       request.include_evidence()));
    more = more || page.more;
    for (auto& rec : page.records) merged.push_back(std::move(rec));
    *response.add_read_at() = page.read_at;
  }
  std::sort(merged.begin(), merged.end(), [](const v1::ClaimRecord& a, const v1::ClaimRecord& b) {
    return a.claim().claim_id() < b.claim().claim_id();
  });
  if (merged.size() > limit) {
    merged.resize(limit);
    more = true;
  }
  if (more && !merged.empty()) {
    response.set_next_page_token(absl::WebSafeBase64Escape(merged.back().claim().claim_id()));
  }
  for (auto& rec : merged) *response.add_records() = std::move(rec);
  return response;
}

namespace {

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckNonNegative(const char* field, double v) {
  if (!(v >= 0) || !std::isfinite(v)) return Bad(field, "must be a finite number >= 0");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::QueryResponse> ShardHost::Query(const v1::QueryRequest& request) const {
  // --- Validation: every field, before any work.
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
  index::Bm25Params bm25;
  if (request.bm25().has_k1()) {
    bm25.k1 = request.bm25().k1();
    DASH_RETURN_IF_ERROR(CheckNonNegative("bm25.k1", bm25.k1));
  }
  if (request.bm25().has_b()) {
    bm25.b = request.bm25().b();
    if (!(bm25.b >= 0 && bm25.b <= 1)) return Bad("bm25.b", "must be in [0, 1]");
  }
  DASH_RETURN_IF_ERROR(index::ValidateFilter(request.filter()));
  fusion::RrfParams rrf;
  fusion::LinearParams linear;
  const bool use_linear = request.fusion().has_linear();
  if (request.fusion().has_rrf()) {
    const v1::RrfFusion& f = request.fusion().rrf();
    if (f.has_k()) {
      rrf.k = f.k();
      if (!(rrf.k > 0) || !std::isfinite(rrf.k))
        return Bad("fusion.rrf.k", "must be a finite number > 0");
    }
    if (f.has_lexical_weight()) rrf.lexical_weight = f.lexical_weight();
    if (f.has_vector_weight()) rrf.vector_weight = f.vector_weight();
    DASH_RETURN_IF_ERROR(CheckNonNegative("fusion.rrf.lexical_weight", rrf.lexical_weight));
    DASH_RETURN_IF_ERROR(CheckNonNegative("fusion.rrf.vector_weight", rrf.vector_weight));
  }
  if (use_linear && request.fusion().linear().has_alpha()) {
    linear.alpha = request.fusion().linear().alpha();
    if (!(linear.alpha >= 0 && linear.alpha <= 1))
      return Bad("fusion.linear.alpha", "must be in [0, 1]");
  }
  if (!v1::StanceMode_IsValid(request.stance_mode()))
    return Bad("stance_mode", "is not a known mode");
  if (!v1::VectorSearchMode_IsValid(request.vector_mode())) {
    return Bad("vector_mode", "is not a known mode");
  }
  if (!std::isfinite(request.min_score())) return Bad("min_score", "must be finite");

  const size_t k = request.k() == 0 ? kDefaultQueryK : request.k();
  const bool lexical_leg = !request.text().empty();
  const bool vector_leg = request.embedding_size() > 0;
  const bool fused = lexical_leg && vector_leg;

  shard::LegRequest legs;
  legs.terms = index::AnalyzeText(request.text());
  legs.bm25 = bm25;
  legs.embedding.assign(request.embedding().begin(), request.embedding().end());
  legs.vector_mode = request.vector_mode();
  // Fusion looks deeper than k so that a hit strong in one leg only can rise.
  legs.depth = fused ? std::min<size_t>(kMaxQueryK, std::max<size_t>(k, 100)) : k;
  legs.filter = request.filter();
  legs.support_only = request.stance_mode() == v1::STANCE_MODE_SUPPORT_ONLY;
  legs.bypass_filter_cache = request.bypass_filter_cache();

  // --- Phase 1: corpus statistics summed over the hosted shards.
  if (!legs.terms.empty()) {
    for (const auto& [id, r] : replicas_) {
      DASH_ASSIGN_OR_RETURN(index::CorpusStats s, r->LexicalStats(request.tenant(), legs.terms));
      legs.stats.Add(s);
    }
  }
  // --- Phase 2: each shard's legs, merged per leg, then fused once.
  v1::QueryResponse response;
  std::vector<fusion::Candidate> lexical, vector;
  for (const auto& [id, r] : replicas_) {
    DASH_ASSIGN_OR_RETURN(LegResult leg, r->RunLegs(request.tenant(), legs));
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
      fused ? (use_linear ? fusion::FuseLinear(lexical, vector, linear)
                          : fusion::FuseRrf(lexical, vector, rrf))
            : fusion::FuseSingle(vector_leg ? vector : lexical, vector_leg);

  // --- Phase 3: fetch the hits with their evidence, verified.
  shard::FetchOptions fetch;
  fetch.stance_mode = request.stance_mode();
  fetch.include_evidence = request.include_evidence();
  fetch.include_edges = request.graph().include();
  fetch.terms = legs.terms;
  fetch.bm25 = bm25;
  fetch.stats = legs.stats;
  fetch.filter = request.filter();
  std::set<std::string> hit_ids;
  for (const fusion::FusedHit& f : ranked) {
    if (static_cast<size_t>(response.hits_size()) == k) break;
    if (request.has_min_score() && f.score < request.min_score())
      break;  // Ranked: the rest are lower.
    ShardReplica* r = replica(ShardOf(request.tenant(), f.id, options_.shard_count));
    if (r == nullptr) continue;
    absl::StatusOr<v1::QueryHit> hit = r->FetchHit(request.tenant(), f.id, fetch);
    if (absl::IsNotFound(hit.status())) continue;  // Deleted since the legs ran.
    if (!hit.ok()) return hit.status();
    hit->set_score(f.score);
    if (f.lexical) {
      hit->mutable_lexical()->set_score(f.lexical->score);
      hit->mutable_lexical()->set_rank(f.lexical->rank);
    }
    if (f.vector) {
      hit->mutable_vector()->set_score(f.vector->score);
      hit->mutable_vector()->set_rank(f.vector->rank);
    }
    hit_ids.insert(f.id);
    *response.add_hits() = std::move(*hit);
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

v1::NodeInfo ShardHost::Info() const {
  v1::NodeInfo info;
  info.set_node_id(options_.node_id);
  info.set_shard_count(options_.shard_count);
  info.set_version(DASH_VERSION);
  for (const auto& [id, r] : replicas_) {
    const ReplicaState s = r->State();
    v1::ReplicaInfo* ri = info.add_replicas();
    ri->set_shard(id);
    ri->set_epoch(s.epoch);
    ri->set_last_lsn(s.last_lsn);
    ri->set_log_start_lsn(s.log_start_lsn);
    const index::PrefilterCacheStats c = r->FilterCacheStats();
    ri->mutable_filter_cache()->set_hits(c.hits);
    ri->mutable_filter_cache()->set_misses(c.misses);
    ri->mutable_filter_cache()->set_evictions(c.evictions);
    ri->mutable_filter_cache()->set_entries(c.entries);
    ri->mutable_filter_cache()->set_ids(c.ids);
  }
  return info;
}

}  // namespace dash::shard
