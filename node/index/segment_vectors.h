// The claim embeddings of one index segment (lexical_segment.h): per tenant,
// a section holding the vectors of the segment's docs that have one, as a
// FAISS index whose row r is the vector of doc `docs[r]`. A section is an
// IndexFlat (exact search only) until BuildGraphs gives it an HNSW graph
// (IndexHNSWFlat, whose flat storage still holds the rows), which a segment
// does before it is persisted when the section is big enough. Persisted as
// the segment's VECS file (segment_format.md) with FAISS's own index writer,
// so a reopened segment reads its graph instead of rebuilding it.
//
// Search never looks past the caller's `admit(doc)`: visibility (born/died)
// and filters are applied inside the HNSW walk through an IDSelector and in
// the exact scan. Scores are computed in double from the stored floats, so
// the exact path and the ANN path rank the same candidates identically.
//
// Immutable once built (BuildGraphs happens before the segment is shared);
// searches are thread-safe and run on the calling thread only.
#ifndef DASH_NODE_INDEX_SEGMENT_VECTORS_H_
#define DASH_NODE_INDEX_SEGMENT_VECTORS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace faiss {
struct Index;
}  // namespace faiss

namespace dash::index {

// How a hit's score is computed; in every case higher is better.
enum class Metric {
  kCosine,  // cosine similarity; vectors are normalized on the way in
  kDot,     // inner product
  kL2,      // NEGATIVE SQUARED Euclidean distance (0 for an identical vector)
};

enum class SearchMode {
  kAuto,         // Exact when the section is small (see VectorQuery), else ANN.
  kExact,        // Brute force over the admitted vectors.
  kApproximate,  // HNSW; still falls back to exact if it finds too few hits.
};

// A vector as stored: validated and, under kCosine, normalized (PrepareVector).
struct DocVector {
  Metric metric = Metric::kCosine;
  std::vector<float> values;
};

// Checks v[0..n) (n == dim, finite, not zero under cosine) and returns it as
// stored. INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<std::vector<float>> PrepareVector(Metric metric, uint32_t dim, const float* v,
                                                 size_t n);

// The score of stored row `x` for prepared query `q` (higher is better; see
// Metric), in double.
double VectorScore(Metric metric, const float* q, const float* x, uint32_t dim);

struct VectorGraphOptions {
  size_t min_rows = 2000;  // Smaller sections stay exact-only.
  int hnsw_m = 32;
  int ef_construction = 64;
  int build_threads = 1;  // OpenMP threads FAISS may use while building.
  // When set and true, a build stops between chunks of rows (CANCELLED): a
  // closing store need not wait for a big graph.
  const std::atomic<bool>* cancel = nullptr;
};

struct VectorQuery {
  const float* q = nullptr;  // Prepared, the section's dimension.
  size_t k = 0;
  int ef_search = 64;
  SearchMode mode = SearchMode::kAuto;
  // kAuto goes exact when the section has fewer rows than this (a selective
  // filter is the caller's to resolve into `candidates`).
  size_t exact_threshold = 2000;
};

class SegmentVectors {
 public:
  struct Section {
    std::string tenant;
    uint32_t dim = 0;
    Metric metric = Metric::kCosine;
    std::vector<uint32_t> docs;  // Row -> doc, ascending.
    std::unique_ptr<faiss::Index> index;
    bool graph = false;         // index is an IndexHNSWFlat.
    const float* xb = nullptr;  // The rows, in the index's flat storage.

    size_t rows() const { return docs.size(); }
    const float* row(size_t r) const { return xb + r * dim; }
    // The row of `doc`, or -1.
    int64_t RowOf(uint32_t doc) const;
  };

  SegmentVectors();
  ~SegmentVectors();
  SegmentVectors(SegmentVectors&&) noexcept;
  SegmentVectors& operator=(SegmentVectors&&) noexcept;

  // Building: docs in ascending order, tenants in ascending order. A vector
  // whose dimension or metric differs from its section's first is dropped
  // (false). Finish before searching.
  bool Add(uint32_t doc, absl::string_view tenant, Metric metric, const float* values, size_t n);
  bool Add(uint32_t doc, absl::string_view tenant, const DocVector& v) {
    return Add(doc, tenant, v.metric, v.values.data(), v.values.size());
  }
  // INTERNAL if FAISS fails (out of memory).
  absl::Status Finish();

  // Gives every section of at least options.min_rows rows an HNSW graph.
  // INTERNAL if FAISS fails; CANCELLED (sections unchanged) when
  // options.cancel turns true meanwhile.
  absl::Status BuildGraphs(const VectorGraphOptions& options);

  // The VECS body, and back. Parse: DATA_LOSS naming `name` when malformed.
  absl::StatusOr<std::string> Serialize() const;
  // The same body as pieces to write one after the other, so that a big
  // section's FAISS index is held once, not copied into a joined body.
  absl::Status SerializeParts(std::vector<std::string>* pieces) const;
  static absl::StatusOr<SegmentVectors> Parse(absl::string_view body, absl::string_view name,
                                              uint32_t doc_count);

  const Section* Find(absl::string_view tenant) const;
  const std::vector<Section>& sections() const { return sections_; }
  size_t rows() const;
  size_t graphs() const;

  // The top q.k admitted rows of `section` as (score, doc), best first (ties
  // in doc order). `candidates` (when set): the only docs that may be
  // admitted, ascending — a selective filter resolved by the caller, which
  // is then scanned exactly. `used_exact` is set when the exact path
  // answered. INTERNAL if FAISS fails.
  static absl::StatusOr<std::vector<std::pair<double, uint32_t>>> Search(
      const Section& section, const VectorQuery& q, const std::function<bool(uint32_t)>& admit,
      const std::vector<uint32_t>* candidates, bool* used_exact);

 private:
  std::vector<Section> sections_;
  std::vector<float> pending_;  // Rows of the section being built.
};

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_SEGMENT_VECTORS_H_
