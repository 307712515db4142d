#include "node/index/segment_vectors.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/utils/Heap.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dash::index {
namespace {

using FaissId = faiss::Index::idx_t;

faiss::MetricType FaissMetric(Metric m) {
  return m == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// Sets the calling thread's OpenMP team size and restores it on destruction.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : previous_(omp_get_max_threads()) {
    omp_set_num_threads(std::max(1, n));
  }
  ~OmpThreads() { omp_set_num_threads(previous_); }

 private:
  const int previous_;
};

// Float kernels over 16 lanes (four independent 4-float accumulators, GCC
// vector extensions: SSE2 on any x86-64, NEON on ARM). Debian's FAISS is
// built for baseline x86-64, where its own distances are the scalar
// reference loops (fvec_inner_product_ref: a third of a profile of graph
// builds and searches).
using V4 = float __attribute__((vector_size(16)));

inline V4 Load(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float Sum(V4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

float Dot(const float* a, const float* b, size_t d) {
  V4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 += Load(a + i) * Load(b + i);
    s1 += Load(a + i + 4) * Load(b + i + 4);
    s2 += Load(a + i + 8) * Load(b + i + 8);
    s3 += Load(a + i + 12) * Load(b + i + 12);
  }
  float r = Sum((s0 + s1) + (s2 + s3));
  for (; i < d; ++i) r += a[i] * b[i];
  return r;
}

float L2Squared(const float* a, const float* b, size_t d) {
  V4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const V4 d0 = Load(a + i) - Load(b + i), d1 = Load(a + i + 4) - Load(b + i + 4);
    const V4 d2 = Load(a + i + 8) - Load(b + i + 8), d3 = Load(a + i + 12) - Load(b + i + 12);
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  float r = Sum((s0 + s1) + (s2 + s3));
  for (; i < d; ++i) r += (a[i] - b[i]) * (a[i] - b[i]);
  return r;
}

// FAISS's flat distances with the kernels above: the inner product or the
// squared L2 distance (what FAISS's own flat computers return), negated
// when `negate` (HNSW treats smaller as closer; FAISS wraps inner-product
// storage the same way while building, so searches must see that order).
class FastFlatDistance : public faiss::FlatCodesDistanceComputer {
 public:
  FastFlatDistance(const float* rows, size_t dim, bool ip, bool negate)
      : faiss::FlatCodesDistanceComputer(reinterpret_cast<const uint8_t*>(rows),
                                         dim * sizeof(float)),
        rows_(rows),
        dim_(dim),
        ip_(ip),
        sign_(negate ? -1.0f : 1.0f) {}
  void set_query(const float* x) override { q_ = x; }
  float distance_to_code(const uint8_t* code) override {
    return Between(q_, reinterpret_cast<const float*>(code));
  }
  float symmetric_dis(idx_t i, idx_t j) override {
    return Between(rows_ + i * dim_, rows_ + j * dim_);
  }

 private:
  float Between(const float* a, const float* b) const {
    return sign_ * (ip_ ? Dot(a, b, dim_) : L2Squared(a, b, dim_));
  }

  const float* rows_;
  size_t dim_;
  bool ip_;
  float sign_;
  const float* q_ = nullptr;
};

// The flat storage of a graph being built: FAISS's IndexFlat, but with the
// fast distances. Written and read back as a plain IndexFlat.
struct FastIndexFlat : faiss::IndexFlat {
  FastIndexFlat(FaissId d, faiss::MetricType metric) : faiss::IndexFlat(d, metric) {}
  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override {
    return new FastFlatDistance(get_xb(), static_cast<size_t>(d),
                                metric_type == faiss::METRIC_INNER_PRODUCT, /*negate=*/false);
  }
};

// Admits the rows whose doc the caller admits; FAISS asks only about the
// nodes its walk reaches.
class RowSelector : public faiss::IDSelector {
 public:
  RowSelector(const std::vector<uint32_t>* docs, const std::function<bool(uint32_t)>* admit)
      : docs_(docs), admit_(admit) {}
  bool is_member(idx_t row) const override {
    return row >= 0 && static_cast<size_t>(row) < docs_->size() &&
           (*admit_ == nullptr || (*admit_)((*docs_)[row]));
  }

 private:
  const std::vector<uint32_t>* docs_;
  const std::function<bool(uint32_t)>* admit_;
};

class StringWriter : public faiss::IOWriter {
 public:
  explicit StringWriter(std::string* out) : out_(out) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    out_->append(static_cast<const char*>(ptr), size * nitems);
    return nitems;
  }

 private:
  std::string* out_;
};

