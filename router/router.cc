#include "router/router.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hashing.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "query/batch_validator.h"
#include "query/page_merge.h"
#include "query/query_codec.h"
#include "query/query_runner.h"

namespace dash::router {
namespace {

absl::StatusOr<const v1::ShardEntry*> ShardEntryOf(const v1::Placement& p, uint32_t shard) {
  if (!p.created()) {
    return absl::UnavailableError(absl::StrCat("the cluster is not created yet: waiting for ",
                                               p.replication_factor(), " nodes to register"));
  }
  for (const auto& e : p.shards()) {
    if (e.shard() == shard) return &e;
  }
  return absl::InternalError(absl::StrCat("placement has no shard ", shard));
}

absl::Status ValidateReadPreference(v1::ReadPreference preference) {
  if (!v1::ReadPreference_IsValid(preference)) {
    return absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  return absl::OkStatus();
}

// One shard behind the network, for query::RunQuery: each phase is sent to the
// replica that answered the previous one, and moves on to the next eligible
// replica when that one is UNAVAILABLE.
class RemoteShardTarget : public query::ShardTarget {
 public:
  RemoteShardTarget(NodeClient* nodes, std::vector<Route> candidates, ReplicaBreaker* breaker,
                    int max_attempts, absl::Time deadline)
      : nodes_(nodes),
        breaker_(breaker),
        max_attempts_(max_attempts),
        deadline_(deadline),
        candidates_(std::move(candidates)) {}

  // Replicas that failed and were replaced by another, over every phase.
  int failovers() const {
    absl::MutexLock l(&mu_);
    return failovers_;
  }

  absl::StatusOr<query::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) override {
    v1::ShardStatsResponse resp;
    DASH_RETURN_IF_ERROR(Call([&](const Route& route) -> absl::Status {
      v1::ShardStatsRequest req;
      req.set_leader_read(route.leader_read);
      req.set_tenant(std::string(tenant));
      req.set_shard(route.shard);
      req.set_epoch(route.epoch);
      for (const auto& t : terms) req.add_terms(t);
      DASH_ASSIGN_OR_RETURN(resp, nodes_->ShardStats(route.address, req, deadline_));
      return absl::OkStatus();
    }));
    return query::FromProto(resp.stats());
  }

  absl::StatusOr<query::LegResult> Legs(absl::string_view tenant,
                                        const query::LegRequest& request) override {
    v1::ShardLegsResponse resp;
    DASH_RETURN_IF_ERROR(Call([&](const Route& route) -> absl::Status {
      v1::ShardLegsRequest req;
      req.set_leader_read(route.leader_read);
      req.set_tenant(std::string(tenant));
      req.set_shard(route.shard);
      req.set_epoch(route.epoch);
      query::ToProto(request, &req);
      DASH_ASSIGN_OR_RETURN(resp, nodes_->ShardLegs(route.address, req, deadline_));
      return absl::OkStatus();
    }));
    return query::FromProto(resp);
  }

  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const query::FetchOptions& options) override {
    v1::ShardFetchResponse resp;
    DASH_RETURN_IF_ERROR(Call([&](const Route& route) -> absl::Status {
      v1::ShardFetchRequest req;
      req.set_leader_read(route.leader_read);
      req.set_tenant(std::string(tenant));
      req.set_shard(route.shard);
      req.set_epoch(route.epoch);
      for (const auto& id : ids) req.add_claim_ids(id);
      query::ToProto(options, &req);
      DASH_ASSIGN_OR_RETURN(resp, nodes_->ShardFetch(route.address, req, deadline_));
      return absl::OkStatus();
    }));
    std::map<std::string, v1::QueryHit> hits;
    for (auto& h : *resp.mutable_hits()) {
      std::string id = h.record().claim().claim_id();
      hits.emplace(std::move(id), std::move(h));
    }
    return hits;
  }

 private:
  absl::Status Call(const std::function<absl::Status(const Route&)>& rpc) {
    std::vector<Route> candidates;
    {
      absl::MutexLock l(&mu_);
      candidates = candidates_;
    }
    ReadOutcome outcome;
    absl::Status st =
        ReadWithFailover(candidates, breaker_, max_attempts_, deadline_, rpc, &outcome);
    absl::MutexLock l(&mu_);
    failovers_ += outcome.failovers();
    if (st.ok()) {
      // Later phases go to the replica that answered.
      for (size_t i = 0; i < candidates_.size(); ++i) {
        if (candidates_[i].node_id == outcome.route.node_id) {
          std::swap(candidates_[i], candidates_[0]);
          break;
        }
      }
    }
    return st;
  }

