#include "node/index/lexical_segment.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "node/index/segment_file.h"

namespace dash::index {
namespace {

using google::protobuf::io::ArrayInputStream;
using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using google::protobuf::io::StringOutputStream;

constexpr uint32_t kDocsVersion = 1;
constexpr uint32_t kPostingsVersion = 1;  // DICT and POST (segment_format.md).
constexpr uint32_t kVectorsVersion = 1;

std::string NewSegmentId() {
  // From the OS's entropy source: ids of segments made by different
  // processes over a directory's life must not collide.
  // seeded from it once per thread, not opened per segment.
  thread_local std::mt19937_64 gen = [] {
    std::random_device rd;
    std::seed_seq seed{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seed);
  }();
  std::string id(kSegmentIdBytes, '\0');
  for (size_t i = 0; i < id.size(); i += 8) {
    const uint64_t r = gen();
    for (size_t j = 0; j < 8 && i + j < id.size(); ++j) id[i + j] = static_cast<char>(r >> (8 * j));
  }
  return id;
}

std::string PathOf(const std::string& dir, const std::string& hex, absl::string_view ext) {
  return absl::StrCat(dir, "/", hex, ".", ext);
}

// The DOCS body: tenant count, then each tenant (name, doc count) in order,
// then every doc's claim id in doc order; all lengths and counts varints.
std::string EncodeDocs(const std::vector<LexicalSegment::TenantRange>& ranges,
                       const std::vector<std::string>& claim_ids) {
  std::string out;
  {
    StringOutputStream stream(&out);
    CodedOutputStream o(&stream);
    o.WriteVarint32(static_cast<uint32_t>(ranges.size()));
    for (const auto& r : ranges) {
      o.WriteVarint32(static_cast<uint32_t>(r.tenant.size()));
      o.WriteString(r.tenant);
      o.WriteVarint32(r.end - r.first);
    }
    for (const std::string& id : claim_ids) {
      o.WriteVarint32(static_cast<uint32_t>(id.size()));
      o.WriteString(id);
    }
  }
  return out;
}

}  // namespace

std::string TenantTermKey(absl::string_view tenant, absl::string_view term) {
  return absl::StrCat(tenant, absl::string_view("\0", 1), term);
}

LexicalSegment::~LexicalSegment() {
  if (!obsolete_.load() || dir_.empty()) return;
  const std::string hex = hex_id();
  for (const char* ext : {"dict", "post", "docs", "vec"}) {
    const std::string path = PathOf(dir_, hex, ext);
    if (std::remove(path.c_str()) != 0) PLOG(WARNING) << "removing " << path;
  }
}

std::string LexicalSegment::hex_id() const { return absl::BytesToHexString(id_); }

const LexicalSegment::TenantRange* LexicalSegment::Range(absl::string_view tenant) const {
  auto it =
      std::lower_bound(ranges_.begin(), ranges_.end(), tenant,
                       [](const TenantRange& r, absl::string_view t) { return r.tenant < t; });
  return it != ranges_.end() && it->tenant == tenant ? &*it : nullptr;
}

const std::string& LexicalSegment::tenant_of(uint32_t doc) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), doc,
                             [](uint32_t d, const TenantRange& r) { return d < r.end; });
  return it->tenant;
}

std::pair<uint32_t, uint32_t> LexicalSegment::DocsOf(const TenantRange& r,
                                                     absl::string_view claim_id) const {
  auto first = claim_ids_.begin() + r.first, end = claim_ids_.begin() + r.end;
  auto lo = std::lower_bound(first, end, claim_id,
                             [](const std::string& a, absl::string_view b) { return a < b; });
  auto hi = std::upper_bound(lo, end, claim_id,
                             [](absl::string_view a, const std::string& b) { return a < b; });
  return {static_cast<uint32_t>(lo - claim_ids_.begin()),
          static_cast<uint32_t>(hi - claim_ids_.begin())};
}

uint32_t LexicalSegment::dead_count() const {
  if (min_died_.load() == kNever && max_born_.load() != kNever) return 0;
  uint32_t n = 0;
  for (uint32_t d = 0; d < doc_count(); ++d) n += (died(d) != kNever || born(d) == kNever);
  return n;
}

void LexicalSegment::InitDocs(const std::vector<const LexicalDocInput*>& sorted) {
  const size_t n = sorted.size();
  claim_ids_.reserve(n);
  born_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  died_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) {
    const LexicalDocInput& d = *sorted[i];
    if (ranges_.empty() || ranges_.back().tenant != d.tenant) {
      ranges_.push_back(
          TenantRange{d.tenant, static_cast<uint32_t>(i), static_cast<uint32_t>(i), 0});
    }
    ranges_.back().end = static_cast<uint32_t>(i + 1);
    ranges_.back().total_length += d.terms.size();
    claim_ids_.push_back(d.claim_id);
    born_[i].store(d.born);
    died_[i].store(kNever);
  }
}

