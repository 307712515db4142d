// Ingest benchmark: DASH's gRPC write path against raw RocksDB on the same
// machine, in one run.
//
// For each batch size (claims per batch, each claim with 3 pieces of
// evidence) it writes the same records twice:
//   raw   one rocksdb::WriteBatch per batch (the serialized claim and evidence
//         protos), written with sync=true: the floor any durable store pays;
//   dash  one Data.Write RPC per batch to an in-process dash-node over a
//         loopback socket: validation, log record, state, idempotency, sync.
// Both sequential (one client), plus DASH with concurrent clients, where group
// commit shares each sync. Prints a table and one JSON scorecard line.
//
//   ingest_bench [--claims=N] [--clients=N] [--batch=N] [--dir=PATH]
//
// --batch runs one batch size only (for profiling one path).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "bench/bench_security.h"
#include "common/progress.h"
#include "dash/v1/data.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "node/service/node_server.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace {

using Clock = std::chrono::steady_clock;

// A claim with realistic text lengths and three cited pieces of evidence.
void AddClaim(dash::v1::WriteRequest* req, int n) {
  const std::string id = absl::StrCat("claim-", n);
  auto* c = req->add_ops()->mutable_claim();
  c->set_claim_id(id);
  c->set_text(
      absl::StrCat("Observed global mean surface temperature rose by about 1.1 degrees "
                   "between pre-industrial times and the decade ending ",
                   2000 + n % 25, ", according to record ", n, "."));
  (*c->mutable_metadata())["source"].set_string_value("bench");
  (*c->mutable_metadata())["year"].set_int_value(2000 + n % 25);
  for (int e = 0; e < 3; ++e) {
    auto* ev = req->add_ops()->mutable_evidence();
    ev->set_claim_id(id);
    ev->set_evidence_id(absl::StrCat("ev-", e));
    ev->set_stance(e == 2 ? dash::v1::STANCE_CONTRADICTS : dash::v1::STANCE_SUPPORTS);
    auto* cit = ev->mutable_citation();
    cit->set_source_uri(absl::StrCat("https://example.org/reports/", n, "/", e));
    cit->set_source_title("Assessment report, chapter 2");
    cit->set_quote(absl::StrCat("The observed warming of ", n % 7,
                                " tenths of a degree per decade "
                                "is consistent across independent datasets (",
                                e, ")."));
    cit->set_span_start(100 * e);
    cit->set_span_end(100 * e + 80);
  }
}

std::vector<dash::v1::WriteRequest> MakeBatches(int claims, int per_batch, int first) {
  std::vector<dash::v1::WriteRequest> out;
  for (int n = 0; n < claims; n += per_batch) {
    dash::v1::WriteRequest req;
    req.set_tenant("bench");
    for (int k = n; k < std::min(claims, n + per_batch); ++k) AddClaim(&req, first + k);
    out.push_back(std::move(req));
  }
  return out;
}

double RawRocksDb(const std::string& dir, const std::vector<dash::v1::WriteRequest>& batches,
                  int claims) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(options, dir, &db).ok()) abort();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto start = Clock::now();
  for (const auto& req : batches) {
    rocksdb::WriteBatch wb;
    for (const auto& op : req.ops()) {
      if (op.has_claim()) {
        wb.Put("c/" + op.claim().claim_id(), op.claim().SerializeAsString());
      } else {
        wb.Put("e/" + op.evidence().claim_id() + "/" + op.evidence().evidence_id(),
               op.evidence().SerializeAsString());
      }
    }
    if (!db->Write(wo, &wb).ok()) abort();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  delete db;
  return claims / secs;
}

struct DashResult {
  double claims_per_s = 0;
  double p50_ms = 0;  // Latency of one Write call.
};

