#include "node/index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace dash::index {

// One HNSW graph and what is known about each of its entries ("slots", the
// FAISS ids 0..ntotal-1, in insertion order). A slot is live until its claim is
// removed or re-upserted; then it is a tombstone until the next rebuild.
struct VectorIndex::Graph {
  Graph(uint32_t dim, Metric metric, const VectorIndexOptions& options)
      : hnsw(std::make_unique<faiss::IndexHNSWFlat>(
            static_cast<int>(dim), options.hnsw_m,
            metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT)),
        flat(dynamic_cast<const faiss::IndexFlat*>(hnsw->storage)) {
    hnsw->hnsw.efConstruction = options.ef_construction;
    // FAISS 1.7.3's HNSW::search sizes its candidate queue max(hnsw.efSearch,
    // k) and stops by SearchParametersHNSW::efSearch (measured). AnnLocked
    // passes k = efSearch = the wanted ef, so the index-wide value must not
    // raise the floor.
    hnsw->hnsw.efSearch = 1;
  }

  std::unique_ptr<faiss::IndexHNSWFlat> hnsw;
  const faiss::IndexFlat* flat = nullptr;         // hnsw->storage: the vectors, row per slot.
  std::vector<std::string> slot_ids;              // Claim of each slot.
  std::vector<uint8_t> live;                      // 1 = live, 0 = tombstone; per slot.
  absl::flat_hash_map<std::string, int> slot_of;  // Live claim -> its slot.
  size_t tombstones = 0;

  size_t slots() const { return slot_ids.size(); }
  const float* row(int slot, uint32_t dim) const {
    return flat->get_xb() + static_cast<size_t>(slot) * dim;
  }
};

namespace {

using FaissId = faiss::Index::idx_t;

// Sets the calling thread's OpenMP team size for FAISS's parallel regions and
// restores it on destruction.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : previous_(omp_get_max_threads()) {
    omp_set_num_threads(std::max(1, n));
  }
  ~OmpThreads() { omp_set_num_threads(previous_); }

 private:
  const int previous_;
};

// Lets FAISS accept only live slots and, given a filter, only those whose
// claim is in it. FAISS asks only about the nodes its walk reaches, so a broad
// filter costs a hash lookup per visited node, not one per allowed id.
class SlotSelector : public faiss::IDSelector {
 public:
  SlotSelector(const uint8_t* live, const std::vector<std::string>* slot_ids,
               const absl::flat_hash_set<std::string>* allowed)
      : live_(live), slot_ids_(slot_ids), allowed_(allowed) {}
  bool is_member(idx_t id) const override {
    return live_[id] != 0 && (allowed_ == nullptr || allowed_->contains((*slot_ids_)[id]));
  }

 private:
  const uint8_t* live_;
  const std::vector<std::string>* slot_ids_;
  const absl::flat_hash_set<std::string>* allowed_;
};

// HNSW treats smaller as closer. FAISS's IndexHNSW wraps inner-product storage
// the same way when it builds the graph, so searches must see the same order.
class NegatedDistance : public faiss::DistanceComputer {
 public:
  explicit NegatedDistance(faiss::DistanceComputer* base) : base_(base) {}
  void set_query(const float* x) override { base_->set_query(x); }
  float operator()(idx_t i) override { return -(*base_)(i); }
  float symmetric_dis(idx_t i, idx_t j) override { return -base_->symmetric_dis(i, j); }

 private:
  std::unique_ptr<faiss::DistanceComputer> base_;
};

}  // namespace

VectorIndex::VectorIndex(uint32_t dim, Metric metric, const VectorIndexOptions& options)
    : dim_(dim),
      metric_(metric),
      options_(options),
      graph_(std::make_unique<Graph>(dim, metric, options)),
      ef_search_(options.ef_search) {}

VectorIndex::~VectorIndex() = default;

