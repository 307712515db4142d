#include "router/router_service.h"

#include <algorithm>
#include <atomic>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "dash/v1/node.grpc.pb.h"
#include "query/batch_validator.h"
#include "query/query_codec.h"
#include "query/query_runner.h"

namespace dash::router {
namespace {

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;

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

// One shard behind the network, for query::RunQuery: each phase is sent to the
// replica that answered the previous one, and moves on to the next eligible
// replica when that one is UNAVAILABLE.
class RemoteShardTarget : public query::ShardTarget {
 public:
  RemoteShardTarget(PlacementCache* placement, std::vector<Route> candidates,
                    ReplicaBreaker* breaker, int max_attempts,
                    std::chrono::system_clock::time_point deadline)
      : placement_(placement),
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
    DASH_RETURN_IF_ERROR(
        Call([&](const Route& route, v1::ShardQuery::Stub& stub, grpc::ClientContext* ctx) {
          v1::ShardStatsRequest req;
          req.set_leader_read(route.leader_read);
          req.set_tenant(std::string(tenant));
          req.set_shard(route.shard);
          req.set_epoch(route.epoch);
          for (const auto& t : terms) req.add_terms(t);
          return stub.Stats(ctx, req, &resp);
        }));
    return query::FromProto(resp.stats());
  }

  absl::StatusOr<query::LegResult> Legs(absl::string_view tenant,
                                        const query::LegRequest& request) override {
    v1::ShardLegsResponse resp;
    DASH_RETURN_IF_ERROR(
        Call([&](const Route& route, v1::ShardQuery::Stub& stub, grpc::ClientContext* ctx) {
          v1::ShardLegsRequest req;
          req.set_leader_read(route.leader_read);
          req.set_tenant(std::string(tenant));
          req.set_shard(route.shard);
          req.set_epoch(route.epoch);
          query::ToProto(request, &req);
          return stub.Legs(ctx, req, &resp);
        }));
    return query::FromProto(resp);
  }

  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const query::FetchOptions& options) override {
    v1::ShardFetchResponse resp;
    DASH_RETURN_IF_ERROR(
        Call([&](const Route& route, v1::ShardQuery::Stub& stub, grpc::ClientContext* ctx) {
          v1::ShardFetchRequest req;
          req.set_leader_read(route.leader_read);
          req.set_tenant(std::string(tenant));
          req.set_shard(route.shard);
          req.set_epoch(route.epoch);
          for (const auto& id : ids) req.add_claim_ids(id);
          query::ToProto(options, &req);
          return stub.Fetch(ctx, req, &resp);
        }));
    std::map<std::string, v1::QueryHit> hits;
    for (auto& h : *resp.mutable_hits()) {
      std::string id = h.record().claim().claim_id();
      hits.emplace(std::move(id), std::move(h));
    }
    return hits;
  }

 private:
  using Rpc =
      std::function<grpc::Status(const Route&, v1::ShardQuery::Stub&, grpc::ClientContext*)>;

  absl::Status Call(const Rpc& rpc) {
    std::vector<Route> candidates;
    {
      absl::MutexLock l(&mu_);
      candidates = candidates_;
    }
    ReadOutcome outcome;
    absl::Status st = ReadWithFailover(
        candidates, breaker_, max_attempts_, absl::FromChrono(deadline_),
        [&](const Route& route) {
          auto stub = v1::ShardQuery::NewStub(placement_->Channel(route.address));
          grpc::ClientContext ctx;
          ctx.set_deadline(deadline_);
          return FromGrpcStatus(rpc(route, *stub, &ctx), &ctx);
        },
        &outcome);
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

  PlacementCache* const placement_;
  ReplicaBreaker* const breaker_;
  const int max_attempts_;
  const std::chrono::system_clock::time_point deadline_;
  mutable absl::Mutex mu_;
  std::vector<Route> candidates_ ABSL_GUARDED_BY(mu_);
  int failovers_ ABSL_GUARDED_BY(mu_) = 0;
};

// Tells the client how many replicas failed and were replaced within its read.
void ReportFailovers(grpc::ServerContext* ctx, int failovers) {
  if (failovers > 0) ctx->AddTrailingMetadata(kReadFailoversHeader, std::to_string(failovers));
}

}  // namespace

std::chrono::system_clock::time_point RouterService::Deadline(
    const grpc::ServerContext* ctx) const {
  return std::min(ctx->deadline(), std::chrono::system_clock::now() +
                                       absl::ToChronoMilliseconds(options_.rpc_timeout));
}