void LexicalSegment::RecomputeBounds() {
  uint64_t max_born = 0, min_died = kNever, min_born = kNever;
  for (uint32_t d = 0; d < doc_count(); ++d) {
    max_born = std::max(max_born, born(d));
    min_died = std::min(min_died, died(d));
    if (born(d) != kNever) min_born = std::min(min_born, born(d));
  }
  max_born_.store(max_born);
  min_born_.store(min_born);
  min_died_.store(min_died);
}

absl::Status LexicalSegment::Seal(SegmentPostingsWriter& writer, uint64_t content_lsn) {
  SegmentPostingsWriter::Bodies bodies = writer.Finish();
  docs_body_ = EncodeDocs(ranges_, claim_ids_);
  dict_body_ = bodies.dict;
  post_body_ = bodies.postings;
  bytes_ = dict_body_.size() + post_body_.size() + docs_body_.size();
  DASH_ASSIGN_OR_RETURN(SegmentPostings postings,
                        SegmentPostings::Open(std::move(bodies.dict), std::move(bodies.postings)));
  postings_.emplace(std::move(postings));
  content_lsn_.store(content_lsn);
  RecomputeBounds();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LexicalSegment>> LexicalSegment::Build(
    std::vector<LexicalDocInput> docs, uint64_t content_lsn) {
  std::vector<const LexicalDocInput*> sorted;
  sorted.reserve(docs.size());
  for (const auto& d : docs) sorted.push_back(&d);
  std::sort(sorted.begin(), sorted.end(), [](const LexicalDocInput* a, const LexicalDocInput* b) {
    return std::tie(a->tenant, a->claim_id, a->born) < std::tie(b->tenant, b->claim_id, b->born);
  });
  SegmentPostingsWriter writer;
  std::vector<std::string> keyed;
  for (size_t i = 0; i < sorted.size(); ++i) {
    keyed.clear();
    keyed.reserve(sorted[i]->terms.size());
    for (const std::string& t : sorted[i]->terms)
      keyed.push_back(TenantTermKey(sorted[i]->tenant, t));
    DASH_RETURN_IF_ERROR(writer.AddDoc(static_cast<uint32_t>(i), keyed));
  }
  auto seg = std::shared_ptr<LexicalSegment>(new LexicalSegment());
  seg->id_ = NewSegmentId();
  seg->InitDocs(sorted);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const LexicalDocInput& d = *sorted[i];
    if (d.vector.has_value() && !seg->vectors_.Add(static_cast<uint32_t>(i), d.tenant, *d.vector)) {
      LOG(ERROR) << "claim \"" << d.claim_id << "\" of \"" << d.tenant
                 << "\": its vector does not fit its tenant's other vectors; not indexed";
    }
  }
  DASH_RETURN_IF_ERROR(seg->vectors_.Finish());
  DASH_RETURN_IF_ERROR(seg->Seal(writer, content_lsn));
  return seg;
}

