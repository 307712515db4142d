#include "router/router_service.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "dash/v1/node.grpc.pb.h"
#include "node/shard/batch_validator.h"
#include "node/shard/query_codec.h"
#include "node/shard/query_runner.h"

namespace dash::router {
namespace {

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;

const v1::NodeEntry* FindNode(const v1::Placement& p, const std::string& id) {
  for (const auto& n : p.nodes()) {
    if (n.node_id() == id) return &n;
  }
  return nullptr;
}

bool Healthy(const v1::Placement& p, const std::string& id) {
  const v1::NodeEntry* n = FindNode(p, id);
  return n != nullptr && n->health() == v1::NODE_HEALTH_HEALTHY;
}

absl::Status NoReplica(const v1::ShardEntry& entry, const v1::Placement& p,
                       const std::string& what) {
  absl::Status st = absl::UnavailableError(
      absl::StrCat("shard ", entry.shard(), " has ", what, " (epoch ", entry.epoch(), "); retry"));
  v1::RoutingHint hint;
  hint.set_shard(entry.shard());
  hint.set_current_epoch(entry.epoch());
  hint.set_leader_node_id(entry.leader_node_id());
  if (const v1::NodeEntry* n = FindNode(p, entry.leader_node_id())) {
    hint.set_leader_address(n->address());
  }
  SetRoutingHint(st, hint);
  return st;
}

Route MakeRoute(const v1::Placement& p, const v1::ShardEntry& entry, const std::string& node) {
  Route r;
  r.shard = entry.shard();
  r.epoch = entry.epoch();
  r.node_id = node;
  r.address = FindNode(p, node)->address();
  return r;
}

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

// One shard replica behind the network, for RunQuery.
class RemoteShardTarget : public shard::ShardTarget {
 public:
  RemoteShardTarget(std::shared_ptr<grpc::Channel> channel, Route route,
                    std::chrono::system_clock::time_point deadline)
      : stub_(v1::ShardQuery::NewStub(channel)), route_(std::move(route)), deadline_(deadline) {}

  absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) override {
    v1::ShardStatsRequest req;
    req.set_leader_read(route_.leader_read);
    req.set_tenant(std::string(tenant));
    req.set_shard(route_.shard);
    req.set_epoch(route_.epoch);
    for (const auto& t : terms) req.add_terms(t);
    v1::ShardStatsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    DASH_RETURN_IF_ERROR(FromGrpcStatus(stub_->Stats(&ctx, req, &resp), &ctx));
    return shard::FromProto(resp.stats());
  }

  absl::StatusOr<shard::LegResult> Legs(absl::string_view tenant,
                                        const shard::LegRequest& request) override {
    v1::ShardLegsRequest req;
    req.set_leader_read(route_.leader_read);
    req.set_tenant(std::string(tenant));
    req.set_shard(route_.shard);
    req.set_epoch(route_.epoch);
    shard::ToProto(request, &req);
    v1::ShardLegsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    DASH_RETURN_IF_ERROR(FromGrpcStatus(stub_->Legs(&ctx, req, &resp), &ctx));
    return shard::FromProto(resp);
  }

  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const shard::FetchOptions& options) override {
    v1::ShardFetchRequest req;
    req.set_leader_read(route_.leader_read);
    req.set_tenant(std::string(tenant));
    req.set_shard(route_.shard);
    req.set_epoch(route_.epoch);
    for (const auto& id : ids) req.add_claim_ids(id);
    shard::ToProto(options, &req);
    v1::ShardFetchResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    DASH_RETURN_IF_ERROR(FromGrpcStatus(stub_->Fetch(&ctx, req, &resp), &ctx));
    std::map<std::string, v1::QueryHit> hits;
    for (auto& h : *resp.mutable_hits()) {
      std::string id = h.record().claim().claim_id();
      hits.emplace(std::move(id), std::move(h));
    }
    return hits;
  }

 private:
  std::unique_ptr<v1::ShardQuery::Stub> stub_;
  const Route route_;
  const std::chrono::system_clock::time_point deadline_;
};

}  // namespace

absl::StatusOr<Route> ChooseLeader(const v1::Placement& placement, const v1::ShardEntry& entry) {
  if (entry.leader_node_id().empty()) return NoReplica(entry, placement, "no leader");
  if (!Healthy(placement, entry.leader_node_id())) {
    return NoReplica(entry, placement,
                     absl::StrCat("no healthy leader (", entry.leader_node_id(), " is unhealthy)"));
  }
  return MakeRoute(placement, entry, entry.leader_node_id());
}

