// Retrieval benchmark profiles: ingest throughput and query latency of a
// dash-node (in process, over a loopback gRPC socket) on a synthetic but
// realistic corpus, printed as a JSON scorecard, appended to a history file
// and checked against the last accepted scorecard.
//
//   retrieval_bench --profile=small|medium|large|xlarge [--queries=N]
//                   [--history=bench/history.jsonl] [--baseline=FILE]
//                   [--tolerance=0.5] [--accept] [--dir=PATH] [--keep]
//
// Profiles: small 1k, medium 10k, large 50k, xlarge 100k claims; each claim
// has 10-30 words of Zipf-distributed text, 3-5 evidence quotes of 15-40 words
// with stances and publication dates, a 384-dim embedding drawn around one
// of 64 topic centroids, metadata (year, source) and a validity interval.
// The regression check fails (exit 1) when a latency p99 grows or ingest
// throughput shrinks by more than the tolerance against --baseline.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_security.h"
#include "common/hashing.h"
#include "common/progress.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "nlohmann/json.hpp"
#include "node/service/node_server.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kDim = 384;
constexpr int kTopics = 64;

struct Corpus {
  std::vector<std::string> vocab;
  std::vector<std::vector<float>> centroids;
  std::mt19937_64 rng{42};

  Corpus() {
    // A vocabulary of pronounceable pseudo-words, used with Zipf frequencies.
    const char* syl[] = {"ka", "ro", "mi", "te", "su", "na", "lo", "pe", "di", "ra",
                         "ve", "zo", "bu", "ci", "fa", "gu", "ho", "ji", "ne", "wa"};
    std::uniform_int_distribution<int> s(0, 19), len(2, 4);
    for (int i = 0; i < 20000; ++i) {
      std::string w;
      for (int j = len(rng); j > 0; --j) w += syl[s(rng)];
      vocab.push_back(w + std::to_string(i % 7));
    }
    std::normal_distribution<float> g(0, 1);
    for (int t = 0; t < kTopics; ++t) {
      std::vector<float> c(kDim);
      for (float& x : c) x = g(rng);
      centroids.push_back(c);
    }
  }
  const std::string& Word() {
    // Zipf(1) over the vocabulary by inverse transform on a harmonic table.
    static std::vector<double> cdf = [&] {
      std::vector<double> c(vocab.size());
      double sum = 0;
      for (size_t i = 0; i < vocab.size(); ++i) c[i] = (sum += 1.0 / (i + 1));
      for (double& x : c) x /= sum;
      return c;
    }();
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return vocab[std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()];
  }
  std::string Text(int lo, int hi) {
    std::string out;
    for (int n = std::uniform_int_distribution<int>(lo, hi)(rng); n > 0; --n) {
      if (!out.empty()) out += ' ';
      out += Word();
    }
    return out;
  }
  std::vector<float> Vector(int topic) {
    std::normal_distribution<float> g(0, 0.6f);
    std::vector<float> v(kDim);
    for (int i = 0; i < kDim; ++i) v[i] = centroids[topic][i] + g(rng);
    return v;
  }
};

void AddClaim(Corpus& c, dash::v1::WriteRequest* req, int n) {
  const std::string id = absl::StrCat("claim-", n);
  auto* claim = req->add_ops()->mutable_claim();
  claim->set_claim_id(id);
  claim->set_text(c.Text(10, 30));
  const int topic = static_cast<int>(c.rng() % kTopics);
  for (float x : c.Vector(topic)) claim->add_embedding(x);
  (*claim->mutable_metadata())["year"].set_int_value(1990 + static_cast<int>(c.rng() % 35));
  (*claim->mutable_metadata())["source"].set_string_value(absl::StrCat("source-", c.rng() % 20));
  claim->mutable_valid_from()->set_seconds(631152000 + static_cast<int64_t>(c.rng() % 900000000));
  claim->mutable_valid_to()->set_seconds(claim->valid_from().seconds() + 31536000);
  const int evidence = 3 + static_cast<int>(c.rng() % 3);
  for (int e = 0; e < evidence; ++e) {
    auto* ev = req->add_ops()->mutable_evidence();
    ev->set_claim_id(id);
    ev->set_evidence_id(absl::StrCat("e", e));
    ev->set_stance(static_cast<dash::v1::Stance>(1 + c.rng() % 3));
    auto* cit = ev->mutable_citation();
    cit->set_source_uri(absl::StrCat("https://example.org/doc/", n, "/", e));
    cit->set_source_title(c.Text(3, 8));
    cit->set_quote(c.Text(15, 40));
    cit->set_span_start(100 * e);
    cit->set_span_end(100 * e + 90);
    cit->mutable_published_at()->set_seconds(946684800 + static_cast<int64_t>(c.rng() % 800000000));
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

long RssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6) / 1024;
  }
  return 0;
}

