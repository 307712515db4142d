// abuse_bench: what a hostile client can make one node hold, and what it
// costs the other clients of the same shard.
//
// Starts a standalone dash-node (a real process on loopback) and measures:
//   1. idle: p50/p99 of ordinary one-claim writes to shard 0, nothing else
//      running;
//   2. the same writes while another client sends --filters distinct
//      adversarial filtered queries (each near the filter bounds: 64
//      conditions with 128-byte keys and long strings, ~60 KiB, so every one
//      is a new prefilter-cache entry);
//   3. the same writes while another client writes --big_claims claims at the
//      per-claim limits (999 pieces of evidence, ~1 MB) to the same shard,
//      each then grown by two more pieces (refused: over 1,000);
//   4. the node's peak RSS (/proc/<pid>/status VmHWM) and RSS at the end.
// Prints a table and a JSON scorecard; exits 1 when RSS passes --max_rss_mib
// or a p99 under abuse exceeds --p99_ratio times the idle one.
//
//   build/bench/abuse_bench [--filters=10000] [--big_claims=100] [--writes=400]
//                           [--max_rss_mib=1024] [--p99_ratio=2]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "gflags/gflags.h"
#include "grpcpp/client_context.h"
#include "tests/harness/process.h"

DEFINE_int32(filters, 10000, "Distinct adversarial filtered queries.");
DEFINE_int32(big_claims, 100, "Claims written at the per-claim limits.");
DEFINE_int32(writes, 400, "Ordinary one-claim writes measured per phase.");
DEFINE_double(max_rss_mib, 1024, "Fail when the node's peak RSS passes this.");
DEFINE_double(p99_ratio, 2, "Fail when the abused p99 passes this times the idle p99.");
DEFINE_string(dir, "/tmp/dash-abuse-bench", "The node's directory.");

namespace {

namespace v1 = dash::v1;

constexpr uint32_t kShards = 4;  // The node's default.

std::string IdOnShard(const std::string& tenant, uint32_t shard, const std::string& prefix,
                      int64_t n) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat(prefix, n, "-", i);
    if (dash::ShardOf(tenant, id, kShards) == shard) return id;
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

// VmHWM (peak) or VmRSS of `pid`, in MiB.
double RssMib(pid_t pid, const char* field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::strlen(field) + 1)) / 1024.0;
  }
  return 0;
}

v1::WriteRequest OneClaim(const std::string& tenant, const std::string& id, int evidence,
                          size_t quote_bytes) {
  v1::WriteRequest req;
  req.set_tenant(tenant);
  v1::Claim* c = req.add_ops()->mutable_claim();
  c->set_claim_id(id);
  c->set_text("ordinary claim text about sea ice and glaciers");
  for (int i = 0; i < evidence; ++i) {
    v1::Evidence* e = req.add_ops()->mutable_evidence();
    e->set_claim_id(id);
    e->set_evidence_id(absl::StrCat("e", i));
    e->set_stance(i % 2 ? v1::STANCE_SUPPORTS : v1::STANCE_CONTRADICTS);
    e->mutable_citation()->set_source_uri(absl::StrCat("https://example.org/", i));
    std::string quote;
    while (quote.size() < quote_bytes) absl::StrAppend(&quote, "ice sheet ", i, " melt ");
    quote.resize(quote_bytes);
    e->mutable_citation()->set_quote(quote);
  }
  return req;
}

