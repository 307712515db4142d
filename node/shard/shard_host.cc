#include "node/shard/shard_host.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "node/index/analyzer.h"
#include "node/shard/batch_validator.h"

namespace dash::shard {
namespace {
constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr uint32_t kDefaultQueryK = 10;
constexpr uint32_t kMaxQueryK = 1000;
constexpr size_t kMaxQueryBytes = 16 << 10;
}  // namespace

absl::StatusOr<std::unique_ptr<ShardHost>> ShardHost::Open(const HostOptions& options) {
  if (options.shard_count == 0) return absl::InvalidArgumentError("shard_count must be positive");
  HostOptions opts = options;
  if (opts.shards.empty()) {
    for (uint32_t s = 0; s < opts.shard_count; ++s) opts.shards.push_back(s);
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", opts.data_dir, ": ", ec.message()));
  }
  auto host = std::unique_ptr<ShardHost>(new ShardHost(opts));
  for (uint32_t s : opts.shards) {
    ReplicaOptions ro = opts.replica;
    ro.shard_id = s;
    ro.shard_count = opts.shard_count;
    ro.dir = absl::StrCat(opts.data_dir, "/shard-", s);
    DASH_ASSIGN_OR_RETURN(auto replica, ShardReplica::Open(ro));
    host->replicas_.emplace(s, std::move(replica));
  }
  return host;
}

ShardReplica* ShardHost::replica(uint32_t shard) const {
  auto it = replicas_.find(shard);
  return it == replicas_.end() ? nullptr : it->second.get();
}

void ShardHost::Write(v1::WriteRequest request, ShardReplica::WriteDone done) {
  absl::Status valid = ValidateBatch(request, options_.replica.limits);
  if (!valid.ok()) return done(valid);
  absl::StatusOr<uint32_t> shard = ShardOfBatch(request, options_.shard_count);
  if (!shard.ok()) return done(shard.status());
  ShardReplica* r = replica(*shard);
  if (r == nullptr) {
    return done(absl::FailedPreconditionError(
        absl::StrCat("shard ", *shard, " is not hosted on node ", options_.node_id)));
  }
  r->Write(std::move(request), std::move(done));
}

absl::StatusOr<v1::GetClaimResponse> ShardHost::GetClaim(const v1::GetClaimRequest& request) const {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  DASH_RETURN_IF_ERROR(ValidateId(request.claim_id(), "claim_id"));
  const uint32_t shard = ShardOf(request.tenant(), request.claim_id(), options_.shard_count);
  ShardReplica* r = replica(shard);
  if (r == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, " is not hosted on node ", options_.node_id));
  }
  return r->GetClaim(request.tenant(), request.claim_id());
}

absl::StatusOr<v1::ListClaimsResponse> ShardHost::ListClaims(
    const v1::ListClaimsRequest& request) const {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " exceeds the limit of ", kMaxPageSize));
  }
  const size_t limit = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  std::string start_after;
  if (!request.page_token().empty() &&
      (!absl::WebSafeBase64Unescape(request.page_token(), &start_after) || start_after.empty())) {
    return absl::InvalidArgumentError("page_token: not a token from a previous answer");
  }
  v1::ListClaimsResponse response;
  std::vector<v1::ClaimRecord> merged;
  bool more = false;
  for (const auto& [id, r] : replicas_) {
    DASH_ASSIGN_OR_RETURN(ListPage page, r->ListClaims(request.tenant(), start_after, limit,
                                                       request.include_evidence()));
    more = more || page.more;
    for (auto& rec : page.records) merged.push_back(std::move(rec));
    *response.add_read_at() = page.read_at;
  }
  std::sort(merged.begin(), merged.end(), [](const v1::ClaimRecord& a, const v1::ClaimRecord& b) {
    return a.claim().claim_id() < b.claim().claim_id();
  });
  if (merged.size() > limit) {
    merged.resize(limit);
    more = true;
  }
  if (more && !merged.empty()) {
    response.set_next_page_token(absl::WebSafeBase64Escape(merged.back().claim().claim_id()));
  }
  for (auto& rec : merged) *response.add_records() = std::move(rec);
  return response;
}

absl::StatusOr<v1::QueryResponse> ShardHost::Query(const v1::QueryRequest& request) const {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  if (request.text().empty()) return absl::InvalidArgumentError("text: must not be empty");
  if (request.text().size() > kMaxQueryBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("text: is ", request.text().size(), " bytes; the limit is ", kMaxQueryBytes));
  }
  if (!IsValidUtf8(request.text())) return absl::InvalidArgumentError("text: is not valid UTF-8");
  if (request.k() > kMaxQueryK) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: ", request.k(), " exceeds the limit of ", kMaxQueryK));
  }
  index::Bm25Params params;
  if (request.bm25().has_k1()) {
    params.k1 = request.bm25().k1();
    if (!(params.k1 >= 0) || !std::isfinite(params.k1)) {
      return absl::InvalidArgumentError("bm25.k1: must be a finite number >= 0");
    }
  }
  if (request.bm25().has_b()) {
    params.b = request.bm25().b();
    if (!(params.b >= 0 && params.b <= 1))
      return absl::InvalidArgumentError("bm25.b: must be in [0, 1]");
  }
  const size_t k = request.k() == 0 ? kDefaultQueryK : request.k();
  const std::vector<std::string> terms = index::AnalyzeText(request.text());

  // Phase 1: corpus statistics summed over the hosted shards.
  index::CorpusStats stats;
  for (const auto& [id, r] : replicas_) {
    DASH_ASSIGN_OR_RETURN(index::CorpusStats s, r->LexicalStats(request.tenant(), terms));
    stats.Add(s);
  }
  // Phase 2: each shard's top k under the shared statistics, merged once.
  v1::QueryResponse response;
  std::vector<SearchHit> merged;
  for (const auto& [id, r] : replicas_) {
    DASH_ASSIGN_OR_RETURN(SearchPage page, r->SearchLexical(request.tenant(), terms, k, params,
                                                            stats, request.include_evidence()));
    for (auto& h : page.hits) merged.push_back(std::move(h));
    *response.add_read_at() = page.read_at;
  }
  std::sort(merged.begin(), merged.end(), [](const SearchHit& a, const SearchHit& b) {
    return a.score != b.score ? a.score > b.score
                              : a.record.claim().claim_id() < b.record.claim().claim_id();
  });
  if (merged.size() > k) merged.resize(k);
  uint32_t rank = 0;
  for (auto& h : merged) {
    v1::QueryHit* hit = response.add_hits();
    hit->set_score(h.score);
    hit->mutable_lexical()->set_score(h.score);
    hit->mutable_lexical()->set_rank(++rank);
    *hit->mutable_record() = std::move(h.record);
  }
  return response;
}

v1::NodeInfo ShardHost::Info() const {
  v1::NodeInfo info;
  info.set_node_id(options_.node_id);
  info.set_shard_count(options_.shard_count);
  info.set_version(DASH_VERSION);
  for (const auto& [id, r] : replicas_) {
    const ReplicaState s = r->State();
    v1::ReplicaInfo* ri = info.add_replicas();
    ri->set_shard(id);
    ri->set_epoch(s.epoch);
    ri->set_last_lsn(s.last_lsn);
    ri->set_log_start_lsn(s.log_start_lsn);
  }
  return info;
}

}  // namespace dash::shard
