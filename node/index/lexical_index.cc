#include "node/index/lexical_index.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "dash/v1/model.pb.h"
#include "node/storage/keys.h"
#include "query/analyzer.h"

namespace dash::index {
using storage::Family;
namespace keys = storage::keys;

void AnalyzedTexts::Add(absl::string_view text) {
  if (map_.contains(text)) return;
  map_.emplace(std::string(text), query::AnalyzeText(text));
}

const std::vector<std::string>* AnalyzedTexts::Find(absl::string_view text) const {
  auto it = map_.find(text);
  return it == map_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::optional<std::vector<std::string>>> AnalyzeStoredClaim(
    const storage::Reader& r, absl::string_view tenant, absl::string_view claim_id,
    const std::vector<const AnalyzedTexts*>& ahead, std::vector<float>* embedding,
    std::unique_ptr<storage::Cursor>* evidence) {
  if (embedding != nullptr) embedding->clear();
  DASH_ASSIGN_OR_RETURN(auto raw_claim, r.Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw_claim.has_value()) return std::nullopt;
  v1::Claim claim;
  if (!claim.ParseFromString(*raw_claim)) return absl::DataLossError("stored claim is corrupt");
  if (embedding != nullptr) embedding->assign(claim.embedding().begin(), claim.embedding().end());
  std::vector<std::string> terms;
  auto analyze = [&ahead, &terms](absl::string_view text) {
    for (const AnalyzedTexts* a : ahead) {
      if (const std::vector<std::string>* found = a->Find(text)) {
        terms.insert(terms.end(), found->begin(), found->end());
        return;
      }
    }
    for (std::string& t : query::AnalyzeText(text)) terms.push_back(std::move(t));
  };
  analyze(claim.text());
  const std::string prefix = keys::ClaimPrefix(tenant, claim_id);
  std::unique_ptr<storage::Cursor> own;
  storage::Cursor* ev =
      storage::ScanReusing(r, Family::kEvidence, prefix, evidence != nullptr ? evidence : &own);
  for (; ev->Valid(); ev->Next()) {
    v1::Evidence e;
    if (!e.ParseFromArray(ev->value().data(), static_cast<int>(ev->value().size()))) {
      return absl::DataLossError("stored evidence is corrupt");
    }
    analyze(e.citation().quote());
  }
  DASH_RETURN_IF_ERROR(ev->status());
  return terms;
}

double ScoreText(const std::vector<std::string>& text_terms, const std::vector<std::string>& terms,
                 const Bm25Params& params, const CorpusStats& stats, double avg_length) {
  if (terms.empty() || stats.docs == 0) return 0;
  std::map<std::string, int> tf;
  for (const std::string& t : text_terms) ++tf[t];
  const double length = static_cast<double>(text_terms.size());
  const std::set<std::string> unique(terms.begin(), terms.end());
  double score = 0;
  const double n = static_cast<double>(stats.docs);
  const double avg = std::max(1.0, avg_length);
  for (const std::string& term : unique) {
    auto it = tf.find(term);
    if (it == tf.end()) continue;
    auto df_it = stats.df.find(term);
    const double df = df_it == stats.df.end() ? 0 : static_cast<double>(df_it->second);
    const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
    const double norm = params.k1 * (1.0 - params.b + params.b * length / avg);
    score += idf * (it->second * (params.k1 + 1.0)) / (it->second + norm);
  }
  return score;
}

}  // namespace dash::index
