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
namespace {

using storage::Family;
namespace keys = storage::keys;

std::string Fixed32Pair(uint32_t a, uint32_t b) {
  std::string out(8, '\0');
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((a >> (24 - 8 * i)) & 0xff);
    out[4 + i] = static_cast<char>((b >> (24 - 8 * i)) & 0xff);
  }
  return out;
}

bool ParseFixed32Pair(absl::string_view in, uint32_t* a, uint32_t* b) {
  if (in.size() != 8) return false;
  uint32_t x = 0, y = 0;
  for (int i = 0; i < 4; ++i) {
    x = (x << 8) | static_cast<uint8_t>(in[i]);
    y = (y << 8) | static_cast<uint8_t>(in[4 + i]);
  }
  *a = x;
  *b = y;
  return true;
}

std::string EncodeCount(uint64_t v) { return keys::Log(v); }  // 8-byte big-endian
uint64_t DecodeCount(absl::string_view in) {
  uint64_t v = 0;
  keys::ParseLog(in, &v);
  return v;
}

std::string TermKey(absl::string_view tenant, absl::string_view term) {
  return keys::Claim(tenant, term);  // <tenant>\0<term>
}
std::string PostingPrefix(absl::string_view tenant, absl::string_view term) {
  return keys::ClaimPrefix(tenant, term);  // <tenant>\0<term>\0
}

}  // namespace

absl::Status DfUpdates::Apply(storage::WriteSet* ws) {
  // Sorted, so the write order (and so the batch) is deterministic.
  std::vector<std::pair<std::string, int64_t>> sorted(deltas_.begin(), deltas_.end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [key, delta] : sorted) {
    if (delta == 0) continue;
    DASH_ASSIGN_OR_RETURN(auto raw, ws->Get(Family::kTerms, key));
    const int64_t df = static_cast<int64_t>(raw.has_value() ? DecodeCount(*raw) : 0) + delta;
    if (df <= 0) {
      ws->Delete(Family::kTerms, key);
    } else {
      ws->Put(Family::kTerms, key, EncodeCount(static_cast<uint64_t>(df)));
    }
  }
  deltas_.clear();
  return absl::OkStatus();
}

absl::Status ReindexClaim(absl::string_view tenant, absl::string_view claim_id,
                          storage::WriteSet* ws, storage::TenantState* stats) {
  DfUpdates df;
  DASH_RETURN_IF_ERROR(ReindexClaim(tenant, claim_id, ws, stats, &df));
  return df.Apply(ws);
}