absl::StatusOr<std::vector<float>> VectorIndex::Prepare(const float* v, size_t n) const {
  if (n != dim_) {
    return absl::InvalidArgumentError(
        absl::StrCat("vector has ", n, " components; the index dimension is ", dim_));
  }
  if (v == nullptr) return absl::InvalidArgumentError("vector is null");
  double norm2 = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(absl::StrCat("vector component ", i, " is not finite"));
    }
    norm2 += static_cast<double>(v[i]) * v[i];
  }
  std::vector<float> out(v, v + n);
  if (metric_ == Metric::kCosine) {
    if (norm2 == 0) return absl::InvalidArgumentError("zero vector under the cosine metric");
    const double inv = 1.0 / std::sqrt(norm2);
    for (float& x : out) x = static_cast<float>(x * inv);
  }
  return out;
}

size_t VectorIndex::size() const {
  absl::ReaderMutexLock l(&mu_);
  return graph_->slot_of.size();
}

VectorIndexStats VectorIndex::stats() const {
  absl::ReaderMutexLock l(&mu_);
  VectorIndexStats s;
  s.live = graph_->slot_of.size();
  s.tombstones = graph_->tombstones;
  s.rebuilds = rebuilds_;
  return s;
}

void VectorIndex::set_ef_search(int ef_search) {
  absl::MutexLock l(&mu_);
  ef_search_ = std::max(1, ef_search);
}

absl::Status VectorIndex::Upsert(const std::string& claim_id, const float* v, size_t n) {
  absl::StatusOr<std::vector<float>> row = Prepare(v, n);
  if (!row.ok()) return row.status();
  absl::MutexLock w(&writer_mu_);
  absl::Status s;
  {
    absl::MutexLock l(&mu_);
    auto it = graph_->slot_of.find(claim_id);
    if (it != graph_->slot_of.end()) {
      const float* old = graph_->row(it->second, dim_);
      if (std::equal(row->begin(), row->end(), old)) return absl::OkStatus();
    }
    s = AppendLocked({claim_id}, row->data(), 1);
    if (!NeedsRebuildLocked()) return s;
  }
  Rebuild();
  return s;
}

absl::Status VectorIndex::UpsertBatch(const std::vector<std::string>& claim_ids,
                                      const float* vectors, size_t n) {
  if (n != claim_ids.size() * dim_) {
    return absl::InvalidArgumentError(absl::StrCat("batch has ", n, " floats; ", claim_ids.size(),
                                                   " vectors of dimension ", dim_, " need ",
                                                   claim_ids.size() * dim_));
  }
  if (!claim_ids.empty() && vectors == nullptr) {
    return absl::InvalidArgumentError("batch vectors are null");
  }
  // The last row of each claim, in row order.
  absl::flat_hash_map<std::string, size_t> last;
  for (size_t i = 0; i < claim_ids.size(); ++i) last[claim_ids[i]] = i;
  std::vector<std::string> ids;
  std::vector<float> rows;
  ids.reserve(last.size());
  rows.reserve(last.size() * dim_);
  for (size_t i = 0; i < claim_ids.size(); ++i) {
    if (last[claim_ids[i]] != i) continue;
    absl::StatusOr<std::vector<float>> row = Prepare(vectors + i * dim_, dim_);
    if (!row.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, " (", claim_ids[i], "): ", row.status().message()));
    }
    ids.push_back(claim_ids[i]);
    rows.insert(rows.end(), row->begin(), row->end());
  }
  absl::MutexLock w(&writer_mu_);
  absl::Status s;
  {
    absl::MutexLock l(&mu_);
    // Drop rows identical to what is stored (idempotent reloads).
    size_t kept = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const float* row = rows.data() + i * dim_;
      auto it = graph_->slot_of.find(ids[i]);
      if (it != graph_->slot_of.end() && std::equal(row, row + dim_, graph_->row(it->second, dim_)))
        continue;
      if (kept != i) {
        ids[kept] = std::move(ids[i]);
        std::copy(row, row + dim_, rows.data() + kept * dim_);
      }
      ++kept;
    }
    ids.resize(kept);
    if (kept == 0) return absl::OkStatus();
    s = AppendLocked(ids, rows.data(), kept);
    if (!NeedsRebuildLocked()) return s;
  }
  Rebuild();
  return s;
}

void VectorIndex::Remove(const std::string& claim_id) {
  absl::MutexLock w(&writer_mu_);
  {
    absl::MutexLock l(&mu_);
    if (!graph_->slot_of.contains(claim_id)) return;
    TombstoneLocked(claim_id);
    if (!NeedsRebuildLocked()) return;
  }
  Rebuild();
}