absl::StatusOr<std::shared_ptr<LexicalSegment>> LexicalSegment::Merge(
    const std::vector<std::shared_ptr<LexicalSegment>>& sources, uint64_t content_lsn,
    const std::function<bool(const LexicalSegment&, uint32_t)>& keep,
    std::vector<std::vector<uint32_t>>* remap) {
  // The kept docs in (tenant, claim id, born) order.
  struct Ref {
    const std::string* tenant;
    const std::string* claim_id;
    uint64_t born;
    uint32_t source;
    uint32_t doc;
  };
  std::vector<Ref> refs;
  for (uint32_t s = 0; s < sources.size(); ++s) {
    const LexicalSegment& src = *sources[s];
    for (const TenantRange& r : src.ranges_) {
      for (uint32_t d = r.first; d < r.end; ++d) {
        if (keep(src, d)) refs.push_back(Ref{&r.tenant, &src.claim_ids_[d], src.born(d), s, d});
      }
    }
  }
  std::sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) {
    return std::tie(*a.tenant, *a.claim_id, a.born, a.source) <
           std::tie(*b.tenant, *b.claim_id, b.born, b.source);
  });
  std::vector<std::vector<uint32_t>> map(sources.size());
  for (uint32_t s = 0; s < sources.size(); ++s) map[s].assign(sources[s]->doc_count(), UINT32_MAX);
  SegmentPostingsWriter writer;
  std::vector<LexicalDocInput> inputs(refs.size());  // Doc table only: no terms.
  std::vector<const LexicalDocInput*> sorted(refs.size());
  for (uint32_t i = 0; i < refs.size(); ++i) {
    const Ref& ref = refs[i];
    map[ref.source][ref.doc] = i;
    DASH_RETURN_IF_ERROR(writer.AddLength(i, sources[ref.source]->postings().DocLength(ref.doc)));
    inputs[i].tenant = *ref.tenant;
    inputs[i].claim_id = *ref.claim_id;
    inputs[i].born = ref.born;
    sorted[i] = &inputs[i];
  }
  std::vector<Posting> kept;  // One term's postings of one source.
  for (uint32_t s = 0; s < sources.size(); ++s) {
    const SegmentPostings& p = sources[s]->postings();
    for (size_t t = 0; t < p.term_count(); ++t) {
      kept.clear();
      PostingCursor c = p.Cursor(p.term_info(t));
      for (; c.Valid(); c.Next()) {
        const uint32_t to = map[s][c.doc()];
        if (to != UINT32_MAX) kept.push_back({to, c.tf()});
      }
      DASH_RETURN_IF_ERROR(c.status());
      DASH_RETURN_IF_ERROR(writer.AddPostings(p.term(t), kept));
    }
  }
  auto seg = std::shared_ptr<LexicalSegment>(new LexicalSegment());
  seg->id_ = NewSegmentId();
  seg->InitDocs(sorted);
  // Lengths are the postings' (InitDocs counted no terms).
  for (TenantRange& r : seg->ranges_) {
    r.total_length = 0;
    for (uint32_t d = r.first; d < r.end; ++d) {
      r.total_length += sources[refs[d].source]->postings().DocLength(refs[d].doc);
    }
  }
  for (uint32_t i = 0; i < refs.size(); ++i) {
    seg->died_[i].store(sources[refs[i].source]->died(refs[i].doc));
  }
  // The kept docs' vectors, rows copied from their sources' sections.
  for (uint32_t i = 0; i < refs.size(); ++i) {
    const Ref& ref = refs[i];
    const SegmentVectors::Section* section = sources[ref.source]->vectors_.Find(*ref.tenant);
    if (section == nullptr) continue;
    const int64_t row = section->RowOf(ref.doc);
    if (row < 0) continue;
    seg->vectors_.Add(i, *ref.tenant, section->metric, section->row(static_cast<size_t>(row)),
                      section->dim);
  }
  DASH_RETURN_IF_ERROR(seg->vectors_.Finish());
  DASH_RETURN_IF_ERROR(seg->Seal(writer, content_lsn));
  if (remap != nullptr) *remap = std::move(map);
  return seg;
}

