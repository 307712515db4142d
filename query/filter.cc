#include "query/filter.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dash::query {
namespace {

using Value = v1::MetadataValue;

int Cmp(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  if (a.seconds() != b.seconds()) return a.seconds() < b.seconds() ? -1 : 1;
  if (a.nanos() != b.nanos()) return a.nanos() < b.nanos() ? -1 : 1;
  return 0;
}

bool IsNumber(const Value& v) {
  return v.kind_case() == Value::kIntValue || v.kind_case() == Value::kDoubleValue;
}

absl::Status CheckTimestamp(const google::protobuf::Timestamp& t, const std::string& path) {
  // The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
  if (t.seconds() < -62135596800LL || t.seconds() > 253402300799LL) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": seconds out of range (years 1 to 9999)"));
  }
  if (t.nanos() < 0 || t.nanos() > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": nanos out of range"));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const Value& v, const std::string& path) {
  switch (v.kind_case()) {
    case Value::KIND_NOT_SET:
      return absl::InvalidArgumentError(absl::StrCat(path, ": no value kind set"));
    case Value::kDoubleValue:
      if (!std::isfinite(v.double_value())) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": must be finite"));
      }
      break;
    case Value::kStringValue:
      if (v.string_value().size() > kMaxFilterStringBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": is ", v.string_value().size(), " bytes; the limit is ",
                         kMaxFilterStringBytes, " (no stored value is longer)"));
      }
      break;
    case Value::kTimestampValue:
      return CheckTimestamp(v.timestamp_value(), path + ".timestamp_value");
    default:
      break;
  }
  return absl::OkStatus();
}

bool InRange(const google::protobuf::Timestamp& t, const v1::TimeRange& r) {
  if (r.has_start() && Cmp(t, r.start()) < 0) return false;
  if (r.has_end() && Cmp(t, r.end()) > 0) return false;
  return true;
}

bool MatchesMetadata(const v1::MetadataFilter& f, const v1::Claim& claim) {
  auto it = claim.metadata().find(f.key());
  if (it == claim.metadata().end()) return false;
  const Value& v = it->second;
  switch (f.condition_case()) {
    case v1::MetadataFilter::kEq: {
      auto c = CompareValues(v, f.eq());
      return c.has_value() && *c == 0;
    }
    case v1::MetadataFilter::kIn:
      for (const Value& candidate : f.in().values()) {
        auto c = CompareValues(v, candidate);
        if (c.has_value() && *c == 0) return true;
      }
      return false;
    case v1::MetadataFilter::kRange: {
      const v1::MetadataRange& r = f.range();
      if (r.has_min()) {
        auto c = CompareValues(v, r.min());
        if (!c.has_value() || *c < 0 || (*c == 0 && r.min_exclusive())) return false;
      }
      if (r.has_max()) {
        auto c = CompareValues(v, r.max());
        if (!c.has_value() || *c > 0 || (*c == 0 && r.max_exclusive())) return false;
      }
      return true;
    }
    case v1::MetadataFilter::CONDITION_NOT_SET:
      break;
  }
  return false;
}

}  // namespace

std::optional<int> CompareValues(const Value& a, const Value& b) {
  if (IsNumber(a) && IsNumber(b)) {
    if (a.kind_case() == Value::kIntValue && b.kind_case() == Value::kIntValue) {
      return a.int_value() < b.int_value() ? -1 : (a.int_value() > b.int_value() ? 1 : 0);
    }
    const double x = a.kind_case() == Value::kIntValue ? a.int_value() : a.double_value();
    const double y = b.kind_case() == Value::kIntValue ? b.int_value() : b.double_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.kind_case() != b.kind_case()) return std::nullopt;
  switch (a.kind_case()) {
    case Value::kStringValue:
      return a.string_value() < b.string_value() ? -1
                                                 : (a.string_value() > b.string_value() ? 1 : 0);
    case Value::kBoolValue:
      return static_cast<int>(a.bool_value()) - static_cast<int>(b.bool_value());
    case Value::kTimestampValue:
      return Cmp(a.timestamp_value(), b.timestamp_value());
    default:
      return std::nullopt;
  }
}