  NodeClient* const nodes_;
  ReplicaBreaker* const breaker_;
  const int max_attempts_;
  const absl::Time deadline_;
  mutable absl::Mutex mu_;
  std::vector<Route> candidates_ ABSL_GUARDED_BY(mu_);
  int failovers_ ABSL_GUARDED_BY(mu_) = 0;
};

// `response` as a ReadResult: the answer when `status` is OK.
template <typename Response>
ReadResult<Response> Result(const absl::Status& status, Response response, int failovers) {
  ReadResult<Response> result;
  if (status.ok()) {
    result.response = std::move(response);
  } else {
    result.response = status;
  }
  result.failovers = failovers;
  return result;
}

}  // namespace

absl::Status Router::Validate(const v1::WriteRequest& request) {
  // Refused here without touching a node; the leader validates again (it
  // cannot trust its callers).
  return query::ValidateBatch(request, query::Limits());
}

absl::Status Router::Validate(const v1::GetClaimRequest& request) {
  DASH_RETURN_IF_ERROR(query::ValidateTenant(request.tenant(), "tenant"));
  DASH_RETURN_IF_ERROR(query::ValidateId(request.claim_id(), "claim_id"));
  return ValidateReadPreference(request.read_preference());
}

absl::Status Router::Validate(const v1::ListClaimsRequest& request) {
  return query::ValidateListRequest(request);
}

absl::Status Router::Validate(const v1::QueryRequest& request) {
  return query::ValidateQuery(request);
}

absl::Time Router::CallDeadline(absl::Time deadline) const {
  return std::min(deadline, absl::Now() + options_.rpc_timeout);
}

absl::Status Router::WithRetry(const std::function<absl::Status(const v1::Placement&)>& attempt) {
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<const v1::Placement> placement, placement_->Get());
  absl::Status st = attempt(*placement);
  if (!absl::IsFailedPrecondition(st)) return st;
  // Our epoch is stale (or the node no longer hosts the shard): the watch
  // stream may not have delivered the new table yet; ask for it.
  placement_->Refresh(absl::Seconds(1));
  DASH_ASSIGN_OR_RETURN(placement, placement_->Get());
  return attempt(*placement);
}

absl::StatusOr<v1::WriteResponse> Router::Write(const v1::WriteRequest& request,
                                                absl::Time deadline) {
  v1::WriteResponse response;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_ASSIGN_OR_RETURN(uint32_t shard, query::ShardOfBatch(request, p.shard_count()));
    if (request.has_shard() && request.shard() != shard) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard: the batch belongs to shard ", shard, ", not ", request.shard()));
    }
    // A leader that refuses for now (opening, adopting its role) is given
    // until the next table, which its readiness report publishes.
    const absl::Time wait_until =
        std::min(absl::Now() + options_.leader_wait, CallDeadline(deadline));
    std::shared_ptr<const v1::Placement> table;
    const v1::Placement* current = &p;
    v1::WriteRequest forwarded = request;  // Copied once, whatever the attempts.
    forwarded.set_shard(shard);
    for (;;) {
      DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(*current, shard));
      DASH_ASSIGN_OR_RETURN(Route route, ChooseLeader(*current, *entry));
      forwarded.set_expected_epoch(route.epoch);
      absl::StatusOr<v1::WriteResponse> answer =
          nodes_->Write(route.address, forwarded, CallDeadline(deadline));
      if (!RefusedUntilNextTable(answer.status()) ||
          !placement_->WaitForNewer(current->version(), wait_until)) {
        if (answer.ok()) response = *std::move(answer);
        return answer.status();
      }
      DASH_ASSIGN_OR_RETURN(table, placement_->Get());
      current = table.get();
    }
  });
  if (!st.ok()) return st;
  return response;
}

ReadResult<v1::GetClaimResponse> Router::GetClaim(const v1::GetClaimRequest& request,
                                                  absl::Time deadline) {
  const uint64_t spread = spread_++;
  int failovers = 0;
  v1::GetClaimResponse response;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    const uint32_t shard = ShardOf(request.tenant(), request.claim_id(), p.shard_count());
    DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(p, shard));
    DASH_ASSIGN_OR_RETURN(std::vector<Route> candidates,
                          ReadCandidates(p, *entry, request.read_preference(), spread));
    const absl::Time call_deadline = CallDeadline(deadline);
    ReadOutcome outcome;
    absl::Status read = ReadWithFailover(
        candidates, &breaker_, options_.max_read_attempts, call_deadline,
        [&](const Route& route) -> absl::Status {
          v1::GetClaimRequest forwarded = request;
          forwarded.set_expected_epoch(route.epoch);
          DASH_ASSIGN_OR_RETURN(response,
                                nodes_->GetClaim(route.address, forwarded, call_deadline));
          return absl::OkStatus();
        },
        &outcome);
    failovers += outcome.failovers();
    return read;
  });
  return Result(st, std::move(response), failovers);
}

