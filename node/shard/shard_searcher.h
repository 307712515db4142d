// The retrieval side of one shard replica: BM25 statistics and the lexical
// and vector legs of a query, run on the replica's readable view
// (ReadViews), and the hits' fetch with evidence chosen by stance mode.
//
// It owns what retrieval derives from stored data: the index (LexicalStore:
// segments holding each claim's BM25 document and embedding, derived from
// the log, loaded at open and brought up to the log's end, refreshed after
// each commit before it is acknowledged) and the prefilter cache of filter
// results (invalidated when a view touching the tenant becomes readable).
// Thread-safe.
#ifndef DASH_NODE_SHARD_SHARD_SEARCHER_H_
#define DASH_NODE_SHARD_SHARD_SEARCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "node/index/lexical_index.h"
#include "node/index/lexical_store.h"
#include "node/index/prefilter_cache.h"
#include "node/index/segment_vectors.h"
#include "node/shard/claim_reader.h"
#include "node/shard/read_views.h"
#include "query/shard_target.h"

namespace dash::shard {

class ShardSearcher {
 public:
  // `views` and `reader` must outlive the searcher.
  ShardSearcher(uint32_t shard_id, const ReadViews* views, const ClaimReader* reader)
      : shard_id_(shard_id), views_(views), reader_(reader) {}

  ShardSearcher(const ShardSearcher&) = delete;
  ShardSearcher& operator=(const ShardSearcher&) = delete;

  // A tenant's vector settings (dim 0: it has no vectors yet).
  struct VectorSpec {
    uint32_t dim = 0;
    index::Metric metric = index::Metric::kCosine;
  };

  struct LexicalOpen {
    storage::Engine* engine = nullptr;  // The replica's; holds the manifest.
    std::string dir;                    // For the segment files.
    uint64_t last_lsn = 0;              // The log's end.
    uint64_t log_start_lsn = 1;         // Its first record still held.
    std::function<uint64_t()> committed_lsn;
    bool background = true;
    size_t vector_graph_min_rows = 2000;
  };
  // Opens the index (BM25 and vectors, one set of segments): the manifest's
  // segments, then the log after the LSN they cover. A damaged or missing segment, or a log that no
  // longer holds the records after it, is not served: the index is rebuilt from the stored claims
  // instead, which is logged and kept in lexical_status().
  absl::Status OpenLexical(const LexicalOpen& open);
  // After a commit that brought the log to `lsn`: re-reads the (tenant,
  // claim id) pairs it touched from `latest` into the index (terms and
  // embedding) and invalidates their tenants' filters.
  // `ahead`: texts of the commit's batches already analyzed by their writers.
  void Refresh(const storage::Reader& latest,
               const std::vector<std::pair<std::string, std::string>>& touched, uint64_t lsn,
               const std::vector<const index::AnalyzedTexts*>& ahead = {});
  // The log was truncated after `lsn`: returns the claims whose index
  // entries changed, which the caller Refreshes at `lsn` (with those the
  // dropped records touched; the BM25 index ignores that Refresh when the
  // truncation left it exact).
  std::vector<std::pair<std::string, std::string>> TruncateIndex(uint64_t lsn);
  // The readable view moved past commits that changed `touched` (tenant ->
  // claims; an empty set: every claim of the tenant).
  void InvalidateFilters(const std::map<std::string, std::set<std::string>>& touched);

  // This replica's BM25 corpus statistics for analyzed query `terms`.
  absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) const;
  // Runs the lexical and vector legs of a query on one view, each restricted
  // to the claims that satisfy the filter (through the prefilter cache).
  // INVALID_ARGUMENT if the embedding does not fit the tenant's dimension (or
  // is a zero vector under cosine); UNAVAILABLE while no view is readable.
  absl::StatusOr<query::LegResult> RunLegs(absl::string_view tenant,
                                           const query::LegRequest& request) const;
  // The hits of `claim_ids` with their evidence as `options` select it, all
  // read from one view (and stamped with its token); every returned quote is
  // checked against its stored hash. A claim that is gone is left out.
  absl::StatusOr<std::map<std::string, v1::QueryHit>> FetchHits(
      absl::string_view tenant, const std::vector<std::string>& claim_ids,
      const query::FetchOptions& options) const;

  index::PrefilterCacheStats FilterCacheStats() const { return filter_cache_.stats(); }
  index::LexicalStoreInfo LexicalInfo() const { return lexical_->Info(); }
  // Empty, or why the BM25 index was rebuilt at open.
  const std::string& lexical_status() const { return lexical_status_; }
  // Maintenance by hand (tests): flush, then run the merges that are due.
  absl::Status FlushLexical();

 private:
  // Claims of `tenant` satisfying the filter (and having support, if asked).
  absl::StatusOr<std::shared_ptr<const index::IdSet>> Allowed(const storage::Reader& r,
                                                              absl::string_view tenant,
                                                              const query::LegRequest& request,
                                                              uint64_t generation) const;
  struct Cursors {
    std::unique_ptr<storage::Cursor> edges, evidence;
  };
  // One hit of FetchHits; NOT_FOUND if the claim is gone. `cursors` are of
  // `snapshot`.
  absl::StatusOr<v1::QueryHit> FetchHit(const storage::Reader& snapshot, absl::string_view tenant,
                                        absl::string_view claim_id,
                                        const query::FetchOptions& options,
                                        const v1::CommitToken& read_at, Cursors* cursors) const;
  // What reading many claims' changes from one reader shares: tenants'
  // vector settings and one evidence cursor.
  struct ReadContext {
    std::map<std::string, VectorSpec> specs;
    std::unique_ptr<storage::Cursor> evidence;
  };
  // The index change of a claim as stored in `r` (terms and prepared
  // vector); `ctx` is used with `r` only. DATA_LOSS when a record does not
  // parse, or an embedding does not fit its tenant's stored dimension (or the
  // tenant has none).
  static absl::StatusOr<index::LexicalChange> ReadChange(
      const storage::Reader& r, const std::string& tenant, const std::string& claim_id,
      uint64_t lsn, const std::vector<const index::AnalyzedTexts*>& ahead, ReadContext* ctx);
  // The readable view and the BM25 segments that go with it.
  absl::StatusOr<index::LexicalStore::Snapshot> AcquireLexical(
      std::shared_ptr<const storage::Reader>* view) const;
  // Re-indexes every stored claim (lexical_ holds nothing yet).
  absl::Status RebuildLexical(storage::Engine& engine, uint64_t last_lsn);
  // Replays the log's records (covered, last_lsn] into lexical_.
  absl::Status ReplayLexical(storage::Engine& engine, uint64_t covered, uint64_t last_lsn);

  const uint32_t shard_id_;
  const ReadViews* const views_;
  const ClaimReader* const reader_;

  // Set by OpenLexical, before any other use.
  std::unique_ptr<index::LexicalStore> lexical_;
  std::string lexical_status_;
  mutable index::PrefilterCache filter_cache_;  // Thread-safe itself.
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_SHARD_SEARCHER_H_
