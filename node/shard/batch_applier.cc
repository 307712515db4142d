#include "node/shard/batch_applier.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "node/storage/keys.h"

namespace dash::shard {
namespace {

using storage::Family;
namespace keys = storage::keys;

absl::StatusOr<bool> Exists(const storage::Reader& r, Family f, const std::string& key) {
  DASH_ASSIGN_OR_RETURN(auto v, r.Get(f, key));
  return v.has_value();
}

absl::StatusOr<bool> HasAny(const storage::Reader& r, Family f, const std::string& prefix) {
  auto cursor = r.Scan(f, prefix);
  const bool any = cursor->Valid();
  DASH_RETURN_IF_ERROR(cursor->status());
  return any;
}

// Keys of `f` under `prefix`, collected before any of them is changed.
absl::StatusOr<std::vector<std::string>> KeysWithPrefix(const storage::Reader& r, Family f,
                                                        const std::string& prefix) {
  std::vector<std::string> out;
  auto cursor = r.Scan(f, prefix);
  for (; cursor->Valid(); cursor->Next()) out.emplace_back(cursor->key());
  DASH_RETURN_IF_ERROR(cursor->status());
  return out;
}

class Applier {
 public:
  Applier(const storage::LogPayload& payload, const CommitPoint& at, storage::WriteSet* ws)
      : p_(payload), at_(at), ws_(ws), tenant_(payload.tenant()) {
    commit_time_ = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(at.commit_time_micros);
  }

  void AppendTouched(std::vector<std::string>* out) const {
    out->insert(out->end(), dirty_.begin(), dirty_.end());
  }

  absl::Status Run() {
    DASH_ASSIGN_OR_RETURN(auto state, ws_->Get(Family::kTenants, keys::Tenant(tenant_)));
    if (state.has_value() && !tenant_state_.ParseFromString(*state)) {
      return absl::DataLossError(absl::StrCat("tenant state of \"", tenant_, "\" is corrupt"));
    }
    if (p_.vector_metric() != v1::VECTOR_METRIC_UNSPECIFIED &&
        tenant_state_.vector_metric() != v1::VECTOR_METRIC_UNSPECIFIED &&
        p_.vector_metric() != tenant_state_.vector_metric()) {
      return absl::InvalidArgumentError(
          absl::StrCat("vector_metric: tenant \"", tenant_, "\" uses ",
                       v1::VectorMetric_Name(tenant_state_.vector_metric())));
    }
    for (int i = 0; i < p_.ops_size(); ++i) {
      const v1::WriteOp& op = p_.ops(i);
      switch (op.op_case()) {
        case v1::WriteOp::kClaim:
          DASH_RETURN_IF_ERROR(PutClaim(i, op.claim()));
          break;
        case v1::WriteOp::kEvidence:
          DASH_RETURN_IF_ERROR(PutEvidence(i, op.evidence()));
          break;
        case v1::WriteOp::kEdge:
          DASH_RETURN_IF_ERROR(PutEdge(i, op.edge()));
          break;
        case v1::WriteOp::kDelete:
          DASH_RETURN_IF_ERROR(DeleteClaim(op.delete_().claim_id()));
          break;
        case v1::WriteOp::OP_NOT_SET:
          return absl::InvalidArgumentError(absl::StrCat("ops[", i, "]: no operation set"));
      }
    }
    DASH_RETURN_IF_ERROR(CheckEvidenceFirst());
    if (!p_.idempotency_key().empty()) {
      storage::IdempotencyRecord rec;
      rec.set_request_digest(p_.request_digest());
      rec.set_epoch(at_.epoch);
      rec.set_lsn(at_.lsn);
      rec.set_commit_time_micros(at_.commit_time_micros);
      ws_->Put(Family::kIdempotency, keys::Idempotency(tenant_, p_.idempotency_key()),
               DeterministicSerialize(rec));
      // Queued only when the record says keys expire, so that every replica
      // queues the same keys whatever its own version or settings.
      if (p_.idempotency_expire_before_micros() > 0) {
        ws_->Put(Family::kMeta, keys::IdempotencyExpiry(at_.commit_time_micros, at_.lsn),
                 keys::Idempotency(tenant_, p_.idempotency_key()));
      }
    }
    ws_->Put(Family::kTenants, keys::Tenant(tenant_), DeterministicSerialize(tenant_state_));
    return absl::OkStatus();
  }

