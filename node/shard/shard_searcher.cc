#include "node/shard/shard_searcher.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/metrics.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/shard/replica_log.h"
#include "node/storage/keys.h"
#include "node/storage/log_record.h"
#include "node/storage/records.pb.h"
#include "query/analyzer.h"
#include "query/batch_validator.h"
#include "query/filter.h"

namespace dash::shard {

using storage::Family;
namespace keys = storage::keys;

void ShardSearcher::InvalidateFilters(const std::map<std::string, std::set<std::string>>& touched) {
  for (const auto& [tenant, claims] : touched) {
    if (claims.empty()) {
      filter_cache_.Invalidate(tenant);
    } else {
      filter_cache_.Invalidate(tenant, std::vector<std::string>(claims.begin(), claims.end()));
    }
  }
}

absl::StatusOr<index::LexicalStore::Snapshot> ShardSearcher::AcquireLexical(
    std::shared_ptr<const storage::Reader>* view) const {
  return lexical_->Acquire([&]() -> absl::StatusOr<uint64_t> {
    uint64_t lsn = 0;
    DASH_ASSIGN_OR_RETURN(*view, views_->CurrentAt(&lsn));
    return lsn;
  });
}

absl::StatusOr<index::CorpusStats> ShardSearcher::Stats(
    absl::string_view tenant, const std::vector<std::string>& terms) const {
  std::shared_ptr<const storage::Reader> view;
  DASH_ASSIGN_OR_RETURN(index::LexicalStore::Snapshot lexical, AcquireLexical(&view));
  return lexical_->Stats(lexical, tenant, terms);
}

namespace {

index::Metric MetricOf(v1::VectorMetric m) {
  switch (m) {
    case v1::VECTOR_METRIC_DOT:
      return index::Metric::kDot;
    case v1::VECTOR_METRIC_L2:
      return index::Metric::kL2;
    default:
      return index::Metric::kCosine;
  }
}

// The tenant's stored vector settings; dim 0 when it has none.
absl::StatusOr<ShardSearcher::VectorSpec> VectorSpecOf(const storage::Reader& r,
                                                       absl::string_view tenant) {
  DASH_ASSIGN_OR_RETURN(auto raw, r.Get(Family::kTenants, keys::Tenant(tenant)));
  ShardSearcher::VectorSpec spec;
  if (!raw.has_value()) return spec;
  storage::TenantState ts;
  if (!ts.ParseFromString(*raw)) return absl::DataLossError("stored tenant state is corrupt");
  spec.dim = ts.embedding_dim();
  spec.metric = MetricOf(ts.vector_metric());
  return spec;
}

// Claims re-indexed per batch when rebuilding, so that their analyzed terms
// are not all held at once.
constexpr size_t kRebuildChunk = 4096;

}  // namespace

absl::Status ShardSearcher::OpenLexical(const LexicalOpen& open) {
  storage::Engine* engine = open.engine;
  index::LexicalStoreOptions options;
  options.dir = open.dir;
  options.committed_lsn = open.committed_lsn;
  options.readable_lsn = [views = views_] { return views->ReadableLsn(); };
  options.persist_manifest = [engine](const std::string& manifest) {
    auto ws = engine->NewWriteSet();
    ws->Put(Family::kMeta, keys::kLexicalManifestKey, manifest);
    return engine->Commit(*ws, /*sync=*/true);
  };
  options.background = open.background;
  options.graphs.min_rows = open.vector_graph_min_rows;
  DASH_ASSIGN_OR_RETURN(std::optional<std::string> manifest,
                        engine->NewSnapshot()->Get(Family::kMeta, keys::kLexicalManifestKey));
  std::string why;  // Not empty: rebuild, for this reason.
  std::error_code ec;
  if (manifest.has_value() && !std::filesystem::exists(open.dir, ec)) {
    // A checkpoint of another replica (an installed snapshot) carries that
    // replica's manifest but not its segments: expected, not damage.
    LOG(INFO) << "shard " << shard_id_ << ": no BM25 segments here; indexing the stored claims";
    manifest.reset();
  }
  if (!manifest.has_value()) {
    why = "no segment manifest";
  } else {
    absl::StatusOr<std::unique_ptr<index::LexicalStore>> store =
        index::LexicalStore::Open(options, *manifest);
    if (!store.ok()) {
      why = absl::StrCat("segments not served: ", store.status().ToString());
    } else if ((*store)->covered_lsn() > open.last_lsn) {
      why = absl::StrCat("the segments cover lsn ", (*store)->covered_lsn(),
                         ", past the log's end ", open.last_lsn);
    } else if ((*store)->covered_lsn() < open.last_lsn &&
               (*store)->covered_lsn() + 1 < open.log_start_lsn) {
      why = absl::StrCat("the log starts at lsn ", open.log_start_lsn, ", after the segments' end ",
                         (*store)->covered_lsn());
    } else {
      lexical_ = std::move(*store);
    }
  }
  if (lexical_ != nullptr) {
    const uint64_t covered = lexical_->covered_lsn();
    DASH_RETURN_IF_ERROR(ReplayLexical(*engine, covered, open.last_lsn));
    LOG(INFO) << "shard " << shard_id_ << ": BM25 segments cover lsn " << covered
              << ", replayed the log to " << open.last_lsn;
    return absl::OkStatus();
  }
  if (manifest.has_value()) {
    lexical_status_ = absl::StrCat("rebuilt at open: ", why);
    LOG(WARNING) << "shard " << shard_id_ << ": BM25 index " << lexical_status_;
  }
  DASH_ASSIGN_OR_RETURN(lexical_, index::LexicalStore::Open(options, ""));
  return RebuildLexical(*engine, open.last_lsn);
}

absl::StatusOr<index::LexicalChange> ShardSearcher::ReadChange(
    const storage::Reader& r, const std::string& tenant, const std::string& claim_id, uint64_t lsn,
    const std::vector<const index::AnalyzedTexts*>& ahead, ReadContext* ctx) {
  index::LexicalChange change{tenant, claim_id, lsn, std::nullopt, std::nullopt};
  std::vector<float> embedding;
  DASH_ASSIGN_OR_RETURN(change.terms, index::AnalyzeStoredClaim(r, tenant, claim_id, ahead,
                                                                &embedding, &ctx->evidence));
  if (!change.terms.has_value() || embedding.empty()) return change;
  auto it = ctx->specs.find(tenant);
  if (it == ctx->specs.end()) {
    DASH_ASSIGN_OR_RETURN(VectorSpec spec, VectorSpecOf(r, tenant));
    it = ctx->specs.emplace(tenant, spec).first;
  }
  if (it->second.dim == 0) {
    return absl::DataLossError(
        absl::StrCat("tenant \"", tenant, "\" has embeddings but no dimension"));
  }
  absl::StatusOr<std::vector<float>> v =
      index::PrepareVector(it->second.metric, it->second.dim, embedding.data(), embedding.size());
  if (!v.ok()) {
    return absl::DataLossError(
        absl::StrCat("stored embedding of \"", claim_id, "\": ", v.status().message()));
  }
  change.vector = index::DocVector{it->second.metric, std::move(*v)};
  return change;
}

absl::Status ShardSearcher::RebuildLexical(storage::Engine& engine, uint64_t last_lsn) {
  std::unique_ptr<storage::Reader> snapshot = engine.NewSnapshot();
  std::vector<index::LexicalChange> chunk;
  ReadContext ctx;
  size_t total = 0;
  auto cursor = snapshot->Scan(Family::kClaims, "");
  for (; cursor->Valid(); cursor->Next()) {
    const absl::string_view key = cursor->key();
    const size_t sep = key.find('\0');
    if (sep == absl::string_view::npos) return absl::DataLossError("malformed claim key");
    DASH_ASSIGN_OR_RETURN(
        index::LexicalChange change,
        ReadChange(*snapshot, std::string(key.substr(0, sep)), std::string(key.substr(sep + 1)),
                   /*lsn=*/0, {}, &ctx));
    chunk.push_back(std::move(change));
    if (chunk.size() == kRebuildChunk) {
      total += chunk.size();
      DASH_RETURN_IF_ERROR(lexical_->Apply(std::move(chunk), last_lsn));
      chunk.clear();
    }
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  total += chunk.size();
  DASH_RETURN_IF_ERROR(lexical_->Apply(std::move(chunk), last_lsn));
  if (total > 0) LOG(INFO) << "shard " << shard_id_ << ": indexed " << total << " claims for BM25";
  return absl::OkStatus();
}

absl::Status ShardSearcher::ReplayLexical(storage::Engine& engine, uint64_t covered,
                                          uint64_t last_lsn) {
  // Each claim the records touched, at the last record that did: only that
  // version can be seen, since no view below the log's end becomes readable
  // after a restart.
  std::map<std::pair<std::string, std::string>, uint64_t> touched;
  for (uint64_t lsn = covered + 1; lsn <= last_lsn; ++lsn) {
    DASH_ASSIGN_OR_RETURN(std::string encoded, ReplicaLog::ReadRecord(engine, lsn));
    DASH_ASSIGN_OR_RETURN(storage::LogRecord record, storage::DecodeLogRecord(encoded));
    DASH_ASSIGN_OR_RETURN(storage::LogPayload payload,
                          ParseStored<storage::LogPayload>(record.payload, "log payload"));
    for (const v1::WriteOp& op : payload.ops()) {
      if (op.has_edge()) continue;  // Edges are not in the lexical document.
      touched[{payload.tenant(), std::string(query::OwningClaimId(op))}] = lsn;
    }
  }
  std::unique_ptr<storage::Reader> snapshot = engine.NewSnapshot();
  std::vector<index::LexicalChange> changes;
  ReadContext ctx;
  for (const auto& [key, lsn] : touched) {
    DASH_ASSIGN_OR_RETURN(index::LexicalChange change,
                          ReadChange(*snapshot, key.first, key.second, lsn, {}, &ctx));
    changes.push_back(std::move(change));
  }
  return lexical_->Apply(std::move(changes), last_lsn);
}

std::vector<std::pair<std::string, std::string>> ShardSearcher::TruncateIndex(uint64_t lsn) {
  std::vector<std::pair<std::string, std::string>> changed;
  lexical_->TruncateAfter(lsn, &changed);
  return changed;
}

absl::Status ShardSearcher::FlushLexical() {
  DASH_RETURN_IF_ERROR(lexical_->Flush());
  for (uint64_t written = 1; written > 0;) DASH_RETURN_IF_ERROR(lexical_->MergeOnce(&written));
  return absl::OkStatus();
}

void ShardSearcher::Refresh(const storage::Reader& latest,
                            const std::vector<std::pair<std::string, std::string>>& touched,
                            uint64_t lsn, const std::vector<const index::AnalyzedTexts*>& ahead) {
  std::vector<index::LexicalChange> changes;
  ReadContext ctx;
  const std::set<std::pair<std::string, std::string>> unique(touched.begin(), touched.end());
  std::map<std::string, std::vector<std::string>> by_tenant;
  for (const auto& [tenant, claim_id] : unique) {
    by_tenant[tenant].push_back(claim_id);
    absl::StatusOr<index::LexicalChange> change =
        ReadChange(latest, tenant, claim_id, lsn, ahead, &ctx);
    if (!change.ok()) {
      // The claim leaves the index rather than keep a stale version.
      LOG(ERROR) << "shard " << shard_id_ << ": index document of \"" << claim_id
                 << "\": " << change.status();
      changes.push_back(index::LexicalChange{tenant, claim_id, lsn, std::nullopt, std::nullopt});
      continue;
    }
    changes.push_back(std::move(*change));
  }
  absl::Status st = lexical_->Apply(std::move(changes), lsn);
  if (!st.ok()) LOG(ERROR) << "shard " << shard_id_ << ": index at lsn " << lsn << ": " << st;
  for (const auto& [tenant, claims] : by_tenant) filter_cache_.Invalidate(tenant, claims);
}

absl::StatusOr<std::shared_ptr<const index::IdSet>> ShardSearcher::Allowed(
    const storage::Reader& r, absl::string_view tenant, const query::LegRequest& request,
    uint64_t generation) const {
  const std::string key =
      absl::StrCat(request.support_only ? "S" : "A", DeterministicSerialize(request.filter));
  const bool check_evidence = request.support_only || query::HasEvidenceCondition(request.filter);
  std::unique_ptr<storage::Cursor> ev;  // One for all claims (see Cursor::Seek).
  // Whether stored claim `claim` passes the filter (and has support, if asked).
  auto admits = [&](const v1::Claim& claim) -> absl::StatusOr<bool> {
    if (!query::MatchesClaim(request.filter, claim)) return false;
    if (!check_evidence) return true;
    storage::ScanReusing(r, Family::kEvidence, keys::ClaimPrefix(tenant, claim.claim_id()), &ev);
    bool ok = false;
    for (; ev->Valid() && !ok; ev->Next()) {
      DASH_ASSIGN_OR_RETURN(v1::Evidence e, ParseStored<v1::Evidence>(ev->value(), "evidence"));
      ok = query::MatchesEvidence(request.filter, e) &&
           (!request.support_only || e.stance() == v1::STANCE_SUPPORTS);
    }
    DASH_RETURN_IF_ERROR(ev->status());
    return ok;
  };
  return filter_cache_.GetOrCompute(
      std::string(tenant), key, generation, request.bypass_filter_cache,
      [&]() -> absl::StatusOr<index::IdSet> {
        index::IdSet ids;
        auto cursor = r.Scan(Family::kClaims, keys::TenantPrefix(tenant));
        for (; cursor->Valid(); cursor->Next()) {
          DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(cursor->value(), "claim"));
          DASH_ASSIGN_OR_RETURN(bool ok, admits(claim));
          if (ok) ids.insert(claim.claim_id());
        }
        DASH_RETURN_IF_ERROR(cursor->status());
        return ids;
      },
      // Patching: only the claims changed since the cached result.
      [&](const std::vector<std::string>& changed, index::IdSet* ids) -> absl::Status {
        for (const std::string& claim_id : changed) {
          ids->erase(claim_id);
          DASH_ASSIGN_OR_RETURN(auto raw, r.Get(Family::kClaims, keys::Claim(tenant, claim_id)));
          if (!raw.has_value()) continue;  // Deleted.
          DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(*raw, "claim"));
          DASH_ASSIGN_OR_RETURN(bool ok, admits(claim));
          if (ok) ids->insert(claim_id);
        }
        return absl::OkStatus();
      });
}