class StringReader : public faiss::IOReader {
 public:
  explicit StringReader(absl::string_view in) : in_(in) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0) return nitems;
    const size_t n = std::min(nitems, (in_.size() - pos_) / size);
    std::memcpy(ptr, in_.data() + pos_, n * size);
    pos_ += n * size;
    return n;
  }
  size_t pos() const { return pos_; }

 private:
  absl::string_view in_;
  size_t pos_ = 0;
};

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}

void PutU64(std::string* out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v));
  PutU32(out, static_cast<uint32_t>(v >> 32));
}

// Reads little-endian integers and byte strings off a body.
class BodyReader {
 public:
  explicit BodyReader(absl::string_view in) : in_(in) {}
  bool U32(uint32_t* v) {
    if (in_.size() - pos_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= uint32_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    uint32_t lo = 0, hi = 0;
    if (!U32(&lo) || !U32(&hi)) return false;
    *v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  bool Bytes(uint64_t n, absl::string_view* out) {
    if (in_.size() - pos_ < n) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  absl::string_view in_;
  size_t pos_ = 0;
};

const faiss::IndexFlat* FlatOf(const faiss::Index* index, bool graph) {
  if (graph) {
    const auto* hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(index);
    return hnsw == nullptr ? nullptr : dynamic_cast<const faiss::IndexFlat*>(hnsw->storage);
  }
  return dynamic_cast<const faiss::IndexFlat*>(index);
}

using Scored = std::pair<double, uint32_t>;  // (score, doc)

// `a` ranks before `b`: higher score, then lower doc.
bool Better(const Scored& a, const Scored& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

// The top k of `rows` (or of every row when null) that pass `admit`.
std::vector<Scored> Exact(const SegmentVectors::Section& s, const float* q, size_t k,
                          const std::function<bool(uint32_t)>& admit,
                          const std::vector<size_t>* rows) {
  std::vector<Scored> top;
  if (k == 0) return top;
  top.reserve(k + 1);
  auto consider = [&](size_t r) {
    const uint32_t doc = s.docs[r];
    if (admit != nullptr && !admit(doc)) return;
    const Scored c{VectorScore(s.metric, q, s.row(r), s.dim), doc};
    if (top.size() < k) {
      top.push_back(c);
      std::push_heap(top.begin(), top.end(), Better);
    } else if (Better(c, top.front())) {
      std::pop_heap(top.begin(), top.end(), Better);
      top.back() = c;
      std::push_heap(top.begin(), top.end(), Better);
    }
  };
  if (rows != nullptr) {
    for (size_t r : *rows) consider(r);
  } else {
    for (size_t r = 0; r < s.rows(); ++r) consider(r);
  }
  std::sort(top.begin(), top.end(), Better);
  return top;
}

}  // namespace

absl::StatusOr<std::vector<float>> PrepareVector(Metric metric, uint32_t dim, const float* v,
                                                 size_t n) {
  if (n != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("vector has ", n, " components; the dimension is ", dim));
  }
  if (v == nullptr && n > 0) return absl::InvalidArgumentError("vector is null");
  double norm2 = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(absl::StrCat("vector component ", i, " is not finite"));
    }
    norm2 += static_cast<double>(v[i]) * v[i];
  }
  std::vector<float> out(v, v + n);
  if (metric == Metric::kCosine) {
    if (norm2 == 0) return absl::InvalidArgumentError("zero vector under the cosine metric");
    const double inv = 1.0 / std::sqrt(norm2);
    for (float& x : out) x = static_cast<float>(x * inv);
  }
  return out;
}

double VectorScore(Metric metric, const float* q, const float* x, uint32_t dim) {
  // Four accumulators: independent chains the compiler can overlap.
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  if (metric == Metric::kL2) {
    for (; i + 4 <= dim; i += 4) {
      const double d0 = double{q[i]} - x[i], d1 = double{q[i + 1]} - x[i + 1];
      const double d2 = double{q[i + 2]} - x[i + 2], d3 = double{q[i + 3]} - x[i + 3];
      a0 += d0 * d0;
      a1 += d1 * d1;
      a2 += d2 * d2;
      a3 += d3 * d3;
    }
    for (; i < dim; ++i) {
      const double d = double{q[i]} - x[i];
      a0 += d * d;
    }
    return -((a0 + a1) + (a2 + a3));
  }
  for (; i + 4 <= dim; i += 4) {
    a0 += double{q[i]} * x[i];
    a1 += double{q[i + 1]} * x[i + 1];
    a2 += double{q[i + 2]} * x[i + 2];
    a3 += double{q[i + 3]} * x[i + 3];
  }
  for (; i < dim; ++i) a0 += double{q[i]} * x[i];
  return (a0 + a1) + (a2 + a3);
}

