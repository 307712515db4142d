#include "common/placement_metrics.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace dash::metrics {

std::vector<prometheus::MetricFamily> PlacementFamilies(const v1::Placement& placement) {
  using prometheus::MetricType;
  std::map<std::string, const v1::NodeEntry*> nodes;
  int healthy = 0, unhealthy = 0, draining = 0;
  for (const v1::NodeEntry& n : placement.nodes()) {
    nodes[n.node_id()] = &n;
    (n.health() == v1::NODE_HEALTH_HEALTHY ? healthy : unhealthy) += 1;
    draining += n.draining();
  }
  FamilyBuilder epoch("dash_shard_epoch", "Shard epoch: rises by one at every leader change",
                      MetricType::Gauge);
  FamilyBuilder led("dash_shard_leader_healthy",
                    "1 when the shard has a leader on a healthy node (0: its writes fail closed)",
                    MetricType::Gauge);
  FamilyBuilder replicas("dash_shard_replicas", "Replicas of the shard in the table",
                         MetricType::Gauge);
  FamilyBuilder in_sync("dash_shard_in_sync_replicas",
                        "Replicas of the shard in sync, the leader's included", MetricType::Gauge);
  for (const v1::ShardEntry& s : placement.shards()) {
    const std::string shard = absl::StrCat(s.shard());
    epoch.Add(static_cast<double>(s.epoch()), {{"shard", shard}});
    auto leader = nodes.find(s.leader_node_id());
    const bool leader_healthy = !s.leader_node_id().empty() && leader != nodes.end() &&
                                leader->second->health() == v1::NODE_HEALTH_HEALTHY;
    led.Add(leader_healthy ? 1 : 0, {{"shard", shard}});
    int synced = 0;
    for (const v1::ReplicaEntry& r : s.replicas()) {
      synced += r.role() == v1::REPLICA_ROLE_LEADER || r.in_sync();
    }
    in_sync.Add(synced, {{"shard", shard}});
    replicas.Add(s.replicas_size(), {{"shard", shard}});
  }
  std::vector<prometheus::MetricFamily> out;
  out.push_back(
      FamilyBuilder("dash_placement_version", "Placement table version", MetricType::Gauge)
          .Add(static_cast<double>(placement.version()))
          .Build());
  out.push_back(epoch.Build());
  out.push_back(led.Build());
  out.push_back(in_sync.Build());
  out.push_back(replicas.Build());
  out.push_back(FamilyBuilder("dash_nodes", "Nodes in the table by health", MetricType::Gauge)
                    .Add(healthy, {{"health", "healthy"}})
                    .Add(unhealthy, {{"health", "unhealthy"}})
                    .Build());
  out.push_back(FamilyBuilder("dash_nodes_draining", "Nodes marked draining", MetricType::Gauge)
                    .Add(draining)
                    .Build());
  return out;
}

}  // namespace dash::metrics