DashResult DashGrpc(const std::string& address, const dash::bench::BenchSecurity& security,
                    const std::vector<dash::v1::WriteRequest>& batches, int claims, int clients) {
  auto channel = dash::bench::BenchChannel(address, security);
  std::vector<std::thread> threads;
  std::vector<double> latencies_ms(batches.size());
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  dash::Progress progress("ingest", batches.size(), "batches");
  const auto start = Clock::now();
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      auto stub = dash::v1::Data::NewStub(channel);
      for (size_t i = next++; i < batches.size(); i = next++) {
        grpc::ClientContext ctx;
        dash::v1::WriteResponse resp;
        const auto call_start = Clock::now();
        if (!stub->Write(&ctx, batches[i], &resp).ok()) failures++;
        latencies_ms[i] =
            std::chrono::duration<double, std::milli>(Clock::now() - call_start).count();
        progress.Add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (failures > 0) {
    fprintf(stderr, "ingest_bench: %d writes failed\n", failures.load());
    abort();
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  return {claims / secs, latencies_ms[latencies_ms.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int claims = 2000;
  int clients = 8;
  int only_batch = 0;
  bool secure = false, metrics = true;
  std::string dir = "/tmp/dash-ingest-bench";
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--claims=")) {
      if (!absl::SimpleAtoi(a, &claims)) return 2;
    } else if (absl::ConsumePrefix(&a, "--clients=")) {
      if (!absl::SimpleAtoi(a, &clients)) return 2;
    } else if (absl::ConsumePrefix(&a, "--batch=")) {
      if (!absl::SimpleAtoi(a, &only_batch) || only_batch < 1) return 2;
    } else if (absl::ConsumePrefix(&a, "--dir=")) {
      dir = std::string(a);
    } else if (a == "--secure") {
      secure = true;
    } else if (a == "--no-metrics") {
      metrics = false;
    } else {
      fprintf(stderr,
              "usage: ingest_bench [--claims=N] [--clients=N] [--batch=N] [--dir=PATH] "
              "[--secure] [--no-metrics]\n");
      return 2;
    }
  }
  std::filesystem::remove_all(dir);
  dash::shard::HostOptions options;
  options.node_id = "bench";
  options.data_dir = dir + "/node";
  options.shard_count = 1;
  absl::StatusOr<dash::bench::BenchSecurity> security =
      dash::bench::MakeBenchSecurity(secure, dir + "/tls");
  if (!security.ok()) {
    fprintf(stderr, "ingest_bench: %s\n", security.status().ToString().c_str());
    return 1;
  }
  dash::service::NodeServerOptions server_options;
  server_options.security = security->server;
  server_options.metrics = metrics;  // --no-metrics: what the call histograms cost.
  auto server = dash::service::NodeServer::Start(options, "127.0.0.1:0", server_options);
  if (!server.ok()) {
    fprintf(stderr, "ingest_bench: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  printf("DASH ingest benchmark: %d claims per run, 3 evidence each, sync on, 1 shard, %s\n",
         claims, secure ? "TLS and bearer tokens" : "plaintext, no authentication");
  printf("%-7s %-22s %14s %14s %8s %12s\n", "batch", "mode", "raw claims/s", "dash claims/s",
         "ratio", "write p50 ms");
  std::string json = absl::StrCat("{\"bench\":\"ingest\",\"claims\":", claims,
                                  ",\"secure\":", secure ? "true" : "false",
                                  ",\"metrics\":", metrics ? "true" : "false", ",\"results\":[");
  int offset = 0;
  bool first = true;
  std::vector<int> sizes = {1, 10, 100};
  if (only_batch > 0) sizes = {only_batch};
  for (int per_batch : sizes) {
    for (int c : {1, clients}) {
      if (per_batch == 100 && c > 1) continue;  // 20 batches: too few to share syncs.
      auto batches = MakeBatches(claims, per_batch, offset);
      offset += claims;
      const std::string raw_dir = absl::StrCat(dir, "/raw-", per_batch, "-", c);
      const double raw = RawRocksDb(raw_dir, batches, claims);
      const DashResult result = DashGrpc(address, *security, batches, claims, c);
      const double dash = result.claims_per_s;
      const std::string mode = c == 1 ? "sequential" : absl::StrCat(c, " clients (dash)");
      printf("%-7d %-22s %14.0f %14.0f %8.2f %12.3f\n", per_batch, mode.c_str(), raw, dash,
             dash / raw, result.p50_ms);
      absl::StrAppendFormat(&json,
                            "%s{\"batch\":%d,\"clients\":%d,\"raw_claims_per_s\":%.0f,"
                            "\"dash_claims_per_s\":%.0f,\"ratio\":%.3f,\"write_p50_ms\":%.3f}",
                            first ? "" : ",", per_batch, c, raw, dash, dash / raw, result.p50_ms);
      first = false;
    }
  }
  json += "]}";
  printf("%s\n", json.c_str());
  server->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
