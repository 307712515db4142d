#include "node/shard/shard_searcher.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
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

void ShardSearcher::InvalidateFilters(const std::set<std::string>& tenants) {
  for (const auto& tenant : tenants) filter_cache_.Invalidate(tenant);
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

absl::Status ShardSearcher::RebuildLexical(storage::Engine& engine, uint64_t last_lsn) {
  std::unique_ptr<storage::Reader> snapshot = engine.NewSnapshot();
  std::vector<index::LexicalChange> chunk;
  size_t total = 0;
  auto cursor = snapshot->Scan(Family::kClaims, "");
  for (; cursor->Valid(); cursor->Next()) {
    const absl::string_view key = cursor->key();
    const size_t sep = key.find('\0');
    if (sep == absl::string_view::npos) return absl::DataLossError("malformed claim key");
    index::LexicalChange change{std::string(key.substr(0, sep)), std::string(key.substr(sep + 1)),
                                /*lsn=*/0, std::nullopt};
    DASH_ASSIGN_OR_RETURN(change.terms,
                          index::AnalyzeStoredClaim(*snapshot, change.tenant, change.claim_id));
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
  for (const auto& [key, lsn] : touched) {
    index::LexicalChange change{key.first, key.second, lsn, std::nullopt};
    DASH_ASSIGN_OR_RETURN(change.terms,
                          index::AnalyzeStoredClaim(*snapshot, key.first, key.second));
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

index::VectorIndex* ShardSearcher::VectorsFor(const std::string& tenant) const {
  absl::MutexLock l(&vectors_mu_);
  auto it = vectors_.find(tenant);
  return it == vectors_.end() ? nullptr : it->second.get();
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

}  // namespace

absl::Status ShardSearcher::LoadVectors(const storage::Reader& r) {
  const storage::Reader* snapshot = &r;
  // Per tenant: ids and rows, loaded in one batch per tenant.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<float>>> rows;
  std::map<std::string, storage::TenantState> tenants;
  auto cursor = snapshot->Scan(Family::kClaims, "");
  for (; cursor->Valid(); cursor->Next()) {
    DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(cursor->value(), "claim"));
    if (claim.embedding_size() == 0) continue;
    auto& r = rows[claim.tenant()];
    r.first.push_back(claim.claim_id());
    r.second.insert(r.second.end(), claim.embedding().begin(), claim.embedding().end());
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  size_t total = 0;
  for (auto& [tenant, r] : rows) {
    DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kTenants, keys::Tenant(tenant)));
    storage::TenantState ts;
    if (!raw.has_value() || !ts.ParseFromString(*raw) || ts.embedding_dim() == 0) {
      return absl::DataLossError(
          absl::StrCat("tenant \"", tenant, "\" has embeddings but no dimension"));
    }
    auto vi =
        std::make_unique<index::VectorIndex>(ts.embedding_dim(), MetricOf(ts.vector_metric()));
    DASH_RETURN_IF_ERROR(vi->UpsertBatch(r.first, r.second.data(), r.second.size()));
    total += r.first.size();
    absl::MutexLock l(&vectors_mu_);
    vectors_[tenant] = std::move(vi);
  }
  if (total > 0) LOG(INFO) << "shard " << shard_id_ << ": loaded " << total << " vectors";
  return absl::OkStatus();
}

void ShardSearcher::Refresh(const storage::Reader& latest,
                            const std::vector<std::pair<std::string, std::string>>& touched,
                            uint64_t lsn, const std::vector<const index::AnalyzedTexts*>& ahead) {
  const storage::Reader* snapshot = &latest;
  {
    std::vector<index::LexicalChange> changes;
    const std::set<std::pair<std::string, std::string>> unique(touched.begin(), touched.end());
    for (const auto& [tenant, claim_id] : unique) {
      index::LexicalChange change{tenant, claim_id, lsn, std::nullopt};
      absl::StatusOr<std::optional<std::vector<std::string>>> terms =
          index::AnalyzeStoredClaim(latest, tenant, claim_id, ahead);
      if (!terms.ok()) {
        LOG(ERROR) << "shard " << shard_id_ << ": BM25 document of \"" << claim_id
                   << "\": " << terms.status();
      } else {
        change.terms = std::move(*terms);
      }
      changes.push_back(std::move(change));
    }
    absl::Status st = lexical_->Apply(std::move(changes), lsn);
    if (!st.ok())
      LOG(ERROR) << "shard " << shard_id_ << ": BM25 index at lsn " << lsn << ": " << st;
  }
  if (touched.empty()) return;
  // Per tenant: the vectors to (re)insert, applied in one batch.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<float>>> upserts;
  std::set<std::string> tenants;
  for (const auto& [tenant, claim_id] : touched) {
    tenants.insert(tenant);
    absl::StatusOr<std::optional<std::string>> raw =
        snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id));
    v1::Claim claim;
    const bool has_vector =
        raw.ok() && raw->has_value() && claim.ParseFromString(**raw) && claim.embedding_size() > 0;
    if (!has_vector) {
      if (index::VectorIndex* vi = VectorsFor(tenant)) vi->Remove(claim_id);
      continue;
    }
    auto& u = upserts[tenant];
    u.first.push_back(claim_id);
    u.second.insert(u.second.end(), claim.embedding().begin(), claim.embedding().end());
  }
  for (auto& [tenant, u] : upserts) {
    index::VectorIndex* vi = VectorsFor(tenant);
    if (vi == nullptr) {
      absl::StatusOr<std::optional<std::string>> ts_raw =
          snapshot->Get(Family::kTenants, keys::Tenant(tenant));
      storage::TenantState ts;
      if (!ts_raw.ok() || !ts_raw->has_value() || !ts.ParseFromString(**ts_raw)) continue;
      absl::MutexLock l(&vectors_mu_);
      auto& slot = vectors_[tenant];
      if (slot == nullptr) {
        slot =
            std::make_unique<index::VectorIndex>(ts.embedding_dim(), MetricOf(ts.vector_metric()));
      }
      vi = slot.get();
    }
    absl::Status st = vi->UpsertBatch(u.first, u.second.data(), u.second.size());
    if (!st.ok()) LOG(ERROR) << "vector index of \"" << tenant << "\": " << st;
  }
  for (const auto& tenant : tenants) filter_cache_.Invalidate(tenant);
}

