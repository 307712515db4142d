#include "node/index/lexical_store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/sync_point.h"
#include "glog/logging.h"
#include "node/index/segment_file.h"
#include "node/index/segment_search.h"
#include "node/storage/file_util.h"
#include "node/storage/records.pb.h"

namespace dash::index {
namespace {

namespace fs = std::filesystem;

std::string CurrentKey(absl::string_view tenant, absl::string_view claim_id) {
  return absl::StrCat(tenant, absl::string_view("\0", 1), claim_id);
}

// The docs of `seg` a search at view `lsn` may return: visible there and,
// when `allowed` is set, in it. Null when that is every doc (no check).
std::function<bool(uint32_t)> AdmitFor(const LexicalSegment& seg, uint64_t lsn,
                                       const absl::flat_hash_set<std::string>* allowed) {
  const bool all = seg.AllVisibleAt(lsn);
  if (all && allowed == nullptr) return nullptr;
  return [&seg, lsn, allowed, all](uint32_t doc) {
    if (!all && !seg.VisibleAt(doc, lsn)) return false;
    return allowed == nullptr || allowed->contains(seg.claim_id(doc));
  };
}

// The best `k` of the segments' hits: by score, ties by claim id.
void KeepTop(size_t k, std::vector<ScoredClaim>* hits) {
  std::sort(hits->begin(), hits->end(), [](const ScoredClaim& a, const ScoredClaim& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  });
  if (hits->size() > k) hits->resize(k);
}

// 2: segments have a VECS file.
constexpr uint32_t kManifestFormat = 2;

// Size tier of a segment: segments within a factor `base` share one.
int Tier(uint32_t docs, size_t base) {
  int tier = 0;
  for (uint64_t n = std::max<uint32_t>(docs, 1); n >= base; n /= base) ++tier;
  return tier;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LexicalStore>> LexicalStore::Open(LexicalStoreOptions options,
                                                                 absl::string_view manifest) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("creating ", options.dir, ": ", ec.message()));
  }
  storage::LexicalManifest m;
  if (!manifest.empty() && !m.ParseFromArray(manifest.data(), static_cast<int>(manifest.size()))) {
    return absl::DataLossError("the lexical manifest does not parse");
  }
  if (m.format() > kManifestFormat) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lexical manifest format ", m.format(), " is newer than this binary's ", kManifestFormat));
  }
  if (!manifest.empty() && m.format() < kManifestFormat) {
    // Format 1 segments hold no vectors.
    return absl::FailedPreconditionError(
        absl::StrCat("lexical manifest format ", m.format(), " predates segment vectors"));
  }
  auto store = std::unique_ptr<LexicalStore>(new LexicalStore(std::move(options)));
  auto list = std::make_shared<SegmentList>();
  std::set<std::string> names;
  for (const storage::LexicalSegmentEntry& e : m.segments()) {
    DASH_ASSIGN_OR_RETURN(std::shared_ptr<LexicalSegment> seg,
                          LexicalSegment::Load(store->options_.dir, e.id(), e.dead()));
    if (seg->doc_count() != e.docs()) {
      return absl::DataLossError(absl::StrCat("segment ", seg->hex_id(), " holds ",
                                              seg->doc_count(), " docs; the manifest says ",
                                              e.docs()));
    }
    names.insert(seg->hex_id());
    list->push_back(std::move(seg));
  }
  // Files of segments no manifest names: a flush or merge that crashed
  // before its manifest, or segments merged away.
  for (const auto& entry : fs::directory_iterator(store->options_.dir, ec)) {
    const std::string stem = entry.path().stem().string();
    if (names.count(stem)) continue;
    fs::remove(entry.path(), ec);
    LOG(INFO) << "removed " << entry.path() << ": no segment of the manifest";
  }
  {
    absl::MutexLock l(&store->mu_);
    for (const auto& seg : *list) {
      for (const auto& r : seg->ranges()) {
        for (uint32_t d = r.first; d < r.end; ++d) {
          if (seg->died(d) == kNever)
            store->current_[CurrentKey(r.tenant, seg->claim_id(d))] = {seg.get(), d};
        }
      }
    }
    store->segments_ = std::move(list);
    store->applied_lsn_ = m.covered_lsn();
    store->boundaries_ = {m.covered_lsn()};
  }
  {
    absl::MutexLock l(&store->maintenance_mu_);
    store->covered_lsn_ = m.covered_lsn();
  }
  store->covered_.store(m.covered_lsn());
  if (store->options_.background) {
    store->thread_ = std::thread([s = store.get()] { s->MaintenanceLoop(); });
  }
  return store;
}

