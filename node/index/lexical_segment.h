// One immutable segment of a shard replica's BM25 index: the lexical
// documents (claim text and evidence quotes, analyzed) of a set of claims of
// one or more tenants, as a SegmentPostings whose terms are keyed
// <tenant> \0 <term>, with a document table mapping segment-local doc ids to
// (tenant, claim id). Docs are ordered by (tenant, claim id), so a tenant's
// docs are one id range and doc order is claim-id order within a tenant.
//
// The postings never change; what does is each document's visibility, kept
// as the log positions (LSNs) between which it is the claim's current
// version: `born` (the commit that wrote it) and `died` (the commit that
// replaced or deleted it, kNever while it is current). A reader at LSN R sees
// a doc iff born <= R < died, so one set of segments serves every readable
// view (a leader's view lags its own log until a majority holds it).
//
// The claims' embeddings are the segment's vectors (segment_vectors.h),
// per tenant, searched under the same visibility.
//
// A segment lives in memory until it is written to four segment files
// (segment_format.md): <id>.dict, <id>.post (SegmentPostings bodies),
// <id>.docs (the document table) and <id>.vec (the vectors and, for big
// enough tenants, their HNSW graph, built just before). Once marked obsolete (merged away and no
// longer in the persisted manifest), its files are deleted when the last
// reader drops it.
//
// Thread-safety: everything is immutable but born/died, which are atomics
// set by the owning store under its own lock and read by any thread.
#ifndef DASH_NODE_INDEX_LEXICAL_SEGMENT_H_
#define DASH_NODE_INDEX_LEXICAL_SEGMENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "node/index/segment_postings.h"
#include "node/index/segment_vectors.h"

namespace dash::index {

inline constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// A claim's analyzed lexical document, current from `born`.
struct LexicalDocInput {
  std::string tenant;
  std::string claim_id;
  uint64_t born = 0;
  std::vector<std::string> terms;   // Analyzed, repeats counted.
  std::optional<DocVector> vector;  // The claim's embedding, if it has one.
};

// The dictionary key of `term` for `tenant`.
std::string TenantTermKey(absl::string_view tenant, absl::string_view term);

class LexicalSegment {
 public:
  struct TenantRange {
    std::string tenant;
    uint32_t first = 0;  // Docs [first, end).
    uint32_t end = 0;
    uint64_t total_length = 0;  // Of every doc of the range, visible or not.
  };

  // An in-memory segment of `docs` (any order; at most one per claim and
  // born). `content_lsn`: the log position whose state it reflects.
  // INVALID_ARGUMENT for a term the postings cannot hold.
  static absl::StatusOr<std::shared_ptr<LexicalSegment>> Build(std::vector<LexicalDocInput> docs,
                                                               uint64_t content_lsn);

  // One in-memory segment holding the docs of `sources` that `keep` admits,
  // with their born/died as they are now; `remap` (when set) receives, per
  // source, each old doc's new id (UINT32_MAX when dropped). DATA_LOSS if a
  // source's postings are damaged.
  static absl::StatusOr<std::shared_ptr<LexicalSegment>> Merge(
      const std::vector<std::shared_ptr<LexicalSegment>>& sources, uint64_t content_lsn,
      const std::function<bool(const LexicalSegment&, uint32_t)>& keep,
      std::vector<std::vector<uint32_t>>* remap);

  // Builds the HNSW graphs `graphs` asks for, then writes the four files
  // under `dir` (durably, the directory synced). Only before the segment is
  // shared with readers. ALREADY_EXISTS if they exist; UNAVAILABLE on an I/O
  // error; INTERNAL if FAISS fails.
  absl::Status Persist(const std::string& dir, const VectorGraphOptions& graphs = {});

  // Opens the segment `id` persisted under `dir`: every doc born at 0 and
  // dead (died 0) where `dead` (a bitmap, bit i of byte i/8) says so.
  // DATA_LOSS when a file is damaged or they disagree (naming the file),
  // NOT_FOUND when one is missing.
  static absl::StatusOr<std::shared_ptr<LexicalSegment>> Load(const std::string& dir,
                                                              const std::string& id,
                                                              absl::string_view dead);

