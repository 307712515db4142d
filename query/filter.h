// Query filters: validation with field paths, and evaluation against a claim
// and its evidence. Thread-safe: pure functions.
#ifndef DASH_QUERY_FILTER_H_
#define DASH_QUERY_FILTER_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "dash/v1/data.pb.h"

namespace dash::query {

// A filter's bounds. They keep what one query can make the node hold (the
// prefilter cache keys on the serialized filter) small; a key or string
// longer than any storable one could match nothing anyway.
inline constexpr size_t kMaxFilterClauses = 64;        // Metadata conditions.
inline constexpr size_t kMaxFilterInValues = 1024;     // Values of one `in`.
inline constexpr size_t kMaxFilterKeyBytes = 128;      // = Limits::max_metadata_key_bytes.
inline constexpr size_t kMaxFilterStringBytes = 4096;  // = Limits::max_metadata_string_bytes.
inline constexpr size_t kMaxFilterBytes = 64 << 10;    // Serialized.

// INVALID_ARGUMENT naming the offending field under `path` (e.g.
// "filter.metadata[1].range.min: ..."): a clause without a condition, a value
// of no kind or not finite, a timestamp outside years 1-9999, an end before
// its start, or any of the bounds above exceeded.
absl::Status ValidateFilter(const v1::Filter& filter, const std::string& path = "filter");

// True when the filter has no condition.
bool IsEmpty(const v1::Filter& filter);
bool HasEvidenceCondition(const v1::Filter& filter);

// The claim-level conditions: metadata and validity time.
bool MatchesClaim(const v1::Filter& filter, const v1::Claim& claim);
// The evidence-level condition (published_at range); true when there is none.
bool MatchesEvidence(const v1::Filter& filter, const v1::Evidence& evidence);

// Orders two metadata values of comparable kinds (int and double compare
// numerically); std::nullopt when they are not comparable.
std::optional<int> CompareValues(const v1::MetadataValue& a, const v1::MetadataValue& b);

}  // namespace dash::query

#endif  // DASH_QUERY_FILTER_H_