LexicalStore::~LexicalStore() {
  cancel_.store(true);
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t LexicalStore::covered_lsn() const { return covered_.load(); }

std::shared_ptr<const LexicalStore::SegmentList> LexicalStore::segments() const {
  absl::ReaderMutexLock l(&mu_);
  return segments_;
}

absl::Status LexicalStore::Apply(std::vector<LexicalChange> changes, uint64_t content_lsn) {
  {
    absl::MutexLock l(&mu_);
    const bool redundant = exact_at_ == content_lsn;
    exact_at_ = kNever;
    // The owner re-applies at a truncation point what it may have lost; the
    // truncation left the index exact there, and changes at a covered LSN
    // must not be made again (the next manifest would persist their deaths
    // without the docs that replace them).
    if (redundant) return absl::OkStatus();
  }
  std::vector<LexicalDocInput> docs;
  for (LexicalChange& c : changes) {
    if (!c.terms.has_value()) continue;
    docs.push_back(
        LexicalDocInput{c.tenant, c.claim_id, c.lsn, std::move(*c.terms), std::move(c.vector)});
  }
  std::shared_ptr<LexicalSegment> seg;
  if (!docs.empty()) {
    DASH_ASSIGN_OR_RETURN(seg, LexicalSegment::Build(std::move(docs), content_lsn));
  }
  absl::MutexLock l(&mu_);
  for (const LexicalChange& c : changes) {
    auto it = current_.find(CurrentKey(c.tenant, c.claim_id));
    if (it == current_.end()) continue;
    it->second.segment->Kill(it->second.doc, c.lsn);
    current_.erase(it);
  }
  if (seg != nullptr) {
    auto list = std::make_shared<SegmentList>(*segments_);
    list->push_back(seg);
    for (const auto& r : seg->ranges()) {
      for (uint32_t d = r.first; d < r.end; ++d) {
        current_[CurrentKey(r.tenant, seg->claim_id(d))] = {seg.get(), d};
      }
    }
    segments_ = std::move(list);
    if (oldest_unflushed_ == absl::InfiniteFuture()) oldest_unflushed_ = absl::Now();
    size_t memory = 0, memory_docs = 0;
    for (const auto& s : *segments_) {
      if (s->persisted()) continue;
      ++memory;
      memory_docs += s->doc_count();
    }
    if (memory >= 2 * options_.merge_factor || memory_docs >= options_.flush_docs) wake_ = true;
  }
  applied_lsn_ = std::max(applied_lsn_, content_lsn);
  boundaries_.insert(content_lsn);
  return absl::OkStatus();
}

bool LexicalStore::TruncateAfter(uint64_t lsn,
                                 std::vector<std::pair<std::string, std::string>>* changed) {
  std::set<std::pair<std::string, std::string>> keys;
  absl::MutexLock l(&mu_);
  current_.clear();
  for (const auto& seg : *segments_) {
    for (uint32_t d : seg->TruncateAfter(lsn)) keys.emplace(seg->tenant_of(d), seg->claim_id(d));
    for (const auto& r : seg->ranges()) {
      for (uint32_t d = r.first; d < r.end; ++d) {
        if (seg->born(d) != kNever && seg->died(d) == kNever) {
          current_[CurrentKey(r.tenant, seg->claim_id(d))] = {seg.get(), d};
        }
      }
    }
  }
  applied_lsn_ = std::min(applied_lsn_, lsn);
  boundaries_.erase(boundaries_.upper_bound(lsn), boundaries_.end());
  const bool exact = boundaries_.count(lsn) > 0;
  exact_at_ = exact ? lsn : kNever;
  if (!exact) changed->assign(keys.begin(), keys.end());
  return exact;
}

absl::StatusOr<LexicalStore::Snapshot> LexicalStore::Acquire(
    const std::function<absl::StatusOr<uint64_t>()>& take_view) const {
  absl::ReaderMutexLock l(&mu_);
  DASH_ASSIGN_OR_RETURN(uint64_t lsn, take_view());
  return Snapshot{segments_, lsn};
}

absl::StatusOr<CorpusStats> LexicalStore::Stats(const Snapshot& s, absl::string_view tenant,
                                                const std::vector<std::string>& terms) const {
  CorpusStats stats;
  const std::set<std::string> unique(terms.begin(), terms.end());
  for (const std::string& t : unique) stats.df[t] = 0;
  for (const auto& seg : *s.segments) {
    const LexicalSegment::TenantRange* r = seg->Range(tenant);
    if (r == nullptr) continue;
    const SegmentPostings& p = seg->postings();
    const bool all = seg->AllVisibleAt(s.lsn);
    if (all) {
      stats.docs += r->end - r->first;
      stats.total_length += r->total_length;
    } else {
      for (uint32_t d = r->first; d < r->end; ++d) {
        if (!seg->VisibleAt(d, s.lsn)) continue;
        ++stats.docs;
        stats.total_length += p.DocLength(d);
      }
    }
    for (const std::string& t : unique) {
      std::optional<SegmentPostings::TermInfo> info = p.Find(TenantTermKey(tenant, t));
      if (!info.has_value()) continue;
      if (all) {
        stats.df[t] += info->df;
        continue;
      }
      PostingCursor c = p.Cursor(*info);
      for (; c.Valid(); c.Next()) stats.df[t] += seg->VisibleAt(c.doc(), s.lsn);
      DASH_RETURN_IF_ERROR(c.status());
    }
  }
  return stats;
}

absl::StatusOr<std::vector<ScoredClaim>> LexicalStore::Search(
    const Snapshot& s, absl::string_view tenant, const std::vector<std::string>& terms, size_t k,
    const Bm25Params& params, const CorpusStats& stats,
    const absl::flat_hash_set<std::string>* allowed) const {
  std::vector<ScoredClaim> out;
  if (k == 0 || terms.empty() || stats.docs == 0) return out;
  // Query term frequencies; the weights in term order, which is the order
  // each score is summed in (whatever the segments).
  std::map<std::string, int> qtf;
  for (const auto& t : terms) ++qtf[t];
  const double n = static_cast<double>(stats.docs);
  const double avgdl = std::max(1.0, static_cast<double>(stats.total_length) / n);
  std::vector<WeightedTerm> weighted;
  for (const auto& [term, q] : qtf) {
    auto it = stats.df.find(term);
    const double df = it == stats.df.end() ? 0 : static_cast<double>(it->second);
    if (df <= 0) continue;
    const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
    weighted.push_back(WeightedTerm{TenantTermKey(tenant, term), q * idf});
  }
  if (weighted.empty()) return out;
  // Claim ids stay in their segments (which the snapshot holds) until the
  // top k is known: only those are copied.
  struct Hit {
    double score;
    const std::string* claim_id;
  };
  std::vector<Hit> hits;
  for (const auto& seg : *s.segments) {
    if (seg->Range(tenant) == nullptr) continue;
    const std::function<bool(uint32_t)> admit = AdmitFor(*seg, s.lsn, allowed);
    DASH_ASSIGN_OR_RETURN(std::vector<ScoredDoc> docs,
                          SearchSegment(seg->postings(), weighted, k, params, avgdl, admit));
    for (const ScoredDoc& d : docs) hits.push_back(Hit{d.score, &seg->claim_id(d.doc)});
  }
  const size_t keep = std::min(k, hits.size());
  // KeepTop's order.
  std::partial_sort(hits.begin(), hits.begin() + keep, hits.end(), [](const Hit& a, const Hit& b) {
    return a.score != b.score ? a.score > b.score : *a.claim_id < *b.claim_id;
  });
  out.reserve(keep);
  for (size_t i = 0; i < keep; ++i) out.push_back(ScoredClaim{*hits[i].claim_id, hits[i].score});
  return out;
}

absl::StatusOr<std::vector<ScoredClaim>> LexicalStore::SearchVectors(
    const Snapshot& s, absl::string_view tenant, const std::vector<float>& q, size_t k,
    SearchMode mode, const absl::flat_hash_set<std::string>* allowed, bool* used_exact) const {
  if (used_exact != nullptr) *used_exact = true;
  std::vector<ScoredClaim> out;
  if (k == 0) return out;
  VectorQuery query;
  query.q = q.data();
  query.k = k;
  query.ef_search = options_.ef_search;
  query.mode = mode;
  query.exact_threshold = options_.exact_threshold;
  for (const auto& seg : *s.segments) {
    const SegmentVectors::Section* section = seg->vectors().Find(tenant);
    const LexicalSegment::TenantRange* range = seg->Range(tenant);
    if (section == nullptr || range == nullptr || section->dim != q.size()) continue;
    const std::function<bool(uint32_t)> admit = AdmitFor(*seg, s.lsn, allowed);
    // A filter that admits few of the section's rows is resolved to docs
    // (a binary search per id) and scanned exactly, unless ANN was asked for.
    std::vector<uint32_t> candidates;
    const bool resolve = allowed != nullptr && mode != SearchMode::kApproximate &&
                         (allowed->size() < options_.exact_threshold ||
                          static_cast<double>(allowed->size()) <
                              options_.exact_fraction * static_cast<double>(section->rows()));
    if (resolve) {
      for (const std::string& id : *allowed) {
        const auto [first, end] = seg->DocsOf(*range, id);
        for (uint32_t d = first; d < end; ++d) candidates.push_back(d);
      }
      std::sort(candidates.begin(), candidates.end());
    }
    bool exact = true;
    DASH_ASSIGN_OR_RETURN(
        auto hits,
        SegmentVectors::Search(*section, query, admit, resolve ? &candidates : nullptr, &exact));
    if (!exact && used_exact != nullptr) *used_exact = false;
    for (const auto& [score, doc] : hits) out.push_back(ScoredClaim{seg->claim_id(doc), score});
  }
  KeepTop(k, &out);
  return out;
}

absl::StatusOr<std::shared_ptr<LexicalSegment>> LexicalStore::MergeSegments(
    const SegmentList& sources, bool persist, std::vector<std::vector<uint32_t>>* remap,
    uint64_t covered) {
  // No reader takes a view older than the readable one again (Acquire pairs
  // views and lists under mu_, and Install swaps under it): docs dead at it
  // can go — from persisted segments only when the manifest will also cover
  // their death, since dropping a doc persists its death.
  const uint64_t readable = std::min(options_.readable_lsn(), covered);
  uint64_t content = 0;
  for (const auto& s : sources) content = std::max(content, s->content_lsn());
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<LexicalSegment> merged,
                        LexicalSegment::Merge(
                            sources, content,
                            [readable](const LexicalSegment& seg, uint32_t doc) {
                              return seg.born(doc) != kNever && seg.died(doc) > readable;
                            },
                            remap));
  if (merged->doc_count() == 0) return std::shared_ptr<LexicalSegment>();
  if (persist) {
    VectorGraphOptions graphs = options_.graphs;
    graphs.cancel = &cancel_;
    DASH_RETURN_IF_ERROR(merged->Persist(options_.dir, graphs));
  }
  return merged;
}

