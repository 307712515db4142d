// Query filters: validation with field paths, and evaluation against a claim
// and its evidence. Thread-safe: pure functions.
#ifndef DASH_NODE_INDEX_FILTER_H_
#define DASH_NODE_INDEX_FILTER_H_

#include <optional>

#include "absl/status/status.h"
#include "dash/v1/data.pb.h"

namespace dash::index {

// INVALID_ARGUMENT naming the offending field under `path` (e.g.
// "filter.metadata[1].range.min: ...").
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

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_FILTER_H_
