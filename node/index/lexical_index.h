// What the BM25 index is made of: a claim's lexical document (its text
// followed by the quotes of all its evidence, analyzed by AnalyzeText), and
// the scoring of one short text for choosing evidence. The index itself is
// LexicalStore (segments derived from the log). Thread-safe functions.
#ifndef DASH_NODE_INDEX_LEXICAL_INDEX_H_
#define DASH_NODE_INDEX_LEXICAL_INDEX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"
#include "query/shard_target.h"

namespace dash::index {

using query::Bm25Params;
using query::CorpusStats;

// Texts analyzed ahead of time, by content: a writer analyzes its batch's
// claim texts and quotes on its own thread, so that the commit thread only
// looks them up. Thread-compatible.
class AnalyzedTexts {
 public:
  void Add(absl::string_view text);
  // The analysis of `text`, or null when it was not added.
  const std::vector<std::string>* Find(absl::string_view text) const;
  bool empty() const { return map_.empty(); }

 private:
  absl::flat_hash_map<std::string, std::vector<std::string>> map_;
};

// The lexical document of a claim as stored in `r`: its text followed by the
// quotes of all its evidence, analyzed by AnalyzeText (or found in `ahead`);
// nullopt when the claim does not exist. DATA_LOSS when a stored record does
// not parse. `embedding` (when set) receives the claim's embedding as stored
// (empty when it has none). `evidence` (when set) is an evidence cursor of `r`
// reused across calls, created at first use.
absl::StatusOr<std::optional<std::vector<std::string>>> AnalyzeStoredClaim(
    const storage::Reader& r, absl::string_view tenant, absl::string_view claim_id,
    const std::vector<const AnalyzedTexts*>& ahead = {}, std::vector<float>* embedding = nullptr,
    std::unique_ptr<storage::Cursor>* evidence = nullptr);

struct ScoredClaim {
  std::string claim_id;
  double score = 0;
};

// BM25 of one short text (an evidence quote), given as its analyzed terms
// (AnalyzeText), against the query `terms`, with idf from `stats` and
// `avg_length` as the average length of such texts.
double ScoreText(const std::vector<std::string>& text_terms, const std::vector<std::string>& terms,
                 const Bm25Params& params, const CorpusStats& stats, double avg_length);

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_LEXICAL_INDEX_H_
