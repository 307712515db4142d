#include "router/replica_choice.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace dash::router {
namespace {

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
  if (const v1::NodeEntry* n = FindNode(p, node)) r.address = n->address();
  return r;
}

// `nodes` rotated left by `spread`, as routes of reads that do not pin the
// epoch.
std::vector<Route> Rotated(const v1::Placement& p, const v1::ShardEntry& entry,
                           const std::vector<std::string>& nodes, uint64_t spread) {
  std::vector<Route> routes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    routes.push_back(MakeRoute(p, entry, nodes[(spread + i) % nodes.size()]));
    routes.back().epoch = 0;
  }
  return routes;
}

}  // namespace

absl::StatusOr<Route> ChooseLeader(const v1::Placement& placement, const v1::ShardEntry& entry) {
  if (entry.leader_node_id().empty()) return NoReplica(entry, placement, "no leader");
  if (!Healthy(placement, entry.leader_node_id())) {
    return NoReplica(entry, placement,
                     absl::StrCat("no healthy leader (", entry.leader_node_id(), " is unhealthy)"));
  }
  return MakeRoute(placement, entry, entry.leader_node_id());
}

bool EveryShardLed(const v1::Placement& placement) {
  if (!placement.created() ||
      placement.shards_size() != static_cast<int>(placement.shard_count())) {
    return false;
  }
  for (const v1::ShardEntry& entry : placement.shards()) {
    if (!ChooseLeader(placement, entry).ok()) return false;
  }
  return true;
}

bool RefusedUntilNextTable(const absl::Status& status) {
  return absl::IsUnavailable(status) && GetRoutingHint(status).has_value();
}

absl::StatusOr<std::vector<Route>> ReadCandidates(const v1::Placement& placement,
                                                  const v1::ShardEntry& entry,
                                                  v1::ReadPreference preference, uint64_t spread) {
  switch (preference) {
    case v1::READ_PREFERENCE_LEADER_ONLY: {
      DASH_ASSIGN_OR_RETURN(Route route, ChooseLeader(placement, entry));
      route.leader_read = true;
      return std::vector<Route>{route};
    }
    case v1::READ_PREFERENCE_FOLLOWER_PREFERRED: {
      std::vector<std::string> followers;
      for (const auto& r : entry.replicas()) {
        if (r.node_id() != entry.leader_node_id() && r.role() == v1::REPLICA_ROLE_FOLLOWER &&
            r.in_sync() && Healthy(placement, r.node_id())) {
          followers.push_back(r.node_id());
        }
      }
      std::vector<Route> routes = Rotated(placement, entry, followers, spread);
      if (absl::StatusOr<Route> leader = ChooseLeader(placement, entry); leader.ok()) {
        routes.push_back(*std::move(leader));
        routes.back().epoch = 0;
      } else if (routes.empty()) {
        return leader.status();
      }
      return routes;
    }
    case v1::READ_PREFERENCE_ANY_HEALTHY: {
      std::vector<std::string> healthy;
      for (const auto& r : entry.replicas()) {
        if (Healthy(placement, r.node_id())) healthy.push_back(r.node_id());
      }
      if (healthy.empty()) return NoReplica(entry, placement, "no healthy replica");
      return Rotated(placement, entry, healthy, spread);
    }
    default:
      return absl::InvalidArgumentError("read_preference: is not a known preference");
  }
}

absl::StatusOr<Route> ChooseReplica(const v1::Placement& placement, const v1::ShardEntry& entry,
                                    v1::ReadPreference preference, uint64_t spread) {
  DASH_ASSIGN_OR_RETURN(std::vector<Route> routes,
                        ReadCandidates(placement, entry, preference, spread));
  return routes.front();
}

void ReplicaBreaker::Failed(const Route& replica, absl::Time now) {
  absl::MutexLock l(&mu_);
  open_until_[{replica.shard, replica.node_id}] = now + open_for_;
}

void ReplicaBreaker::Succeeded(const Route& replica) {
  absl::MutexLock l(&mu_);
  open_until_.erase({replica.shard, replica.node_id});
}

bool ReplicaBreaker::IsOpen(const Route& replica, absl::Time now) const {
  absl::MutexLock l(&mu_);
  auto it = open_until_.find({replica.shard, replica.node_id});
  return it != open_until_.end() && now < it->second;
}

std::vector<Route> ReplicaBreaker::Order(std::vector<Route> routes, absl::Time now) const {
  std::stable_partition(routes.begin(), routes.end(),
                        [&](const Route& r) { return !IsOpen(r, now); });
  return routes;
}

absl::Status ReadWithFailover(const std::vector<Route>& candidates, ReplicaBreaker* breaker,
                              int max_attempts, absl::Time deadline,
                              const std::function<absl::Status(const Route&)>& attempt,
                              ReadOutcome* outcome) {
  const std::vector<Route> ordered = breaker->Order(candidates, absl::Now());
  absl::Status last = absl::UnavailableError("no replica to read from");
  int tried = 0;
  for (const Route& route : ordered) {
    if (tried >= std::max(max_attempts, 1)) break;
    if (tried > 0 && absl::Now() >= deadline) break;
    ++tried;
    if (outcome != nullptr) {
      outcome->route = route;
      outcome->attempts = tried;
    }
    last = attempt(route);
    if (last.ok()) {
      breaker->Succeeded(route);
      return last;
    }
    if (!absl::IsUnavailable(last)) return last;
    breaker->Failed(route, absl::Now());
  }
  return last;
}

}  // namespace dash::router
