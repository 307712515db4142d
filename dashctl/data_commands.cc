// dashctl data commands: ingest, get, list, info.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/progress.h"
#include "common/proto_bytes.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "dashctl/common.h"
#include "query/batch_validator.h"

namespace dash::ctl {
namespace {

struct IngestOptions {
  std::string file = "-";
  std::string tenant = "default";
  int batch_claims = 50;
  int concurrency = 4;
  int max_retries = 8;
  std::string vector_metric;  // cosine, dot, l2 or empty
  // Check every line (JSON and the stateless batch rules) before the first
  // write, so that a broken line commits nothing. Off: stream.
  bool validate_first = true;
};

// One input line's claim with its evidence and edges, as ops of `tenant`.
v1::WriteRequest LineBatch(v1::ClaimRecord rec, const std::string& default_tenant) {
  v1::WriteRequest req;
  const std::string tenant = rec.claim().tenant().empty() ? default_tenant : rec.claim().tenant();
  const std::string id = rec.claim().claim_id();
  req.set_tenant(tenant);
  *req.add_ops()->mutable_claim() = std::move(*rec.mutable_claim());
  for (auto& e : *rec.mutable_evidence()) {
    if (e.claim_id().empty()) e.set_claim_id(id);
    *req.add_ops()->mutable_evidence() = std::move(e);
  }
  for (auto& e : *rec.mutable_edges()) {
    if (e.from_claim().empty()) e.set_from_claim(id);
    *req.add_ops()->mutable_edge() = std::move(e);
  }
  return req;
}

// One write batch and, per op, the input line it came from.
struct Batch {
  v1::WriteRequest request;
  std::vector<int> op_lines;
  int claims = 0;
};

bool Retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         c == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// Maps "ops[N]..." in a server message to the input line of op N.
std::string WithLine(const std::string& message, const Batch& b) {
  int op = -1;
  if (sscanf(message.c_str(), "ops[%d]", &op) == 1 && op >= 0 &&
      op < static_cast<int>(b.op_lines.size())) {
    return absl::StrCat("line ", b.op_lines[op], ": ", message);
  }
  return message;
}

class Ingester {
 public:
  Ingester(const GlobalOptions& g, const IngestOptions& o) : g_(g), o_(o) {}

  int Run() {
    auto channel = Connect(g_);
    v1::NodeInfo info;
    {
      auto admin = v1::NodeAdmin::NewStub(channel);
      grpc::ClientContext ctx;
      SetDeadline(&ctx, g_);
      grpc::Status st = admin->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info);
      if (!st.ok()) return Fail(FromGrpcStatus(st));
    }
    shard_count_ = info.shard_count();
    stub_ = v1::Data::NewStub(channel);

    std::ifstream file;
    std::istream* in = &std::cin;
    std::stringstream buffered;  // Standard input, read once for both passes.
    if (o_.file != "-") {
      file.open(o_.file);
      if (!file) {
        fprintf(stderr, "dashctl: cannot open %s\n", o_.file.c_str());
        return kUsage;
      }
      in = &file;
    }
    // One claim record per line: the validation pass counts them, and a file
    // not validated first is counted here; a pipe's total is unknown.
    size_t total = 0;
    if (o_.validate_first) {
      if (in == &std::cin) {
        buffered << std::cin.rdbuf();
        in = &buffered;
      }
      if (int code = ValidateAll(*in, &total); code != kOk) return code;
      in->clear();
      in->seekg(0);
    } else if (in != &std::cin) {
      std::string line;
      while (std::getline(*in, line)) total += !absl::StripAsciiWhitespace(line).empty();
      in->clear();
      in->seekg(0);
    }
    start_ = std::chrono::steady_clock::now();
    progress_ = std::make_unique<Progress>("ingest", total, "claims");
    std::vector<std::thread> workers;
    for (int i = 0; i < std::max(1, o_.concurrency); ++i) workers.emplace_back([this] { Work(); });

    int exit_code = ReadAll(*in);
    {
      std::lock_guard<std::mutex> l(mu_);
      done_reading_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers) w.join();
    std::lock_guard<std::mutex> l(mu_);
    const char* state = exit_code == kOk && failure_code_ == kOk ? " done" : " stopped";
    progress_->Finish(state);
    PrintSummary(state);
    return exit_code != kOk ? exit_code : failure_code_;
  }