absl::Status ValidateFilter(const v1::Filter& filter, const std::string& path) {
  if (filter.metadata_size() > static_cast<int>(kMaxFilterClauses)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".metadata: has ", filter.metadata_size(),
                                                   " conditions; the limit is ",
                                                   kMaxFilterClauses));
  }
  if (filter.ByteSizeLong() > kMaxFilterBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is ", filter.ByteSizeLong(),
                                                   " bytes; the limit is ", kMaxFilterBytes));
  }
  for (int i = 0; i < filter.metadata_size(); ++i) {
    const v1::MetadataFilter& f = filter.metadata(i);
    const std::string p = absl::StrCat(path, ".metadata[", i, "]");
    if (f.key().empty())
      return absl::InvalidArgumentError(absl::StrCat(p, ".key: must not be empty"));
    if (f.key().size() > kMaxFilterKeyBytes) {
      return absl::InvalidArgumentError(absl::StrCat(p, ".key: is ", f.key().size(),
                                                     " bytes; the limit is ", kMaxFilterKeyBytes,
                                                     " (no stored key is longer)"));
    }
    switch (f.condition_case()) {
      case v1::MetadataFilter::kEq:
        DASH_RETURN_IF_ERROR(CheckValue(f.eq(), p + ".eq"));
        break;
      case v1::MetadataFilter::kIn:
        if (f.in().values_size() == 0) {
          return absl::InvalidArgumentError(absl::StrCat(p, ".in: must list at least one value"));
        }
        if (f.in().values_size() > static_cast<int>(kMaxFilterInValues)) {
          return absl::InvalidArgumentError(absl::StrCat(p, ".in: lists ", f.in().values_size(),
                                                         " values; the limit is ",
                                                         kMaxFilterInValues));
        }
        for (int j = 0; j < f.in().values_size(); ++j) {
          DASH_RETURN_IF_ERROR(
              CheckValue(f.in().values(j), absl::StrCat(p, ".in.values[", j, "]")));
        }
        break;
      case v1::MetadataFilter::kRange: {
        const v1::MetadataRange& r = f.range();
        if (!r.has_min() && !r.has_max()) {
          return absl::InvalidArgumentError(absl::StrCat(p, ".range: needs min or max"));
        }
        if (r.has_min()) DASH_RETURN_IF_ERROR(CheckValue(r.min(), p + ".range.min"));
        if (r.has_max()) DASH_RETURN_IF_ERROR(CheckValue(r.max(), p + ".range.max"));
        if (r.has_min() && r.has_max() && !CompareValues(r.min(), r.max()).has_value()) {
          return absl::InvalidArgumentError(
              absl::StrCat(p, ".range.max: is not comparable with min (different kinds)"));
        }
        break;
      }
      case v1::MetadataFilter::CONDITION_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(p, ": set eq, in or range"));
    }
  }
  auto check_range = [&](const v1::TimeRange& r, const std::string& p) -> absl::Status {
    if (r.has_start()) DASH_RETURN_IF_ERROR(CheckTimestamp(r.start(), p + ".start"));
    if (r.has_end()) DASH_RETURN_IF_ERROR(CheckTimestamp(r.end(), p + ".end"));
    if (r.has_start() && r.has_end() && Cmp(r.end(), r.start()) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(p, ".end: is before start"));
    }
    return absl::OkStatus();
  };
  DASH_RETURN_IF_ERROR(check_range(filter.valid_overlaps(), path + ".valid_overlaps"));
  DASH_RETURN_IF_ERROR(check_range(filter.evidence_published(), path + ".evidence_published"));
  if (filter.has_valid_at())
    DASH_RETURN_IF_ERROR(CheckTimestamp(filter.valid_at(), path + ".valid_at"));
  return absl::OkStatus();
}

bool IsEmpty(const v1::Filter& filter) {
  return filter.metadata_size() == 0 && !filter.has_valid_overlaps() && !filter.has_valid_at() &&
         !filter.has_evidence_published();
}

bool HasEvidenceCondition(const v1::Filter& filter) { return filter.has_evidence_published(); }

bool MatchesClaim(const v1::Filter& filter, const v1::Claim& claim) {
  for (const auto& f : filter.metadata()) {
    if (!MatchesMetadata(f, claim)) return false;
  }
  if (filter.has_valid_overlaps()) {
    const v1::TimeRange& r = filter.valid_overlaps();
    // [from, to] overlaps [start, end] unless it ends before start or begins after end.
    if (r.has_start() && claim.has_valid_to() && Cmp(claim.valid_to(), r.start()) < 0) return false;
    if (r.has_end() && claim.has_valid_from() && Cmp(claim.valid_from(), r.end()) > 0) return false;
  }
  if (filter.has_valid_at()) {
    if (claim.has_valid_from() && Cmp(claim.valid_from(), filter.valid_at()) > 0) return false;
    if (claim.has_valid_to() && Cmp(claim.valid_to(), filter.valid_at()) < 0) return false;
  }
  return true;
}

bool MatchesEvidence(const v1::Filter& filter, const v1::Evidence& evidence) {
  if (!filter.has_evidence_published()) return true;
  if (!evidence.citation().has_published_at()) return false;
  return InRange(evidence.citation().published_at(), filter.evidence_published());
}

}  // namespace dash::query
