// The BM25 index of one shard replica, kept in the replica's own storage and
// maintained in the same WriteSet as the data it indexes, so it is always
// consistent with committed data and needs no rebuild at start-up.
//
// A claim's lexical document is its text followed by the quotes of all its
// evidence, analyzed by AnalyzeText. Layout (key_layout.md): postings
// <tenant>\0<term>\0<claim_id> -> (tf, document length), terms
// <tenant>\0<term> -> document frequency, docs <tenant>\0<claim_id> ->
// LexicalDoc. Thread-compatible: callers own the WriteSet / Reader.
#ifndef DASH_NODE_INDEX_LEXICAL_INDEX_H_
#define DASH_NODE_INDEX_LEXICAL_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"
#include "query/shard_target.h"

namespace dash::index {

using query::Bm25Params;
using query::CorpusStats;

// Document-frequency changes of several re-indexed claims, so that each
// term's counter is read and written once per batch rather than per claim.
class DfUpdates {
 public:
  void Add(std::string term_key, int64_t delta) { deltas_[std::move(term_key)] += delta; }
  // Writes the accumulated changes into `ws` and clears them.
  absl::Status Apply(storage::WriteSet* ws);

 private:
  absl::flat_hash_map<std::string, int64_t> deltas_;
};

// Re-indexes one claim from its current state in `ws` (claim text and
// evidence): removes the postings it had, adds the ones it has now (none if
// the claim no longer exists), and updates `stats` (docs, length). Document
// frequency changes go to `df`, which the caller applies before committing.
absl::Status ReindexClaim(absl::string_view tenant, absl::string_view claim_id,
                          storage::WriteSet* ws, storage::TenantState* stats, DfUpdates* df);
// The same, applying its document-frequency changes at once.
absl::Status ReindexClaim(absl::string_view tenant, absl::string_view claim_id,
                          storage::WriteSet* ws, storage::TenantState* stats);

// This shard's statistics for `terms`.
absl::StatusOr<CorpusStats> ReadStats(const storage::Reader& r, absl::string_view tenant,
                                      const std::vector<std::string>& terms);

struct ScoredClaim {
  std::string claim_id;
  double score = 0;
};

// The top `k` claims of `tenant` for the analyzed query `terms`, by BM25 with
// `stats` as the corpus statistics; ties broken by claim_id ascending. With
// `allowed`, only those claims are candidates (the filter applies before
// ranking, so k come back whenever k allowed claims match). Exactly the
// ranking of scoring every posting, found with MaxScore pruning (see the .cc).
absl::StatusOr<std::vector<ScoredClaim>> SearchBm25(
    const storage::Reader& r, absl::string_view tenant, const std::vector<std::string>& terms,
    size_t k, const Bm25Params& params, const CorpusStats& stats,
    const absl::flat_hash_set<std::string>* allowed = nullptr);

// BM25 of one short text (an evidence quote), given as its analyzed terms
// (AnalyzeText), against the query `terms`, with idf from `stats` and
// `avg_length` as the average length of such texts.
double ScoreText(const std::vector<std::string>& text_terms, const std::vector<std::string>& terms,
                 const Bm25Params& params, const CorpusStats& stats, double avg_length);

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_LEXICAL_INDEX_H_