absl::Status LexicalSegment::Persist(const std::string& dir, const VectorGraphOptions& graphs) {
  if (persisted()) return absl::OkStatus();
  const std::string hex = hex_id();
  DASH_RETURN_IF_ERROR(vectors_.BuildGraphs(graphs));
  std::vector<std::string> vec_pieces;
  DASH_RETURN_IF_ERROR(vectors_.SerializeParts(&vec_pieces));
  std::vector<absl::string_view> vec_parts(vec_pieces.begin(), vec_pieces.end());
  DASH_RETURN_IF_ERROR(
      WriteSegmentFile(PathOf(dir, hex, "dict"), {"DICT", kPostingsVersion, id_}, dict_body_));
  DASH_RETURN_IF_ERROR(
      WriteSegmentFile(PathOf(dir, hex, "post"), {"POST", kPostingsVersion, id_}, post_body_));
  DASH_RETURN_IF_ERROR(
      WriteSegmentFile(PathOf(dir, hex, "docs"), {"DOCS", kDocsVersion, id_}, docs_body_));
  DASH_RETURN_IF_ERROR(
      WriteSegmentFile(PathOf(dir, hex, "vec"), {"VECS", kVectorsVersion, id_}, vec_parts));
  for (const std::string& p : vec_pieces) bytes_ += p.size();
  dir_ = dir;
  // The postings keep their own copies; these were only for writing.
  std::string().swap(dict_body_);
  std::string().swap(post_body_);
  std::string().swap(docs_body_);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LexicalSegment>> LexicalSegment::Load(const std::string& dir,
                                                                     const std::string& id,
                                                                     absl::string_view dead) {
  if (id.size() != kSegmentIdBytes) {
    return absl::DataLossError(absl::StrCat("segment id of ", id.size(), " bytes"));
  }
  auto seg = std::shared_ptr<LexicalSegment>(new LexicalSegment());
  seg->id_ = id;
  const std::string hex = seg->hex_id();
  const std::string docs_path = PathOf(dir, hex, "docs");
  DASH_ASSIGN_OR_RETURN(std::string dict,
                        ReadSegmentFile(PathOf(dir, hex, "dict"), {"DICT", kPostingsVersion, id}));
  DASH_ASSIGN_OR_RETURN(std::string post,
                        ReadSegmentFile(PathOf(dir, hex, "post"), {"POST", kPostingsVersion, id}));
  DASH_ASSIGN_OR_RETURN(std::string docs, ReadSegmentFile(docs_path, {"DOCS", kDocsVersion, id}));
  seg->bytes_ = dict.size() + post.size() + docs.size();
  DASH_ASSIGN_OR_RETURN(SegmentPostings postings,
                        SegmentPostings::Open(std::move(dict), std::move(post)));
  seg->postings_.emplace(std::move(postings));

  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(docs_path, ": ", what));
  };
  ArrayInputStream stream(docs.data(), static_cast<int>(docs.size()));
  CodedInputStream in(&stream);
  in.SetTotalBytesLimit(static_cast<int>(std::min<size_t>(docs.size() + 1, INT32_MAX)));
  uint32_t tenants = 0;
  if (!in.ReadVarint32(&tenants)) return corrupt("truncated tenant count");
  std::vector<std::pair<std::string, uint32_t>> counts;
  uint64_t total = 0;
  for (uint32_t t = 0; t < tenants; ++t) {
    uint32_t len = 0, n = 0;
    std::string tenant;
    if (!in.ReadVarint32(&len) || len > docs.size() || !in.ReadString(&tenant, len) ||
        !in.ReadVarint32(&n)) {
      return corrupt("truncated tenant table");
    }
    if (!counts.empty() && tenant <= counts.back().first) return corrupt("tenants out of order");
    total += n;
    if (total > docs.size()) return corrupt("more docs than bytes");
    counts.emplace_back(std::move(tenant), n);
  }
  if (total != seg->postings_->doc_count()) {
    return corrupt(
        absl::StrCat(total, " docs but the dictionary has ", seg->postings_->doc_count()));
  }
  std::vector<LexicalDocInput> inputs(total);
  std::vector<const LexicalDocInput*> sorted(total);
  uint32_t doc = 0;
  for (const auto& [tenant, n] : counts) {
    for (uint32_t i = 0; i < n; ++i, ++doc) {
      uint32_t len = 0;
      if (!in.ReadVarint32(&len) || len > docs.size() ||
          !in.ReadString(&inputs[doc].claim_id, len)) {
        return corrupt("truncated claim ids");
      }
      inputs[doc].tenant = tenant;
      sorted[doc] = &inputs[doc];
    }
  }
  if (in.CurrentPosition() != static_cast<int>(docs.size())) return corrupt("trailing bytes");
  seg->InitDocs(sorted);
  for (TenantRange& r : seg->ranges_) {
    for (uint32_t d = r.first; d < r.end; ++d) r.total_length += seg->postings_->DocLength(d);
  }
  {
    const std::string vec_path = PathOf(dir, hex, "vec");
    DASH_ASSIGN_OR_RETURN(std::string vec,
                          ReadSegmentFile(vec_path, {"VECS", kVectorsVersion, id}));
    seg->bytes_ += vec.size();
    DASH_ASSIGN_OR_RETURN(seg->vectors_,
                          SegmentVectors::Parse(vec, vec_path, static_cast<uint32_t>(total)));
    for (const SegmentVectors::Section& sec : seg->vectors_.sections()) {
      const TenantRange* r = seg->Range(sec.tenant);
      if (r == nullptr || sec.docs.front() < r->first || sec.docs.back() >= r->end) {
        return absl::DataLossError(
            absl::StrCat(vec_path, ": vectors of \"", sec.tenant, "\" outside its docs"));
      }
    }
  }
  if (dead.size() > (total + 7) / 8) {
    return absl::DataLossError(absl::StrCat("segment ", hex, ": dead-docs bitmap of ", dead.size(),
                                            " bytes for ", total, " docs"));
  }
  for (size_t i = 0; i < dead.size() * 8 && i < total; ++i) {
    if ((static_cast<uint8_t>(dead[i / 8]) >> (i % 8)) & 1) seg->died_[i].store(0);
  }
  seg->RecomputeBounds();
  seg->dir_ = dir;
  return seg;
}

void LexicalSegment::Kill(uint32_t doc, uint64_t lsn) {
  died_[doc].store(lsn, std::memory_order_release);
  uint64_t cur = min_died_.load();
  while (lsn < cur && !min_died_.compare_exchange_weak(cur, lsn)) {
  }
}

std::vector<uint32_t> LexicalSegment::TruncateAfter(uint64_t lsn) {
  std::vector<uint32_t> changed;
  for (uint32_t d = 0; d < doc_count(); ++d) {
    bool change = false;
    if (born(d) > lsn && born(d) != kNever) {
      born_[d].store(kNever);
      change = true;
    }
    if (died(d) > lsn && died(d) != kNever) {
      died_[d].store(kNever);
      change = true;
    }
    if (change) changed.push_back(d);
  }
  if (content_lsn() > lsn) content_lsn_.store(lsn);
  RecomputeBounds();
  return changed;
}

}  // namespace dash::index