absl::Status VectorIndex::AppendLocked(const std::vector<std::string>& ids, const float* rows,
                                       size_t count) {
  Graph& g = *graph_;
  if (static_cast<size_t>(g.hnsw->ntotal) != g.slots()) {
    // An earlier add failed part-way; slot numbers would no longer match
    // FAISS ids. NeedsRebuildLocked() reports this, and a rebuild repairs it.
    return absl::InternalError("vector index awaits a rebuild after a failed add");
  }
  if (g.slots() + count > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::ResourceExhaustedError("vector index is full (2^31 graph entries)");
  }
  try {
    // One new vector gains nothing from more threads (each would allocate a
    // visited table of the graph's size and idle).
    OmpThreads threads(count > 1 ? options_.build_threads : 1);
    g.hnsw->add(static_cast<FaissId>(count), rows);
  } catch (const std::exception& e) {
    // FAISS may have stored some rows: they get no slot (the claims keep
    // their previous vectors) and the rebuild this triggers drops them.
    return absl::InternalError(absl::StrCat("faiss add failed: ", e.what()));
  }
  for (size_t i = 0; i < count; ++i) {
    if (g.slot_of.contains(ids[i])) TombstoneLocked(ids[i]);
    g.slot_of[ids[i]] = static_cast<int>(g.slots());
    g.slot_ids.push_back(ids[i]);
    g.live.push_back(1);
  }
  return absl::OkStatus();
}

void VectorIndex::TombstoneLocked(const std::string& claim_id) {
  Graph& g = *graph_;
  auto it = g.slot_of.find(claim_id);
  g.live[it->second] = 0;
  ++g.tombstones;
  g.slot_of.erase(it);
}

bool VectorIndex::NeedsRebuildLocked() const {
  const Graph& g = *graph_;
  if (static_cast<size_t>(g.hnsw->ntotal) != g.slots()) return true;  // A failed add.
  return g.tombstones > 0 &&
         static_cast<double>(g.tombstones) >
             options_.rebuild_tombstone_fraction * static_cast<double>(g.slots());
}

void VectorIndex::Rebuild() {
  auto fresh = std::make_unique<Graph>(dim_, metric_, options_);
  {
    // Writers are held off by writer_mu_, so the state cannot change while the
    // new graph is built; searches go on using the old one.
    absl::ReaderMutexLock l(&mu_);
    const Graph& old = *graph_;
    const size_t live = old.slot_of.size();
    std::vector<float> rows;
    rows.reserve(live * dim_);
    fresh->slot_ids.reserve(live);
    for (size_t slot = 0; slot < old.slots(); ++slot) {
      if (!old.live[slot]) continue;
      const float* row = old.row(static_cast<int>(slot), dim_);
      rows.insert(rows.end(), row, row + dim_);
      fresh->slot_of[old.slot_ids[slot]] = static_cast<int>(fresh->slot_ids.size());
      fresh->slot_ids.push_back(old.slot_ids[slot]);
    }
    fresh->live.assign(live, 1);
    try {
      OmpThreads threads(options_.build_threads);
      if (live > 0) fresh->hnsw->add(static_cast<FaissId>(live), rows.data());
    } catch (const std::exception&) {
      // Keep the tombstoned graph: still correct, only slower. The next
      // mutation tries again.
      return;
    }
  }
  absl::MutexLock l(&mu_);
  graph_.swap(fresh);
  ++rebuilds_;
  // `fresh` (now the old graph) is freed on return, outside the lock.
}