int64_t SegmentVectors::Section::RowOf(uint32_t doc) const {
  auto it = std::lower_bound(docs.begin(), docs.end(), doc);
  return it != docs.end() && *it == doc ? it - docs.begin() : -1;
}

SegmentVectors::SegmentVectors() = default;
SegmentVectors::~SegmentVectors() = default;
SegmentVectors::SegmentVectors(SegmentVectors&&) noexcept = default;
SegmentVectors& SegmentVectors::operator=(SegmentVectors&&) noexcept = default;

bool SegmentVectors::Add(uint32_t doc, absl::string_view tenant, Metric metric, const float* values,
                         size_t n) {
  if (n == 0) return false;
  if (sections_.empty() || sections_.back().tenant != tenant) {
    if (!sections_.empty() && sections_.back().index == nullptr) {
      // Finishes the previous section (its rows are pending).
      if (!Finish().ok()) return false;
    }
    Section s;
    s.tenant = std::string(tenant);
    s.dim = static_cast<uint32_t>(n);
    s.metric = metric;
    sections_.push_back(std::move(s));
  }
  Section& s = sections_.back();
  if (n != s.dim || metric != s.metric) return false;
  s.docs.push_back(doc);
  pending_.insert(pending_.end(), values, values + n);
  return true;
}

absl::Status SegmentVectors::Finish() {
  if (sections_.empty() || sections_.back().index != nullptr) return absl::OkStatus();
  Section& s = sections_.back();
  try {
    auto flat =
        std::make_unique<faiss::IndexFlat>(static_cast<FaissId>(s.dim), FaissMetric(s.metric));
    flat->add(static_cast<FaissId>(s.rows()), pending_.data());
    s.xb = flat->get_xb();
    s.index = std::move(flat);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("faiss add failed: ", e.what()));
  }
  std::vector<float>().swap(pending_);
  return absl::OkStatus();
}

absl::Status SegmentVectors::BuildGraphs(const VectorGraphOptions& options) {
  for (Section& s : sections_) {
    if (s.graph || s.rows() < options.min_rows || s.index == nullptr) continue;
    try {
      auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(s.dim), options.hnsw_m,
                                                         FaissMetric(s.metric));
      delete hnsw->storage;  // Owned (own_fields): replaced by the same, faster.
      hnsw->storage = new FastIndexFlat(static_cast<FaissId>(s.dim), FaissMetric(s.metric));
      hnsw->hnsw.efConstruction = options.ef_construction;
      // FAISS 1.7.3's HNSW::search sizes its candidate queue max(hnsw.efSearch,
      // k) and stops by SearchParametersHNSW::efSearch; Search passes k =
      // efSearch = the wanted ef, so the index-wide value must not raise it.
      hnsw->hnsw.efSearch = 1;
      OmpThreads threads(options.build_threads);
      // In chunks, so that a cancellation is seen within one chunk's build.
      constexpr size_t kChunk = 4096;
      const float* rows = s.xb;
      for (size_t r = 0; r < s.rows(); r += kChunk) {
        if (options.cancel != nullptr && options.cancel->load()) {
          return absl::CancelledError("vector graph build cancelled");
        }
        const size_t n = std::min(kChunk, s.rows() - r);
        hnsw->add(static_cast<FaissId>(n), rows + r * s.dim);
      }
      s.xb = FlatOf(hnsw.get(), true)->get_xb();
      s.index = std::move(hnsw);
      s.graph = true;
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("faiss hnsw build failed: ", e.what()));
    }
  }
  return absl::OkStatus();
}

// The body: u32 section count, then per section: u32 tenant length, tenant,
// u32 dim, u32 metric (0 cosine, 1 dot, 2 L2), u32 rows, rows × u32 doc,
// u32 kind (0 IndexFlat, 1 IndexHNSWFlat), u64 blob length, blob (FAISS's
// write_index). All integers little-endian.
absl::StatusOr<std::string> SegmentVectors::Serialize() const {
  std::vector<std::string> pieces;
  DASH_RETURN_IF_ERROR(SerializeParts(&pieces));
  std::string out;
  for (const std::string& p : pieces) out += p;
  return out;
}