void LexicalStore::Install(const SegmentList& sources,
                           const std::shared_ptr<LexicalSegment>& merged,
                           const std::vector<std::vector<uint32_t>>& remap) {
  absl::MutexLock l(&mu_);
  const std::set<const LexicalSegment*> gone = [&] {
    std::set<const LexicalSegment*> s;
    for (const auto& seg : sources) s.insert(seg.get());
    return s;
  }();
  // One pass over the sources' docs: carry deaths (and truncations) since
  // the merge was built, and re-point the claims' current docs (looked up
  // per doc, not by a scan of every claim's entry).
  for (size_t i = 0; i < sources.size(); ++i) {
    const LexicalSegment& src = *sources[i];
    for (const auto& r : src.ranges()) {
      for (uint32_t d = r.first; d < r.end; ++d) {
        const uint32_t to = merged == nullptr ? UINT32_MAX : remap[i][d];
        if (to != UINT32_MAX) merged->SetDied(to, src.born(d) == kNever ? 0 : src.died(d));
        if (src.died(d) != kNever || src.born(d) == kNever) continue;
        auto it = current_.find(CurrentKey(r.tenant, src.claim_id(d)));
        if (it == current_.end() || it->second.segment != &src || it->second.doc != d) continue;
        if (to == UINT32_MAX) {
          // Cannot happen for a current doc (merges keep them); drop the
          // entry rather than point into a segment that is going away.
          LOG(ERROR) << "a current doc was merged away";
          current_.erase(it);
        } else {
          it->second = Loc{merged.get(), to};
        }
      }
    }
  }
  if (merged != nullptr) merged->RecomputeBounds();
  // Persisted first, then in-memory in content order (sources of one merge
  // are contiguous in memory order, or all persisted).
  auto list = std::make_shared<SegmentList>();
  bool placed = merged == nullptr;
  for (const auto& seg : *segments_) {
    if (!placed && merged->persisted() && !seg->persisted()) {
      list->push_back(merged);
      placed = true;
    }
    if (gone.count(seg.get())) {
      if (!placed && !merged->persisted()) {
        list->push_back(merged);
        placed = true;
      }
      continue;
    }
    list->push_back(seg);
  }
  if (!placed) list->push_back(merged);
  segments_ = std::move(list);
  oldest_unflushed_ = absl::InfiniteFuture();
  for (const auto& seg : *segments_) {
    if (!seg->persisted()) {
      oldest_unflushed_ = absl::Now();  // Conservative: restarts the clock.
      break;
    }
  }
}

