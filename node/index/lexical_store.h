// A shard replica's BM25 index as immutable segments (lexical_segment.h),
// derived from the log and never written in a commit's batch.
//
// Life of a change: after a commit, the replica applies the lexical documents
// of the claims it touched (Apply), which become a small in-memory segment
// and mark the claims' previous versions dead at the commit's LSN, before
// the write is acknowledged (read-your-writes). A background thread merges
// small in-memory segments, flushes those whose content is committed into a
// persisted segment, merges persisted segments by a tiered policy (dropping
// dead docs) at a bounded rate, and after each flush or merge replaces the
// manifest (persisted by the owner, atomically) naming the live persisted
// segments, their dead-docs bitmaps and the LSN up to which they cover the
// log. A reopened replica loads the manifest's segments and replays the log
// after that LSN.
//
// Readers Acquire a snapshot (the segment list and the LSN of the storage view
// they read), so one query sees one consistent set of segments; files of
// merged-away segments are deleted when the last snapshot holding them goes.
// Thread-safe.
#ifndef DASH_NODE_INDEX_LEXICAL_STORE_H_
#define DASH_NODE_INDEX_LEXICAL_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "node/index/lexical_index.h"
#include "node/index/lexical_segment.h"

namespace dash::index {

// A claim's lexical document as of `lsn`, or its absence (deleted).
struct LexicalChange {
  std::string tenant;
  std::string claim_id;
  uint64_t lsn = 0;
  std::optional<std::vector<std::string>> terms;  // Analyzed; nullopt: gone.
  std::optional<DocVector> vector;                // Its embedding, prepared.
};

struct LexicalStoreOptions {
  std::string dir;  // Segment files; created if missing.
  // The log positions known committed (only those are persisted) and of the
  // readable view (no reader takes an older view again): both only grow.
  std::function<uint64_t()> committed_lsn;
  std::function<uint64_t()> readable_lsn;
  // Stores the serialized LexicalManifest durably and atomically.
  std::function<absl::Status(const std::string&)> persist_manifest;
  bool background = true;    // Run the maintenance thread (tests drive it by hand).
  size_t flush_docs = 8192;  // In-memory docs that trigger a flush.
  absl::Duration flush_interval = absl::Seconds(1);  // The most an unflushed doc waits.
  size_t merge_factor = 4;                           // Segments of one size tier that get merged.
  double merge_dead_ratio = 0.3;                     // A segment this dead is rewritten alone.
  // Beyond this many persisted segments the smallest are merged (at least
  // two, no more than max_cap_merge_docs docs together, so that a big index
  // is not rewritten at every flush): a query searches every segment (an
  // HNSW walk and a posting-list pass each), and fewer segments are faster
  // to query. As Qdrant's merge optimizer does (a segment count, bounded by
  // a maximum segment size).
  size_t max_segments = 2;
  size_t max_cap_merge_docs = 131072;
  // Segments of fewer docs do not count toward max_segments and are left to
  // the size tiers: they are searched exactly (no graph walk) and cheaply,
  // while merging each flush into a big segment would rewrite it (and
  // rebuild its graph) at every flush under steady writes.
  size_t cap_min_docs = 2048;
  double merge_bytes_per_second = 64e6;  // Merge output rate limit.
  // Vectors: which persisted sections get an HNSW graph, and how searches
  // use it (VectorQuery).
  VectorGraphOptions graphs;
  int ef_search = 64;
  // A filter of fewer ids than this, or than this fraction of a section's
  // rows, is scanned exactly; a section smaller than the threshold too.
  size_t exact_threshold = 2000;
  double exact_fraction = 0.05;
};

struct LexicalStoreInfo {
  uint32_t segments = 0;  // Persisted.
  uint32_t memory_segments = 0;
  uint64_t bytes = 0;  // Of the persisted segments' files.
  uint64_t docs = 0;   // Every doc, current or not.
  uint64_t dead_docs = 0;
  uint64_t buffer_docs = 0;  // Docs in memory segments.
  uint64_t covered_lsn = 0;
  uint32_t merge_backlog = 0;  // Merges the policy would run now.
  uint64_t vectors = 0;        // Rows, current or not.
  uint32_t vector_graphs = 0;  // Sections searched through HNSW.
};

class LexicalStore {
 public:
  // Opens the index over `manifest` (a serialized LexicalManifest; empty:
  // no segments), loading every listed segment, and deletes files in the
  // directory that no manifest names. DATA_LOSS naming the file when a
  // segment is damaged, NOT_FOUND when one is missing, so that the owner
  // rebuilds the index instead of serving it.
  static absl::StatusOr<std::unique_ptr<LexicalStore>> Open(LexicalStoreOptions options,
                                                            absl::string_view manifest);
  ~LexicalStore();
  LexicalStore(const LexicalStore&) = delete;
  LexicalStore& operator=(const LexicalStore&) = delete;

  // The log position the persisted segments cover: a reopened store must be
  // given every change after it.
  uint64_t covered_lsn() const;