absl::Status SegmentVectors::SerializeParts(std::vector<std::string>* pieces) const {
  pieces->clear();
  pieces->emplace_back();
  std::string* out = &pieces->back();
  PutU32(out, static_cast<uint32_t>(sections_.size()));
  for (const Section& s : sections_) {
    if (s.index == nullptr) return absl::FailedPreconditionError("vectors not finished");
    PutU32(out, static_cast<uint32_t>(s.tenant.size()));
    *out += s.tenant;
    PutU32(out, s.dim);
    PutU32(out, static_cast<uint32_t>(s.metric));
    PutU32(out, static_cast<uint32_t>(s.rows()));
    for (uint32_t d : s.docs) PutU32(out, d);
    PutU32(out, s.graph ? 1 : 0);
    std::string blob;
    try {
      StringWriter writer(&blob);
      faiss::write_index(s.index.get(), &writer);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("faiss write_index failed: ", e.what()));
    }
    PutU64(out, blob.size());
    pieces->push_back(std::move(blob));
    pieces->emplace_back();  // The next section's header.
    out = &pieces->back();
  }
  return absl::OkStatus();
}

absl::StatusOr<SegmentVectors> SegmentVectors::Parse(absl::string_view body, absl::string_view name,
                                                     uint32_t doc_count) {
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(name, ": ", what));
  };
  SegmentVectors out;
  BodyReader in(body);
  uint32_t count = 0;
  if (!in.U32(&count)) return corrupt("truncated section count");
  for (uint32_t i = 0; i < count; ++i) {
    Section s;
    uint32_t len = 0, metric = 0, rows = 0, kind = 0;
    uint64_t blob_len = 0;
    absl::string_view tenant, blob;
    if (!in.U32(&len) || !in.Bytes(len, &tenant) || !in.U32(&s.dim) || !in.U32(&metric) ||
        !in.U32(&rows)) {
      return corrupt("truncated section header");
    }
    if (metric > 2) return corrupt(absl::StrCat("unknown metric ", metric));
    if (s.dim == 0) return corrupt("section of dimension 0");
    if (rows == 0 || rows > doc_count) return corrupt("bad vector count");
    s.tenant = std::string(tenant);
    if (!out.sections_.empty() && s.tenant <= out.sections_.back().tenant) {
      return corrupt("sections out of order");
    }
    s.metric = static_cast<Metric>(metric);
    s.docs.resize(rows);
    for (uint32_t r = 0; r < rows; ++r) {
      if (!in.U32(&s.docs[r])) return corrupt("truncated doc table");
      if (s.docs[r] >= doc_count || (r > 0 && s.docs[r] <= s.docs[r - 1])) {
        return corrupt("doc table out of order or range");
      }
    }
    if (!in.U32(&kind) || kind > 1) return corrupt("bad index kind");
    if (!in.U64(&blob_len) || !in.Bytes(blob_len, &blob)) return corrupt("truncated index");
    s.graph = kind == 1;
    // FAISS's own header (fourcc, d, ntotal) is checked against ours before
    // FAISS reads it: faiss::read_index leaks what it built when it throws
    // half-way (FAISS 1.7.3), and a bad header is where it would throw.
    if (blob.size() < 16) return corrupt("truncated index header");
    const absl::string_view fourcc = blob.substr(0, 4);
    const bool fourcc_ok =
        s.graph ? fourcc == "IHNf" : (fourcc == "IxF2" || fourcc == "IxFI" || fourcc == "IxFl");
    int32_t faiss_d = 0;
    int64_t faiss_ntotal = 0;
    std::memcpy(&faiss_d, blob.data() + 4, sizeof(faiss_d));
    std::memcpy(&faiss_ntotal, blob.data() + 8, sizeof(faiss_ntotal));
    if (!fourcc_ok || faiss_d != static_cast<int64_t>(s.dim) || faiss_ntotal != rows) {
      return corrupt(absl::StrCat("index of \"", s.tenant, "\" disagrees with its header"));
    }
    try {
      StringReader reader(blob);
      s.index.reset(faiss::read_index(&reader));
      if (reader.pos() != blob.size()) return corrupt("trailing bytes after an index");
    } catch (const std::exception& e) {
      return corrupt(absl::StrCat("faiss read_index: ", e.what()));
    }
    const faiss::IndexFlat* flat = FlatOf(s.index.get(), s.graph);
    if (flat == nullptr || s.index->d != static_cast<FaissId>(s.dim) ||
        s.index->ntotal != static_cast<FaissId>(rows) ||
        s.index->metric_type != FaissMetric(s.metric) || flat->ntotal != s.index->ntotal) {
      return corrupt(absl::StrCat("index of \"", s.tenant, "\" disagrees with its header"));
    }
    s.xb = flat->get_xb();
    if (s.graph) {
      auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(s.index.get());
      hnsw->hnsw.efSearch = 1;  // See BuildGraphs.
    }
    out.sections_.push_back(std::move(s));
  }
  if (!in.done()) return corrupt("trailing bytes");
  return out;
}