absl::Status RouterService::WithRetry(
    const std::function<absl::Status(const v1::Placement&)>& attempt) {
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<const v1::Placement> placement, placement_->Get());
  absl::Status st = attempt(*placement);
  if (!absl::IsFailedPrecondition(st)) return st;
  // Our epoch is stale (or the node no longer hosts the shard): the watch
  // stream may not have delivered the new table yet; ask for it.
  placement_->Refresh(absl::Seconds(1));
  DASH_ASSIGN_OR_RETURN(placement, placement_->Get());
  return attempt(*placement);
}

grpc::Status RouterService::Write(grpc::ServerContext* ctx, const v1::WriteRequest* request,
                                  v1::WriteResponse* response) {
  // Validated here so that a malformed batch is refused without touching a
  // node; the leader validates again (it cannot trust its callers).
  absl::Status valid = query::ValidateBatch(*request, query::Limits());
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_ASSIGN_OR_RETURN(uint32_t shard, query::ShardOfBatch(*request, p.shard_count()));
    if (request->has_shard() && request->shard() != shard) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard: the batch belongs to shard ", shard, ", not ", request->shard()));
    }
    // A leader that refuses for now (opening, adopting its role) is given
    // until the next table, which its readiness report publishes.
    const absl::Time wait_until =
        std::min(absl::Now() + options_.leader_wait, absl::FromChrono(Deadline(ctx)));
    std::shared_ptr<const v1::Placement> table;
    const v1::Placement* current = &p;
    v1::WriteRequest forwarded = *request;  // Copied once, whatever the attempts.
    forwarded.set_shard(shard);
    for (;;) {
      DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(*current, shard));
      DASH_ASSIGN_OR_RETURN(Route route, ChooseLeader(*current, *entry));
      forwarded.set_expected_epoch(route.epoch);
      auto stub = v1::Data::NewStub(placement_->Channel(route.address));
      grpc::ClientContext call;
      call.set_deadline(Deadline(ctx));
      absl::Status st = FromGrpcStatus(stub->Write(&call, forwarded, response), &call);
      if (!RefusedUntilNextTable(st) || !placement_->WaitForNewer(current->version(), wait_until)) {
        return st;
      }
      DASH_ASSIGN_OR_RETURN(table, placement_->Get());
      current = table.get();
    }
  });
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                                     v1::GetClaimResponse* response) {
  absl::Status valid = query::ValidateTenant(request->tenant(), "tenant");
  if (valid.ok()) valid = query::ValidateId(request->claim_id(), "claim_id");
  if (valid.ok() && !v1::ReadPreference_IsValid(request->read_preference())) {
    valid = absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  const uint64_t spread = spread_++;
  int failovers = 0;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    const uint32_t shard = ShardOf(request->tenant(), request->claim_id(), p.shard_count());
    DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(p, shard));
    DASH_ASSIGN_OR_RETURN(std::vector<Route> candidates,
                          ReadCandidates(p, *entry, request->read_preference(), spread));
    const auto deadline = Deadline(ctx);
    ReadOutcome outcome;
    absl::Status read = ReadWithFailover(
        candidates, &breaker_, options_.max_read_attempts, absl::FromChrono(deadline),
        [&](const Route& route) {
          v1::GetClaimRequest forwarded = *request;
          forwarded.set_expected_epoch(route.epoch);
          auto stub = v1::Data::NewStub(placement_->Channel(route.address));
          grpc::ClientContext call;
          call.set_deadline(deadline);
          response->Clear();
          return FromGrpcStatus(stub->GetClaim(&call, forwarded, response), &call);
        },
        &outcome);
    failovers += outcome.failovers();
    return read;
  });
  ReportFailovers(ctx, failovers);
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::ListClaims(grpc::ServerContext* ctx,
                                       const v1::ListClaimsRequest* request,
                                       v1::ListClaimsResponse* response) {
  absl::Status valid = query::ValidateTenant(request->tenant(), "tenant");
  if (valid.ok() && request->page_size() > kMaxPageSize) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request->page_size(), " exceeds the limit of ", kMaxPageSize));
  }
  if (valid.ok() && !v1::ReadPreference_IsValid(request->read_preference())) {
    valid = absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  const size_t limit = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  const uint64_t spread = spread_++;
  int failovers = 0;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    response->Clear();
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    if (request->has_shard() && request->shard() >= p.shard_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard: ", request->shard(), " is not below the shard count ", p.shard_count()));
    }
    const std::string scope =
        ListScope(request->has_shard() ? std::optional<uint32_t>(request->shard()) : std::nullopt);
    std::string start_after;
    if (!request->page_token().empty()) {
      DASH_ASSIGN_OR_RETURN(start_after,
                            DecodePageToken(request->page_token(), request->tenant(), scope));
    }
    std::vector<std::vector<Route>> candidates;
    for (const v1::ShardEntry& entry : p.shards()) {
      if (request->has_shard() && request->shard() != entry.shard()) continue;
      DASH_ASSIGN_OR_RETURN(std::vector<Route> routes,
                            ReadCandidates(p, entry, request->read_preference(), spread));
      candidates.push_back(std::move(routes));
    }
    // Every shard's page at once; merged in shard order, and a failure names
    // the lowest failing shard.
    const auto deadline = Deadline(ctx);
    std::atomic<int> retried{0};
    auto pages = RunAll<v1::ListClaimsResponse>(
        &fanout_, candidates.size(), [&](size_t i) -> absl::StatusOr<v1::ListClaimsResponse> {
          v1::ListClaimsResponse page;
          ReadOutcome outcome;
          absl::Status read = ReadWithFailover(
              candidates[i], &breaker_, options_.max_read_attempts, absl::FromChrono(deadline),
              [&](const Route& route) {
                v1::ListClaimsRequest forwarded = *request;
                forwarded.set_page_size(static_cast<uint32_t>(limit));
                forwarded.set_shard(route.shard);
                forwarded.set_expected_epoch(route.epoch);
                // The node's listing is of one shard: a token of its own.
                if (!start_after.empty()) {
                  forwarded.set_page_token(
                      EncodePageToken(request->tenant(), ListScope(route.shard), start_after));
                }
                page.Clear();
                auto stub = v1::Data::NewStub(placement_->Channel(route.address));
                grpc::ClientContext call;
                call.set_deadline(deadline);
                return FromGrpcStatus(stub->ListClaims(&call, forwarded, &page), &call);
              },
              &outcome);
          retried += outcome.failovers();
          DASH_RETURN_IF_ERROR(read);
          return page;
        });
    failovers += retried.load();
    std::vector<v1::ClaimRecord> merged;
    bool more = false;
    for (auto& result : pages) {
      DASH_RETURN_IF_ERROR(result.status());
      v1::ListClaimsResponse& page = *result;
      more = more || !page.next_page_token().empty();
      for (auto& rec : *page.mutable_records()) merged.push_back(std::move(rec));
      for (auto& t : *page.mutable_read_at()) *response->add_read_at() = std::move(t);
    }
    std::sort(merged.begin(), merged.end(), [](const v1::ClaimRecord& a, const v1::ClaimRecord& b) {
      return a.claim().claim_id() < b.claim().claim_id();
    });
    if (merged.size() > limit) {
      merged.resize(limit);
      more = true;
    }
    if (more && !merged.empty()) {
      response->set_next_page_token(
          EncodePageToken(request->tenant(), scope, merged.back().claim().claim_id()));
    }
    for (auto& rec : merged) *response->add_records() = std::move(rec);
    return absl::OkStatus();
  });
  ReportFailovers(ctx, failovers);
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                                  v1::QueryResponse* response) {
  absl::Status valid = query::ValidateQuery(*request);
  if (!valid.ok()) return ToGrpcStatus(valid);
  const uint64_t spread = spread_++;
  int failovers = 0;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    const auto deadline = Deadline(ctx);
    std::vector<std::unique_ptr<RemoteShardTarget>> remotes;
    std::map<uint32_t, query::ShardTarget*> targets;
    for (const v1::ShardEntry& entry : p.shards()) {
      DASH_ASSIGN_OR_RETURN(std::vector<Route> candidates,
                            ReadCandidates(p, entry, request->read_preference(), spread));
      remotes.push_back(std::make_unique<RemoteShardTarget>(
          placement_, std::move(candidates), &breaker_, options_.max_read_attempts, deadline));
      targets[entry.shard()] = remotes.back().get();
    }
    absl::StatusOr<v1::QueryResponse> answer =
        query::RunQuery(*request, targets, p.shard_count(), &fanout_);
    for (const auto& remote : remotes) failovers += remote->failovers();
    DASH_RETURN_IF_ERROR(answer.status());
    *response = *std::move(answer);
    return absl::OkStatus();
  });
  ReportFailovers(ctx, failovers);
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterAdminService::GetNodeInfo(grpc::ServerContext* ctx,
                                             const v1::GetNodeInfoRequest* request,
                                             v1::NodeInfo* response) {
  absl::StatusOr<std::shared_ptr<const v1::Placement>> p = placement_->Get();
  if (!p.ok()) return ToGrpcStatus(p.status(), ctx);
  response->set_node_id("router");
  response->set_shard_count((*p)->shard_count());
  response->set_version(DASH_VERSION);
  response->set_placement_version((*p)->version());
  for (const v1::ShardEntry& entry : (*p)->shards()) {
    v1::ReplicaInfo* ri = response->add_replicas();
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
  return grpc::Status::OK;
}

}  // namespace dash::router
