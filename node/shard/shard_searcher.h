// The retrieval side of one shard replica: BM25 statistics and the lexical
// and vector legs of a query, run on the replica's readable view
// (ReadViews), and the hits' fetch with evidence chosen by stance mode.
//
// It owns the in-memory caches of stored data that retrieval needs: the
// per-tenant vector indexes (built from stored embeddings at open, refreshed
// after each commit before it is acknowledged) and the prefilter cache of
// filter results (invalidated when a view touching the tenant becomes
// readable). Thread-safe.
#ifndef DASH_NODE_SHARD_SHARD_SEARCHER_H_
#define DASH_NODE_SHARD_SHARD_SEARCHER_H_

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
#include "node/index/prefilter_cache.h"
#include "node/index/vector_index.h"
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

  // Builds the vector indexes from every embedding stored in `r`. DATA_LOSS
  // when a tenant has embeddings but no stored dimension.
  absl::Status LoadVectors(const storage::Reader& r);
  // After a commit: re-reads the (tenant, claim id) pairs it touched from
  // `latest` into the vector indexes and invalidates their tenants' filters.
  void Refresh(const storage::Reader& latest,
               const std::vector<std::pair<std::string, std::string>>& touched);
  // The readable view moved past commits that touched `tenants`.
  void InvalidateFilters(const std::set<std::string>& tenants);

  // This replica's BM25 corpus statistics for analyzed query `terms`.
  absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) const;
  // Runs the lexical and vector legs of a query on one view, each restricted
  // to the claims that satisfy the filter (through the prefilter cache).
  // INVALID_ARGUMENT if the embedding does not fit the tenant's dimension (or
  // is a zero vector under cosine); UNAVAILABLE while no view is readable.
  absl::StatusOr<query::LegResult> RunLegs(absl::string_view tenant,
                                           const query::LegRequest& request) const;
  // One hit with its evidence as `options` select it; every returned quote is
  // checked against its stored hash. NOT_FOUND if the claim is gone.
  absl::StatusOr<v1::QueryHit> FetchHit(absl::string_view tenant, absl::string_view claim_id,
                                        const query::FetchOptions& options) const;

  index::PrefilterCacheStats FilterCacheStats() const { return filter_cache_.stats(); }

 private:
  // Claims of `tenant` satisfying the filter (and having support, if asked).
  absl::StatusOr<std::shared_ptr<const index::IdSet>> Allowed(const storage::Reader& r,
                                                              absl::string_view tenant,
                                                              const query::LegRequest& request,
                                                              uint64_t generation) const;
  index::VectorIndex* VectorsFor(const std::string& tenant) const;

  const uint32_t shard_id_;
  const ReadViews* const views_;
  const ClaimReader* const reader_;

  mutable index::PrefilterCache filter_cache_;  // Thread-safe itself.
  mutable absl::Mutex vectors_mu_;
  // Entries are never removed, so a pointer handed out stays valid.
  absl::flat_hash_map<std::string, std::unique_ptr<index::VectorIndex>> vectors_
      ABSL_GUARDED_BY(vectors_mu_);
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_SHARD_SEARCHER_H_