absl::StatusOr<Route> ChooseReplica(const v1::Placement& placement, const v1::ShardEntry& entry,
                                    v1::ReadPreference preference, uint64_t spread) {
  switch (preference) {
    case v1::READ_PREFERENCE_LEADER_ONLY: {
      DASH_ASSIGN_OR_RETURN(Route route, ChooseLeader(placement, entry));
      route.leader_read = true;
      return route;
    }
    case v1::READ_PREFERENCE_FOLLOWER_PREFERRED: {
      std::vector<std::string> followers;
      for (const auto& r : entry.replicas()) {
        if (r.role() == v1::REPLICA_ROLE_FOLLOWER && r.in_sync() &&
            Healthy(placement, r.node_id())) {
          followers.push_back(r.node_id());
        }
      }
      if (!followers.empty()) {
        return MakeRoute(placement, entry, followers[spread % followers.size()]);
      }
      return ChooseLeader(placement, entry);
    }
    case v1::READ_PREFERENCE_ANY_HEALTHY: {
      std::vector<std::string> healthy;
      for (const auto& r : entry.replicas()) {
        if (Healthy(placement, r.node_id())) healthy.push_back(r.node_id());
      }
      if (healthy.empty()) return NoReplica(entry, placement, "no healthy replica");
      return MakeRoute(placement, entry, healthy[spread % healthy.size()]);
    }
    default:
      return absl::InvalidArgumentError("read_preference: is not a known preference");
  }
}

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
  absl::Status valid = shard::ValidateBatch(*request, shard::Limits());
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_ASSIGN_OR_RETURN(uint32_t shard, shard::ShardOfBatch(*request, p.shard_count()));
    if (request->has_shard() && request->shard() != shard) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard: the batch belongs to shard ", shard, ", not ", request->shard()));
    }
    DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(p, shard));
    DASH_ASSIGN_OR_RETURN(Route route, ChooseLeader(p, *entry));
    v1::WriteRequest forwarded = *request;
    forwarded.set_shard(shard);
    forwarded.set_expected_epoch(route.epoch);
    auto stub = v1::Data::NewStub(placement_->Channel(route.address));
    grpc::ClientContext call;
    call.set_deadline(Deadline(ctx));
    return FromGrpcStatus(stub->Write(&call, forwarded, response), &call);
  });
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                                     v1::GetClaimResponse* response) {
  absl::Status valid = shard::ValidateTenant(request->tenant(), "tenant");
  if (valid.ok()) valid = shard::ValidateId(request->claim_id(), "claim_id");
  if (valid.ok() && !v1::ReadPreference_IsValid(request->read_preference())) {
    valid = absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  const uint64_t spread = spread_++;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    const uint32_t shard = ShardOf(request->tenant(), request->claim_id(), p.shard_count());
    DASH_ASSIGN_OR_RETURN(const v1::ShardEntry* entry, ShardEntryOf(p, shard));
    DASH_ASSIGN_OR_RETURN(Route route,
                          ChooseReplica(p, *entry, request->read_preference(), spread));
    v1::GetClaimRequest forwarded = *request;
    forwarded.set_expected_epoch(route.epoch);
    auto stub = v1::Data::NewStub(placement_->Channel(route.address));
    grpc::ClientContext call;
    call.set_deadline(Deadline(ctx));
    return FromGrpcStatus(stub->GetClaim(&call, forwarded, response), &call);
  });
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::ListClaims(grpc::ServerContext* ctx,
                                       const v1::ListClaimsRequest* request,
                                       v1::ListClaimsResponse* response) {
  absl::Status valid = shard::ValidateTenant(request->tenant(), "tenant");
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
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    response->Clear();
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    if (request->has_shard() && request->shard() >= p.shard_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard: ", request->shard(), " is not below the shard count ", p.shard_count()));
    }
    std::vector<Route> routes;
    for (const v1::ShardEntry& entry : p.shards()) {
      if (request->has_shard() && request->shard() != entry.shard()) continue;
      DASH_ASSIGN_OR_RETURN(Route route,
                            ChooseReplica(p, entry, request->read_preference(), spread));
      routes.push_back(std::move(route));
    }
    // Every shard's page at once; merged in shard order, and a failure names
    // the lowest failing shard.
    const auto deadline = Deadline(ctx);
    auto pages = RunAtOnce<v1::ListClaimsResponse>(
        routes.size(), [&](size_t i) -> absl::StatusOr<v1::ListClaimsResponse> {
          v1::ListClaimsRequest forwarded = *request;
          forwarded.set_page_size(static_cast<uint32_t>(limit));
          forwarded.set_shard(routes[i].shard);
          forwarded.set_expected_epoch(routes[i].epoch);
          v1::ListClaimsResponse page;
          auto stub = v1::Data::NewStub(placement_->Channel(routes[i].address));
          grpc::ClientContext call;
          call.set_deadline(deadline);
          DASH_RETURN_IF_ERROR(FromGrpcStatus(stub->ListClaims(&call, forwarded, &page), &call));
          return page;
        });
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
      response->set_next_page_token(absl::WebSafeBase64Escape(merged.back().claim().claim_id()));
    }
    for (auto& rec : merged) *response->add_records() = std::move(rec);
    return absl::OkStatus();
  });
  return ToGrpcStatus(st, ctx);
}

grpc::Status RouterService::Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                                  v1::QueryResponse* response) {
  absl::Status valid = shard::ValidateQuery(*request);
  if (!valid.ok()) return ToGrpcStatus(valid);
  const uint64_t spread = spread_++;
  absl::Status st = WithRetry([&](const v1::Placement& p) -> absl::Status {
    DASH_RETURN_IF_ERROR(ShardEntryOf(p, 0).status());
    const auto deadline = Deadline(ctx);
    std::vector<std::unique_ptr<RemoteShardTarget>> remotes;
    std::map<uint32_t, shard::ShardTarget*> targets;
    for (const v1::ShardEntry& entry : p.shards()) {
      DASH_ASSIGN_OR_RETURN(Route route,
                            ChooseReplica(p, entry, request->read_preference(), spread));
      remotes.push_back(
          std::make_unique<RemoteShardTarget>(placement_->Channel(route.address), route, deadline));
      targets[entry.shard()] = remotes.back().get();
    }
    DASH_ASSIGN_OR_RETURN(*response, shard::RunQuery(*request, targets, p.shard_count()));
    return absl::OkStatus();
  });
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