 private:
  absl::Status PutClaim(int i, const v1::Claim& in) {
    const std::string key = keys::Claim(tenant_, in.claim_id());
    DASH_ASSIGN_OR_RETURN(auto old, ws_->Get(Family::kClaims, key));
    v1::Claim claim = in;
    claim.set_tenant(tenant_);
    if (old.has_value()) {
      v1::Claim prev;
      if (!prev.ParseFromString(*old)) return absl::DataLossError("stored claim is corrupt");
      *claim.mutable_created_at() = prev.created_at();
    } else {
      *claim.mutable_created_at() = commit_time_;
      tenant_state_.set_claim_count(tenant_state_.claim_count() + 1);
    }
    *claim.mutable_updated_at() = commit_time_;
    if (claim.embedding_size() > 0) {
      const uint32_t dim = static_cast<uint32_t>(claim.embedding_size());
      if (tenant_state_.embedding_dim() == 0) {
        tenant_state_.set_embedding_dim(dim);
        tenant_state_.set_vector_metric(p_.vector_metric() == v1::VECTOR_METRIC_UNSPECIFIED
                                            ? v1::VECTOR_METRIC_COSINE
                                            : p_.vector_metric());
      }
      if (tenant_state_.vector_metric() == v1::VECTOR_METRIC_COSINE &&
          std::all_of(claim.embedding().begin(), claim.embedding().end(),
                      [](float f) { return f == 0; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ops[", i, "].claim.embedding: a zero vector has no direction for cosine similarity"));
      }
      if (tenant_state_.embedding_dim() != dim) {
        return absl::InvalidArgumentError(absl::StrCat("ops[", i, "].claim.embedding: has ", dim,
                                                       " dimensions but tenant \"", tenant_,
                                                       "\" uses ", tenant_state_.embedding_dim()));
      }
    }
    ws_->Put(Family::kClaims, key, DeterministicSerialize(claim));
    upserted_.emplace(in.claim_id(), i);
    live_.insert(in.claim_id());
    dirty_.insert(in.claim_id());
    return absl::OkStatus();
  }

  absl::Status PutEvidence(int i, const v1::Evidence& in) {
    const std::string key = keys::Evidence(tenant_, in.claim_id(), in.evidence_id());
    DASH_ASSIGN_OR_RETURN(bool existed, Exists(*ws_, Family::kEvidence, key));
    if (!existed) tenant_state_.set_evidence_count(tenant_state_.evidence_count() + 1);
    v1::Evidence ev = in;
    if (ev.citation().quote_sha256().empty()) {
      ev.mutable_citation()->set_quote_sha256(Sha256Hex(ev.citation().quote()));
    }
    ws_->Put(Family::kEvidence, key, DeterministicSerialize(ev));
    referenced_.emplace_back(i, in.claim_id());
    with_new_evidence_.insert(in.claim_id());
    dirty_.insert(in.claim_id());
    return absl::OkStatus();
  }

  absl::Status PutEdge(int i, const v1::Edge& in) {
    const std::string key = keys::Edge(tenant_, in.from_claim(), in.to_claim(), in.relation());
    DASH_ASSIGN_OR_RETURN(bool existed, Exists(*ws_, Family::kEdges, key));
    if (!existed) tenant_state_.set_edge_count(tenant_state_.edge_count() + 1);
    ws_->Put(Family::kEdges, key, DeterministicSerialize(in));
    ws_->Put(Family::kEdgesIn, keys::EdgeIn(tenant_, in.to_claim(), in.from_claim(), in.relation()),
             "");
    referenced_.emplace_back(i, in.from_claim());
    return absl::OkStatus();
  }

  absl::Status DeleteClaim(const std::string& claim_id) {
    with_new_evidence_.erase(claim_id);
    live_.erase(claim_id);
    dirty_.insert(claim_id);
    const std::string key = keys::Claim(tenant_, claim_id);
    DASH_ASSIGN_OR_RETURN(bool existed, Exists(*ws_, Family::kClaims, key));
    if (existed) {
      ws_->Delete(Family::kClaims, key);
      tenant_state_.set_claim_count(tenant_state_.claim_count() - 1);
    }
    const std::string prefix = keys::ClaimPrefix(tenant_, claim_id);
    DASH_ASSIGN_OR_RETURN(auto evidence, KeysWithPrefix(*ws_, Family::kEvidence, prefix));
    for (const auto& k : evidence) ws_->Delete(Family::kEvidence, k);
    tenant_state_.set_evidence_count(tenant_state_.evidence_count() - evidence.size());

    // Outgoing edges, with their reverse-index entries.
    auto out = ws_->Scan(Family::kEdges, prefix);
    std::vector<v1::Edge> outgoing;
    for (; out->Valid(); out->Next()) {
      v1::Edge e;
      if (!e.ParseFromArray(out->value().data(), static_cast<int>(out->value().size()))) {
        return absl::DataLossError("stored edge is corrupt");
      }
      outgoing.push_back(std::move(e));
    }
    DASH_RETURN_IF_ERROR(out->status());
    for (const auto& e : outgoing) {
      ws_->Delete(Family::kEdges, keys::Edge(tenant_, e.from_claim(), e.to_claim(), e.relation()));
      ws_->Delete(Family::kEdgesIn,
                  keys::EdgeIn(tenant_, e.to_claim(), e.from_claim(), e.relation()));
    }
    // Incoming edges from claims on this shard.
    DASH_ASSIGN_OR_RETURN(auto incoming, KeysWithPrefix(*ws_, Family::kEdgesIn, prefix));
    size_t removed_in = 0;
    for (const auto& k : incoming) {
      std::string from;
      int relation = 0;
      if (!keys::ParseEdgeInSuffix(keys::Suffix(k, prefix), &from, &relation)) {
        return absl::DataLossError("malformed reverse edge key");
      }
      ws_->Delete(Family::kEdgesIn, k);
      const std::string edge_key = keys::Edge(tenant_, from, claim_id, relation);
      DASH_ASSIGN_OR_RETURN(bool edge_exists, Exists(*ws_, Family::kEdges, edge_key));
      if (edge_exists) {
        ws_->Delete(Family::kEdges, edge_key);
        ++removed_in;
      }
    }
    tenant_state_.set_edge_count(tenant_state_.edge_count() - outgoing.size() - removed_in);
    return absl::OkStatus();
  }

  // After all ops: every claim written by the batch has evidence, every
  // evidence and edge hangs off an existing claim. Reports the earliest op.
  absl::Status CheckEvidenceFirst() {
    std::map<int, std::string> errors;  // op index -> message
    for (const auto& [claim_id, i] : upserted_) {
      if (!live_.count(claim_id)) continue;  // Deleted later in the same batch.
      if (with_new_evidence_.count(claim_id)) continue;
      DASH_ASSIGN_OR_RETURN(bool has_evidence,
                            HasAny(*ws_, Family::kEvidence, keys::ClaimPrefix(tenant_, claim_id)));
      if (!has_evidence) {
        errors.emplace(i, absl::StrCat("ops[", i, "].claim: claim \"", claim_id,
                                       "\" has no evidence; a claim needs at least one piece of "
                                       "evidence in the same batch or already stored"));
      }
    }
    for (const auto& [i, claim_id] : referenced_) {
      if (live_.count(claim_id)) continue;
      DASH_ASSIGN_OR_RETURN(bool exists,
                            Exists(*ws_, Family::kClaims, keys::Claim(tenant_, claim_id)));
      if (exists) continue;
      const bool is_edge = p_.ops(i).has_edge();
      errors.emplace(
          i, absl::StrCat("ops[", i, "].", is_edge ? "edge.from_claim" : "evidence.claim_id",
                          ": claim \"", claim_id,
                          "\" does not exist (neither stored nor in this batch)"));
    }
    if (errors.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(errors.begin()->second);
  }

  const storage::LogPayload& p_;
  const CommitPoint at_;
  storage::WriteSet* const ws_;
  const std::string tenant_;
  google::protobuf::Timestamp commit_time_;
  storage::TenantState tenant_state_;
  std::map<std::string, int> upserted_;  // claim id -> first op index
  // Claims written by this batch and not deleted after (so they exist at its
  // end), and claims given evidence since their last delete in this batch.
  std::set<std::string> live_;
  std::set<std::string> with_new_evidence_;
  // Claims whose lexical document the batch changed (the caller re-indexes
  // them after the commit: the BM25 index is not in the commit's batch).
  std::set<std::string> dirty_;
  std::vector<std::pair<int, std::string>> referenced_;  // op index -> claim id
};

}  // namespace

namespace {

absl::Status ExpireIdempotency(int64_t before_micros, size_t max, storage::WriteSet* ws) {
  std::vector<std::pair<std::string, std::string>> expired;  // Queue key, record key.
  // Queue keys only ever grow (commit times never go back within a log and
  // the cut-off is below the committing record's time), so every key before
  // the last one removed is gone: start there.
  DASH_ASSIGN_OR_RETURN(std::optional<std::string> cursor,
                        ws->Get(Family::kMeta, keys::kIdempotencyExpiryCursorKey));
  std::unique_ptr<storage::Cursor> c =
      ws->Scan(Family::kMeta, keys::kIdempotencyExpiryPrefix, cursor.value_or(std::string()));
  for (; c->Valid() && expired.size() < max; c->Next()) {
    int64_t micros = 0;
    uint64_t lsn = 0;
    if (!keys::ParseIdempotencyExpiry(c->key(), &micros, &lsn)) {
      return absl::DataLossError("malformed idempotency expiry key in the meta family");
    }
    if (micros >= before_micros) break;
    expired.emplace_back(std::string(c->key()), std::string(c->value()));
  }
  DASH_RETURN_IF_ERROR(c->status());
  c.reset();
  for (const auto& [queue_key, record_key] : expired) {
    int64_t micros = 0;
    uint64_t lsn = 0;
    keys::ParseIdempotencyExpiry(queue_key, &micros, &lsn);
    DASH_ASSIGN_OR_RETURN(std::optional<std::string> value,
                          ws->Get(Family::kIdempotency, record_key));
    if (value.has_value()) {
      storage::IdempotencyRecord rec;
      if (!rec.ParseFromString(*value)) {
        return absl::DataLossError("malformed idempotency record");
      }
      // The key may have been used again since (a later record, queued later).
      if (rec.lsn() == lsn) ws->Delete(Family::kIdempotency, record_key);
    }
    ws->Delete(Family::kMeta, queue_key);
  }
  if (!expired.empty()) {
    ws->Put(Family::kMeta, keys::kIdempotencyExpiryCursorKey, expired.back().first);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyBatch(const storage::LogPayload& payload, const CommitPoint& at,
                        storage::WriteSet* ws, std::vector<std::string>* touched) {
  Applier applier(payload, at, ws);
  DASH_RETURN_IF_ERROR(applier.Run());
  if (payload.idempotency_expire_before_micros() > 0) {
    // Never the record's own key, whatever the cut-off says.
    const int64_t before =
        std::min(payload.idempotency_expire_before_micros(), at.commit_time_micros);
    DASH_RETURN_IF_ERROR(ExpireIdempotency(before, kMaxIdempotencyExpiriesPerRecord, ws));
  }
  if (touched != nullptr) applier.AppendTouched(touched);
  return absl::OkStatus();
}

absl::Status CheckClaimLimits(const storage::LogPayload& payload,
                              const std::vector<std::string>& touched, const query::Limits& limits,
                              storage::WriteSet* ws) {
  const std::string& tenant = payload.tenant();
  auto first_op = [&](const std::string& claim_id) {
    for (int i = 0; i < payload.ops_size(); ++i) {
      const v1::WriteOp& op = payload.ops(i);
      if (query::OwningClaimId(op) != claim_id) continue;
      switch (op.op_case()) {
        case v1::WriteOp::kClaim:
          return absl::StrCat("ops[", i, "].claim");
        case v1::WriteOp::kEvidence:
          return absl::StrCat("ops[", i, "].evidence");
        case v1::WriteOp::kEdge:
          return absl::StrCat("ops[", i, "].edge");
        default:
          return absl::StrCat("ops[", i, "]");
      }
    }
    return std::string("ops");
  };
  std::set<std::string> claims(touched.begin(), touched.end());
  for (const v1::WriteOp& op : payload.ops()) {
    if (op.has_edge()) claims.insert(op.edge().from_claim());
  }
  // One cursor per family for all the claims (see Cursor::Seek).
  std::unique_ptr<storage::Cursor> ev, out;
  for (const std::string& claim_id : claims) {
    DASH_ASSIGN_OR_RETURN(auto claim, ws->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
    if (!claim.has_value()) continue;  // Deleted.
    size_t count = 0, edges = 0;
    size_t bytes = claim->size();
    const std::string prefix = keys::ClaimPrefix(tenant, claim_id);
    storage::ScanReusing(*ws, Family::kEvidence, prefix, &ev);
    storage::ScanReusing(*ws, Family::kEdges, prefix, &out);
    for (; ev->Valid(); ev->Next()) {
      ++count;
      bytes += ev->value().size();
    }
    DASH_RETURN_IF_ERROR(ev->status());
    for (; out->Valid(); out->Next()) {
      ++edges;
      bytes += out->value().size();
    }
    DASH_RETURN_IF_ERROR(out->status());
    if (edges > limits.max_edges_per_claim) {
      return absl::InvalidArgumentError(
          absl::StrCat(first_op(claim_id), ": claim \"", claim_id, "\" would have ", edges,
                       " outgoing edges; the limit is ", limits.max_edges_per_claim));
    }
    if (count > limits.max_evidence_per_claim) {
      return absl::InvalidArgumentError(
          absl::StrCat(first_op(claim_id), ": claim \"", claim_id, "\" would hold ", count,
                       " pieces of evidence; the limit is ", limits.max_evidence_per_claim));
    }
    if (bytes > limits.max_claim_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(first_op(claim_id), ": claim \"", claim_id, "\" would hold ", bytes,
                       " bytes with its evidence; the limit is ", limits.max_claim_bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace dash::shard
