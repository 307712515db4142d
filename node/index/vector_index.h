// The in-memory vector index of one tenant's claim embeddings on one shard
// replica: FAISS HNSW for approximate search, brute force for exact search,
// and a planner that picks between them per query.
//
// It is a cache. The vectors live durably elsewhere (RocksDB); the owner fills
// the index at start-up (Upsert per stored vector, or UpsertBatch, which builds
// the graph on several threads) and keeps it current after each commit. Nothing
// here is persisted.
//
// Filtering happens inside the search, never after it: the ANN path hands FAISS
// an IDSelector, and a filter that lets few vectors through goes to the exact
// path. Whenever at least k vectors pass the filter, exactly k hits come back.
//
// HNSW cannot delete. Remove and replace leave a tombstone, which every search
// excludes; once tombstones exceed `rebuild_tombstone_fraction` of the graph's
// entries the graph is rebuilt from the live vectors. The float vectors are kept
// once, in the FAISS flat storage, for exact search and rebuilds.
//
// Thread-safe. Searches run concurrently with each other (shared lock); Upsert,
// UpsertBatch and Remove are exclusive. A rebuild builds the new graph while
// holding the lock shared, so searches continue meanwhile, and only the swap is
// exclusive. FAISS's OpenMP threads are used only to build graphs
// (`build_threads`); a search runs wholly on the calling thread.
#ifndef DASH_NODE_INDEX_VECTOR_INDEX_H_
#define DASH_NODE_INDEX_VECTOR_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace faiss {
struct IndexHNSWFlat;
}  // namespace faiss

namespace dash::index {

// How a hit's score is computed; in every case higher is better.
enum class Metric {
  kCosine,  // cosine similarity; vectors are normalized on the way in
  kDot,     // inner product
  kL2,      // NEGATIVE SQUARED Euclidean distance (0 for an identical vector)
};

struct VectorIndexOptions {
  int hnsw_m = 32;           // HNSW links per node (2*M on the bottom layer).
  int ef_construction = 64;  // Candidate list size while building.
  int ef_search = 64;        // Candidate list size while searching (at least k is used).
  // kAuto searches exactly when the filter's ids (all live vectors when there
  // is no filter) number fewer than `exact_threshold`, or fewer than
  // `exact_fraction` of the live vectors. Ids without a vector count too: a
  // filter made mostly of them may try ANN first and then fall back to exact.
  size_t exact_threshold = 2000;
  double exact_fraction = 0.05;
  // The graph is rebuilt when tombstones exceed this fraction of its entries.
  double rebuild_tombstone_fraction = 0.2;
  // OpenMP threads FAISS may use to build a graph (UpsertBatch, rebuilds). The
  // setting is applied to the calling thread only and restored afterwards.
  int build_threads = 1;
};

struct VectorHit {
  std::string claim_id;
  double score = 0;  // See Metric. Computed in double from the stored floats.
};

enum class SearchMode {
  kAuto,         // Exact when the filter is selective (see VectorIndexOptions), else ANN.
  kExact,        // Brute force over the allowed vectors.
  kApproximate,  // HNSW; still falls back to exact if it finds too few hits.
};

struct VectorIndexStats {
  size_t live = 0;        // == size()
  size_t tombstones = 0;  // Graph entries that are removed or replaced.
  uint64_t rebuilds = 0;  // Graph rebuilds since construction.
};

class VectorIndex {
 public:
  // REQUIRES: dim > 0, options.hnsw_m > 1.
  VectorIndex(uint32_t dim, Metric metric, const VectorIndexOptions& options = {});
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  // Sets claim_id's vector (v[0..n)), replacing any previous one; replacing a
  // vector with an identical one is a no-op. INVALID_ARGUMENT if n != dim(), a
  // component is not finite, or (kCosine) the vector is zero. INTERNAL if FAISS
  // fails (out of memory); the claim then keeps its previous vector, if any.
  absl::Status Upsert(const std::string& claim_id, const float* v, size_t n);

