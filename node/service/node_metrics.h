// A node's state as Prometheus series, read from NodeInfo at each scrape
// (common/metrics.h): nothing is counted on the write or query path for them.
// Labels: shard numbers, follower node ids, column-family names — bounded by
// the cluster's size, never tenants or claims.
#ifndef DASH_NODE_SERVICE_NODE_METRICS_H_
#define DASH_NODE_SERVICE_NODE_METRICS_H_

#include <vector>

#include "dash/v1/node.pb.h"
#include "prometheus/metric_family.h"

namespace dash::service {

std::vector<prometheus::MetricFamily> NodeFamilies(const v1::NodeInfo& info);

}  // namespace dash::service

#endif  // DASH_NODE_SERVICE_NODE_METRICS_H_