// p50/p99 (ms) of `n` ordinary writes to shard 0, one at a time.
std::vector<double> OrdinaryWrites(v1::Data::Stub* stub, int n, const std::string& prefix,
                                   int* failed) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    // Tenant "w": the claims measured do not grow what the filters scan.
    v1::WriteRequest req = OneClaim("w", IdOnShard("w", 0, prefix, i), 1, 60);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WriteResponse resp;
    const absl::Time start = absl::Now();
    if (!stub->Write(&ctx, req, &resp).ok()) ++*failed;
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  std::filesystem::remove_all(FLAGS_dir);
  std::filesystem::create_directories(FLAGS_dir);
  dash::testing::NodeProcess node(FLAGS_dir, {"--node_id=n1"});
  if (absl::Status st = node.Start(); !st.ok()) {
    fprintf(stderr, "abuse_bench: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  auto stub = v1::Data::NewStub(node.channel());
  // Some ordinary data for the queries to filter.
  for (int i = 0; i < 200; ++i) {
    v1::WriteRequest req = OneClaim("t", absl::StrCat("base-", i), 2, 80);
    (*req.mutable_ops(0)->mutable_claim()->mutable_metadata())["year"].set_int_value(2000 + i % 20);
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    stub->Write(&ctx, req, &resp);
  }
  const double rss_start = RssMib(node.pid(), "VmRSS:");

  int idle_failed = 0;
  const std::vector<double> idle = OrdinaryWrites(stub.get(), FLAGS_writes, "idle-", &idle_failed);

  std::atomic<int> queries_refused{0}, queries_ok{0}, big_ok{0}, big_refused{0};
  auto run_filters = [&] {
    auto s = v1::Data::NewStub(node.channel());
    for (int q = 0; q < FLAGS_filters; ++q) {
      v1::QueryRequest req;
      req.set_tenant("t");
      req.set_text("sea ice");
      req.set_k(10);
      for (int c = 0; c < 64; ++c) {  // ~60 KiB: just under the 64 KiB filter bound.
        v1::MetadataFilter* f = req.mutable_filter()->add_metadata();
        std::string key = absl::StrCat("k", q, "-", c, "-");
        key.resize(128, 'x');
        f->set_key(key);
        f->mutable_eq()->set_string_value(std::string(800, static_cast<char>('a' + c % 26)));
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::QueryResponse resp;
      (s->Query(&ctx, req, &resp).ok() ? queries_ok : queries_refused)++;
    }
  };
  auto run_big = [&] {
    auto s = v1::Data::NewStub(node.channel());
    for (int b = 0; b < FLAGS_big_claims; ++b) {
      // 999 pieces of ~1 KB: just under both limits.
      const std::string id = IdOnShard("t", 0, "big-", b);
      v1::WriteRequest more;  // Two more pieces: 1,001, over the limit, refused.
      more.set_tenant("t");
      for (int i = 0; i < 2; ++i) {
        v1::Evidence* e = more.add_ops()->mutable_evidence();
        e->set_claim_id(id);
        e->set_evidence_id(absl::StrCat("extra", i));
        e->set_stance(v1::STANCE_SUPPORTS);
        e->mutable_citation()->set_source_uri("https://example.org/extra");
        e->mutable_citation()->set_quote("one more");
      }
      for (const v1::WriteRequest& req : {OneClaim("t", id, 999, 900), more}) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        v1::WriteResponse resp;
        (s->Write(&ctx, req, &resp).ok() ? big_ok : big_refused)++;
      }
    }
  };
  // Ordinary writes measured, round after round, while `abuse` runs.
  int abused_failed = 0;
  auto measure_during = [&](const std::function<void()>& abuse, const std::string& name,
                            double* seconds) {
    std::atomic<bool> done{false};
    std::thread t([&] {
      abuse();
      done = true;
    });
    const absl::Time start = absl::Now();
    std::vector<double> ms;
    do {
      std::vector<double> round = OrdinaryWrites(
          stub.get(), FLAGS_writes / 4, absl::StrCat(name, ms.size(), "-"), &abused_failed);
      ms.insert(ms.end(), round.begin(), round.end());
    } while (!done);
    t.join();
    *seconds = absl::ToDoubleSeconds(absl::Now() - start);
    return ms;
  };
  double filters_s = 0, big_s = 0;
  const std::vector<double> during_filters = measure_during(run_filters, "filters-", &filters_s);
  const double peak_after_filters = RssMib(node.pid(), "VmHWM:");
  const std::vector<double> during_big = measure_during(run_big, "big-", &big_s);
  const double peak = RssMib(node.pid(), "VmHWM:");
  const double end = RssMib(node.pid(), "VmRSS:");
  node.Kill();

  const double idle_p50 = Percentile(idle, 0.5), idle_p99 = Percentile(idle, 0.99);
  const double f_p50 = Percentile(during_filters, 0.5), f_p99 = Percentile(during_filters, 0.99);
  const double b_p50 = Percentile(during_big, 0.5), b_p99 = Percentile(during_big, 0.99);
  printf("%-52s %10s %10s\n", "ordinary one-claim writes to shard 0", "p50 ms", "p99 ms");
  printf("%-52s %10.2f %10.2f\n", absl::StrCat("idle (", idle.size(), " writes)").c_str(), idle_p50,
         idle_p99);
  printf("%-52s %10.2f %10.2f\n",
         absl::StrFormat("during %d adversarial filters (%d writes, %.0f s)", FLAGS_filters,
                         during_filters.size(), filters_s)
             .c_str(),
         f_p50, f_p99);
  printf("%-52s %10.2f %10.2f\n",
         absl::StrFormat("during %d claims at the limits (%d writes, %.0f s)", FLAGS_big_claims,
                         during_big.size(), big_s)
             .c_str(),
         b_p50, b_p99);
  printf(
      "adversarial queries: %d answered, %d refused; big-claim writes: %d accepted, %d "
      "refused\n",
      queries_ok.load(), queries_refused.load(), big_ok.load(), big_refused.load());
  printf(
      "node RSS: %.0f MiB at start, peak %.0f MiB after the filters, peak %.0f MiB after the "
      "big claims, %.0f MiB at the end (bound %.0f MiB)\n",
      rss_start, peak_after_filters, peak, end, FLAGS_max_rss_mib);
  const bool rss_ok = peak <= FLAGS_max_rss_mib;
  const double worst_p99 = std::max(f_p99, b_p99);
  const bool p99_ok = worst_p99 <= FLAGS_p99_ratio * idle_p99;
  printf(
      "{\"bench\":\"abuse\",\"filters\":%d,\"big_claims\":%d,\"idle_p50_ms\":%.2f,"
      "\"idle_p99_ms\":%.2f,\"filters_p50_ms\":%.2f,\"filters_p99_ms\":%.2f,"
      "\"big_p50_ms\":%.2f,\"big_p99_ms\":%.2f,\"rss_start_mib\":%.0f,"
      "\"rss_peak_filters_mib\":%.0f,\"rss_peak_mib\":%.0f,\"rss_end_mib\":%.0f,"
      "\"queries_answered\":%d,\"big_refused\":%d,\"failed_writes\":%d,\"rss_ok\":%s,"
      "\"p99_ok\":%s}\n",
      FLAGS_filters, FLAGS_big_claims, idle_p50, idle_p99, f_p50, f_p99, b_p50, b_p99, rss_start,
      peak_after_filters, peak, end, queries_ok.load(), big_refused.load(),
      idle_failed + abused_failed, rss_ok ? "true" : "false", p99_ok ? "true" : "false");
  return rss_ok && p99_ok && idle_failed + abused_failed == 0 ? 0 : 1;
}
