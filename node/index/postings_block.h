// Block-compressed postings: the unit the index segments of issue 13 store a
// term's posting list in (Lucene and Tantivy use 128-posting blocks too). A
// block holds 1..kBlockSize postings of one term in increasing doc order:
// doc ids delta-coded and term frequencies, each packed with Stream VByte
// (Debian's libstreamvbyte: FastPFor and simdcomp are not packaged), after a
// small header holding the block's impact — its last doc, its largest term
// frequency and the smallest length among its docs. BM25 rises with the term
// frequency and falls with the doc length, so the impact bounds the block's
// best score for any IDF and average length (block-max MaxScore/WAND skip a
// block whose bound cannot enter the top k) without storing a float that
// would go stale as corpus statistics drift.
//
// Layout (integers as varints): count, first doc, last doc, max tf,
// min doc length, doc-stream bytes, tf-stream bytes, then the doc stream
// (streamvbyte delta from the first doc; the first doc itself is the
// header's) and the tf stream (tf - 1). Decoding never trusts the input:
// anything inconsistent is DATA_LOSS, never a crash or an out-of-bounds read.
// Stateless functions: thread-safe.
#ifndef DASH_NODE_INDEX_POSTINGS_BLOCK_H_
#define DASH_NODE_INDEX_POSTINGS_BLOCK_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "query/shard_target.h"

namespace dash::index {

inline constexpr size_t kBlockSize = 128;

struct Posting {
  uint32_t doc = 0;  // Segment-local doc id.
  uint32_t tf = 0;   // Term frequency, >= 1.
};

struct BlockImpact {
  uint32_t count = 0;  // Postings in the block.
  uint32_t first_doc = 0;
  uint32_t last_doc = 0;
  uint32_t max_tf = 0;          // Largest term frequency in the block.
  uint32_t min_doc_length = 0;  // Smallest length among the block's docs.
};

// Appends the block of `postings` to `out`. `doc_length(doc)` gives each
// doc's length (in analyzed terms) for the impact. INVALID_ARGUMENT unless
// there are 1..kBlockSize postings with strictly increasing docs and tf >= 1.
template <typename DocLength>
absl::Status EncodeBlock(absl::Span<const Posting> postings, DocLength doc_length,
                         std::string* out);

// The impact of the block at the start of `in` (header only: cheap), and the
// block's size in bytes. DATA_LOSS if the header is malformed or the block
// runs past `in`.
absl::StatusOr<BlockImpact> ReadImpact(absl::string_view in, size_t* block_bytes);

// Decodes the block at the start of `in` into `out` (replacing its contents)
// and returns its size in bytes. DATA_LOSS on any inconsistency: a stream
// that does not decode to exactly its stored size, docs not increasing or
// not ending at the header's last doc, a tf of 0 or above the header's max.
absl::StatusOr<size_t> DecodeBlock(absl::string_view in, std::vector<Posting>* out);

// The best BM25 contribution any posting of a block with `impact` can make
// for a term of weight `weight` (query weight × IDF): no posting of the block
// scores above it, for any `avg_doc_length` > 0, k1 >= 0 and b in [0, 1].
double BlockUpperBound(const BlockImpact& impact, double weight, const query::Bm25Params& params,
                       double avg_doc_length);

// Internal: the encoder behind EncodeBlock, given the impact's doc lengths.
absl::Status EncodeBlockWithMinLength(absl::Span<const Posting> postings, uint32_t min_doc_length,
                                      std::string* out);

template <typename DocLength>
absl::Status EncodeBlock(absl::Span<const Posting> postings, DocLength doc_length,
                         std::string* out) {
  uint32_t min_length = UINT32_MAX;
  for (const Posting& p : postings) {
    const uint32_t length = doc_length(p.doc);
    if (length < min_length) min_length = length;
  }
  return EncodeBlockWithMinLength(postings, postings.empty() ? 0 : min_length, out);
}

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_POSTINGS_BLOCK_H_
