#include "tests/harness/cluster.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace dash::testing {

LocalCluster::LocalCluster(std::string dir, ClusterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {}

std::vector<std::string> LocalCluster::node_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, n] : nodes_) ids.push_back(id);
  return ids;
}

absl::Status LocalCluster::Start() {
  std::vector<std::string> cp_args = {
      absl::StrCat("--shard_count=", options_.shard_count),
      absl::StrCat("--replication_factor=", options_.replication_factor),
      absl::StrCat("--failure_timeout_ms=", options_.failure_timeout_ms)};
  cp_args.insert(cp_args.end(), options_.controlplane_args.begin(),
                 options_.controlplane_args.end());
  auto with_http = [&](std::vector<std::string> args, const std::string& dir) {
    if (!options_.http) return args;
    for (std::string& flag : HttpArgs(dir)) args.push_back(std::move(flag));
    return args;
  };
  cp_args = with_http(cp_args, dir_ + "/controlplane");
  controlplane_ = std::make_unique<ControlPlaneProcess>(dir_ + "/controlplane", cp_args);
  if (absl::Status st = controlplane_->Start(); !st.ok()) return st;
  for (int i = 1; i <= options_.nodes; ++i) {
    const std::string id = absl::StrCat("n", i);
    std::vector<std::string> args = {"--node_id=" + id,
                                     "--controlplane=" + controlplane_->address(),
                                     absl::StrCat("--heartbeat_ms=", options_.heartbeat_ms)};
    args.insert(args.end(), options_.node_args.begin(), options_.node_args.end());
    nodes_[id] = std::make_unique<NodeProcess>(dir_ + "/" + id, with_http(args, dir_ + "/" + id));
    if (absl::Status st = nodes_[id]->Start(); !st.ok()) return st;
  }
  std::vector<std::string> router_args = {"--controlplane=" + controlplane_->address()};
  router_args.insert(router_args.end(), options_.router_args.begin(), options_.router_args.end());
  router_ =
      std::make_unique<RouterProcess>(dir_ + "/router", with_http(router_args, dir_ + "/router"));
  if (absl::Status st = router_->Start(); !st.ok()) return st;
  if (!options_.settle) return absl::OkStatus();
  absl::Status st = WaitForPlacement(
      [](const v1::Placement& p) { return p.created() && AllShardsLed(p) && FullyReplicated(p); },
      absl::Seconds(30), "the cluster to be created with every shard led");
  if (!st.ok()) return st;
  return WaitUntilAdopted(absl::Seconds(30));
}

absl::Status LocalCluster::WaitForRouterToCatchUp(absl::Duration timeout) {
  absl::StatusOr<v1::Placement> p = Placement();
  if (!p.ok()) return p.status();
  const uint64_t version = p->version();
  return PollUntil(
      [&] {
        auto admin = v1::NodeAdmin::NewStub(router_->channel());
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
        v1::NodeInfo info;
        return admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok() &&
               info.placement_version() >= version;
      },
      timeout, absl::StrCat("the router to route by placement version ", version));
}

absl::Status LocalCluster::WaitUntilAdopted(absl::Duration timeout) {
  return PollUntil(
      [&] {
        absl::StatusOr<v1::Placement> p = Placement();
        if (!p.ok()) return false;
        // Every node acts in the role the table gives it, at its epoch...
        for (const auto& [id, node] : nodes_) {
          if (!node->Running()) continue;
          auto admin = v1::NodeAdmin::NewStub(node->channel());
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
          v1::NodeInfo info;
          if (!admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok()) return false;
          std::map<uint32_t, const v1::ReplicaInfo*> hosted;
          for (const auto& r : info.replicas()) hosted[r.shard()] = &r;
          for (const auto& s : p->shards()) {
            for (const auto& r : s.replicas()) {
              if (r.node_id() != id) continue;
              auto it = hosted.find(s.shard());
              if (it == hosted.end() || it->second->epoch() != s.epoch() ||
                  (it->second->role() == "leader") != (s.leader_node_id() == id)) {
                return false;
              }
            }
          }
        }
        // ...and the router routes by that table.
        auto admin = v1::NodeAdmin::NewStub(router_->channel());
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
        v1::NodeInfo info;
        if (!admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok()) return false;
        if (info.replicas_size() != p->shards_size()) return false;
        for (int i = 0; i < p->shards_size(); ++i) {
          if (info.replicas(i).epoch() != p->shards(i).epoch()) return false;
        }
        return true;
      },
      timeout, "nodes and router to adopt the placement");
}

absl::StatusOr<v1::Placement> LocalCluster::Placement() {
  auto stub = v1::ControlPlane::NewStub(controlplane_->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::Placement p;
  grpc::Status st = stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &p);
  if (!st.ok()) return absl::UnavailableError(st.error_message());
  return p;
}

absl::Status LocalCluster::WaitForPlacement(
    const std::function<bool(const v1::Placement&)>& condition, absl::Duration timeout,
    const std::string& what) {
  return PollUntil(
      [&] {
        absl::StatusOr<v1::Placement> p = Placement();
        return p.ok() && condition(*p);
      },
      timeout, what);
}

bool LocalCluster::AllShardsLed(const v1::Placement& p) {
  if (!p.created()) return false;
  for (const auto& s : p.shards()) {
    bool healthy = false;
    for (const auto& n : p.nodes()) {
      healthy =
          healthy || (n.node_id() == s.leader_node_id() && n.health() == v1::NODE_HEALTH_HEALTHY);
    }
    if (!healthy) return false;
  }
  return true;
}

bool LocalCluster::AllLeadersReady(const v1::Placement& p) {
  if (!p.created()) return false;
  for (const auto& s : p.shards()) {
    if (s.leader_node_id().empty() || s.leader_ready_epoch() != s.epoch()) return false;
  }
  return true;
}

bool LocalCluster::FullyReplicated(const v1::Placement& p) {
  for (const auto& s : p.shards()) {
    uint64_t leader_lsn = 0;
    for (const auto& r : s.replicas()) {
      if (r.node_id() == s.leader_node_id()) leader_lsn = r.last_lsn();
    }
    for (const auto& r : s.replicas()) {
      if (r.node_id() == s.leader_node_id()) continue;
      if (!r.in_sync() || r.last_lsn() != leader_lsn) return false;
    }
  }
  return true;
}

bool LocalCluster::CaughtUp(const v1::Placement& p, uint64_t max_lag) {
  std::map<std::string, bool> healthy;
  for (const auto& n : p.nodes()) healthy[n.node_id()] = n.health() == v1::NODE_HEALTH_HEALTHY;
  for (const auto& s : p.shards()) {
    uint64_t leader_lsn = 0;
    for (const auto& r : s.replicas()) {
      if (r.node_id() == s.leader_node_id()) leader_lsn = r.last_lsn();
    }
    for (const auto& r : s.replicas()) {
      if (r.node_id() == s.leader_node_id()) continue;
      if (!healthy[r.node_id()] || !r.in_sync() || r.last_lsn() + max_lag < leader_lsn) {
        return false;
      }
    }
  }
  return true;
}

std::string LocalCluster::LeaderOf(const v1::Placement& p, uint32_t shard) {
  for (const auto& s : p.shards()) {
    if (s.shard() == shard) return s.leader_node_id();
  }
  return "";
}

absl::Status LocalCluster::RestartNode(const std::string& id, bool wipe) {
  NodeProcess& n = node(id);
  n.Kill();
  if (wipe) std::filesystem::remove_all(n.dir() + "/data");
  return n.Start();
}

}  // namespace dash::testing