// Bytes of the regular files under `dir`.
uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) n += it->file_size(ec);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string profile = "small", history = "bench/history.jsonl", baseline,
              dir = "/tmp/dash-retrieval-bench";
  int queries = 200;
  double tolerance = 0.5;
  bool accept = false, keep = false, secure = false, metrics = true;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--profile="))
      profile = std::string(a);
    else if (absl::ConsumePrefix(&a, "--queries="))
      queries = std::atoi(std::string(a).c_str());
    else if (absl::ConsumePrefix(&a, "--history="))
      history = std::string(a);
    else if (absl::ConsumePrefix(&a, "--baseline="))
      baseline = std::string(a);
    else if (absl::ConsumePrefix(&a, "--tolerance="))
      tolerance = std::atof(std::string(a).c_str());
    else if (absl::ConsumePrefix(&a, "--dir="))
      dir = std::string(a);
    else if (a == "--accept")
      accept = true;
    else if (a == "--keep")
      keep = true;
    else if (a == "--secure")
      secure = true;
    else if (a == "--no-metrics")
      metrics = false;
    else {
      fprintf(stderr,
              "usage: retrieval_bench --profile=small|medium|large|xlarge [--queries=N] "
              "[--history=F] [--baseline=F] [--tolerance=X] [--accept] [--dir=D] [--keep] "
              "[--secure] [--no-metrics]\n");
      return 2;
    }
  }
  const int claims = profile == "small"    ? 1000
                     : profile == "medium" ? 10000
                     : profile == "large"  ? 50000
                     : profile == "xlarge" ? 100000
                                           : -1;
  if (claims < 0) {
    fprintf(stderr, "retrieval_bench: unknown profile %s\n", profile.c_str());
    return 2;
  }
  if (baseline.empty()) baseline = absl::StrCat("bench/baseline/", profile, ".json");

  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir + "-tls");
  dash::shard::HostOptions options;
  options.node_id = "bench";
  options.data_dir = dir;
  options.shard_count = 4;
  // TLS and bearer tokens with --secure, in a directory beside the data.
  absl::StatusOr<dash::bench::BenchSecurity> security =
      dash::bench::MakeBenchSecurity(secure, dir + "-tls");
  if (!security.ok()) {
    fprintf(stderr, "retrieval_bench: %s\n", security.status().ToString().c_str());
    return 1;
  }
  dash::service::NodeServerOptions server_options;
  server_options.security = security->server;
  server_options.metrics = metrics;  // --no-metrics: what the call histograms cost.
  auto server = dash::service::NodeServer::Start(options, "127.0.0.1:0", server_options);
  if (!server.ok()) {
    fprintf(stderr, "retrieval_bench: %s\n", server.status().ToString().c_str());
    return 1;
  }
  auto channel =
      dash::bench::BenchChannel(absl::StrCat("127.0.0.1:", (*server)->port()), *security);
  Corpus corpus;

  // Ingest: batches of 25 claims per shard-sized group from 4 client threads.
  std::vector<dash::v1::WriteRequest> batches;
  uint64_t payload_bytes = 0;  // The claims' and evidence's serialized size.
  {
    std::vector<dash::v1::WriteRequest> per_shard(4);
    for (int n = 0; n < claims; ++n) {
      const uint32_t shard = dash::ShardOf("bench", absl::StrCat("claim-", n), 4);
      auto& b = per_shard[shard];
      b.set_tenant("bench");
      const int before = b.ops_size();
      AddClaim(corpus, &b, n);
      for (int i = before; i < b.ops_size(); ++i) payload_bytes += b.ops(i).ByteSizeLong();
      if (b.ops_size() >= 25 * 5) {
        batches.push_back(std::move(b));
        b = dash::v1::WriteRequest();
      }
    }
    for (auto& b : per_shard) {
      if (b.ops_size() > 0) batches.push_back(std::move(b));
    }
  }
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  dash::Progress progress("ingest", claims, "claims");
  const auto ingest_start = Clock::now();
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      auto stub = dash::v1::Data::NewStub(channel);
      for (size_t i = next++; i < batches.size(); i = next++) {
        grpc::ClientContext ctx;
        dash::v1::WriteResponse resp;
        if (!stub->Write(&ctx, batches[i], &resp).ok()) ++failures;
        size_t n = 0;
        for (const auto& op : batches[i].ops()) n += op.has_claim();
        progress.Add(n);
      }
    });
  }
  for (auto& w : writers) w.join();
  const double ingest_s = std::chrono::duration<double>(Clock::now() - ingest_start).count();
  if (failures > 0) {
    fprintf(stderr, "retrieval_bench: %d write batches failed\n", failures.load());
    return 1;
  }
  // Queries are timed once the index has settled: every replica's write
  // buffer flushed into segments (with their HNSW graphs) and no merge due.
  const auto settle_start = Clock::now();
  nlohmann::json index_info = nlohmann::json::object();
  nlohmann::json disk_parts = nlohmann::json::object();  // MiB, when the index settled.
  {
    auto admin = dash::v1::NodeAdmin::NewStub(channel);
    for (;;) {
      grpc::ClientContext ctx;
      dash::v1::NodeInfo info;
      bool settled = admin->GetNodeInfo(&ctx, dash::v1::GetNodeInfoRequest(), &info).ok();
      for (const auto& r : info.replicas()) {
        settled = settled && r.lexical().buffer_docs() == 0 && r.lexical().merge_backlog() == 0;
      }
      if (settled || Clock::now() - settle_start > std::chrono::minutes(10)) {
        uint64_t segments = 0, graphs = 0, bytes = 0;
        for (const auto& r : info.replicas()) {
          segments += r.lexical().segments();
          graphs += r.lexical().vector_graphs();
          bytes += r.lexical().segment_bytes();
        }
        index_info = {
            {"segments", segments}, {"vector_graphs", graphs}, {"segment_mib", bytes / 1048576.0}};
        // Where the disk goes, over all replicas: RocksDB's table files by
        // family, its write-ahead log, the index segments.
        std::map<std::string, uint64_t> parts;
        for (const auto& r : info.replicas()) {
          for (const auto& f : r.storage().families()) parts[f.name()] += f.table_bytes();
          parts["(write-ahead log)"] += r.storage().wal_bytes();
          parts["(index segments)"] += r.lexical().segment_bytes();
        }
        disk_parts = nlohmann::json::object();
        for (const auto& [name, b] : parts) {
          if (b > 0) disk_parts[name] = b / 1048576.0;
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  const double settle_s = std::chrono::duration<double>(Clock::now() - settle_start).count();
  // Free the generated corpus so that the RSS reported is the node's (plus a
  // small client), not the benchmark's copy of the data.
  std::vector<dash::v1::WriteRequest>().swap(batches);
  malloc_trim(0);

  // Queries: text drawn like claim text; embeddings near a random topic.
  auto stub = dash::v1::Data::NewStub(channel);
  auto run = [&](const char* name, auto make, std::vector<std::vector<std::string>>* ids) {
    std::vector<double> ms;
    for (int q = 0; q < queries; ++q) {
      dash::v1::QueryRequest req = make(q);
      grpc::ClientContext ctx;
      dash::v1::QueryResponse resp;
      const auto t0 = Clock::now();
      grpc::Status st = stub->Query(&ctx, req, &resp);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!st.ok()) {
        fprintf(stderr, "retrieval_bench: %s query failed: %s\n", name, st.error_message().c_str());
        exit(1);
      }
      if (ids != nullptr) {
        std::vector<std::string> got;
        for (const auto& h : resp.hits()) got.push_back(h.record().claim().claim_id());
        ids->push_back(got);
      }
    }
    return nlohmann::json{{"p50_ms", Percentile(ms, 0.5)},
                          {"p95_ms", Percentile(ms, 0.95)},
                          {"p99_ms", Percentile(ms, 0.99)}};
  };
  std::vector<std::string> texts;
  std::vector<std::vector<float>> vectors;
  for (int q = 0; q < queries; ++q) {
    texts.push_back(corpus.Text(3, 8));
    vectors.push_back(corpus.Vector(static_cast<int>(corpus.rng() % kTopics)));
  }
  auto base = [&](int q, bool text, bool vec) {
    dash::v1::QueryRequest r;
    r.set_tenant("bench");
    r.set_k(10);
    if (text) r.set_text(texts[q]);
    if (vec) {
      for (float x : vectors[q]) r.add_embedding(x);
    }
    return r;
  };
  nlohmann::json latency;
  latency["lexical"] = run(
      "lexical", [&](int q) { return base(q, true, false); }, nullptr);
  std::vector<std::vector<std::string>> ann, exact;
  latency["vector"] = run(
      "vector", [&](int q) { return base(q, false, true); }, &ann);
  latency["hybrid"] = run(
      "hybrid", [&](int q) { return base(q, true, true); }, nullptr);
  // Hybrid with a metadata range filter, BALANCED stance.
  auto filtered = [&](int q) {
    auto r = base(q, true, true);
    auto* f = r.mutable_filter()->add_metadata();
    f->set_key("year");
    f->mutable_range()->mutable_min()->set_int_value(2010);
    r.set_stance_mode(dash::v1::STANCE_MODE_BALANCED);
    return r;
  };
  latency["hybrid_filtered"] = run("hybrid_filtered", filtered, nullptr);
  latency["vector_exact"] = run(
      "vector_exact",
      [&](int q) {
        auto r = base(q, false, true);
        r.set_vector_mode(dash::v1::VECTOR_SEARCH_EXACT);
        return r;
      },
      &exact);
  // Last (the writes change what the legs above measured, recall included):
  // the filtered queries while a writer replaces one claim every 5 ms:
  // each write invalidates its shard's cached filter results, which the next
  // filtered query recomputes.
  {
    std::vector<dash::v1::WriteRequest> rewrites;
    for (int q = 0; q < queries; ++q) {
      dash::v1::WriteRequest w;
      w.set_tenant("bench");
      AddClaim(corpus, &w, static_cast<int>(corpus.rng() % claims));
      rewrites.push_back(std::move(w));
    }
    std::atomic<bool> stop{false};
    std::atomic<int> write_failures{0};
    std::thread writer([&] {
      auto wstub = dash::v1::Data::NewStub(channel);
      for (size_t i = 0; !stop.load(); i = (i + 1) % rewrites.size()) {
        grpc::ClientContext ctx;
        dash::v1::WriteResponse resp;
        if (!wstub->Write(&ctx, rewrites[i], &resp).ok()) ++write_failures;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    latency["hybrid_filtered_under_writes"] =
        run("hybrid_filtered_under_writes", filtered, nullptr);
    stop = true;
    writer.join();
    if (write_failures > 0) {
      fprintf(stderr, "retrieval_bench: %d writes failed during queries\n", write_failures.load());
      return 1;
    }
  }
  double recall = 0;
  for (int q = 0; q < queries; ++q) {
    std::set<std::string> truth(exact[q].begin(), exact[q].end());
    int found = 0;
    for (const auto& id : ann[q]) found += truth.count(id);
    recall += truth.empty() ? 1.0 : static_cast<double>(found) / truth.size();
  }
  recall /= queries;
  const long rss_mib = RssMiB();
  nlohmann::json filter_cache = nlohmann::json::object();
  {
    grpc::ClientContext ctx;
    dash::v1::NodeInfo info;
    if (dash::v1::NodeAdmin::NewStub(channel)
            ->GetNodeInfo(&ctx, dash::v1::GetNodeInfoRequest(), &info)
            .ok()) {
      uint64_t hits = 0, misses = 0, patches = 0;
      for (const auto& r : info.replicas()) {
        hits += r.filter_cache().hits();
        misses += r.filter_cache().misses();
        patches += r.filter_cache().patches();
      }
      filter_cache = {{"hits", hits}, {"misses", misses}, {"patches", patches}};
    }
  }

  // Restart: the node stops and starts again on its data directory; timed
  // from the start to its first answered query.
  server->reset();
  const uint64_t disk_bytes = DirBytes(dir);
  const auto restart_start = Clock::now();
  server = dash::service::NodeServer::Start(options, "127.0.0.1:0", server_options);
  if (!server.ok()) {
    fprintf(stderr, "retrieval_bench: restart: %s\n", server.status().ToString().c_str());
    return 1;
  }
  {
    auto restarted = dash::v1::Data::NewStub(
        dash::bench::BenchChannel(absl::StrCat("127.0.0.1:", (*server)->port()), *security));
    for (;;) {
      grpc::ClientContext ctx;
      dash::v1::QueryResponse resp;
      if (restarted->Query(&ctx, base(0, true, true), &resp).ok()) break;
      if (Clock::now() - restart_start > std::chrono::minutes(5)) {
        fprintf(stderr, "retrieval_bench: no answer 5 minutes after the restart\n");
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double restart_s = std::chrono::duration<double>(Clock::now() - restart_start).count();

  nlohmann::json card = {{"bench", "retrieval"},
                         {"profile", profile},
                         {"secure", secure},
                         {"metrics", metrics},
                         {"claims", claims},
                         {"shards", 4},
                         {"time", absl::FormatTime(absl::Now(), absl::UTCTimeZone())},
                         {"ingest_claims_per_s", claims / ingest_s},
                         {"ingest_s", ingest_s},
                         {"index_settle_s", settle_s},
                         {"index", index_info},
                         {"latency", latency},
                         {"ann_recall_at_10", recall},
                         {"filter_cache", filter_cache},
                         {"rss_mib", rss_mib},
                         {"restart_to_first_answer_s", restart_s},
                         {"disk_mib", disk_bytes / 1048576.0},
                         {"disk_parts_mib", disk_parts},
                         {"payload_mib", payload_bytes / 1048576.0}};
  printf("%s\n", card.dump(2).c_str());
  {
    std::ofstream out(history, std::ios::app);
    out << card.dump() << "\n";
  }
  int exit_code = 0;
  std::ifstream base_in(baseline);
  if (base_in.good()) {
    nlohmann::json old = nlohmann::json::parse(base_in, nullptr, false);
    std::vector<std::string> regressions;
    if (!old.is_discarded()) {
      for (const char* leg : {"lexical", "vector", "hybrid", "hybrid_filtered"}) {
        const double was = old["latency"][leg].value("p99_ms", 0.0);
        const double now = latency[leg]["p99_ms"];
        if (was > 0 && now > was * (1 + tolerance)) {
          regressions.push_back(absl::StrFormat("%s p99 %.2f ms > baseline %.2f ms + %.0f%%", leg,
                                                now, was, tolerance * 100));
        }
      }
      const double was_ingest = old.value("ingest_claims_per_s", 0.0);
      if (was_ingest > 0 && claims / ingest_s < was_ingest * (1 - tolerance)) {
        regressions.push_back(absl::StrFormat("ingest %.0f claims/s < baseline %.0f - %.0f%%",
                                              claims / ingest_s, was_ingest, tolerance * 100));
      }
      const double was_recall = old.value("ann_recall_at_10", 0.0);
      if (recall < was_recall - 0.02) {
        regressions.push_back(
            absl::StrFormat("recall@10 %.3f < baseline %.3f - 0.02", recall, was_recall));
      }
    }
    for (const auto& r : regressions) fprintf(stderr, "REGRESSION: %s\n", r.c_str());
    fprintf(stderr, "regression check against %s (tolerance %.0f%%): %s\n", baseline.c_str(),
            tolerance * 100, regressions.empty() ? "pass" : "FAIL");
    if (!regressions.empty()) exit_code = 1;
  } else {
    fprintf(stderr, "no accepted scorecard at %s; run with --accept to make this one it\n",
            baseline.c_str());
  }
  if (accept) {
    std::filesystem::create_directories(std::filesystem::path(baseline).parent_path());
    std::ofstream(baseline) << card.dump(2) << "\n";
    fprintf(stderr, "accepted as %s\n", baseline.c_str());
  }
  server->reset();
  if (!keep) std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir + "-tls");
  return exit_code;
}