absl::Status ReindexClaim(absl::string_view tenant, absl::string_view claim_id,
                          storage::WriteSet* ws, storage::TenantState* stats, DfUpdates* df) {
  // The document as it is now.
  std::map<std::string, uint32_t> tf;
  uint32_t length = 0;
  DASH_ASSIGN_OR_RETURN(auto raw_claim, ws->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (raw_claim.has_value()) {
    v1::Claim claim;
    if (!claim.ParseFromString(*raw_claim)) return absl::DataLossError("stored claim is corrupt");
    auto add = [&](absl::string_view text) {
      for (std::string& t : query::AnalyzeText(text)) {
        ++tf[std::move(t)];
        ++length;
      }
    };
    add(claim.text());
    auto ev = ws->Scan(Family::kEvidence, keys::ClaimPrefix(tenant, claim_id));
    for (; ev->Valid(); ev->Next()) {
      v1::Evidence e;
      if (!e.ParseFromArray(ev->value().data(), static_cast<int>(ev->value().size()))) {
        return absl::DataLossError("stored evidence is corrupt");
      }
      add(e.citation().quote());
    }
    DASH_RETURN_IF_ERROR(ev->status());
  }

  // Remove what the previous version added.
  const std::string doc_key = keys::Claim(tenant, claim_id);
  DASH_ASSIGN_OR_RETURN(auto raw_doc, ws->Get(Family::kDocs, doc_key));
  storage::LexicalDoc old;
  if (raw_doc.has_value()) {
    if (!old.ParseFromString(*raw_doc)) return absl::DataLossError("stored lexical doc is corrupt");
    for (const std::string& term : old.terms()) {
      ws->Delete(Family::kPostings, absl::StrCat(PostingPrefix(tenant, term), claim_id));
      if (!tf.count(term)) df->Add(TermKey(tenant, term), -1);
    }
    stats->set_lexical_docs(stats->lexical_docs() - 1);
    stats->set_lexical_length(stats->lexical_length() - old.length());
  }
  if (!raw_claim.has_value()) {
    if (raw_doc.has_value()) ws->Delete(Family::kDocs, doc_key);
    return absl::OkStatus();
  }

  // Add the current version.
  const std::set<std::string> old_terms(old.terms().begin(), old.terms().end());
  storage::LexicalDoc doc;
  doc.set_length(length);
  for (const auto& [term, count] : tf) {
    ws->Put(Family::kPostings, absl::StrCat(PostingPrefix(tenant, term), claim_id),
            Fixed32Pair(count, length));
    if (!old_terms.count(term)) df->Add(TermKey(tenant, term), +1);
    doc.add_terms(term);
    doc.add_tfs(count);
  }
  ws->Put(Family::kDocs, doc_key, DeterministicSerialize(doc));
  stats->set_lexical_docs(stats->lexical_docs() + 1);
  stats->set_lexical_length(stats->lexical_length() + length);
  return absl::OkStatus();
}

absl::StatusOr<CorpusStats> ReadStats(const storage::Reader& r, absl::string_view tenant,
                                      const std::vector<std::string>& terms) {
  CorpusStats stats;
  DASH_ASSIGN_OR_RETURN(auto raw, r.Get(Family::kTenants, keys::Tenant(tenant)));
  if (raw.has_value()) {
    storage::TenantState ts;
    if (!ts.ParseFromString(*raw)) return absl::DataLossError("tenant state is corrupt");
    stats.docs = ts.lexical_docs();
    stats.total_length = ts.lexical_length();
  }
  for (const std::string& term : terms) {
    if (stats.df.count(term)) continue;
    DASH_ASSIGN_OR_RETURN(auto df, r.Get(Family::kTerms, TermKey(tenant, term)));
    stats.df[term] = df.has_value() ? DecodeCount(*df) : 0;
  }
  return stats;
}

absl::StatusOr<std::vector<ScoredClaim>> SearchBm25(
    const storage::Reader& r, absl::string_view tenant, const std::vector<std::string>& terms,
    size_t k, const Bm25Params& params, const CorpusStats& stats,
    const absl::flat_hash_set<std::string>* allowed) {
  std::vector<ScoredClaim> out;
  if (k == 0 || terms.empty() || stats.docs == 0) return out;
  // Query term frequencies: a repeated query term counts once per repeat.
  std::map<std::string, int> qtf;
  for (const auto& t : terms) ++qtf[t];
  const double avgdl =
      std::max(1.0, static_cast<double>(stats.total_length) / static_cast<double>(stats.docs));
  const double n = static_cast<double>(stats.docs);

  // MaxScore (Turtle & Flood 1995), document at a time over the posting
  // lists, which are in claim-id order. A term adds at most
  // q * idf * (k1 + 1) to a claim's score whatever its tf and length. With
  // the lists ordered by that bound, the longest prefix of lists whose bounds
  // sum below the current k-th best score is "non-essential": a claim found
  // only in those cannot enter the top k, so only the other lists are walked
  // and the non-essential ones are probed (point reads) for the claims they
  // yield, while the claim can still make it. The result is exactly the
  // exhaustive ranking, scores summed in the same term order.
  struct List {
    size_t slot = 0;    // Position of the term in qtf order: the summation order.
    double weight = 0;  // q * idf.
    double bound = 0;   // weight * (k1 + 1).
    std::string prefix;
    std::unique_ptr<storage::Cursor> cursor;  // Null once non-essential.
  };
  std::vector<List> lists;
  size_t slot = 0;
  for (const auto& [term, q] : qtf) {
    auto it = stats.df.find(term);
    const double df = it == stats.df.end() ? 0 : static_cast<double>(it->second);
    if (df > 0) {
      List list;
      list.slot = slot;
      const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
      list.weight = q * idf;
      list.bound = list.weight * (params.k1 + 1.0);
      list.prefix = PostingPrefix(tenant, term);
      lists.push_back(std::move(list));
    }
    ++slot;
  }
  if (lists.empty()) return out;
  std::sort(lists.begin(), lists.end(), [](const List& a, const List& b) {
    return a.bound != b.bound ? a.bound < b.bound : a.slot < b.slot;
  });
  // prefix_bound[i]: the most lists 0..i together can add (with a margin for
  // rounding, since scores are summed in another order).
  std::vector<double> prefix_bound(lists.size());
  double sum = 0;
  for (size_t i = 0; i < lists.size(); ++i) {
    sum += lists[i].bound;
    prefix_bound[i] = sum * (1 + 1e-9);
  }
  for (List& list : lists) list.cursor = r.Scan(Family::kPostings, list.prefix);
  // The bounds hold for k1 >= 0, b in [0, 1] and positive weights (df at most
  // the document count); with other parameters nothing is pruned.
  bool prune = params.k1 >= 0 && params.b >= 0 && params.b <= 1;
  for (const List& list : lists) prune = prune && list.weight > 0 && std::isfinite(list.bound);

  auto contribution = [&](const List& list, absl::string_view posting,
                          double* out_value) -> absl::Status {
    uint32_t tf = 0, dl = 0;
    if (!ParseFixed32Pair(posting, &tf, &dl)) return absl::DataLossError("malformed posting");
    const double norm = params.k1 * (1.0 - params.b + params.b * dl / avgdl);
    *out_value = list.weight * (tf * (params.k1 + 1.0)) / (tf + norm);
    return absl::OkStatus();
  };
  auto better = [](const ScoredClaim& a, const ScoredClaim& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  };
  // The best k so far, worst first (a heap under `better`).
  std::vector<ScoredClaim> top;
  size_t essential = 0;  // Lists [0, essential) are non-essential.
  std::vector<double> parts(qtf.size());
  std::vector<bool> present(qtf.size());
  std::string doc;
  for (;;) {
    // The smallest claim id under an essential list's cursor.
    bool any = false;
    for (size_t i = essential; i < lists.size(); ++i) {
      storage::Cursor& c = *lists[i].cursor;
      if (!c.Valid()) {
        DASH_RETURN_IF_ERROR(c.status());
        continue;
      }
      const absl::string_view id = keys::Suffix(c.key(), lists[i].prefix);
      if (!any || id < doc) doc.assign(id.data(), id.size());
      any = true;
    }
    if (!any) break;
    std::fill(present.begin(), present.end(), false);
    double partial = 0;
    for (size_t i = essential; i < lists.size(); ++i) {
      storage::Cursor& c = *lists[i].cursor;
      if (!c.Valid() || keys::Suffix(c.key(), lists[i].prefix) != doc) continue;
      DASH_RETURN_IF_ERROR(contribution(lists[i], c.value(), &parts[lists[i].slot]));
      present[lists[i].slot] = true;
      partial += parts[lists[i].slot];
      c.Next();
    }
    if (allowed != nullptr && !allowed->contains(doc)) continue;
    const bool full = top.size() == k;
    const double threshold = full ? top.front().score : 0;
    // Probe the non-essential lists, highest bound first, while the claim
    // can still reach the k-th best.
    bool pruned = false;
    for (size_t i = essential; i-- > 0;) {
      if (prune && full && (partial + prefix_bound[i]) * (1 + 1e-9) < threshold) {
        pruned = true;
        break;
      }
      DASH_ASSIGN_OR_RETURN(std::optional<std::string> posting,
                            r.Get(Family::kPostings, absl::StrCat(lists[i].prefix, doc)));
      if (!posting.has_value()) continue;
      DASH_RETURN_IF_ERROR(contribution(lists[i], *posting, &parts[lists[i].slot]));
      present[lists[i].slot] = true;
      partial += parts[lists[i].slot];
    }
    if (pruned) continue;
    ScoredClaim candidate{doc, 0};
    for (size_t t = 0; t < parts.size(); ++t) {
      if (present[t]) candidate.score += parts[t];
    }
    if (!full) {
      top.push_back(std::move(candidate));
      std::push_heap(top.begin(), top.end(), better);
    } else if (better(candidate, top.front())) {
      std::pop_heap(top.begin(), top.end(), better);
      top.back() = std::move(candidate);
      std::push_heap(top.begin(), top.end(), better);
    } else {
      continue;
    }
    if (prune && top.size() == k) {
      // Lists whose bounds together stay below the k-th best drop out.
      while (essential < lists.size() && prefix_bound[essential] < top.front().score) {
        lists[essential].cursor.reset();
        ++essential;
      }
    }
  }
  out = std::move(top);
  std::sort(out.begin(), out.end(), better);
  return out;
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