  // Applies the documents of the claims committed up to `content_lsn` (at
  // most one change per claim); each replaces the claim's current version
  // at its own lsn. Called for every commit, even with no changes.
  absl::Status Apply(std::vector<LexicalChange> changes, uint64_t content_lsn);
  // The log was truncated after `lsn`: forgets every change after it. True
  // when that leaves exactly the state at `lsn` (an Apply ended there): the
  // owner's next Apply at `lsn` (re-applying what the dropped records
  // touched) is then ignored. Otherwise `lsn` fell inside a group of records
  // applied at once (their docs carry the group's last LSN) or inside the
  // replay of a restart: `changed` receives the (tenant, claim id) of every
  // doc that changed, which the owner re-applies at `lsn` as storage now
  // holds them, with the claims the dropped records touched. Never below the
  // commit LSN, so never into persisted segments.
  bool TruncateAfter(uint64_t lsn, std::vector<std::pair<std::string, std::string>>* changed);

  struct Snapshot {
    std::shared_ptr<const std::vector<std::shared_ptr<LexicalSegment>>> segments;
    uint64_t lsn = 0;  // The storage view it pairs with.
  };
  // The current segments, paired with the view `take_view` takes (it returns
  // its LSN, or an error that is passed through); called under the store's
  // lock, so that no merge can drop a doc the view still sees.
  absl::StatusOr<Snapshot> Acquire(
      const std::function<absl::StatusOr<uint64_t>()>& take_view) const;

  // Documents, their total length and each term's document frequency among
  // `tenant`'s docs visible at the snapshot.
  absl::StatusOr<CorpusStats> Stats(const Snapshot& s, absl::string_view tenant,
                                    const std::vector<std::string>& terms) const;
  // The top `k` of `tenant`'s visible docs by BM25 (stats from the caller:
  // shard- or cluster-wide), ties by claim id; only `allowed` ones if set.
  absl::StatusOr<std::vector<ScoredClaim>> Search(
      const Snapshot& s, absl::string_view tenant, const std::vector<std::string>& terms, size_t k,
      const Bm25Params& params, const CorpusStats& stats,
      const absl::flat_hash_set<std::string>* allowed = nullptr) const;

  // The top `k` of `tenant`'s visible docs by vector score for prepared
  // query `q` (PrepareVector, the tenant's dimension), ties by claim id;
  // only `allowed` ones if set. Each segment is searched through its HNSW
  // graph or exactly, as `mode` and the filter's size decide; `used_exact`
  // is set when every segment was searched exactly. INTERNAL if FAISS fails.
  absl::StatusOr<std::vector<ScoredClaim>> SearchVectors(
      const Snapshot& s, absl::string_view tenant, const std::vector<float>& q, size_t k,
      SearchMode mode, const absl::flat_hash_set<std::string>* allowed = nullptr,
      bool* used_exact = nullptr) const;

  // Maintenance steps (the background thread runs them; tests call them).
  // Flush: persists every in-memory segment whose content is committed.
  absl::Status Flush();
  // One merge of in-memory or persisted segments if the policy wants one;
  // `written` receives the bytes it wrote (0: none was due).
  absl::Status MergeOnce(uint64_t* written);

  LexicalStoreInfo Info() const;

 private:
  using SegmentList = std::vector<std::shared_ptr<LexicalSegment>>;
  struct Loc {
    LexicalSegment* segment = nullptr;
    uint32_t doc = 0;
  };

  explicit LexicalStore(LexicalStoreOptions options) : options_(std::move(options)) {}
  void MaintenanceLoop();
  // Replaces `sources` (in the list) by `merged` (null: nothing), carrying
  // deaths that happened since it was built and re-pointing current docs.
  void Install(const SegmentList& sources, const std::shared_ptr<LexicalSegment>& merged,
               const std::vector<std::vector<uint32_t>>& remap) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the manifest of the persisted segments at `covered`.
  absl::Status WriteManifest(uint64_t covered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintenance_mu_);
  // Merges `sources` dropping docs dead at both the readable LSN and
  // `covered` (what the next manifest will claim), persisting the result
  // when `persist`. Returns null when nothing is left.
  absl::StatusOr<std::shared_ptr<LexicalSegment>> MergeSegments(
      const SegmentList& sources, bool persist, std::vector<std::vector<uint32_t>>* remap,
      uint64_t covered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintenance_mu_);
  // What the merge policy picks now (empty: nothing).
  SegmentList PickMemoryMerge(const SegmentList& list) const;
  SegmentList PickPersistedMerge(const SegmentList& list) const;
  std::shared_ptr<const SegmentList> segments() const;

  const LexicalStoreOptions options_;

  // Serializes flushes, merges and manifest writes.
  absl::Mutex maintenance_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t covered_lsn_ ABSL_GUARDED_BY(maintenance_mu_) = 0;

  mutable absl::Mutex mu_;
  // Persisted segments first, then in-memory ones in content-LSN order.
  std::shared_ptr<const SegmentList> segments_ ABSL_GUARDED_BY(mu_);
  // Each claim's current doc, keyed <tenant> \0 <claim id>.
  absl::flat_hash_map<std::string, Loc> current_ ABSL_GUARDED_BY(mu_);
  uint64_t applied_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  // The content LSNs of the Applies not yet covered (and the covered LSN):
  // the only points whose state the index holds exactly.
  std::set<uint64_t> boundaries_ ABSL_GUARDED_BY(mu_);
  // Set by a truncation that left the index exact: the next Apply, if at
  // this LSN, is the owner's redundant re-apply.
  uint64_t exact_at_ ABSL_GUARDED_BY(mu_) = kNever;
  std::atomic<uint64_t> covered_{0};
  absl::Time oldest_unflushed_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancel_{false};  // Set on close: stops graph builds.
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_LEXICAL_STORE_H_