ReadResult<v1::ListClaimsResponse> Router::ListClaims(const v1::ListClaimsRequest& request,
                                                      absl::Time deadline) {
  const uint64_t spread = spread_++;
  int failovers = 0;
  v1::ListClaimsResponse response;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    DASH_ASSIGN_OR_RETURN(query::ListPosition position,
                          query::ListPositionOf(request, p.shard_count()));
    const size_t limit = position.limit;
    const std::string& scope = position.scope;
    const std::string& start_after = position.start_after;
    std::vector<std::vector<Route>> candidates;
    for (const v1::ShardEntry& entry : p.shards()) {
      if (request.has_shard() && request.shard() != entry.shard()) continue;
      DASH_ASSIGN_OR_RETURN(std::vector<Route> routes,
                            ReadCandidates(p, entry, request.read_preference(), spread));
      candidates.push_back(std::move(routes));
    }
    // Every shard's page at once; merged in shard order, and a failure names
    // the lowest failing shard.
    const absl::Time call_deadline = CallDeadline(deadline);
    std::atomic<int> retried{0};
    auto pages = RunAll<v1::ListClaimsResponse>(
        fanout_, candidates.size(), [&](size_t i) -> absl::StatusOr<v1::ListClaimsResponse> {
          v1::ListClaimsResponse page;
          ReadOutcome outcome;
          absl::Status read = ReadWithFailover(
              candidates[i], &breaker_, options_.max_read_attempts, call_deadline,
              [&](const Route& route) -> absl::Status {
                v1::ListClaimsRequest forwarded = request;
                forwarded.set_page_size(static_cast<uint32_t>(limit));
                forwarded.set_shard(route.shard);
                forwarded.set_expected_epoch(route.epoch);
                // The node's listing is of one shard: a token of its own.
                if (!start_after.empty()) {
                  forwarded.set_page_token(
                      EncodePageToken(request.tenant(), ListScope(route.shard), start_after));
                }
                DASH_ASSIGN_OR_RETURN(page,
                                      nodes_->ListClaims(route.address, forwarded, call_deadline));
                return absl::OkStatus();
              },
              &outcome);
          retried += outcome.failovers();
          DASH_RETURN_IF_ERROR(read);
          return page;
        });
    failovers += retried.load();
    std::vector<query::ShardPage> merge;
    for (auto& result : pages) {
      DASH_RETURN_IF_ERROR(result.status());
      v1::ListClaimsResponse& page = *result;
      query::ShardPage& part = merge.emplace_back();
      part.more = !page.next_page_token().empty();
      for (auto& rec : *page.mutable_records()) part.records.push_back(std::move(rec));
      for (auto& t : *page.mutable_read_at()) part.read_at.push_back(std::move(t));
    }
    response = query::MergeListPages(std::move(merge), limit, request.tenant(), scope);
    return absl::OkStatus();
  });
  return Result(st, std::move(response), failovers);
}

ReadResult<v1::QueryResponse> Router::Query(const v1::QueryRequest& request, absl::Time deadline) {
  const uint64_t spread = spread_++;
  int failovers = 0;
  v1::QueryResponse response;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    const absl::Time call_deadline = CallDeadline(deadline);
    std::vector<std::unique_ptr<RemoteShardTarget>> remotes;
    std::map<uint32_t, query::ShardTarget*> targets;
    for (const v1::ShardEntry& entry : p.shards()) {
      DASH_ASSIGN_OR_RETURN(std::vector<Route> candidates,
                            ReadCandidates(p, entry, request.read_preference(), spread));
      remotes.push_back(std::make_unique<RemoteShardTarget>(
          nodes_, std::move(candidates), &breaker_, options_.max_read_attempts, call_deadline));
      targets[entry.shard()] = remotes.back().get();
    }
    absl::StatusOr<v1::QueryResponse> answer =
        query::RunQuery(request, targets, p.shard_count(), fanout_);
    for (const auto& remote : remotes) failovers += remote->failovers();
    DASH_RETURN_IF_ERROR(answer.status());
    response = *std::move(answer);
    return absl::OkStatus();
  });
  return Result(st, std::move(response), failovers);
}

absl::StatusOr<v1::NodeInfo> Router::ClusterInfo() const {
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<const v1::Placement> p, placement_->Get());
  v1::NodeInfo info;
  info.set_node_id("router");
  info.set_shard_count(p->shard_count());
  info.set_version(DASH_VERSION);
  info.set_placement_version(p->version());
  for (const v1::ShardEntry& entry : p->shards()) {
    v1::ReplicaInfo* ri = info.add_replicas();
    ri->set_shard(entry.shard());
    ri->set_epoch(entry.epoch());
    ri->set_role("leader");
    ri->set_leader_node_id(entry.leader_node_id());
    for (const auto& r : entry.replicas()) {
      if (r.node_id() == entry.leader_node_id()) {
        ri->set_last_lsn(r.last_lsn());
        ri->set_last_epoch(r.last_epoch());
      }
    }
  }
  return info;
}

}  // namespace dash::router