absl::StatusOr<std::shared_ptr<const index::IdSet>> ShardSearcher::Allowed(
    const storage::Reader& r, absl::string_view tenant, const query::LegRequest& request,
    uint64_t generation) const {
  const std::string key =
      absl::StrCat(request.support_only ? "S" : "A", DeterministicSerialize(request.filter));
  return filter_cache_.GetOrCompute(
      std::string(tenant), key, generation, request.bypass_filter_cache,
      [&]() -> absl::StatusOr<index::IdSet> {
        index::IdSet ids;
        const bool check_evidence =
            request.support_only || query::HasEvidenceCondition(request.filter);
        auto cursor = r.Scan(Family::kClaims, keys::TenantPrefix(tenant));
        for (; cursor->Valid(); cursor->Next()) {
          DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(cursor->value(), "claim"));
          if (!query::MatchesClaim(request.filter, claim)) continue;
          if (check_evidence) {
            bool ok = false;
            auto ev = r.Scan(Family::kEvidence, keys::ClaimPrefix(tenant, claim.claim_id()));
            for (; ev->Valid() && !ok; ev->Next()) {
              DASH_ASSIGN_OR_RETURN(v1::Evidence e,
                                    ParseStored<v1::Evidence>(ev->value(), "evidence"));
              ok = query::MatchesEvidence(request.filter, e) &&
                   (!request.support_only || e.stance() == v1::STANCE_SUPPORTS);
            }
            DASH_RETURN_IF_ERROR(ev->status());
            if (!ok) continue;
          }
          ids.insert(claim.claim_id());
        }
        DASH_RETURN_IF_ERROR(cursor->status());
        return ids;
      });
}

