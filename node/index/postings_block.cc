#include "node/index/postings_block.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "streamvbyte.h"
#include "streamvbytedelta.h"

namespace dash::index {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

// SIMD decoders may load up to 16 bytes past the data they use.
constexpr size_t kDecodePadding = 16;

struct Header {
  BlockImpact impact;
  uint32_t doc_bytes = 0;
  uint32_t tf_bytes = 0;
  size_t header_bytes = 0;
};

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("postings block: ", what));
}

absl::StatusOr<Header> ReadHeader(absl::string_view in) {
  CodedInputStream stream(reinterpret_cast<const uint8_t*>(in.data()),
                          static_cast<int>(std::min<size_t>(in.size(), INT_MAX)));
  Header h;
  uint32_t* fields[] = {&h.impact.count,  &h.impact.first_doc,      &h.impact.last_doc,
                        &h.impact.max_tf, &h.impact.min_doc_length, &h.doc_bytes,
                        &h.tf_bytes};
  for (uint32_t* field : fields) {
    if (!stream.ReadVarint32(field)) return Corrupt("truncated header");
  }
  h.header_bytes = static_cast<size_t>(stream.CurrentPosition());
  const uint32_t n = h.impact.count;
  if (n == 0 || n > kBlockSize) return Corrupt(absl::StrCat("count ", n, " is not in 1..128"));
  if (h.impact.last_doc < h.impact.first_doc || h.impact.last_doc - h.impact.first_doc < n - 1) {
    return Corrupt("doc range too small for its count");
  }
  if (h.impact.max_tf == 0) return Corrupt("max tf is 0");
  if (h.doc_bytes > streamvbyte_max_compressedbytes(n - 1) ||
      h.tf_bytes > streamvbyte_max_compressedbytes(n)) {
    return Corrupt("stream longer than its count allows");
  }
  if (h.header_bytes + h.doc_bytes + h.tf_bytes > in.size()) return Corrupt("truncated block");
  return h;
}

// Decodes `length` values of the stream `bytes` (delta from `prev` when
// `delta`), which must be exactly `bytes.size()` long.
absl::Status DecodeStream(absl::string_view bytes, uint32_t length, bool delta, uint32_t prev,
                          uint32_t* out) {
  if (length == 0) return bytes.empty() ? absl::OkStatus() : Corrupt("stray stream bytes");
  std::string padded(streamvbyte_max_compressedbytes(length) + kDecodePadding, '\0');
  std::copy(bytes.begin(), bytes.end(), padded.begin());
  const auto* data = reinterpret_cast<const uint8_t*>(padded.data());
  const size_t used = delta ? streamvbyte_delta_decode(data, out, length, prev)
                            : streamvbyte_decode(data, out, length);
  if (used != bytes.size()) return Corrupt("a stream does not decode to its stored size");
  return absl::OkStatus();
}

}  // namespace

absl::Status EncodeBlockWithMinLength(absl::Span<const Posting> postings, uint32_t min_doc_length,
                                      std::string* out) {
  const size_t n = postings.size();
  if (n == 0 || n > kBlockSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("postings block: ", n, " postings; a block holds 1..", kBlockSize));
  }
  uint32_t max_tf = 0;
  std::vector<uint32_t> docs, tfs;
  docs.reserve(n - 1);
  tfs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (postings[i].tf == 0) {
      return absl::InvalidArgumentError(absl::StrCat("postings block: posting ", i, " has tf 0"));
    }
    if (i > 0) {
      if (postings[i].doc <= postings[i - 1].doc) {
        return absl::InvalidArgumentError(absl::StrCat("postings block: doc ", postings[i].doc,
                                                       " does not follow ", postings[i - 1].doc));
      }
      docs.push_back(postings[i].doc);
    }
    tfs.push_back(postings[i].tf - 1);
    max_tf = std::max(max_tf, postings[i].tf);
  }
  std::string doc_stream(streamvbyte_max_compressedbytes(n - 1), '\0');
  std::string tf_stream(streamvbyte_max_compressedbytes(n), '\0');
  doc_stream.resize(streamvbyte_delta_encode(docs.data(), static_cast<uint32_t>(docs.size()),
                                             reinterpret_cast<uint8_t*>(doc_stream.data()),
                                             postings[0].doc));
  tf_stream.resize(streamvbyte_encode(tfs.data(), static_cast<uint32_t>(tfs.size()),
                                      reinterpret_cast<uint8_t*>(tf_stream.data())));
  uint8_t header[7 * 5];
  uint8_t* end = header;
  for (uint32_t v :
       {static_cast<uint32_t>(n), postings[0].doc, postings[n - 1].doc, max_tf, min_doc_length,
        static_cast<uint32_t>(doc_stream.size()), static_cast<uint32_t>(tf_stream.size())}) {
    end = CodedOutputStream::WriteVarint32ToArray(v, end);
  }
  out->append(reinterpret_cast<const char*>(header), static_cast<size_t>(end - header));
  out->append(doc_stream);
  out->append(tf_stream);
  return absl::OkStatus();
}

absl::StatusOr<BlockImpact> ReadImpact(absl::string_view in, size_t* block_bytes) {
  absl::StatusOr<Header> h = ReadHeader(in);
  if (!h.ok()) return h.status();
  if (block_bytes != nullptr) *block_bytes = h->header_bytes + h->doc_bytes + h->tf_bytes;
  return h->impact;
}

absl::StatusOr<size_t> DecodeBlock(absl::string_view in, std::vector<Posting>* out) {
  absl::StatusOr<Header> h = ReadHeader(in);
  if (!h.ok()) return h.status();
  const uint32_t n = h->impact.count;
  std::vector<uint32_t> docs(n), tfs(n);
  docs[0] = h->impact.first_doc;
  absl::string_view rest = in.substr(h->header_bytes);
  absl::Status st = DecodeStream(rest.substr(0, h->doc_bytes), n - 1, /*delta=*/true,
                                 h->impact.first_doc, docs.data() + 1);
  if (st.ok()) {
    st = DecodeStream(rest.substr(h->doc_bytes, h->tf_bytes), n, /*delta=*/false, 0, tfs.data());
  }
  if (!st.ok()) return st;
  out->clear();
  out->reserve(n);
  uint32_t max_tf = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (i > 0 && docs[i] <= docs[i - 1]) return Corrupt("docs do not increase");
    if (tfs[i] >= h->impact.max_tf) return Corrupt("a tf is above the block's max");
    max_tf = std::max(max_tf, tfs[i] + 1);
    out->push_back(Posting{docs[i], tfs[i] + 1});
  }
  if (docs[n - 1] != h->impact.last_doc) return Corrupt("the last doc differs from the header's");
  if (max_tf != h->impact.max_tf) return Corrupt("the max tf differs from the header's");
  return h->header_bytes + h->doc_bytes + h->tf_bytes;
}

double BlockUpperBound(const BlockImpact& impact, double weight, const query::Bm25Params& params,
                       double avg_doc_length) {
  const double tf = impact.max_tf;
  const double norm =
      params.k1 * (1.0 - params.b + params.b * impact.min_doc_length / avg_doc_length);
  return weight * (tf * (params.k1 + 1.0)) / (tf + norm);
}

}  // namespace dash::index