const SegmentVectors::Section* SegmentVectors::Find(absl::string_view tenant) const {
  auto it = std::lower_bound(sections_.begin(), sections_.end(), tenant,
                             [](const Section& s, absl::string_view t) { return s.tenant < t; });
  return it != sections_.end() && it->tenant == tenant ? &*it : nullptr;
}

size_t SegmentVectors::rows() const {
  size_t n = 0;
  for (const Section& s : sections_) n += s.rows();
  return n;
}

size_t SegmentVectors::graphs() const {
  size_t n = 0;
  for (const Section& s : sections_) n += s.graph ? 1 : 0;
  return n;
}

absl::StatusOr<std::vector<std::pair<double, uint32_t>>> SegmentVectors::Search(
    const Section& s, const VectorQuery& q, const std::function<bool(uint32_t)>& admit,
    const std::vector<uint32_t>* candidates, bool* used_exact) {
  if (used_exact != nullptr) *used_exact = true;
  const size_t k = q.k;
  if (k == 0 || s.rows() == 0) return std::vector<Scored>();
  if (candidates != nullptr) {
    std::vector<size_t> rows;
    rows.reserve(candidates->size());
    for (uint32_t doc : *candidates) {
      const int64_t r = s.RowOf(doc);
      if (r >= 0) rows.push_back(static_cast<size_t>(r));
    }
    return Exact(s, q.q, k, admit, &rows);
  }
  bool exact = q.mode == SearchMode::kExact || !s.graph;
  if (q.mode == SearchMode::kAuto) exact = exact || s.rows() < q.exact_threshold;
  if (!exact) {
    const auto* hnsw = static_cast<const faiss::IndexHNSWFlat*>(s.index.get());
    // The whole candidate list (ef >= k), re-ranked by the exact score with
    // ties by doc: the answer does not depend on the order FAISS met them.
    const size_t fetch =
        std::min(std::max(k, static_cast<size_t>(std::max(1, q.ef_search))), s.rows());
    RowSelector selector(&s.docs, &admit);
    faiss::SearchParametersHNSW params;
    params.efSearch = static_cast<int>(fetch);
    params.sel = admit != nullptr ? &selector : nullptr;
    std::vector<float> distances(fetch);
    std::vector<FaissId> labels(fetch);
    try {
      // HNSW::search is FAISS's single-query, single-thread search: no
      // OpenMP team, no global statistics, nothing mutable shared.
      FastFlatDistance dc(s.row(0), s.dim, s.metric != Metric::kL2,
                          /*negate=*/s.metric != Metric::kL2);
      faiss::VisitedTable visited(static_cast<int>(s.rows()));
      faiss::maxheap_heapify(fetch, distances.data(), labels.data());
      dc.set_query(q.q);
      hnsw->hnsw.search(dc, static_cast<int>(fetch), labels.data(), distances.data(), visited,
                        &params);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("faiss search failed: ", e.what()));
    }
    std::vector<Scored> hits;
    hits.reserve(fetch);
    for (FaissId label : labels) {
      // The selector already excluded what is not admitted; the check guards
      // against a FAISS that ignored it.
      if (!selector.is_member(label)) continue;
      hits.emplace_back(VectorScore(s.metric, q.q, s.row(static_cast<size_t>(label)), s.dim),
                        s.docs[label]);
    }
    std::sort(hits.begin(), hits.end(), Better);
    if (hits.size() >= k) {
      hits.resize(k);
      if (used_exact != nullptr) *used_exact = false;
      return hits;
    }
    // Fewer than k: either fewer are admitted, or the walk never reached
    // admitted rows past rejected ones. The exact scan settles it.
  }
  return Exact(s, q.q, k, admit, nullptr);
}

}  // namespace dash::index