 private:
  // The first pass: every line parses and passes the stateless batch rules
  // (what a node checks before it looks at stored state). Nothing is sent.
  // `*records` receives the number of claim records (non-blank lines).
  int ValidateAll(std::istream& in, size_t* records) {
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      ++*records;
      v1::ClaimRecord rec;
      absl::Status st = FromJson(line, &rec);
      if (!st.ok()) {
        fprintf(stderr, "dashctl: line %d: not a ClaimRecord JSON object: %s; nothing written\n",
                line_no, std::string(st.message()).c_str());
        return kUsage;
      }
      st = query::ValidateBatch(LineBatch(std::move(rec), o_.tenant));
      if (!st.ok()) {
        fprintf(stderr, "dashctl: line %d: %s; nothing written\n", line_no,
                std::string(st.message()).c_str());
        return kUsage;
      }
    }
    return kOk;
  }

  int ReadAll(std::istream& in) {
    std::map<std::pair<std::string, uint32_t>, Batch> open;  // (tenant, shard) -> batch
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (Failed()) return kOk;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      v1::ClaimRecord rec;
      absl::Status st = FromJson(line, &rec);
      if (!st.ok()) {
        fprintf(stderr, "dashctl: line %d: not a ClaimRecord JSON object: %s\n", line_no,
                std::string(st.message()).c_str());
        SetFailure(kUsage);
        return kUsage;
      }
      v1::WriteRequest one = LineBatch(std::move(rec), o_.tenant);
      const std::string tenant = one.tenant();
      const uint32_t shard = ShardOf(tenant, one.ops(0).claim().claim_id(), shard_count_);
      Batch& b = open[{tenant, shard}];
      b.request.set_tenant(tenant);
      for (auto& op : *one.mutable_ops()) {
        *b.request.add_ops() = std::move(op);
        b.op_lines.push_back(line_no);
      }
      if (++b.claims >= o_.batch_claims || b.request.ops_size() >= 900) {
        Enqueue(std::move(b));
        open.erase({tenant, shard});
      }
    }
    for (auto& [key, b] : open) Enqueue(std::move(b));
    return kOk;
  }

  void Enqueue(Batch b) {
    v1::WriteRequest& r = b.request;
    if (o_.vector_metric == "cosine") r.set_vector_metric(v1::VECTOR_METRIC_COSINE);
    if (o_.vector_metric == "dot") r.set_vector_metric(v1::VECTOR_METRIC_DOT);
    if (o_.vector_metric == "l2") r.set_vector_metric(v1::VECTOR_METRIC_L2);
    r.set_idempotency_key("ingest-" + Sha256Hex(DeterministicSerialize(r)).substr(0, 32));
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] {
      return queue_.size() < static_cast<size_t>(2 * o_.concurrency) || failure_code_;
    });
    queue_.push_back(std::move(b));
    cv_.notify_all();
  }

  void Work() {
    for (;;) {
      Batch b;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !queue_.empty() || done_reading_ || failure_code_; });
        if (failure_code_ || queue_.empty()) return;
        b = std::move(queue_.front());
        queue_.pop_front();
        cv_.notify_all();
      }
      Send(b);
    }
  }

  void Send(const Batch& b) {
    v1::WriteResponse resp;
    grpc::Status st;
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, g_);
      st = stub_->Write(&ctx, b.request, &resp);
      if (st.ok() || !Retryable(st.error_code()) || attempt >= o_.max_retries) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 100 << attempt)));
    }
    if (!st.ok()) {
      absl::Status s = FromGrpcStatus(st);
      fprintf(stderr, "dashctl: ingest failed: %s: %s\n",
              absl::StatusCodeToString(s.code()).c_str(), WithLine(st.error_message(), b).c_str());
      SetFailure(s.code() == absl::StatusCode::kUnavailable ? kUnreachable : kServerError);
      return;
    }
    claims_ += b.claims;
    progress_->Add(b.claims);
    evidence_ += b.request.ops_size() - b.claims;
    batches_ += 1;
    if (resp.replayed()) replayed_ += 1;
    v1::WriteResponse out = resp;
    std::lock_guard<std::mutex> l(out_mu_);
    printf("%s\n", ToJson(out, false).c_str());
  }

  // What was written: claims, evidence and edges, batches, replays, rate.
  void PrintSummary(const char* state) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    fprintf(stderr,
            "ingest%s: %ld claims, %ld evidence/edges in %ld batches (%ld already committed), "
            "%.1fs, %.0f claims/s\n",
            state, claims_.load(), evidence_.load(), batches_.load(), replayed_.load(), secs,
            secs > 0 ? claims_.load() / secs : 0.0);
  }

  bool Failed() {
    std::lock_guard<std::mutex> l(mu_);
    return failure_code_ != 0;
  }
  void SetFailure(int code) {
    std::lock_guard<std::mutex> l(mu_);
    if (failure_code_ == 0) failure_code_ = code;
    cv_.notify_all();
  }

  const GlobalOptions g_;
  const IngestOptions o_;
  uint32_t shard_count_ = 1;
  std::unique_ptr<v1::Data::Stub> stub_;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<Progress> progress_;
  std::atomic<long> claims_{0}, evidence_{0}, batches_{0}, replayed_{0};

  std::mutex mu_;  // Guards the fields below.
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool done_reading_ = false;
  int failure_code_ = 0;

  std::mutex out_mu_;  // Serializes stdout.
};

}  // namespace

void AddDataCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  auto ingest_opts = std::make_shared<IngestOptions>();
  CLI::App* ingest = app.add_subcommand(
      "ingest", "Load claims from JSON Lines (one ClaimRecord per line); prints commit tokens");
  ingest->add_option("file", ingest_opts->file, "Input file, or - for stdin")
      ->capture_default_str();
  ingest->add_option("--tenant", ingest_opts->tenant, "Tenant for records that name none")
      ->capture_default_str();
  ingest->add_option("--batch-claims", ingest_opts->batch_claims, "Claims per write batch")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  ingest
      ->add_option("--vector-metric", ingest_opts->vector_metric,
                   "Embedding metric of a new tenant: cosine (default), dot or l2")
      ->check(CLI::IsMember({"cosine", "dot", "l2"}));
  ingest->add_flag("!--no-validate-first", ingest_opts->validate_first,
                   "Stream without checking every line first (by default a broken line anywhere "
                   "writes nothing; standard input is then held in memory)");
  ingest->add_option("--concurrency", ingest_opts->concurrency, "Batches in flight")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  ingest->callback([&g, ingest_opts, run] {
    *run = [&g, ingest_opts] { return Ingester(g, *ingest_opts).Run(); };
  });

  auto tenant = std::make_shared<std::string>("default");
  auto claim_id = std::make_shared<std::string>();
  CLI::App* get = app.add_subcommand("get", "Print one claim with its evidence and edges as JSON");
  get->add_option("claim_id", *claim_id, "Claim id")->required();
  get->add_option("--tenant", *tenant, "Tenant")->capture_default_str();
  get->callback([&g, tenant, claim_id, run] {
    *run = [&g, tenant, claim_id] {
      auto stub = v1::Data::NewStub(Connect(g));
      v1::GetClaimRequest req;
      req.set_tenant(*tenant);
      req.set_claim_id(*claim_id);
      req.set_read_preference(ReadPreferenceOf(g));
      v1::GetClaimResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, g);
      grpc::Status st = stub->GetClaim(&ctx, req, &resp);
      if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
      printf("%s\n", ToJson(resp, true).c_str());
      return static_cast<int>(kOk);
    };
  });

  struct ListOpts {
    std::string tenant = "default";
    uint32_t page_size = 100;
    uint64_t limit = 0;
    bool evidence = false;
  };
  auto lo = std::make_shared<ListOpts>();
  CLI::App* list = app.add_subcommand("list", "Print a tenant's claims as JSON Lines, in id order");
  list->add_option("--tenant", lo->tenant, "Tenant")->capture_default_str();
  list->add_option("--page-size", lo->page_size, "Claims per request")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  list->add_option("--limit", lo->limit, "Stop after this many claims (0: all)")
      ->capture_default_str();
  list->add_flag("--evidence", lo->evidence, "Include evidence and edges");
  list->callback([&g, lo, run] {
    *run = [&g, lo] {
      auto stub = v1::Data::NewStub(Connect(g));
      v1::ListClaimsRequest req;
      req.set_tenant(lo->tenant);
      req.set_include_evidence(lo->evidence);
      req.set_read_preference(ReadPreferenceOf(g));
      uint64_t printed = 0;
      for (;;) {
        uint64_t want = lo->page_size;
        if (lo->limit > 0) want = std::min<uint64_t>(want, lo->limit - printed);
        req.set_page_size(static_cast<uint32_t>(want));
        v1::ListClaimsResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, g);
        grpc::Status st = stub->ListClaims(&ctx, req, &resp);
        if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
        for (const auto& r : resp.records()) printf("%s\n", ToJson(r, false).c_str());
        printed += resp.records_size();
        if (resp.next_page_token().empty() || (lo->limit > 0 && printed >= lo->limit)) break;
        req.set_page_token(resp.next_page_token());
      }
      fprintf(stderr, "list: %lu claims\n", static_cast<unsigned long>(printed));
      return static_cast<int>(kOk);
    };
  });

  CLI::App* info = app.add_subcommand("info", "Print the node's shards and their log positions");
  info->callback([&g, run] {
    *run = [&g] {
      auto stub = v1::NodeAdmin::NewStub(Connect(g));
      v1::NodeInfo resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, g);
      grpc::Status st = stub->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &resp);
      if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
      printf("%s\n", ToJson(resp, true).c_str());
      return static_cast<int>(kOk);
    };
  });
}

}  // namespace dash::ctl