double VectorIndex::ScoreLocked(const float* q, int slot) const {
  const float* x = graph_->row(slot, dim_);
  // Four accumulators: independent chains the compiler can overlap.
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  if (metric_ == Metric::kL2) {
    for (; i + 4 <= dim_; i += 4) {
      const double d0 = double{q[i]} - x[i], d1 = double{q[i + 1]} - x[i + 1];
      const double d2 = double{q[i + 2]} - x[i + 2], d3 = double{q[i + 3]} - x[i + 3];
      a0 += d0 * d0;
      a1 += d1 * d1;
      a2 += d2 * d2;
      a3 += d3 * d3;
    }
    for (; i < dim_; ++i) {
      const double d = double{q[i]} - x[i];
      a0 += d * d;
    }
    return -((a0 + a1) + (a2 + a3));
  }
  for (; i + 4 <= dim_; i += 4) {
    a0 += double{q[i]} * x[i];
    a1 += double{q[i + 1]} * x[i + 1];
    a2 += double{q[i + 2]} * x[i + 2];
    a3 += double{q[i + 3]} * x[i + 3];
  }
  for (; i < dim_; ++i) a0 += double{q[i]} * x[i];
  return (a0 + a1) + (a2 + a3);
}

std::vector<VectorHit> VectorIndex::ToHitsLocked(std::vector<std::pair<double, int>> scored) const {
  const std::vector<std::string>& ids = graph_->slot_ids;
  std::sort(scored.begin(), scored.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : ids[a.second] < ids[b.second];
  });
  std::vector<VectorHit> hits;
  hits.reserve(scored.size());
  for (const auto& [score, slot] : scored) hits.push_back(VectorHit{ids[slot], score});
  return hits;
}

std::vector<VectorHit> VectorIndex::ExactLocked(const float* q, size_t k,
                                                const std::vector<int>* slots) const {
  const Graph& g = *graph_;
  // `better(a, b)`: a ranks before b. As a heap comparator it keeps the worst
  // of the current top k at the front.
  auto better = [&](const std::pair<double, int>& a, const std::pair<double, int>& b) {
    return a.first != b.first ? a.first > b.first : g.slot_ids[a.second] < g.slot_ids[b.second];
  };
  std::vector<std::pair<double, int>> top;
  top.reserve(k + 1);
  auto consider = [&](const std::pair<double, int>& c) {
    if (top.size() < k) {
      top.push_back(c);
      std::push_heap(top.begin(), top.end(), better);
    } else if (better(c, top.front())) {
      std::pop_heap(top.begin(), top.end(), better);
      top.back() = c;
      std::push_heap(top.begin(), top.end(), better);
    }
  };
  if (k == 0) return {};
  if (slots != nullptr) {
    for (int slot : *slots) consider({ScoreLocked(q, slot), slot});
  } else {
    for (size_t i = 0; i < g.slots(); ++i) {
      const int slot = static_cast<int>(i);
      if (g.live[i]) consider({ScoreLocked(q, slot), slot});
    }
  }
  return ToHitsLocked(std::move(top));
}

absl::StatusOr<std::vector<VectorHit>> VectorIndex::AnnLocked(
    const float* q, size_t k, const absl::flat_hash_set<std::string>* allowed) const {
  const Graph& g = *graph_;
  if (k == 0 || g.slots() == 0) return std::vector<VectorHit>();
  SlotSelector selector(g.live.data(), &g.slot_ids, allowed);
  const bool select = allowed != nullptr || g.tombstones > 0;
  // Ask HNSW for its whole candidate list (ef >= k), not just k: the walk is
  // the same, and re-ranking every candidate found by the exact score with
  // ties by claim_id makes the answer independent of the order FAISS met them.
  const size_t fetch = std::min(std::max(k, static_cast<size_t>(ef_search_)), g.slots());
  faiss::SearchParametersHNSW params;
  params.efSearch = static_cast<int>(fetch);  // < 2^31 graph entries
  params.sel = select ? &selector : nullptr;

  std::vector<float> distances(fetch);
  std::vector<FaissId> labels(fetch);
  try {
    // HNSW::search is FAISS's single-query, single-thread search: unlike
    // IndexHNSW::search it opens no OpenMP team and updates no global
    // statistics, so concurrent searches share nothing mutable.
    std::unique_ptr<faiss::DistanceComputer> dc(g.hnsw->storage->get_distance_computer());
    if (metric_ != Metric::kL2) dc = std::make_unique<NegatedDistance>(dc.release());
    faiss::VisitedTable visited(static_cast<int>(g.slots()));
    faiss::maxheap_heapify(fetch, distances.data(), labels.data());
    dc->set_query(q);
    g.hnsw->hnsw.search(*dc, static_cast<int>(fetch), labels.data(), distances.data(), visited,
                        &params);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("faiss search failed: ", e.what()));
  }
  std::vector<std::pair<double, int>> scored;
  scored.reserve(fetch);
  for (FaissId label : labels) {
    // The selector already excludes tombstones and filtered-out slots; the
    // check guards the contract against a FAISS that ignored it.
    if (label < 0 || static_cast<size_t>(label) >= g.slots() || !selector.is_member(label))
      continue;
    scored.emplace_back(ScoreLocked(q, static_cast<int>(label)), static_cast<int>(label));
  }
  std::vector<VectorHit> hits = ToHitsLocked(std::move(scored));
  if (hits.size() > k) hits.resize(k);
  return hits;
}