absl::Status LexicalStore::WriteManifest(uint64_t covered) {
  storage::LexicalManifest m;
  m.set_format(kManifestFormat);
  m.set_covered_lsn(covered);
  // Held for the loop: the list may be replaced meanwhile.
  const std::shared_ptr<const SegmentList> list = segments();
  for (const auto& seg : *list) {
    if (!seg->persisted()) continue;
    storage::LexicalSegmentEntry* e = m.add_segments();
    e->set_id(seg->id());
    e->set_docs(seg->doc_count());
    std::string dead((seg->doc_count() + 7) / 8, '\0');
    bool any = false;
    for (uint32_t d = 0; d < seg->doc_count(); ++d) {
      // Deaths after `covered` are replayed from the log at open.
      if (seg->died(d) <= covered || seg->born(d) == kNever) {
        dead[d / 8] = static_cast<char>(dead[d / 8] | (1 << (d % 8)));
        any = true;
      }
    }
    if (any) e->set_dead(std::move(dead));
  }
  DASH_RETURN_IF_ERROR(options_.persist_manifest(m.SerializeAsString()));
  covered_lsn_ = covered;
  covered_.store(covered);
  return absl::OkStatus();
}

absl::Status LexicalStore::Flush() {
  absl::MutexLock m(&maintenance_mu_);
  const uint64_t committed = options_.committed_lsn();
  SegmentList chosen;
  uint64_t covered = 0;
  {
    absl::ReaderMutexLock l(&mu_);
    // Docs of the in-memory segments left behind (merged with newer ones)
    // must stay above the covered LSN.
    uint64_t limit = std::min(committed, applied_lsn_);
    for (const auto& seg : *segments_) {
      if (seg->persisted()) continue;
      if (seg->content_lsn() <= committed) {
        chosen.push_back(seg);
      } else if (seg->min_born() != kNever) {
        limit = std::min(limit, seg->min_born() == 0 ? 0 : seg->min_born() - 1);
      }
    }
    // The newest applied state at or below that: every change up to it is
    // in a chosen segment or a death. Only a boundary between Applies will
    // do — an Apply of a group of records reflects its last one, so a
    // point inside a group would claim records whose docs are not persisted.
    auto it = boundaries_.upper_bound(limit);
    covered = it == boundaries_.begin() ? 0 : *std::prev(it);
  }
  if (covered <= covered_lsn_ && chosen.empty()) return absl::OkStatus();
  covered = std::max(covered, covered_lsn_);
  {
    absl::MutexLock l(&mu_);
    boundaries_.erase(boundaries_.begin(), boundaries_.lower_bound(covered));
  }
  std::vector<std::vector<uint32_t>> remap;
  std::shared_ptr<LexicalSegment> merged;
  if (!chosen.empty()) {
    DASH_ASSIGN_OR_RETURN(merged, MergeSegments(chosen, /*persist=*/true, &remap, covered));
    Install(chosen, merged, remap);
  }
  // The new segment's files are durable; the manifest does not name them yet.
  DASH_SYNC_POINT("LexicalStore::Flush:BeforeManifest");
  DASH_RETURN_IF_ERROR(WriteManifest(covered));
  DASH_SYNC_POINT("LexicalStore::Flush:AfterManifest");
  return absl::OkStatus();
}

