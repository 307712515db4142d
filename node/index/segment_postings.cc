#include "node/index/segment_postings.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace dash::index {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using google::protobuf::io::StringOutputStream;

// Terms longer than this are not indexed terms (the analyzer caps tokens far
// below it): a dictionary claiming one is damaged.
constexpr uint32_t kMaxTermBytes = 1 << 16;

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("segment dictionary: ", what));
}

}  // namespace

absl::Status SegmentPostingsWriter::AddDoc(uint32_t doc, const std::vector<std::string>& terms) {
  if (!lengths_.empty() && doc <= lengths_.back().first) {
    return absl::InvalidArgumentError(
        absl::StrCat("doc ", doc, " does not follow doc ", lengths_.back().first));
  }
  std::map<absl::string_view, uint32_t> tfs;
  for (const std::string& t : terms) {
    if (t.empty() || t.size() > kMaxTermBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("doc ", doc, ": a term of ", t.size(), " bytes is not indexed"));
    }
    ++tfs[t];
  }
  for (const auto& [term, tf] : tfs) terms_[std::string(term)].push_back(Posting{doc, tf});
  lengths_.emplace_back(doc, static_cast<uint32_t>(terms.size()));
  return absl::OkStatus();
}

absl::Status SegmentPostingsWriter::AddLength(uint32_t doc, uint32_t length) {
  if (!lengths_.empty() && doc <= lengths_.back().first) {
    return absl::InvalidArgumentError(
        absl::StrCat("doc ", doc, " does not follow doc ", lengths_.back().first));
  }
  lengths_.emplace_back(doc, length);
  return absl::OkStatus();
}

bool SegmentPostingsWriter::Declared(uint32_t doc) const {
  // A merge declares docs 0, 1, 2, ...: then doc is its own index.
  if (doc < lengths_.size() && lengths_[doc].first == doc) return true;
  auto it = std::lower_bound(lengths_.begin(), lengths_.end(), std::make_pair(doc, 0u));
  return it != lengths_.end() && it->first == doc;
}

absl::Status SegmentPostingsWriter::AddPosting(absl::string_view term, Posting posting) {
  return AddPostings(term, {posting});
}

absl::Status SegmentPostingsWriter::AddPostings(absl::string_view term,
                                                const std::vector<Posting>& postings) {
  if (postings.empty()) return absl::OkStatus();
  if (term.empty() || term.size() > kMaxTermBytes) {
    return absl::InvalidArgumentError(absl::StrCat("doc ", postings[0].doc, ": a term of ",
                                                   term.size(), " bytes is not indexed"));
  }
  for (const Posting& posting : postings) {
    if (!Declared(posting.doc) || posting.tf == 0) {
      return absl::InvalidArgumentError(absl::StrCat("posting (doc ", posting.doc, ", tf ",
                                                     posting.tf, ") of an undeclared doc or tf 0"));
    }
  }
  std::vector<Posting>& list = terms_[std::string(term)];
  for (const Posting& posting : postings) {
    if (!list.empty() && list.back().doc >= posting.doc) unsorted_ = true;
    list.push_back(posting);
  }
  return absl::OkStatus();
}

SegmentPostingsWriter::Bodies SegmentPostingsWriter::Finish() {
  if (unsorted_) {
    for (auto& [term, list] : terms_) {
      std::sort(list.begin(), list.end(),
                [](const Posting& a, const Posting& b) { return a.doc < b.doc; });
    }
    unsorted_ = false;
  }
  Bodies out;
  auto doc_length = [this](uint32_t doc) {
    auto it = std::lower_bound(lengths_.begin(), lengths_.end(), std::make_pair(doc, 0u));
    return it != lengths_.end() && it->first == doc ? it->second : 0u;
  };
  {
    StringOutputStream stream(&out.dict);
    CodedOutputStream dict(&stream);
    dict.WriteVarint32(static_cast<uint32_t>(lengths_.size()));
    uint32_t prev = 0;
    for (const auto& [doc, length] : lengths_) {
      dict.WriteVarint32(doc - prev);  // The first: the doc itself.
      dict.WriteVarint32(length);
      prev = doc;
    }
    dict.WriteVarint32(static_cast<uint32_t>(terms_.size()));
    for (const auto& [term, postings] : terms_) {
      const size_t before = out.postings.size();
      for (size_t i = 0; i < postings.size(); i += kBlockSize) {
        const size_t n = std::min(kBlockSize, postings.size() - i);
        // The writer built them: increasing docs, tf >= 1, so this cannot fail.
        (void)EncodeBlock(absl::MakeConstSpan(postings).subspan(i, n), doc_length, &out.postings);
      }
      dict.WriteVarint32(static_cast<uint32_t>(term.size()));
      dict.WriteString(term);
      dict.WriteVarint32(static_cast<uint32_t>(postings.size()));
      dict.WriteVarint64(out.postings.size() - before);
    }
  }
  return out;
}