absl::StatusOr<std::vector<VectorHit>> VectorIndex::Search(
    const float* q, size_t n, size_t k, const absl::flat_hash_set<std::string>* allowed,
    SearchMode mode, bool* used_exact) const {
  if (used_exact != nullptr) *used_exact = false;
  absl::StatusOr<std::vector<float>> query = Prepare(q, n);
  if (!query.ok()) return query.status();

  absl::ReaderMutexLock l(&mu_);
  const Graph& g = *graph_;
  const size_t live = g.slot_of.size();
  if (k == 0 || live == 0) return std::vector<VectorHit>();
  k = std::min(k, live);
  // The planner sizes the filter by its id count, which can only overstate
  // the allowed vectors (ids without one count too); resolving every id to a
  // slot would cost a hash lookup per id on every query.
  const size_t estimate = allowed == nullptr ? live : std::min(allowed->size(), live);
  bool exact = mode == SearchMode::kExact;
  if (mode == SearchMode::kAuto) {
    exact = estimate < options_.exact_threshold ||
            static_cast<double>(estimate) < options_.exact_fraction * static_cast<double>(live);
  }
  // Slots of the allowed vectors, ascending (memory order for the exact scan).
  std::vector<int> slots;
  auto resolve = [&g, &slots, allowed] {
    slots.reserve(allowed->size());
    for (const std::string& id : *allowed) {
      auto it = g.slot_of.find(id);
      if (it != g.slot_of.end()) slots.push_back(it->second);
    }
    std::sort(slots.begin(), slots.end());
  };
  if (!exact) {
    absl::StatusOr<std::vector<VectorHit>> hits = AnnLocked(query->data(), k, allowed);
    if (!hits.ok() || hits->size() >= k) return hits;
    // Too few is right only if fewer than k vectors are allowed. Otherwise
    // HNSW missed allowed vectors that a walk over rejected ones never
    // reached, and the contract is min(k, allowed) hits: go exact.
    if (allowed != nullptr) resolve();
    if (hits->size() >= std::min(k, allowed != nullptr ? slots.size() : live)) return hits;
  } else if (allowed != nullptr) {
    resolve();
  }
  if (used_exact != nullptr) *used_exact = true;
  return ExactLocked(query->data(), k, allowed != nullptr ? &slots : nullptr);
}

double MeasureRecallAtK(const VectorIndex& index, const std::vector<std::vector<float>>& queries,
                        size_t k) {
  absl::ReaderMutexLock l(&index.mu_);
  const size_t want = std::min(k, index.graph_->slot_of.size());
  if (want == 0) return 1.0;
  double sum = 0;
  size_t measured = 0;
  for (const std::vector<float>& raw : queries) {
    absl::StatusOr<std::vector<float>> q = index.Prepare(raw.data(), raw.size());
    if (!q.ok()) continue;
    std::vector<VectorHit> exact = index.ExactLocked(q->data(), want, nullptr);
    absl::StatusOr<std::vector<VectorHit>> ann = index.AnnLocked(q->data(), want, nullptr);
    if (!ann.ok()) continue;
    absl::flat_hash_set<std::string> truth;
    for (const VectorHit& h : exact) truth.insert(h.claim_id);
    size_t found = 0;
    for (const VectorHit& h : *ann) found += truth.contains(h.claim_id) ? 1 : 0;
    sum += static_cast<double>(found) / static_cast<double>(exact.size());
    ++measured;
  }
  return measured == 0 ? 1.0 : sum / static_cast<double>(measured);
}

}  // namespace dash::index
