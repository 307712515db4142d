// Test doubles for the router's tests: a placement table the test controls,
// and fake nodes serving dash.v1.Data and dash.v1.ShardQuery in-process on a
// localhost port (the router reaches them through its real gRPC transport).
#ifndef DASH_ROUTER_TEST_UTIL_H_
#define DASH_ROUTER_TEST_UTIL_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "router/placement_view.h"

namespace dash::router::testing {

// A placement the test publishes. Refresh calls `on_refresh` (if set), which
// may publish a newer table as a control plane would.
class TestPlacement final : public PlacementView {
 public:
  explicit TestPlacement(v1::Placement table) { Publish(std::move(table)); }

  // Publishes `table` with the next version.
  void Publish(v1::Placement table) {
    absl::MutexLock l(&mu_);
    table.set_version(table_ == nullptr ? 1 : table_->version() + 1);
    table_ = std::make_shared<const v1::Placement>(std::move(table));
  }
  v1::Placement Current() const {
    absl::MutexLock l(&mu_);
    return *table_;
  }
  void OnRefresh(std::function<void()> fn) {
    absl::MutexLock l(&mu_);
    on_refresh_ = std::move(fn);
  }
  int refreshes() const {
    absl::MutexLock l(&mu_);
    return refreshes_;
  }

  absl::StatusOr<std::shared_ptr<const v1::Placement>> Get() const override {
    absl::MutexLock l(&mu_);
    return table_;
  }
  void Refresh(absl::Duration) override {
    std::function<void()> fn;
    {
      absl::MutexLock l(&mu_);
      ++refreshes_;
      fn = on_refresh_;
    }
    if (fn) fn();
  }
  bool WaitForNewer(uint64_t version, absl::Time deadline) const override {
    absl::MutexLock l(&mu_);
    auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return table_->version() > version; };
    return mu_.AwaitWithDeadline(absl::Condition(&newer), deadline);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::Placement> table_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_refresh_ ABSL_GUARDED_BY(mu_);
  int refreshes_ ABSL_GUARDED_BY(mu_) = 0;
};

// A node whose answers the test scripts; every request it got is recorded.
// An RPC without a handler answers UNIMPLEMENTED.
class FakeNode {
 public:
  template <typename Req, typename Resp>
  using Handler = std::function<absl::StatusOr<Resp>(const Req&)>;

