// A placement table as Prometheus series, for the control plane (the table
// it decides) and the router (the table it routes by). Labels: shard numbers
// and node health, bounded by the cluster's size.
//   dash_placement_version              the table's version;
//   dash_shard_epoch{shard}             rises by one at every leader change
//                                       (increase() counts them);
//   dash_shard_leader_healthy{shard}    1 when the shard has a leader on a
//                                       healthy node (0: writes fail closed);
//   dash_shard_in_sync_replicas{shard}  replicas in sync, the leader's included;
//   dash_shard_replicas{shard}          replicas in the table;
//   dash_nodes{health}, dash_nodes_draining.
#ifndef DASH_COMMON_PLACEMENT_METRICS_H_
#define DASH_COMMON_PLACEMENT_METRICS_H_

#include <vector>

#include "dash/v1/placement.pb.h"
#include "prometheus/metric_family.h"

namespace dash::metrics {

std::vector<prometheus::MetricFamily> PlacementFamilies(const v1::Placement& placement);

}  // namespace dash::metrics

#endif  // DASH_COMMON_PLACEMENT_METRICS_H_
