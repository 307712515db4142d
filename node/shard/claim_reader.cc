#include "node/shard/claim_reader.h"

#include <algorithm>

#include "common/status_macros.h"
#include "node/storage/keys.h"
#include "node/storage/records.pb.h"

namespace dash::shard {

using storage::Family;
namespace keys = storage::keys;

v1::CommitToken ClaimReader::Token(const storage::Reader& r) const {
  v1::CommitToken t;
  t.set_shard(shard_id_);
  t.set_served_by(node_id_);
  absl::StatusOr<std::optional<std::string>> raw = r.Get(Family::kMeta, keys::kShardMetaKey);
  storage::ShardMeta meta;
  if (raw.ok() && raw->has_value() && meta.ParseFromString(**raw)) {
    t.set_epoch(meta.epoch());
    t.set_lsn(meta.last_lsn());
  }
  return t;
}

absl::StatusOr<v1::ClaimRecord> ClaimReader::Record(const storage::Reader& r,
                                                    absl::string_view tenant,
                                                    const v1::Claim& claim,
                                                    bool include_evidence) const {
  v1::ClaimRecord record;
  *record.mutable_claim() = claim;
  if (!include_evidence) return record;
  const std::string prefix = keys::ClaimPrefix(tenant, claim.claim_id());
  auto ev = r.Scan(Family::kEvidence, prefix);
  for (; ev->Valid(); ev->Next()) {
    DASH_ASSIGN_OR_RETURN(*record.add_evidence(),
                          ParseStored<v1::Evidence>(ev->value(), "evidence"));
  }
  DASH_RETURN_IF_ERROR(ev->status());
  auto edges = r.Scan(Family::kEdges, prefix);
  for (; edges->Valid(); edges->Next()) {
    DASH_ASSIGN_OR_RETURN(*record.add_edges(), ParseStored<v1::Edge>(edges->value(), "edge"));
  }
  DASH_RETURN_IF_ERROR(edges->status());
  return record;
}

absl::StatusOr<v1::GetClaimResponse> ClaimReader::GetClaim(
    const storage::Reader& r, absl::string_view tenant, absl::string_view claim_id,
    size_t evidence_page_size, absl::string_view evidence_after, bool* more) const {
  DASH_ASSIGN_OR_RETURN(auto raw, r.Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("claim \"", claim_id, "\" not found in tenant \"", tenant, "\""));
  }
  DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(*raw, "claim"));
  v1::GetClaimResponse response;
  DASH_ASSIGN_OR_RETURN(*response.mutable_record(),
                        Record(r, tenant, claim, /*include_evidence=*/true));
  if (more != nullptr) *more = false;
  if (evidence_page_size > 0) {
    // Evidence comes in evidence_id order (its key order).
    auto* evidence = response.mutable_record()->mutable_evidence();
    int from = 0;
    while (from < evidence->size() && evidence->Get(from).evidence_id() <= evidence_after) ++from;
    const int to = std::min(evidence->size(), from + static_cast<int>(evidence_page_size));
    if (more != nullptr) *more = to < evidence->size();
    evidence->DeleteSubrange(to, evidence->size() - to);
    evidence->DeleteSubrange(0, from);
  }
  *response.mutable_read_at() = Token(r);
  return response;
}

absl::StatusOr<ListPage> ClaimReader::ListClaims(const storage::Reader& r, absl::string_view tenant,
                                                 absl::string_view start_after, size_t limit,
                                                 bool include_evidence) const {
  const std::string prefix = keys::TenantPrefix(tenant);
  // The smallest key after <tenant>\0<start_after>: ids contain no NUL.
  std::string start;
  if (!start_after.empty()) {
    start = absl::StrCat(keys::Claim(tenant, start_after), std::string(1, '\0'));
  }
  ListPage page;
  auto cursor = r.Scan(Family::kClaims, prefix, start);
  for (; cursor->Valid(); cursor->Next()) {
    if (page.records.size() == limit) {
      page.more = true;
      break;
    }
    DASH_ASSIGN_OR_RETURN(v1::Claim claim, ParseStored<v1::Claim>(cursor->value(), "claim"));
    DASH_ASSIGN_OR_RETURN(v1::ClaimRecord rec, Record(r, tenant, claim, include_evidence));
    page.records.push_back(std::move(rec));
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  page.read_at = Token(r);
  return page;
}

}  // namespace dash::shard