absl::StatusOr<SegmentPostings> SegmentPostings::Open(std::string dict, std::string postings) {
  SegmentPostings s;
  s.postings_ = std::move(postings);
  CodedInputStream in(reinterpret_cast<const uint8_t*>(dict.data()),
                      static_cast<int>(std::min<size_t>(dict.size(), INT_MAX)));
  uint32_t docs = 0;
  if (!in.ReadVarint32(&docs)) return Corrupt("truncated document count");
  if (docs > dict.size()) return Corrupt("more documents than the dictionary has room for");
  s.lengths_.reserve(docs);
  uint64_t doc = 0;
  for (uint32_t i = 0; i < docs; ++i) {
    uint32_t delta = 0, length = 0;
    if (!in.ReadVarint32(&delta) || !in.ReadVarint32(&length)) {
      return Corrupt("truncated document lengths");
    }
    if (i > 0 && delta == 0) return Corrupt("document ids do not increase");
    doc += delta;
    if (doc > UINT32_MAX) return Corrupt("document id out of range");
    s.lengths_.emplace_back(static_cast<uint32_t>(doc), length);
    s.total_length_ += length;
  }
  uint32_t terms = 0;
  if (!in.ReadVarint32(&terms)) return Corrupt("truncated term count");
  if (terms > dict.size()) return Corrupt("more terms than the dictionary has room for");
  s.terms_.reserve(terms);
  s.infos_.reserve(terms);
  size_t offset = 0;
  for (uint32_t i = 0; i < terms; ++i) {
    uint32_t size = 0;
    std::string term;
    TermInfo info;
    uint64_t bytes = 0;
    if (!in.ReadVarint32(&size) || size == 0 || size > kMaxTermBytes ||
        !in.ReadString(&term, static_cast<int>(size)) || !in.ReadVarint32(&info.df) ||
        !in.ReadVarint64(&bytes)) {
      return Corrupt(absl::StrCat("term ", i, " is truncated or malformed"));
    }
    if (!s.terms_.empty() && term <= s.terms_.back()) return Corrupt("terms out of order");
    if (info.df == 0 || info.df > docs) return Corrupt(absl::StrCat("term ", i, ": bad df"));
    if (bytes > s.postings_.size() - offset) return Corrupt("posting lists overrun the postings");
    info.offset = offset;
    info.bytes = static_cast<size_t>(bytes);
    offset += info.bytes;
    s.terms_.push_back(std::move(term));
    s.infos_.push_back(info);
  }
  if (offset != s.postings_.size()) return Corrupt("the postings hold bytes no term claims");
  if (in.CurrentPosition() != static_cast<int>(dict.size())) return Corrupt("trailing bytes");
  return s;
}

uint32_t SegmentPostings::DocLength(uint32_t doc) const {
  // A segment's docs are 0..n-1, so a doc is usually its own index: no
  // search on the scoring path (it was a twentieth of a query's CPU).
  if (doc < lengths_.size() && lengths_[doc].first == doc) return lengths_[doc].second;
  auto it = std::lower_bound(lengths_.begin(), lengths_.end(), std::make_pair(doc, 0u));
  return it != lengths_.end() && it->first == doc ? it->second : 0;
}

std::optional<SegmentPostings::TermInfo> SegmentPostings::Find(absl::string_view term) const {
  auto it = std::lower_bound(terms_.begin(), terms_.end(), term,
                             [](const std::string& a, absl::string_view b) { return a < b; });
  if (it == terms_.end() || *it != term) return std::nullopt;
  return infos_[static_cast<size_t>(it - terms_.begin())];
}

PostingCursor SegmentPostings::Cursor(const TermInfo& term) const {
  PostingCursor cursor(absl::string_view(postings_).substr(term.offset, term.bytes));
  cursor.LoadBlock();
  return cursor;
}

bool PostingCursor::LoadBlock() {
  valid_ = false;
  if (rest_.empty() || !status_.ok()) return false;
  absl::StatusOr<BlockImpact> impact = ReadImpact(rest_, nullptr);
  absl::StatusOr<size_t> used = impact.ok() ? DecodeBlock(rest_, &block_) : impact.status();
  if (!used.ok()) {
    status_ = used.status();
    return false;
  }
  ++blocks_decoded_;
  impact_ = *impact;
  rest_.remove_prefix(*used);
  index_ = 0;
  valid_ = true;
  return true;
}

void PostingCursor::Next() {
  if (!valid_) return;
  if (++index_ < block_.size()) return;
  LoadBlock();
}

void PostingCursor::NextBlock() {
  if (!valid_) return;
  LoadBlock();
}

void PostingCursor::Advance(uint32_t target) {
  if (!valid_ || doc() >= target) return;
  if (impact_.last_doc < target) {
    // Skip the blocks that end before the target by their headers alone.
    for (;;) {
      if (rest_.empty()) {
        valid_ = false;
        return;
      }
      size_t bytes = 0;
      absl::StatusOr<BlockImpact> next = ReadImpact(rest_, &bytes);
      if (!next.ok()) {
        status_ = next.status();
        valid_ = false;
        return;
      }
      if (next->last_doc >= target) break;
      rest_.remove_prefix(bytes);
    }
    if (!LoadBlock()) return;
  }
  while (doc() < target) ++index_;  // The block's last doc is >= target.
}

}  // namespace dash::index