LexicalStore::SegmentList LexicalStore::PickMemoryMerge(const SegmentList& list) const {
  // The longest run of in-memory segments at the end sharing the last one's
  // size tier: merged once it is merge_factor long (a binary-counter-like
  // cascade, so each doc is copied O(log n) times before its flush).
  SegmentList run;
  for (auto it = list.rbegin(); it != list.rend() && !(*it)->persisted(); ++it) {
    if (!run.empty() && Tier((*it)->doc_count(), options_.merge_factor) !=
                            Tier(run.front()->doc_count(), options_.merge_factor)) {
      break;
    }
    run.insert(run.begin(), *it);
  }
  if (run.size() < options_.merge_factor) run.clear();
  return run;
}

LexicalStore::SegmentList LexicalStore::PickPersistedMerge(const SegmentList& list) const {
  std::map<int, SegmentList> tiers;
  for (const auto& seg : list) {
    if (!seg->persisted()) continue;
    if (seg->doc_count() > 0 && seg->dead_count() >= options_.merge_dead_ratio * seg->doc_count()) {
      return SegmentList{seg};  // Rewritten alone, dropping its dead docs.
    }
    tiers[Tier(seg->doc_count(), options_.merge_factor)].push_back(seg);
  }
  for (auto& [tier, segs] : tiers) {
    if (segs.size() >= options_.merge_factor) {
      segs.resize(std::min(segs.size(), 2 * options_.merge_factor));
      return segs;
    }
  }
  SegmentList persisted;  // Those the cap counts.
  for (const auto& seg : list) {
    if (seg->persisted() && seg->doc_count() >= options_.cap_min_docs) persisted.push_back(seg);
  }
  if (options_.max_segments == 0 || persisted.size() <= options_.max_segments) return {};
  // The smallest, enough of them to come back to the cap, or as many (at
  // least two) as stay within the size bound.
  std::stable_sort(persisted.begin(), persisted.end(),
                   [](const auto& a, const auto& b) { return a->doc_count() < b->doc_count(); });
  const uint64_t budget = options_.max_cap_merge_docs;
  size_t n = 0;
  uint64_t docs = 0;
  for (; n < persisted.size() - options_.max_segments + 1; ++n) {
    if (docs + persisted[n]->doc_count() > budget) break;
    docs += persisted[n]->doc_count();
  }
  if (n < 2) return {};
  persisted.resize(n);
  return persisted;
}

