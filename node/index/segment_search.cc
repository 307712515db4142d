#include "node/index/segment_search.h"

#include <algorithm>
#include <limits>
#include <queue>

namespace dash::index {
namespace {

// Pruning compares sums of bounds with the k-th score; computed in another
// order than the scores, they may differ in the last bits. Pruning only below
// the threshold by this margin keeps the result exact.
constexpr double kSlack = 1e-9;

struct List {
  size_t index;  // In the query's terms.
  double weight;
  double bound;  // weight × (k1 + 1): no posting contributes more.
  PostingCursor cursor;
};

// The "better" order of results: higher score, then lower doc id.
struct Better {
  bool operator()(const ScoredDoc& a, const ScoredDoc& b) const {
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
  }
};

}  // namespace

absl::StatusOr<std::vector<ScoredDoc>> SearchSegment(const SegmentPostings& segment,
                                                     const std::vector<WeightedTerm>& terms,
                                                     size_t k, const query::Bm25Params& params,
                                                     double avg_doc_length,
                                                     const std::function<bool(uint32_t)>& allowed,
                                                     SegmentSearchStats* stats) {
  std::vector<List> lists;
  for (size_t i = 0; i < terms.size(); ++i) {
    std::optional<SegmentPostings::TermInfo> info = segment.Find(terms[i].term);
    if (!info.has_value()) continue;
    PostingCursor cursor = segment.Cursor(*info);
    if (!cursor.status().ok()) return cursor.status();
    if (!cursor.Valid()) continue;
    lists.push_back(
        List{i, terms[i].weight, terms[i].weight * (params.k1 + 1.0), std::move(cursor)});
  }
  std::vector<ScoredDoc> out;
  if (lists.empty() || k == 0) return out;
  std::stable_sort(lists.begin(), lists.end(),
                   [](const List& a, const List& b) { return a.bound < b.bound; });
  // prefix[j]: the bounds of lists[0..j) together.
  std::vector<double> prefix(lists.size() + 1, 0);
  for (size_t j = 0; j < lists.size(); ++j) prefix[j + 1] = prefix[j] + lists[j].bound;

  auto contribution = [&](const List& l, uint32_t doc, uint32_t tf) {
    const double length = segment.DocLength(doc);
    const double norm = params.k1 * (1.0 - params.b + params.b * length / avg_doc_length);
    return l.weight * (tf * (params.k1 + 1.0)) / (tf + norm);
  };

  std::priority_queue<ScoredDoc, std::vector<ScoredDoc>, Better> top;  // top(): the worst kept.
  double threshold = -std::numeric_limits<double>::infinity();  // Pruning off until k are kept.
  size_t first_essential = 0;  // Lists before it only answer probes.
  std::vector<double> contributions(terms.size(), 0);
  for (;;) {
    uint32_t doc = UINT32_MAX;
    bool any = false;
    for (size_t j = first_essential; j < lists.size(); ++j) {
      if (lists[j].cursor.Valid()) {
        doc = std::min(doc, lists[j].cursor.doc());
        any = true;
      }
    }
    if (!any) break;
    const bool admitted = !allowed || allowed(doc);
    double partial = 0;
    for (size_t j = first_essential; j < lists.size(); ++j) {
      PostingCursor& c = lists[j].cursor;
      if (!c.Valid() || c.doc() != doc) continue;
      if (admitted) {
        const double s = contribution(lists[j], doc, c.tf());
        contributions[lists[j].index] = s;
        partial += s;
      }
      c.Next();
      if (!c.status().ok()) return c.status();
    }
    bool competitive = admitted;
    for (size_t j = first_essential; competitive && j-- > 0;) {
      if (partial + prefix[j + 1] < threshold * (1 - kSlack)) {
        competitive = false;  // Even every remaining term at its bound falls short.
        break;
      }
      PostingCursor& c = lists[j].cursor;
      c.Advance(doc);
      if (!c.status().ok()) return c.status();
      if (c.Valid() && c.doc() == doc) {
        const double s = contribution(lists[j], doc, c.tf());
        contributions[lists[j].index] = s;
        partial += s;
      }
    }
    if (competitive) {
      if (stats != nullptr) ++stats->candidates;
      double score = 0;  // In query order, as exhaustive scoring adds them.
      for (double s : contributions) score += s;
      const ScoredDoc hit{doc, score};
      if (top.size() < k) {
        top.push(hit);
      } else if (Better()(hit, top.top())) {
        top.pop();
        top.push(hit);
      }
      if (top.size() == k) {
        threshold = top.top().score;
        while (first_essential < lists.size() &&
               prefix[first_essential + 1] < threshold * (1 - kSlack)) {
          ++first_essential;
        }
      }
    }
    std::fill(contributions.begin(), contributions.end(), 0);
  }
  if (stats != nullptr) {
    for (const List& l : lists) stats->blocks_decoded += l.cursor.blocks_decoded();
  }
  out.resize(top.size());
  for (size_t i = out.size(); i-- > 0;) {
    out[i] = top.top();
    top.pop();
  }
  return out;
}

}  // namespace dash::index