  // Upsert for many vectors at once: `vectors` holds claim_ids.size() * dim()
  // floats, row i being claim_ids[i]'s; a later row wins over an earlier one
  // with the same id. All rows are validated before any is applied (a bad row
  // fails the whole call with INVALID_ARGUMENT and changes nothing). The graph
  // is extended in one FAISS call on `build_threads` threads: the way to load
  // the index at start-up.
  absl::Status UpsertBatch(const std::vector<std::string>& claim_ids, const float* vectors,
                           size_t n);

  // Removes claim_id's vector; no-op if it has none.
  //
  // The Upsert, UpsertBatch or Remove that takes tombstones past
  // `rebuild_tombstone_fraction` also rebuilds the graph before returning
  // (HNSW build time for the live vectors; searches continue meanwhile, other
  // writers wait).
  void Remove(const std::string& claim_id);

  // Live vectors (claims that have one).
  size_t size() const;
  uint32_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  VectorIndexStats stats() const;

  // Changes ef_search for subsequent searches (a recall/latency knob, no rebuild).
  void set_ef_search(int ef_search);

  // The top k vectors for query q[0..n) among those whose claim_id is in
  // `*allowed` (every vector if allowed == nullptr; ids in `allowed` that have
  // no vector are ignored). Returns min(k, number of allowed vectors) hits,
  // sorted by score descending, ties by claim_id ascending; every hit is
  // allowed and live. The exact path returns the true top k (ties at the k-th
  // place go to the smaller claim_id); the ANN path returns approximately the
  // top k: the best, by the same exact score and tie rule, of the max(k,
  // ef_search) candidates HNSW found. If `used_exact` is not null it is set to
  // whether the exact path
  // produced the answer (the planner's choice, or a fallback after the ANN path
  // found fewer than min(k, allowed) hits). INVALID_ARGUMENT if n != dim(), a
  // component is not finite, or (kCosine) q is zero. `allowed` is only read
  // during the call.
  absl::StatusOr<std::vector<VectorHit>> Search(const float* q, size_t n, size_t k,
                                                const absl::flat_hash_set<std::string>* allowed,
                                                SearchMode mode = SearchMode::kAuto,
                                                bool* used_exact = nullptr) const;

 private:
  friend double MeasureRecallAtK(const VectorIndex&, const std::vector<std::vector<float>>&,
                                 size_t);
  struct Graph;  // The FAISS index plus the per-slot bookkeeping, see .cc.

  // Checks v's size and values and returns it as stored (normalized for kCosine).
  absl::StatusOr<std::vector<float>> Prepare(const float* v, size_t n) const;
  absl::Status AppendLocked(const std::vector<std::string>& ids, const float* rows, size_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_, mu_);
  void TombstoneLocked(const std::string& claim_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_, mu_);
  bool NeedsRebuildLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Builds a compacted graph under a shared lock, then swaps it in.
  void Rebuild() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // The exact top k among `slots` (graph slots of live vectors; null = every
  // live vector). `q` is a prepared query.
  std::vector<VectorHit> ExactLocked(const float* q, size_t k, const std::vector<int>* slots) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // HNSW's top k among the live vectors whose claim is in `allowed` (null = no
  // filter); may return fewer than k. No fallback.
  absl::StatusOr<std::vector<VectorHit>> AnnLocked(
      const float* q, size_t k, const absl::flat_hash_set<std::string>* allowed) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  double ScoreLocked(const float* q, int slot) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::vector<VectorHit> ToHitsLocked(std::vector<std::pair<double, int>> scored) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const uint32_t dim_;
  const Metric metric_;
  const VectorIndexOptions options_;

  // Serializes writers (Upsert, UpsertBatch, Remove): a writer holding it may
  // read the state below under a shared mu_ and know it cannot change.
  absl::Mutex writer_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::unique_ptr<Graph> graph_ ABSL_GUARDED_BY(mu_);  // Never null.
  int ef_search_ ABSL_GUARDED_BY(mu_);
  uint64_t rebuilds_ ABSL_GUARDED_BY(mu_) = 0;
};

// Mean recall@k of the index's ANN path against its exact path over `queries`
// (unfiltered, no fallback): |ANN top k ∩ exact top k| / |exact top k|. Returns
// 1 for an empty index or no queries. Queries of the wrong size are skipped.
double MeasureRecallAtK(const VectorIndex& index, const std::vector<std::vector<float>>& queries,
                        size_t k);

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_VECTOR_INDEX_H_
