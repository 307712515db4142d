// dashctl query and eval: ranked retrieval from the command line, and an
// evaluation of it on SciFact.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/progress.h"
#include "dash/v1/data.grpc.pb.h"
#include "dashctl/common.h"
#include "nlohmann/json.hpp"

namespace dash::ctl {
namespace {

const char* StanceName(v1::Stance s) {
  switch (s) {
    case v1::STANCE_SUPPORTS:
      return "SUPPORTS";
    case v1::STANCE_CONTRADICTS:
      return "CONTRADICTS";
    case v1::STANCE_NEUTRAL:
      return "NEUTRAL";
    default:
      return "?";
  }
}

struct QueryOptions {
  std::string tenant = "default";
  std::string text;
  uint32_t k = 10;
  bool evidence = false;
  bool json = false;
  std::string stance = "all";
  bool graph = false;
  std::string request_json;  // A dash.v1.QueryRequest merged under the flags.
  // Which flags were given: only those override the --request JSON; a flag's
  // default applies only where the JSON leaves the field unset.
  bool tenant_given = false;
  bool k_given = false;
  bool stance_given = false;
  bool read_preference_given = false;
};

int RunQuery(const GlobalOptions& g, const QueryOptions& o) {
  auto stub = v1::Data::NewStub(Connect(g));
  v1::QueryRequest req;
  if (!o.request_json.empty()) {
    absl::Status parsed = FromJson(o.request_json, &req);
    if (!parsed.ok()) {
      fprintf(stderr, "dashctl: --request: not a QueryRequest: %s\n",
              std::string(parsed.message()).c_str());
      return kUsage;
    }
  }
  if (o.tenant_given || req.tenant().empty()) req.set_tenant(o.tenant);
  if (o.read_preference_given || req.read_preference() == v1::READ_PREFERENCE_LEADER_ONLY) {
    req.set_read_preference(ReadPreferenceOf(g));
  }
  if (!o.text.empty()) req.set_text(o.text);
  if (o.k_given || req.k() == 0) req.set_k(o.k);
  req.set_include_evidence(o.evidence || req.include_evidence());
  if (o.stance_given || req.stance_mode() == v1::STANCE_MODE_ALL) {
    if (o.stance == "all") req.set_stance_mode(v1::STANCE_MODE_ALL);
    if (o.stance == "balanced") req.set_stance_mode(v1::STANCE_MODE_BALANCED);
    if (o.stance == "support-only") req.set_stance_mode(v1::STANCE_MODE_SUPPORT_ONLY);
  }
  if (o.graph) req.mutable_graph()->set_include(true);
  v1::QueryResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g);
  grpc::Status st = stub->Query(&ctx, req, &resp);
  if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
  if (o.json) {
    printf("%s\n", ToJson(resp, true).c_str());
    return kOk;
  }
  int rank = 0;
  for (const auto& hit : resp.hits()) {
    printf("%2d. %-8.4f %s  %s\n", ++rank, hit.score(), hit.record().claim().claim_id().c_str(),
           hit.record().claim().text().c_str());
    for (const auto& problem : hit.integrity_errors()) printf("      ! %s\n", problem.c_str());
    for (const auto& e : hit.record().evidence()) {
      printf("      [%s] \"%s\" — %s\n", StanceName(e.stance()), e.citation().quote().c_str(),
             e.citation().source_uri().c_str());
    }
  }
  for (const auto& e : resp.graph().edges()) {
    printf("  edge %s -[%s]-> %s\n", e.from_claim().c_str(),
           v1::Relation_Name(e.relation()).c_str(), e.to_claim().c_str());
  }
  fprintf(stderr, "query: %d hits\n", resp.hits_size());
  return kOk;
}

// SciFact in the BEIR style: each training claim is a query, its cited
// abstracts are the relevant documents (binary relevance). The corpus must
// already be ingested (`dashctl convert scifact` | `dashctl ingest`) so that
// claim ids are "scifact-<doc_id>".
struct EvalOptions {
  std::string tenant = "scifact";
  std::string claims;
};

int RunEval(const GlobalOptions& g, const EvalOptions& o) {
  std::ifstream in(o.claims);
  if (!in) {
    fprintf(stderr, "dashctl: cannot open %s\n", o.claims.c_str());
    return kUsage;
  }
  auto stub = v1::Data::NewStub(Connect(g));
  double ndcg_sum = 0, recall_sum = 0;
  int queries = 0;
  std::vector<std::string> texts;  // Timed again at k = 10 afterwards.
  std::string line;
  size_t lines = 0;
  while (std::getline(in, line)) lines += !line.empty();
  in.clear();
  in.seekg(0);
  // Each claim is asked twice: ranked at k = 100, then timed at k = 10.
  Progress progress("eval", 2 * lines, "queries");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    progress.Add(1);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("claim") || !j.contains("cited_doc_ids")) {
      fprintf(stderr, "dashctl: %s: not a SciFact claims line\n", o.claims.c_str());
      return kUsage;
    }
    std::set<std::string> relevant;
    for (const auto& id : j["cited_doc_ids"])
      relevant.insert(absl::StrCat("scifact-", id.get<int64_t>()));
    if (relevant.empty()) continue;
    v1::QueryRequest req;
    req.set_tenant(o.tenant);
    req.set_text(j["claim"].get<std::string>());
    req.set_k(100);
    texts.push_back(req.text());
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    grpc::Status st = stub->Query(&ctx, req, &resp);
    if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
    double dcg = 0, idcg = 0;
    int found = 0;
    for (int i = 0; i < resp.hits_size(); ++i) {
      if (!relevant.count(resp.hits(i).record().claim().claim_id())) continue;
      ++found;
      if (i < 10) dcg += 1.0 / std::log2(i + 2.0);
    }
    for (int i = 0; i < std::min<int>(10, relevant.size()); ++i) idcg += 1.0 / std::log2(i + 2.0);
    ndcg_sum += dcg / idcg;
    recall_sum += static_cast<double>(found) / relevant.size();
    ++queries;
  }
  if (queries == 0) {
    fprintf(stderr, "dashctl: no queries with relevant documents in %s\n", o.claims.c_str());
    return kUsage;
  }
  // Latency of the top-10 answer (what a user waits for), one query at a
  // time, end to end through gRPC.
  std::vector<double> ms;
  for (const std::string& text : texts) {
    v1::QueryRequest req;
    req.set_tenant(o.tenant);
    req.set_text(text);
    req.set_k(10);
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    const absl::Time start = absl::Now();
    grpc::Status st = stub->Query(&ctx, req, &resp);
    if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    progress.Add(1);
  }
  progress.Finish(" done");
  std::sort(ms.begin(), ms.end());
  auto pct = [&ms](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  printf(
      "{\"queries\":%d,\"ndcg_at_10\":%.4f,\"recall_at_100\":%.4f,\"top10_p50_ms\":%.2f,"
      "\"top10_p99_ms\":%.2f}\n",
      queries, ndcg_sum / queries, recall_sum / queries, pct(0.5), pct(0.99));
  return kOk;
}

}  // namespace

void AddQueryCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  auto qo = std::make_shared<QueryOptions>();
  CLI::App* query = app.add_subcommand("query", "Rank a tenant's claims against a text query");
  query->add_option("text", qo->text,
                    "Query text (may be empty with --request giving an embedding)");
  CLI::Option* tenant = query->add_option("--tenant", qo->tenant, "Tenant")->capture_default_str();
  CLI::Option* k = query->add_option("-k", qo->k, "Hits to return")
                       ->check(CLI::Range(1, 1000))
                       ->capture_default_str();
  query->add_flag("--evidence", qo->evidence, "Show each hit's evidence with its citation");
  query->add_flag("--json", qo->json, "Print the QueryResponse as JSON");
  CLI::Option* stance =
      query->add_option("--stance", qo->stance, "Evidence per hit: all, balanced, support-only")
          ->check(CLI::IsMember({"all", "balanced", "support-only"}))
          ->capture_default_str();
  query->add_flag("--graph", qo->graph, "Also print the edges among the hits");
  query->add_option(
      "--request", qo->request_json,
      "A dash.v1.QueryRequest as JSON (filter, embedding, fusion...); flags given override it, "
      "flag defaults fill only what it leaves unset");
  query->callback([&g, &app, qo, run, tenant, k, stance] {
    qo->json = qo->json || g.json;  // The global --json before the subcommand.
    qo->tenant_given = tenant->count() > 0;
    qo->k_given = k->count() > 0;
    qo->stance_given = stance->count() > 0;
    qo->read_preference_given = app.get_option("--read-preference")->count() > 0;
    *run = [&g, qo] { return RunQuery(g, *qo); };
  });

  auto eo = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand(
      "eval", "SciFact retrieval evaluation: nDCG@10 and Recall@100 of claims_train.jsonl");
  eval->add_option("claims", eo->claims, "SciFact claims_train.jsonl")->required();
  eval->add_option("--tenant", eo->tenant, "Tenant holding the ingested corpus")
      ->capture_default_str();
  eval->callback([&g, eo, run] { *run = [&g, eo] { return RunEval(g, *eo); }; });
}

}  // namespace dash::ctl