namespace {

constexpr char kLegHelp[] =
    "Time of one leg of a query on one replica: filter, lexical, vector_exact or "
    "vector_approximate";

// dash_query_leg_seconds{leg}: a query's legs on one replica — the filter
// (prefilter, cached or not), BM25, and the vector search by the plan it took.
enum class Leg { kFilter, kLexical, kVectorExact, kVectorApproximate };
prometheus::Histogram& LegSeconds(Leg leg) {
  static prometheus::Histogram* const legs[] = {
      &metrics::Histogram("dash_query_leg_seconds", kLegHelp, metrics::LatencyBuckets(),
                          {{"leg", "filter"}}),
      &metrics::Histogram("dash_query_leg_seconds", kLegHelp, metrics::LatencyBuckets(),
                          {{"leg", "lexical"}}),
      &metrics::Histogram("dash_query_leg_seconds", kLegHelp, metrics::LatencyBuckets(),
                          {{"leg", "vector_exact"}}),
      &metrics::Histogram("dash_query_leg_seconds", kLegHelp, metrics::LatencyBuckets(),
                          {{"leg", "vector_approximate"}})};
  return *legs[static_cast<int>(leg)];
}

}  // namespace

absl::StatusOr<query::LegResult> ShardSearcher::RunLegs(absl::string_view tenant,
                                                        const query::LegRequest& request) const {
  const std::string tenant_s(tenant);
  // The generation is read before the snapshot (see PrefilterCache).
  const uint64_t generation = filter_cache_.Generation(tenant_s);
  std::shared_ptr<const storage::Reader> snapshot;
  DASH_ASSIGN_OR_RETURN(index::LexicalStore::Snapshot lexical, AcquireLexical(&snapshot));
  query::LegResult result;
  std::shared_ptr<const index::IdSet> allowed;
  absl::Time start = absl::Now();
  if (!query::IsEmpty(request.filter) || request.support_only) {
    DASH_ASSIGN_OR_RETURN(allowed, Allowed(*snapshot, tenant, request, generation));
    LegSeconds(Leg::kFilter).Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (!request.terms.empty()) {
    start = absl::Now();
    DASH_ASSIGN_OR_RETURN(
        auto scored, lexical_->Search(lexical, tenant, request.terms, request.depth, request.bm25,
                                      request.stats, allowed.get()));
    for (auto& s : scored) result.lexical.push_back({std::move(s.claim_id), s.score});
    LegSeconds(Leg::kLexical).Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (!request.embedding.empty()) {
    DASH_ASSIGN_OR_RETURN(VectorSpec spec, VectorSpecOf(*snapshot, tenant));
    if (spec.dim != 0) {  // Else the tenant has no vectors yet.
      if (request.embedding.size() != spec.dim) {
        return absl::InvalidArgumentError(absl::StrCat("embedding: has ", request.embedding.size(),
                                                       " dimensions but tenant \"", tenant,
                                                       "\" uses ", spec.dim));
      }
      absl::StatusOr<std::vector<float>> q = index::PrepareVector(
          spec.metric, spec.dim, request.embedding.data(), request.embedding.size());
      if (!q.ok()) {
        // The query's vector is what is wrong (a zero vector under cosine).
        return absl::InvalidArgumentError(absl::StrCat("embedding: ", q.status().message()));
      }
      index::SearchMode mode = index::SearchMode::kAuto;
      if (request.vector_mode == v1::VECTOR_SEARCH_EXACT) mode = index::SearchMode::kExact;
      if (request.vector_mode == v1::VECTOR_SEARCH_APPROXIMATE) {
        mode = index::SearchMode::kApproximate;
      }
      bool exact = true;
      start = absl::Now();
      // The same segments and view as the lexical leg.
      DASH_ASSIGN_OR_RETURN(
          std::vector<index::ScoredClaim> hits,
          lexical_->SearchVectors(lexical, tenant, *q, request.depth, mode, allowed.get(), &exact));
      for (auto& h : hits) result.vector.push_back({std::move(h.claim_id), h.score});
      result.vector_plan = exact ? "exact" : "approximate";
      LegSeconds(exact ? Leg::kVectorExact : Leg::kVectorApproximate)
          .Observe(absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  result.read_at = reader_->Token(*snapshot);
  return result;
}

absl::StatusOr<std::map<std::string, v1::QueryHit>> ShardSearcher::FetchHits(
    absl::string_view tenant, const std::vector<std::string>& claim_ids,
    const query::FetchOptions& options) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, views_->Current());
  const v1::CommitToken read_at = reader_->Token(*snapshot);
  std::map<std::string, v1::QueryHit> hits;
  Cursors cursors;
  for (const std::string& claim_id : claim_ids) {
    absl::StatusOr<v1::QueryHit> hit =
        FetchHit(*snapshot, tenant, claim_id, options, read_at, &cursors);
    if (absl::IsNotFound(hit.status())) continue;  // Deleted since the legs ran.
    if (!hit.ok()) return hit.status();
    hits.emplace(claim_id, std::move(*hit));
  }
  return hits;
}

absl::StatusOr<v1::QueryHit> ShardSearcher::FetchHit(
    const storage::Reader& snapshot, absl::string_view tenant, absl::string_view claim_id,
    const query::FetchOptions& options, const v1::CommitToken& read_at, Cursors* cursors) const {
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot.Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value())
    return absl::NotFoundError(absl::StrCat("claim \"", claim_id, "\" is gone"));
  v1::QueryHit hit;
  DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->mutable_claim(),
                        ParseStored<v1::Claim>(*raw, "claim"));
  *hit.mutable_read_at() = read_at;
  const std::string prefix = keys::ClaimPrefix(tenant, claim_id);
  if (options.include_evidence || options.include_edges) {
    storage::Cursor* edges =
        storage::ScanReusing(snapshot, Family::kEdges, prefix, &cursors->edges);
    for (; edges->Valid(); edges->Next()) {
      DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->add_edges(),
                            ParseStored<v1::Edge>(edges->value(), "edge"));
    }
    DASH_RETURN_IF_ERROR(edges->status());
  }
  const bool want_evidence = options.include_evidence || options.stance_mode != v1::STANCE_MODE_ALL;
  if (!want_evidence) return hit;

  std::vector<v1::Evidence> evidence;
  storage::Cursor* ev =
      storage::ScanReusing(snapshot, Family::kEvidence, prefix, &cursors->evidence);
  for (; ev->Valid(); ev->Next()) {
    DASH_ASSIGN_OR_RETURN(v1::Evidence e, ParseStored<v1::Evidence>(ev->value(), "evidence"));
    if (Sha256Hex(e.citation().quote()) != e.citation().quote_sha256()) {
      hit.add_integrity_errors(absl::StrCat("evidence \"", e.evidence_id(),
                                            "\": quote does not match its stored SHA-256"));
      continue;
    }
    if (!query::MatchesEvidence(options.filter, e)) continue;
    evidence.push_back(std::move(e));
  }
  DASH_RETURN_IF_ERROR(ev->status());

  auto* out = hit.mutable_record()->mutable_evidence();
  if (options.stance_mode == v1::STANCE_MODE_ALL) {
    for (auto& e : evidence) *out->Add() = std::move(e);
  } else if (options.stance_mode == v1::STANCE_MODE_SUPPORT_ONLY) {
    for (auto& e : evidence) {
      if (e.stance() == v1::STANCE_SUPPORTS) *out->Add() = std::move(e);
    }
  } else {                                           // BALANCED: the strongest of each side.
    std::vector<std::vector<std::string>> analyzed;  // Each quote analyzed once.
    double total = 0;
    for (const auto& e : evidence) {
      analyzed.push_back(query::AnalyzeText(e.citation().quote()));
      total += analyzed.back().size();
    }
    const double avg = evidence.empty() ? 1 : total / evidence.size();
    const v1::Evidence* best[2] = {nullptr, nullptr};
    double best_score[2] = {0, 0};
    for (size_t i = 0; i < evidence.size(); ++i) {
      const v1::Evidence& e = evidence[i];
      const int side =
          e.stance() == v1::STANCE_SUPPORTS ? 0 : (e.stance() == v1::STANCE_CONTRADICTS ? 1 : -1);
      if (side < 0) continue;
      const double score =
          index::ScoreText(analyzed[i], options.terms, options.bm25, options.stats, avg);
      // Evidence is scanned in evidence_id order, so a tie keeps the smaller id.
      if (best[side] == nullptr || score > best_score[side]) {
        best[side] = &e;
        best_score[side] = score;
      }
    }
    for (const auto* e : best) {
      if (e != nullptr) *out->Add() = *e;
    }
  }
  return hit;
}

}  // namespace dash::shard