absl::Status LexicalStore::MergeOnce(uint64_t* written) {
  *written = 0;
  absl::MutexLock m(&maintenance_mu_);
  std::shared_ptr<const SegmentList> list = segments();
  SegmentList sources = PickMemoryMerge(*list);
  const bool persist = sources.empty();
  if (persist) sources = PickPersistedMerge(*list);
  if (sources.empty()) return absl::OkStatus();
  std::vector<std::vector<uint32_t>> remap;
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<LexicalSegment> merged,
                        MergeSegments(sources, persist, &remap, persist ? covered_lsn_ : kNever));
  Install(sources, merged, remap);
  *written = merged == nullptr ? 1 : std::max<uint64_t>(1, merged->bytes());
  if (!persist) return absl::OkStatus();
  DASH_SYNC_POINT("LexicalStore::Merge:BeforeManifest");
  DASH_RETURN_IF_ERROR(WriteManifest(covered_lsn_));
  DASH_SYNC_POINT("LexicalStore::Merge:AfterManifest");
  // The manifest no longer names them: their files go with the last reader.
  for (const auto& s : sources) s->MarkObsolete();
  return absl::OkStatus();
}

void LexicalStore::MaintenanceLoop() {
  absl::Time last_flush = absl::Now();
  for (;;) {
    bool flush = false;
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](LexicalStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                                 return s->stopping_ || s->wake_;
                               },
                               this),
                           options_.flush_interval / 4);
      if (stopping_) return;
      wake_ = false;
      size_t memory_docs = 0;
      for (const auto& s : *segments_) memory_docs += s->persisted() ? 0 : s->doc_count();
      flush =
          memory_docs >= options_.flush_docs ||
          absl::Now() - oldest_unflushed_ >= options_.flush_interval ||
          (absl::Now() - last_flush >= options_.flush_interval && applied_lsn_ > covered_.load());
    }
    if (flush) {
      absl::Status st = Flush();
      if (!st.ok() && !absl::IsCancelled(st)) LOG(ERROR) << "lexical index flush: " << st;
      last_flush = absl::Now();
    }
    uint64_t written = 0;
    absl::Status st = MergeOnce(&written);
    if (!st.ok() && !absl::IsCancelled(st)) LOG(ERROR) << "lexical index merge: " << st;
    // The rate limit: a merge's output, spread over time.
    if (written > 0 && options_.merge_bytes_per_second > 0) {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           absl::Seconds(written / options_.merge_bytes_per_second));
    }
    if (written > 0) {
      absl::MutexLock l(&mu_);
      wake_ = true;  // Another merge may be due.
    }
  }
}

LexicalStoreInfo LexicalStore::Info() const {
  LexicalStoreInfo info;
  std::shared_ptr<const SegmentList> list = segments();
  for (const auto& seg : *list) {
    if (seg->persisted()) {
      ++info.segments;
      info.bytes += seg->bytes();
    } else {
      ++info.memory_segments;
      info.buffer_docs += seg->doc_count();
    }
    info.docs += seg->doc_count();
    info.dead_docs += seg->dead_count();
    info.vectors += seg->vectors().rows();
    info.vector_graphs += static_cast<uint32_t>(seg->vectors().graphs());
  }
  info.covered_lsn = covered_.load();
  info.merge_backlog = !PickMemoryMerge(*list).empty() + !PickPersistedMerge(*list).empty();
  return info;
}

}  // namespace dash::index
