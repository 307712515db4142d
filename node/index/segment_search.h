// BM25 top-k over one segment's postings (segment_postings.h) by MaxScore,
// document at a time: terms are ordered by their bound (weight × (k1 + 1)),
// and once the k-th best score passes the sum of the smallest bounds those
// terms' lists only answer probes (cursors Advance, skipping blocks by their
// headers) for the documents the others yield. Exact: the same documents,
// scores (bit for bit: each score sums its terms in query order) and order as
// scoring every document. Corpus statistics (each term's weight, the average
// document length) come from the caller, so a ranking does not depend on how
// documents are split into segments or shards. Not yet serving (issue 13).
// Thread-safe: a function of its arguments.
#ifndef DASH_NODE_INDEX_SEGMENT_SEARCH_H_
#define DASH_NODE_INDEX_SEGMENT_SEARCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/index/segment_postings.h"
#include "query/shard_target.h"

namespace dash::index {

struct WeightedTerm {
  std::string term;
  double weight = 0;  // Query weight × IDF (from corpus-wide statistics), > 0.
};

struct ScoredDoc {
  uint32_t doc = 0;
  double score = 0;
};

// What a search did (for tests and benchmarks of the pruning).
struct SegmentSearchStats {
  uint64_t candidates = 0;  // Documents fully scored.
  uint64_t blocks_decoded = 0;
};

// The `k` best documents for `terms` (distinct), by score, then by doc id.
// `allowed` (when set) admits documents (a filter, live docs). DATA_LOSS if
// a posting list is damaged. REQUIRES: k1 >= 0, b in [0, 1], avg_doc_length > 0.
absl::StatusOr<std::vector<ScoredDoc>> SearchSegment(
    const SegmentPostings& segment, const std::vector<WeightedTerm>& terms, size_t k,
    const query::Bm25Params& params, double avg_doc_length,
    const std::function<bool(uint32_t)>& allowed = nullptr, SegmentSearchStats* stats = nullptr);

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_SEGMENT_SEARCH_H_
