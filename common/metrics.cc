#include "common/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "prometheus/text_serializer.h"

namespace dash::metrics {
namespace {

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED.

// The services whose methods get their own label; any other path is "other".
constexpr const char* kServices[] = {"dash.v1.Data",       "dash.v1.NodeAdmin",
                                     "dash.v1.ShardQuery", "dash.v1.Replication",
                                     "dash.v1.Snapshots",  "dash.v1.ControlPlane"};

// One method's histograms, one per code, made on first use.
struct MethodSeries {
  std::string label;  // "dash.v1.Data/Query".
  std::array<std::atomic<prometheus::Histogram*>, kCodes> by_code{};
};

class RpcSeries {
 public:
  RpcSeries()
      : family_(prometheus::BuildHistogram()
                    .Name("dash_rpc_duration_seconds")
                    .Help("Time to answer a unary gRPC call, by method and status code")
                    .Register(Registry())) {
    const google::protobuf::DescriptorPool* pool =
        google::protobuf::DescriptorPool::generated_pool();
    for (const char* name : kServices) {
      const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
      if (service == nullptr) continue;  // Not linked into this process.
      for (int i = 0; i < service->method_count(); ++i) {
        auto series = std::make_unique<MethodSeries>();
        series->label = absl::StrCat(name, "/", service->method(i)->name());
        by_path_[absl::StrCat("/", series->label)] = series.get();
        methods_.push_back(std::move(series));
      }
    }
    other_.label = "other";
  }

  // Makes the OK series of `service`'s methods exist, at 0.
  void Initialize(const std::string& service) {
    for (const auto& series : methods_) {
      if (absl::StartsWith(series->label, service + "/")) For(absl::StrCat("/", series->label), 0);
    }
  }

  prometheus::Histogram* For(absl::string_view path, int code) {
    if (code < 0 || code >= kCodes) code = 2;  // UNKNOWN.
    auto it = by_path_.find(path);
    MethodSeries* series = it == by_path_.end() ? &other_ : it->second;
    prometheus::Histogram* h = series->by_code[code].load(std::memory_order_acquire);
    if (h != nullptr) return h;
    absl::MutexLock lock(&mu_);
    h = &family_.Add({{"method", series->label}, {"code", CodeName(code)}}, LatencyBuckets());
    series->by_code[code].store(h, std::memory_order_release);
    return h;
  }

 private:
  prometheus::Family<prometheus::Histogram>& family_;
  std::vector<std::unique_ptr<MethodSeries>> methods_;
  absl::flat_hash_map<std::string, MethodSeries*> by_path_;  // Fixed after construction.
  MethodSeries other_;
  absl::Mutex mu_;
};

RpcSeries& Rpcs() {
  static RpcSeries* const series = new RpcSeries();
  return *series;
}

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(const char* method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      Rpcs().For(method_, methods->GetSendStatus().error_code())->Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  const char* const method_;
  const std::chrono::steady_clock::time_point start_;
};

class RpcMetricsFactoryImpl final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Streams (log pulls, placement and health watches) last as long as
    // their clients like: their duration is no latency.
    if (info->type() != grpc::experimental::ServerRpcInfo::Type::UNARY) return nullptr;
    return new RpcMetricsInterceptor(info->method() != nullptr ? info->method() : "");
  }
};

// The standard process metrics, read from /proc at each scrape.
std::vector<prometheus::MetricFamily> ProcessFamilies() {
  static const double start_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<prometheus::MetricFamily> out;
  long pages = 0, resident = 0;
  std::ifstream statm("/proc/self/statm");
  if (statm >> pages >> resident) {
    out.push_back(FamilyBuilder("process_resident_memory_bytes", "Resident memory size in bytes",
                                prometheus::MetricType::Gauge)
                      .Add(static_cast<double>(resident) * sysconf(_SC_PAGESIZE))
                      .Build());
  }
  int fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) fds += e->d_name[0] != '.';
    closedir(dir);
    out.push_back(FamilyBuilder("process_open_fds", "Open file descriptors",
                                prometheus::MetricType::Gauge)
                      .Add(fds - 1)  // Less the directory being read.
                      .Build());
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                       (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    out.push_back(FamilyBuilder("process_cpu_seconds_total", "User and system CPU time spent",
                                prometheus::MetricType::Counter)
                      .Add(cpu)
                      .Build());
  }
  out.push_back(FamilyBuilder("process_start_time_seconds",
                              "Start time of the process since the Unix epoch (approximately: "
                              "its first use of metrics)",
                              prometheus::MetricType::Gauge)
                    .Add(start_time)
                    .Build());
  return out;
}

struct Collectors {
  absl::Mutex mu;
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, Collector> by_id ABSL_GUARDED_BY(mu);
};

Collectors& AllCollectors() {
  static Collectors* const collectors = new Collectors();
  return *collectors;
}

}  // namespace

prometheus::Registry& Registry() {
  static prometheus::Registry* const registry = new prometheus::Registry();
  return *registry;
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *buckets;
}

prometheus::Counter& Counter(const std::string& name, const std::string& help) {
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return prometheus::BuildCounter().Name(name).Help(help).Register(Registry()).Add({});
}

prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets,
                                 const prometheus::Labels& labels) {
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(Registry())
      .Add(labels, buckets);
}

std::string CodeName(int code) {
  // gRPC's codes and absl's are the same numbers with the same names.
  return code >= 0 && code < kCodes ? absl::StatusCodeToString(static_cast<absl::StatusCode>(code))
                                    : "UNKNOWN";
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsFactory(
    const std::vector<std::string>& initialized_services) {
  for (const std::string& service : initialized_services) Rpcs().Initialize(service);
  ProcessFamilies();
  return std::make_unique<RpcMetricsFactoryImpl>();
}

CollectorHandle::~CollectorHandle() {
  Collectors& all = AllCollectors();
  absl::MutexLock lock(&all.mu);
  all.by_id.erase(id_);
}

std::unique_ptr<CollectorHandle> AddCollector(Collector collector) {
  Collectors& all = AllCollectors();
  absl::MutexLock lock(&all.mu);
  const uint64_t id = all.next_id++;
  all.by_id[id] = std::move(collector);
  return std::make_unique<CollectorHandle>(id);
}

FamilyBuilder::FamilyBuilder(std::string name, std::string help, prometheus::MetricType type) {
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

FamilyBuilder& FamilyBuilder::Add(double value,
                                  std::vector<std::pair<std::string, std::string>> labels) {
  prometheus::ClientMetric m;
  for (auto& [name, v] : labels) m.label.push_back({std::move(name), std::move(v)});
  if (family_.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family_.metric.push_back(std::move(m));
  return *this;
}

prometheus::MetricFamily FamilyBuilder::Build() { return std::move(family_); }

std::string Render() {
  std::vector<prometheus::MetricFamily> families = Registry().Collect();
  for (auto& f : ProcessFamilies()) families.push_back(std::move(f));
  {
    Collectors& all = AllCollectors();
    absl::MutexLock lock(&all.mu);
    for (const auto& [id, collect] : all.by_id) {
      for (auto& f : collect()) {
        if (!f.metric.empty()) families.push_back(std::move(f));
      }
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace dash::metrics
