// One segment's inverted index of one field: each term's posting list as
// PostingsBlock blocks, and every document's length. Built in memory from
// analyzed documents in increasing doc order (SegmentPostingsWriter), kept as
// two segment-file bodies — the dictionary (document lengths, then the terms
// in byte order with their document frequency and the size of their posting
// list) and the postings (every term's blocks, in dictionary order) — and
// read back whole (SegmentPostings). A PostingCursor walks one term's list
// and skips whole blocks by doc id or by score bound without decoding them.
// Formats: segment_format.md. Not yet used by the serving index (issue 13).
//
// Thread-safety: a writer is not thread-safe; SegmentPostings is immutable
// and may be read from any thread; a cursor belongs to one thread.
#ifndef DASH_NODE_INDEX_SEGMENT_POSTINGS_H_
#define DASH_NODE_INDEX_SEGMENT_POSTINGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "node/index/postings_block.h"

namespace dash::index {

class SegmentPostingsWriter {
 public:
  // Adds the next document: `doc` must be above every earlier one. `terms`
  // are its analyzed terms in any order (a repeated term counts its tf); its
  // length is their number. INVALID_ARGUMENT (nothing added) otherwise.
  absl::Status AddDoc(uint32_t doc, const std::vector<std::string>& terms);

  // For merges, which have postings rather than documents: declares `doc`
  // with its length (docs in increasing order, as AddDoc), then
  // AddPosting adds (doc, tf) to a term's list, in any order of terms and
  // documents (Finish sorts each list). INVALID_ARGUMENT (nothing added) for
  // a doc out of order or undeclared, a tf of 0 or a term AddDoc refuses.
  absl::Status AddLength(uint32_t doc, uint32_t length);
  absl::Status AddPosting(absl::string_view term, Posting posting);
  // AddPosting for several postings of one term (one dictionary lookup; a
  // merge's way): all are checked before any is added.
  absl::Status AddPostings(absl::string_view term, const std::vector<Posting>& postings);

  struct Bodies {
    std::string dict;      // The dictionary file's body (kind DICT).
    std::string postings;  // The postings file's body (kind POST).
  };
  Bodies Finish();

 private:
  bool Declared(uint32_t doc) const;

  std::map<std::string, std::vector<Posting>> terms_;
  std::vector<std::pair<uint32_t, uint32_t>> lengths_;  // (doc, length), increasing doc.
  bool unsorted_ = false;                               // AddPosting added a list out of doc order.
};

class PostingCursor;

class SegmentPostings {
 public:
  struct TermInfo {
    uint32_t df = 0;    // Documents holding the term.
    size_t offset = 0;  // Where its blocks start in the postings body.
    size_t bytes = 0;   // Their total size.
  };

  // Parses the two bodies. DATA_LOSS naming what is wrong when the
  // dictionary is malformed (terms out of order, lengths out of range) or
  // does not account for exactly the postings body. Blocks are checked as a
  // cursor decodes them.
  static absl::StatusOr<SegmentPostings> Open(std::string dict, std::string postings);

  uint32_t doc_count() const { return static_cast<uint32_t>(lengths_.size()); }
  uint64_t total_length() const { return total_length_; }
  // The length of `doc`; 0 when the segment does not hold it.
  uint32_t DocLength(uint32_t doc) const;
  std::optional<TermInfo> Find(absl::string_view term) const;
  // The dictionary in term order (for merges).
  size_t term_count() const { return terms_.size(); }
  const std::string& term(size_t i) const { return terms_[i]; }
  const TermInfo& term_info(size_t i) const { return infos_[i]; }
  // A cursor on the term's first posting (or invalid, with a DATA_LOSS
  // status, when its first block is damaged). The segment must outlive it.
  PostingCursor Cursor(const TermInfo& term) const;

 private:
  SegmentPostings() = default;

  std::string postings_;
  std::vector<std::pair<uint32_t, uint32_t>> lengths_;  // (doc, length), increasing doc.
  uint64_t total_length_ = 0;
  std::vector<std::string> terms_;  // Increasing.
  std::vector<TermInfo> infos_;     // Parallel to terms_.
};

class PostingCursor {
 public:
  // False once the list is exhausted or a block failed to decode (status()).
  bool Valid() const { return valid_; }
  const absl::Status& status() const { return status_; }
  uint32_t doc() const { return block_[index_].doc; }
  uint32_t tf() const { return block_[index_].tf; }
  // The impact of the block holding the current posting.
  const BlockImpact& block_impact() const { return impact_; }

  void Next();
  // Moves to the first posting with doc >= `target` (never backwards):
  // blocks ending before it are skipped by their header alone.
  void Advance(uint32_t target);
  // Skips the rest of the current block (block-max: its bound cannot
  // compete) and lands on the next block's first posting.
  void NextBlock();
  // Blocks decoded so far (for tests of the skipping).
  int blocks_decoded() const { return blocks_decoded_; }

 private:
  friend class SegmentPostings;
  explicit PostingCursor(absl::string_view list) : rest_(list) {}
  // Decodes the block at the front of rest_; false at the end or on damage.
  bool LoadBlock();

  absl::string_view rest_;  // Blocks after the current one.
  std::vector<Posting> block_;
  BlockImpact impact_;
  size_t index_ = 0;
  bool valid_ = false;
  absl::Status status_;
  int blocks_decoded_ = 0;
};

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_SEGMENT_POSTINGS_H_
