// What a query needs from one replica of one shard, whether it runs in this
// process (a node's LocalShardTarget) or behind gRPC (the router's remote
// targets): corpus statistics, the ranking legs, and the hits' fetch. The
// structs here are the query's phases as RunQuery and query_codec see them;
// none of them knows how a shard stores its data.
#ifndef DASH_QUERY_SHARD_TARGET_H_
#define DASH_QUERY_SHARD_TARGET_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dash/v1/data.pb.h"
#include "query/fusion.h"

namespace dash::query {

// Corpus statistics BM25 needs. A router (or a node hosting several shards)
// sums them over shards so that scores do not depend on the shard count.
struct CorpusStats {
  uint64_t docs = 0;
  uint64_t total_length = 0;
  absl::flat_hash_map<std::string, uint64_t> df;  // For the query's terms.
  void Add(const CorpusStats& other) {
    docs += other.docs;
    total_length += other.total_length;
    for (const auto& [term, n] : other.df) df[term] += n;
  }
};

struct Bm25Params {
  double k1 = 0.9;  // Anserini's BEIR defaults.
  double b = 0.4;
};

// What one replica runs for a query's ranking legs.
struct LegRequest {
  std::vector<std::string> terms;  // Analyzed query text; empty: no lexical leg.
  Bm25Params bm25;
  CorpusStats stats;             // Corpus statistics (summed over shards).
  std::vector<float> embedding;  // Empty: no vector leg.
  v1::VectorSearchMode vector_mode = v1::VECTOR_SEARCH_AUTO;
  size_t depth = 10;  // Candidates per leg.
  v1::Filter filter;
  bool support_only = false;  // Only claims with supporting evidence.
  bool bypass_filter_cache = false;
};

struct LegResult {
  std::vector<fusion::Candidate> lexical;  // Best first.
  std::vector<fusion::Candidate> vector;   // Best first.
  std::string vector_plan = "none";        // "exact", "approximate" or "none".
  v1::CommitToken read_at;
};

// How a hit's evidence is selected and checked.
struct FetchOptions {
  v1::StanceMode stance_mode = v1::STANCE_MODE_ALL;
  bool include_evidence = false;
  std::vector<std::string> terms;  // For the strength of evidence (BALANCED).
  Bm25Params bm25;
  CorpusStats stats;
  v1::Filter filter;           // Its evidence condition selects evidence.
  bool include_edges = false;  // Read outgoing edges (implied by include_evidence).
};

// One replica of one shard as a query sees it. RunQuery calls the targets of
// different shards at the same time, from the caller's thread and its pool's
// (one call per target at a time), so implementations must be callable from
// any thread.
class ShardTarget {
 public:
  virtual ~ShardTarget() = default;
  virtual absl::StatusOr<CorpusStats> Stats(absl::string_view tenant,
                                            const std::vector<std::string>& terms) = 0;
  virtual absl::StatusOr<LegResult> Legs(absl::string_view tenant, const LegRequest& request) = 0;
  // The hits for `ids`, in order; a claim deleted since the legs ran is left
  // out of the map.
  virtual absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const FetchOptions& options) = 0;
  // True when its calls run in this process and never wait on I/O: then a
  // fan-out of cheap calls (statistics, fetches) is faster in the caller's
  // thread, one after another, than handed to a pool's threads.
  virtual bool local() const { return false; }
};

}  // namespace dash::query

#endif  // DASH_QUERY_SHARD_TARGET_H_
