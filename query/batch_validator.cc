#include "query/batch_validator.h"

#include <cmath>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace dash::query {
namespace {

absl::Status Bad(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status CheckText(absl::string_view s, absl::string_view path, size_t max_bytes,
                       bool required) {
  if (s.empty()) return required ? Bad(path, "must not be empty") : absl::OkStatus();
  if (s.size() > max_bytes) {
    return Bad(path, absl::StrCat("is ", s.size(), " bytes; the limit is ", max_bytes));
  }
  if (!IsValidUtf8(s)) return Bad(path, "is not valid UTF-8");
  return absl::OkStatus();
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.'; }

absl::Status CheckName(absl::string_view s, absl::string_view path, size_t max_bytes) {
  if (s.empty()) return Bad(path, "must not be empty");
  if (s.size() > max_bytes) {
    return Bad(path, absl::StrCat("is ", s.size(), " bytes; the limit is ", max_bytes));
  }
  for (char c : s) {
    if (!IsNameChar(c)) return Bad(path, "may contain only A-Z a-z 0-9 . _ -");
  }
  return absl::OkStatus();
}

absl::Status CheckTimestamp(const google::protobuf::Timestamp& t, absl::string_view path) {
  // The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
  if (t.seconds() < -62135596800LL || t.seconds() > 253402300799LL) {
    return Bad(path, "seconds out of range (years 1 to 9999)");
  }
  if (t.nanos() < 0 || t.nanos() > 999999999) return Bad(path, "nanos out of range");
  return absl::OkStatus();
}

absl::Status CheckMetadata(const google::protobuf::Map<std::string, v1::MetadataValue>& md,
                           absl::string_view path, const Limits& limits) {
  if (md.size() > limits.max_metadata_entries) {
    return Bad(path, absl::StrCat("has ", md.size(), " entries; the limit is ",
                                  limits.max_metadata_entries));
  }
  for (const auto& [key, value] : md) {
    const std::string p = absl::StrCat(path, "[\"", key, "\"]");
    DASH_RETURN_IF_ERROR(CheckName(key, absl::StrCat(path, " key"), limits.max_metadata_key_bytes));
    switch (value.kind_case()) {
      case v1::MetadataValue::kStringValue:
        DASH_RETURN_IF_ERROR(CheckText(value.string_value(), p, limits.max_metadata_string_bytes,
                                       /*required=*/false));
        break;
      case v1::MetadataValue::kDoubleValue:
        if (!std::isfinite(value.double_value())) return Bad(p, "must be finite");
        break;
      case v1::MetadataValue::kTimestampValue:
        DASH_RETURN_IF_ERROR(CheckTimestamp(value.timestamp_value(), p));
        break;
      case v1::MetadataValue::kIntValue:
      case v1::MetadataValue::kBoolValue:
        break;
      case v1::MetadataValue::KIND_NOT_SET:
        return Bad(p, "no value kind set");
    }
  }
  return absl::OkStatus();
}

bool Before(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos());
}

absl::Status CheckClaim(const v1::Claim& c, absl::string_view tenant, const std::string& path,
                        const Limits& limits) {
  if (!c.tenant().empty() && c.tenant() != tenant) {
    return Bad(
        path + ".tenant",
        absl::StrCat("\"", c.tenant(), "\" differs from the batch's tenant \"", tenant, "\""));
  }
  DASH_RETURN_IF_ERROR(ValidateId(c.claim_id(), path + ".claim_id", limits));
  DASH_RETURN_IF_ERROR(CheckText(c.text(), path + ".text", limits.max_text_bytes, true));
  DASH_RETURN_IF_ERROR(CheckMetadata(c.metadata(), path + ".metadata", limits));
  if (static_cast<size_t>(c.embedding_size()) > limits.max_embedding_dim) {
    return Bad(path + ".embedding",
               absl::StrCat("has ", c.embedding_size(), " dimensions; the limit is ",
                            limits.max_embedding_dim));
  }
  for (int i = 0; i < c.embedding_size(); ++i) {
    if (!std::isfinite(c.embedding(i))) {
      return Bad(absl::StrCat(path, ".embedding[", i, "]"), "must be finite");
    }
  }
  if (c.has_valid_from())
    DASH_RETURN_IF_ERROR(CheckTimestamp(c.valid_from(), path + ".valid_from"));
  if (c.has_valid_to()) DASH_RETURN_IF_ERROR(CheckTimestamp(c.valid_to(), path + ".valid_to"));
  if (c.has_valid_from() && c.has_valid_to() && Before(c.valid_to(), c.valid_from())) {
    return Bad(path + ".valid_to", "is before valid_from");
  }
  return absl::OkStatus();
}

absl::Status CheckEvidence(const v1::Evidence& e, const std::string& path, const Limits& limits) {
  DASH_RETURN_IF_ERROR(ValidateId(e.evidence_id(), path + ".evidence_id", limits));
  DASH_RETURN_IF_ERROR(ValidateId(e.claim_id(), path + ".claim_id", limits));
  if (e.stance() == v1::STANCE_UNSPECIFIED || !v1::Stance_IsValid(e.stance())) {
    return Bad(path + ".stance", "must be SUPPORTS, CONTRADICTS or NEUTRAL");
  }
  if (!e.has_citation()) return Bad(path + ".citation", "is required");
  const v1::Citation& c = e.citation();
  const std::string cp = path + ".citation";
  DASH_RETURN_IF_ERROR(CheckText(c.source_uri(), cp + ".source_uri", limits.max_uri_bytes, true));
  if (HasControlChars(c.source_uri()))
    return Bad(cp + ".source_uri", "contains control characters");
  DASH_RETURN_IF_ERROR(
      CheckText(c.source_title(), cp + ".source_title", limits.max_title_bytes, false));
  DASH_RETURN_IF_ERROR(CheckText(c.quote(), cp + ".quote", limits.max_quote_bytes, true));
  if ((c.span_start() != 0 || c.span_end() != 0) && c.span_start() >= c.span_end()) {
    return Bad(cp + ".span_end", absl::StrCat("must be greater than span_start (", c.span_start(),
                                              "), got ", c.span_end()));
  }
  if (c.has_published_at())
    DASH_RETURN_IF_ERROR(CheckTimestamp(c.published_at(), cp + ".published_at"));
  if (c.has_retrieved_at())
    DASH_RETURN_IF_ERROR(CheckTimestamp(c.retrieved_at(), cp + ".retrieved_at"));
  if (!c.quote_sha256().empty() && c.quote_sha256() != Sha256Hex(c.quote())) {
    return Bad(cp + ".quote_sha256", "does not match the SHA-256 of quote");
  }
  return CheckMetadata(e.metadata(), path + ".metadata", limits);
}

absl::Status CheckEdge(const v1::Edge& e, const std::string& path, const Limits& limits) {
  DASH_RETURN_IF_ERROR(ValidateId(e.from_claim(), path + ".from_claim", limits));
  DASH_RETURN_IF_ERROR(ValidateId(e.to_claim(), path + ".to_claim", limits));
  if (e.from_claim() == e.to_claim()) return Bad(path + ".to_claim", "must differ from from_claim");
  if (e.relation() == v1::RELATION_UNSPECIFIED || !v1::Relation_IsValid(e.relation())) {
    return Bad(path + ".relation", "must be set to a known relation");
  }
  if (!std::isfinite(e.weight())) return Bad(path + ".weight", "must be finite");
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTenant(absl::string_view tenant, absl::string_view field,
                            const Limits& limits) {
  return CheckName(tenant, field, limits.max_tenant_bytes);
}

absl::Status ValidateId(absl::string_view id, absl::string_view field, const Limits& limits) {
  DASH_RETURN_IF_ERROR(CheckText(id, field, limits.max_id_bytes, true));
  if (HasControlChars(id)) return Bad(field, "contains control characters");
  return absl::OkStatus();
}

absl::Status ValidateBatch(const v1::WriteRequest& request, const Limits& limits) {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant", limits));
  if (request.ops_size() == 0) return Bad("ops", "must not be empty");
  if (static_cast<size_t>(request.ops_size()) > limits.max_ops) {
    return Bad("ops", absl::StrCat("has ", request.ops_size(), " operations; the limit is ",
                                   limits.max_ops));
  }
  if (request.idempotency_key().size() > limits.max_idempotency_key_bytes) {
    return Bad("idempotency_key",
               absl::StrCat("is longer than ", limits.max_idempotency_key_bytes, " bytes"));
  }
  if (!IsValidUtf8(request.idempotency_key())) return Bad("idempotency_key", "is not valid UTF-8");
  if (!v1::VectorMetric_IsValid(request.vector_metric())) {
    return Bad("vector_metric", "is not a known metric");
  }
  for (int i = 0; i < request.ops_size(); ++i) {
    const v1::WriteOp& op = request.ops(i);
    const std::string path = absl::StrCat("ops[", i, "]");
    switch (op.op_case()) {
      case v1::WriteOp::kClaim:
        DASH_RETURN_IF_ERROR(CheckClaim(op.claim(), request.tenant(), path + ".claim", limits));
        break;
      case v1::WriteOp::kEvidence:
        DASH_RETURN_IF_ERROR(CheckEvidence(op.evidence(), path + ".evidence", limits));
        break;
      case v1::WriteOp::kEdge:
        DASH_RETURN_IF_ERROR(CheckEdge(op.edge(), path + ".edge", limits));
        break;
      case v1::WriteOp::kDelete:
        DASH_RETURN_IF_ERROR(
            ValidateId(op.delete_().claim_id(), path + ".delete.claim_id", limits));
        break;
      case v1::WriteOp::OP_NOT_SET:
        return Bad(path, "no operation set (claim, evidence, edge or delete)");
    }
  }
  return absl::OkStatus();
}

absl::string_view OwningClaimId(const v1::WriteOp& op) {
  switch (op.op_case()) {
    case v1::WriteOp::kClaim:
      return op.claim().claim_id();
    case v1::WriteOp::kEvidence:
      return op.evidence().claim_id();
    case v1::WriteOp::kEdge:
      return op.edge().from_claim();
    case v1::WriteOp::kDelete:
      return op.delete_().claim_id();
    case v1::WriteOp::OP_NOT_SET:
      break;
  }
  return {};
}

absl::StatusOr<uint32_t> ShardOfBatch(const v1::WriteRequest& request, uint32_t shard_count) {
  std::optional<uint32_t> shard;
  if (request.has_shard()) {
    if (request.shard() >= shard_count) {
      return Bad("shard",
                 absl::StrCat(request.shard(), " is not below the shard count ", shard_count));
    }
    shard = request.shard();
  }
  for (int i = 0; i < request.ops_size(); ++i) {
    const uint32_t s = ShardOf(request.tenant(), OwningClaimId(request.ops(i)), shard_count);
    if (!shard.has_value()) {
      shard = s;
    } else if (s != *shard) {
      return Bad(absl::StrCat("ops[", i, "]"),
                 absl::StrCat(
                     "claim belongs to shard ", s, " but the batch is for shard ", *shard,
                     "; a batch is atomic within one shard: send other shards' claims in their own "
                     "batches (dashctl ingest splits files by shard)"));
    }
  }
  if (!shard.has_value()) return Bad("ops", "must not be empty");
  return *shard;
}

}  // namespace dash::query