  FakeNode() : data_(this), shard_query_(this) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&data_);
    builder.RegisterService(&shard_query_);
    server_ = builder.BuildAndStart();
  }
  ~FakeNode() { Stop(); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // Stops serving: calls to it then fail to connect (UNAVAILABLE).
  void Stop() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  void OnWrite(Handler<v1::WriteRequest, v1::WriteResponse> h) { Set(&on_write_, std::move(h)); }
  void OnGetClaim(Handler<v1::GetClaimRequest, v1::GetClaimResponse> h) {
    Set(&on_get_, std::move(h));
  }
  void OnListClaims(Handler<v1::ListClaimsRequest, v1::ListClaimsResponse> h) {
    Set(&on_list_, std::move(h));
  }
  void OnStats(Handler<v1::ShardStatsRequest, v1::ShardStatsResponse> h) {
    Set(&on_stats_, std::move(h));
  }
  void OnLegs(Handler<v1::ShardLegsRequest, v1::ShardLegsResponse> h) {
    Set(&on_legs_, std::move(h));
  }
  void OnFetch(Handler<v1::ShardFetchRequest, v1::ShardFetchResponse> h) {
    Set(&on_fetch_, std::move(h));
  }

  std::vector<v1::WriteRequest> writes() const { return Get(&writes_); }
  std::vector<v1::GetClaimRequest> gets() const { return Get(&gets_); }
  std::vector<v1::ListClaimsRequest> lists() const { return Get(&lists_); }
  // ShardQuery calls of any phase.
  int shard_query_calls() const {
    absl::MutexLock l(&mu_);
    return shard_query_calls_;
  }

 private:
  template <typename T>
  void Set(T* field, T value) {
    absl::MutexLock l(&mu_);
    *field = std::move(value);
  }
  template <typename T>
  T Get(const T* field) const {
    absl::MutexLock l(&mu_);
    return *field;
  }

  // Records `request` in `log` (if any), then answers with `handler`; the
  // status goes out with its routing hint, as a node's does.
  template <typename Req, typename Resp>
  grpc::Status Serve(grpc::ServerContext* ctx, const Req& request, std::vector<Req>* log,
                     const Handler<Req, Resp>* handler, Resp* response) {
    Handler<Req, Resp> h;
    {
      absl::MutexLock l(&mu_);
      if (log != nullptr) log->push_back(request);
      h = *handler;
    }
    if (!h) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no handler");
    absl::StatusOr<Resp> answer = h(request);
    if (!answer.ok()) return ToGrpcStatus(answer.status(), ctx);
    *response = *std::move(answer);
    return grpc::Status::OK;
  }

  class DataImpl final : public v1::Data::Service {
   public:
    explicit DataImpl(FakeNode* node) : node_(node) {}
    grpc::Status Write(grpc::ServerContext* ctx, const v1::WriteRequest* request,
                       v1::WriteResponse* response) override {
      return node_->Serve(ctx, *request, &node_->writes_, &node_->on_write_, response);
    }
    grpc::Status GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                          v1::GetClaimResponse* response) override {
      return node_->Serve(ctx, *request, &node_->gets_, &node_->on_get_, response);
    }
    grpc::Status ListClaims(grpc::ServerContext* ctx, const v1::ListClaimsRequest* request,
                            v1::ListClaimsResponse* response) override {
      return node_->Serve(ctx, *request, &node_->lists_, &node_->on_list_, response);
    }

   private:
    FakeNode* const node_;
  };

  class ShardQueryImpl final : public v1::ShardQuery::Service {
   public:
    explicit ShardQueryImpl(FakeNode* node) : node_(node) {}
    grpc::Status Stats(grpc::ServerContext* ctx, const v1::ShardStatsRequest* request,
                       v1::ShardStatsResponse* response) override {
      node_->Count();
      return node_->Serve<v1::ShardStatsRequest, v1::ShardStatsResponse>(
          ctx, *request, nullptr, &node_->on_stats_, response);
    }
    grpc::Status Legs(grpc::ServerContext* ctx, const v1::ShardLegsRequest* request,
                      v1::ShardLegsResponse* response) override {
      node_->Count();
      return node_->Serve<v1::ShardLegsRequest, v1::ShardLegsResponse>(ctx, *request, nullptr,
                                                                       &node_->on_legs_, response);
    }
    grpc::Status Fetch(grpc::ServerContext* ctx, const v1::ShardFetchRequest* request,
                       v1::ShardFetchResponse* response) override {
      node_->Count();
      return node_->Serve<v1::ShardFetchRequest, v1::ShardFetchResponse>(
          ctx, *request, nullptr, &node_->on_fetch_, response);
    }

   private:
    FakeNode* const node_;
  };

  void Count() {
    absl::MutexLock l(&mu_);
    ++shard_query_calls_;
  }

  mutable absl::Mutex mu_;
  Handler<v1::WriteRequest, v1::WriteResponse> on_write_ ABSL_GUARDED_BY(mu_);
  Handler<v1::GetClaimRequest, v1::GetClaimResponse> on_get_ ABSL_GUARDED_BY(mu_);
  Handler<v1::ListClaimsRequest, v1::ListClaimsResponse> on_list_ ABSL_GUARDED_BY(mu_);
  Handler<v1::ShardStatsRequest, v1::ShardStatsResponse> on_stats_ ABSL_GUARDED_BY(mu_);
  Handler<v1::ShardLegsRequest, v1::ShardLegsResponse> on_legs_ ABSL_GUARDED_BY(mu_);
  Handler<v1::ShardFetchRequest, v1::ShardFetchResponse> on_fetch_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::WriteRequest> writes_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetClaimRequest> gets_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListClaimsRequest> lists_ ABSL_GUARDED_BY(mu_);
  int shard_query_calls_ ABSL_GUARDED_BY(mu_) = 0;
  DataImpl data_;
  ShardQueryImpl shard_query_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A created cluster of `shard_count` shards over `nodes` (node ids n1, n2,
// ...; all healthy, every replica in sync). Shard s is led by node
// s % nodes.size() at epoch 4 and has replicas on the nodes
// s, s + 1, ... (mod size), `replicas` of them.
inline v1::Placement ClusterTable(const std::vector<const FakeNode*>& nodes, uint32_t shard_count,
                                  size_t replicas) {
  v1::Placement p;
  p.set_shard_count(shard_count);
  p.set_replication_factor(static_cast<uint32_t>(replicas));
  p.set_created(true);
  for (size_t i = 0; i < nodes.size(); ++i) {
    v1::NodeEntry* n = p.add_nodes();
    n->set_node_id(absl::StrCat("n", i + 1));
    n->set_address(nodes[i]->address());
    n->set_health(v1::NODE_HEALTH_HEALTHY);
  }
  for (uint32_t s = 0; s < shard_count; ++s) {
    v1::ShardEntry* e = p.add_shards();
    e->set_shard(s);
    e->set_epoch(4);
    e->set_leader_node_id(absl::StrCat("n", s % nodes.size() + 1));
    for (size_t r = 0; r < replicas; ++r) {
      const size_t node = (s + r) % nodes.size();
      v1::ReplicaEntry* re = e->add_replicas();
      re->set_node_id(absl::StrCat("n", node + 1));
      re->set_role(r == 0 ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
      re->set_in_sync(true);
    }
  }
  return p;
}

}  // namespace dash::router::testing

#endif  // DASH_ROUTER_TEST_UTIL_H_