  ~LexicalSegment();
  LexicalSegment(const LexicalSegment&) = delete;
  LexicalSegment& operator=(const LexicalSegment&) = delete;

  const std::string& id() const { return id_; }  // kSegmentIdBytes raw bytes.
  std::string hex_id() const;
  uint32_t doc_count() const { return static_cast<uint32_t>(claim_ids_.size()); }
  const SegmentPostings& postings() const { return *postings_; }
  uint64_t bytes() const { return bytes_; }  // Of its file bodies.
  const SegmentVectors& vectors() const { return vectors_; }
  bool persisted() const { return !dir_.empty(); }
  uint64_t content_lsn() const { return content_lsn_.load(std::memory_order_acquire); }

  const TenantRange* Range(absl::string_view tenant) const;
  const std::vector<TenantRange>& ranges() const { return ranges_; }
  const std::string& claim_id(uint32_t doc) const { return claim_ids_[doc]; }
  const std::string& tenant_of(uint32_t doc) const;
  // The docs of `claim_id` in range `r`, [first, second) (every version the
  // segment holds).
  std::pair<uint32_t, uint32_t> DocsOf(const TenantRange& r, absl::string_view claim_id) const;

  uint64_t born(uint32_t doc) const { return born_[doc].load(std::memory_order_acquire); }
  uint64_t died(uint32_t doc) const { return died_[doc].load(std::memory_order_acquire); }
  bool VisibleAt(uint32_t doc, uint64_t lsn) const { return born(doc) <= lsn && lsn < died(doc); }
  // True when every doc is visible at `lsn` (no per-doc checks needed).
  bool AllVisibleAt(uint64_t lsn) const {
    return max_born_.load(std::memory_order_acquire) <= lsn &&
           min_died_.load(std::memory_order_acquire) > lsn;
  }
  // The lowest born of its docs that can be seen (kNever when none).
  uint64_t min_born() const { return min_born_.load(std::memory_order_acquire); }
  // Docs not current (died != kNever) or never to be seen (born kNever).
  uint32_t dead_count() const;

  // Owner-only mutations (under the owner's lock).
  void Kill(uint32_t doc, uint64_t lsn);
  // Sets died as is (a merge carrying its sources' state); RecomputeBounds after.
  void SetDied(uint32_t doc, uint64_t lsn) { died_[doc].store(lsn, std::memory_order_release); }
  void RecomputeBounds();
  // Undoes every change after `lsn` (a log truncation): docs born after it
  // are never seen, deaths after it are undone, the content LSN is capped.
  // Returns the docs it changed.
  std::vector<uint32_t> TruncateAfter(uint64_t lsn);
  void MarkObsolete() { obsolete_.store(true); }

 private:
  LexicalSegment() = default;
  // Builds the doc table from sorted docs; sets ranges_, claim_ids_, arrays.
  void InitDocs(const std::vector<const LexicalDocInput*>& sorted);
  // After InitDocs (and the deaths): the bodies and postings from `writer`.
  absl::Status Seal(SegmentPostingsWriter& writer, uint64_t content_lsn);

  std::string id_;
  std::string dir_;                                // Where its files are; empty while in memory.
  std::optional<SegmentPostings> postings_;        // Set once built or loaded.
  std::string dict_body_, post_body_, docs_body_;  // Kept until persisted.
  SegmentVectors vectors_;
  uint64_t bytes_ = 0;
  std::vector<TenantRange> ranges_;  // Tenant order.
  std::vector<std::string> claim_ids_;
  std::unique_ptr<std::atomic<uint64_t>[]> born_;
  std::unique_ptr<std::atomic<uint64_t>[]> died_;
  std::atomic<uint64_t> max_born_{0};
  std::atomic<uint64_t> min_born_{kNever};
  std::atomic<uint64_t> min_died_{kNever};
  std::atomic<uint64_t> content_lsn_{0};
  std::atomic<bool> obsolete_{false};
};

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_LEXICAL_SEGMENT_H_
