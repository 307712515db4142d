// Prometheus metrics of a DASH process, in the text exposition format served
// at GET /metrics (common/http_server.h). prometheus-cpp keeps the series and
// writes the format; DASH adds:
//   - dash_rpc_duration_seconds{method, code}: every gRPC call the process
//     serves, as a histogram (its _count is the call count), through a
//     server interceptor (RpcMetricsFactory);
//   - process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total,
//     process_start_time_seconds: the standard process metrics, by their
//     standard names so that stock dashboards find them;
//   - whatever the process registers: histograms on hot paths (Registry()),
//     and collectors that read state only when scraped (AddCollector), so
//     that state kept anyway (LSNs, lag, cache counters) costs nothing
//     between scrapes.
// Names follow Prometheus's conventions: the dash_ prefix, base units
// (seconds, bytes), _total for counters. Label values are bounded: methods of
// DASH's own services (any other path is "other"), status code names, shard
// numbers and node ids; never claim ids or tenants.
// Thread-safe.
#ifndef DASH_COMMON_METRICS_H_
#define DASH_COMMON_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace dash::metrics {

// The process-wide registry.
prometheus::Registry& Registry();

// Histogram buckets for latencies, from 100 µs to 10 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// A process-wide series without labels, made on first use (the same name
// gives the same series): for hot paths, which keep the reference, e.g.
//   static prometheus::Counter& replays = metrics::Counter("dash_x_total", "...");
// With `labels`, the series of those label values (keep the label values
// bounded: a fixed set, never tenants or claim ids).
prometheus::Counter& Counter(const std::string& name, const std::string& help);
prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets,
                                 const prometheus::Labels& labels = {});

// "OK", "NOT_FOUND", ...: a gRPC status code's name, as the code labels use.
std::string CodeName(int code);

// A server interceptor factory observing every call into
// dash_rpc_duration_seconds. The OK series of `initialized_services`' methods
// exist from the start, at 0: a series that first appears already counting
// hides its first calls from rate(), and with them the error ratio the alert
// rules compute (deploy/prometheus/alerts.yml).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsFactory(
    const std::vector<std::string>& initialized_services = {});

// Families built at each scrape. Keep the handle: the collector is removed
// when it is destroyed.
using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
class CollectorHandle {
 public:
  explicit CollectorHandle(uint64_t id) : id_(id) {}
  ~CollectorHandle();
  CollectorHandle(const CollectorHandle&) = delete;
  CollectorHandle& operator=(const CollectorHandle&) = delete;

 private:
  const uint64_t id_;
};
std::unique_ptr<CollectorHandle> AddCollector(Collector collector);

// Helpers for collectors: one family of `type` with a sample per call.
class FamilyBuilder {
 public:
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type);
  // Adds a sample; labels as name/value pairs.
  FamilyBuilder& Add(double value, std::vector<std::pair<std::string, std::string>> labels = {});
  prometheus::MetricFamily Build();  // Moves the family out.

 private:
  prometheus::MetricFamily family_;
};

// Everything, in the text exposition format (version 0.0.4).
std::string Render();

}  // namespace dash::metrics

#endif  // DASH_COMMON_METRICS_H_