absl::StatusOr<query::LegResult> ShardSearcher::RunLegs(absl::string_view tenant,
                                                        const query::LegRequest& request) const {
  const std::string tenant_s(tenant);
  // The generation is read before the snapshot (see PrefilterCache).
  const uint64_t generation = filter_cache_.Generation(tenant_s);
  std::shared_ptr<const storage::Reader> snapshot;
  DASH_ASSIGN_OR_RETURN(index::LexicalStore::Snapshot lexical, AcquireLexical(&snapshot));
  query::LegResult result;
  std::shared_ptr<const index::IdSet> allowed;
  if (!query::IsEmpty(request.filter) || request.support_only) {
    DASH_ASSIGN_OR_RETURN(allowed, Allowed(*snapshot, tenant, request, generation));
  }
  if (!request.terms.empty()) {
    DASH_ASSIGN_OR_RETURN(
        auto scored, lexical_->Search(lexical, tenant, request.terms, request.depth, request.bm25,
                                      request.stats, allowed.get()));
    for (auto& s : scored) result.lexical.push_back({std::move(s.claim_id), s.score});
  }
  if (!request.embedding.empty()) {
    index::VectorIndex* vi = VectorsFor(tenant_s);
    if (vi != nullptr) {
      if (request.embedding.size() != vi->dim()) {
        return absl::InvalidArgumentError(absl::StrCat("embedding: has ", request.embedding.size(),
                                                       " dimensions but tenant \"", tenant,
                                                       "\" uses ", vi->dim()));
      }
      index::SearchMode mode = index::SearchMode::kAuto;
      if (request.vector_mode == v1::VECTOR_SEARCH_EXACT) mode = index::SearchMode::kExact;
      if (request.vector_mode == v1::VECTOR_SEARCH_APPROXIMATE) {
        mode = index::SearchMode::kApproximate;
      }
      bool exact = false;
      // The vector index may run ahead of the snapshot by the commits that
      // happened since it was taken; hits are re-read from storage later.
      absl::StatusOr<std::vector<index::VectorHit>> hits =
          vi->Search(request.embedding.data(), request.embedding.size(), request.depth,
                     allowed.get(), mode, &exact);
      if (absl::IsInvalidArgument(hits.status())) {
        // The query's vector is what is wrong (a zero vector under cosine).
        return absl::InvalidArgumentError(absl::StrCat("embedding: ", hits.status().message()));
      }
      if (!hits.ok()) return hits.status();
      for (auto& h : *hits) result.vector.push_back({std::move(h.claim_id), h.score});
      result.vector_plan = exact ? "exact" : "approximate";
    }
  }
  result.read_at = reader_->Token(*snapshot);
  return result;
}

absl::StatusOr<v1::QueryHit> ShardSearcher::FetchHit(absl::string_view tenant,
                                                     absl::string_view claim_id,
                                                     const query::FetchOptions& options) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, views_->Current());
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value())
    return absl::NotFoundError(absl::StrCat("claim \"", claim_id, "\" is gone"));
  v1::QueryHit hit;
  DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->mutable_claim(),
                        ParseStored<v1::Claim>(*raw, "claim"));
  *hit.mutable_read_at() = reader_->Token(*snapshot);
  const std::string prefix = keys::ClaimPrefix(tenant, claim_id);
  if (options.include_evidence || options.include_edges) {
    auto edges = snapshot->Scan(Family::kEdges, prefix);
    for (; edges->Valid(); edges->Next()) {
      DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->add_edges(),
                            ParseStored<v1::Edge>(edges->value(), "edge"));
    }
    DASH_RETURN_IF_ERROR(edges->status());
  }
  const bool want_evidence = options.include_evidence || options.stance_mode != v1::STANCE_MODE_ALL;
  if (!want_evidence) return hit;

  std::vector<v1::Evidence> evidence;
  auto ev = snapshot->Scan(Family::kEvidence, prefix);
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
