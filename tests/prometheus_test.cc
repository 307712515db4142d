// Debian's Prometheus scraping a live secure cluster of real processes (the
// control plane, three nodes, the router) with deploy/prometheus/alerts.yml
// loaded: every target is up over HTTPS, and the key series, asked through
// Prometheus's own HTTP API, hold what the traffic sent here must produce.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dash/v1/data.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/harness/cluster.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using Json = nlohmann::json;
using testing::ClusterOptions;
using testing::LocalCluster;
using testing::TestSecurity;

constexpr char kPrometheus[] = "/usr/bin/prometheus";

// The number of calls `job` answered to `method` with `code`, as PromQL.
std::string Calls(const std::string& job, const std::string& method, const std::string& code) {
  return absl::StrCat(R"(sum(dash_rpc_duration_seconds_count{job=")", job, R"(",method="dash.v1.)",
                      method, R"(",code=")", code, R"("}))");
}

// One job's scrape config: HTTPS trusting the cluster CA (HTTP when the
// cluster runs insecure).
std::string Job(const std::string& name, const std::vector<int>& ports) {
  const bool tls = TestSecurity::Get().secure();
  std::string targets;
  for (int p : ports)
    absl::StrAppend(&targets, targets.empty() ? "" : ", ", "\"127.0.0.1:", p, "\"");
  return absl::StrCat(
      "  - job_name: ", name, "\n    scheme: ", tls ? "https" : "http", "\n",
      tls ? absl::StrCat("    tls_config: {ca_file: \"", TestSecurity::Get().dir(), "/ca.pem\"}\n")
          : "",
      "    static_configs: [{targets: [", targets, "]}]\n");
}

class PrometheusTest : public ::testing::Test {
 protected:
  // The value of an instant query's single sample; NaN when it has none.
  double Query(const std::string& promql) {
    httplib::Client api(absl::StrCat("http://127.0.0.1:", prometheus_port_));
    httplib::Result r =
        api.Get("/api/v1/query", httplib::Params{{"query", promql}}, httplib::Headers{});
    if (!r || r->status != 200) return std::nan("");
    const Json answer = Json::parse(r->body, nullptr, false);
    if (!answer.is_object() || answer["status"] != "success") return std::nan("");
    const Json& result = answer["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nan("");
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  // Polls until `promql` equals `want` (scrapes and rule evaluations run
  // every second).
  void ExpectEventually(const std::string& promql, double want) {
    double got = std::nan("");
    const absl::Status st = testing::PollUntil([&] { return (got = Query(promql)) == want; },
                                               absl::Seconds(60), promql, absl::Milliseconds(250));
    EXPECT_TRUE(st.ok()) << promql << ": " << got << ", expected " << want;
  }

  int prometheus_port_ = 0;
};

TEST_F(PrometheusTest, ScrapesEveryProcessAndSeesWhatTheClusterDid) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << kPrometheus << " is missing: scripts/bootstrap.sh installs Debian's prometheus";
  testing::TestDir dir;
  ClusterOptions options;
  options.shard_count = 2;
  options.http = true;
  LocalCluster cluster(dir.Sub("cluster"), options);
  ASSERT_TRUE(cluster.Start().ok());

  std::vector<int> node_ports;
  for (const std::string& id : cluster.node_ids())
    node_ports.push_back(cluster.node(id).http_port());
  const std::string config_path = dir.Sub("prometheus.yml");
  {
    std::ofstream config(config_path);
    config
        << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        // Absolute: Prometheus reads rule files relative to its config's directory,
        // and a path that matches nothing is no error (rule_files are globs).
        << "rule_files: [\""
        << std::filesystem::absolute(testing::SourcePath("deploy/prometheus/alerts.yml")).string()
        << "\"]\n"
        << "scrape_configs:\n"
        << Job("dash-controlplane", {cluster.controlplane().http_port()})
        << Job("dash-router", {cluster.router().http_port()}) << Job("dash-node", node_ports);
  }
  // The port was free when picked; another test's process may take it first,
  // and Prometheus then exits: a new port, up to three times.
  std::unique_ptr<testing::Process> prometheus;
  for (int attempt = 0; attempt < 3 && prometheus == nullptr; ++attempt) {
    prometheus_port_ = testing::UnusedPort();
    absl::StatusOr<std::unique_ptr<testing::Process>> started = testing::Process::Start(
        kPrometheus,
        {"--config.file=" + config_path, "--storage.tsdb.path=" + dir.Sub("tsdb"),
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        dir.Sub("prometheus.log"));
    ASSERT_TRUE(started.ok()) << started.status();
    const absl::Status ready = testing::PollUntil(
        [&] {
          httplib::Client api(absl::StrCat("http://127.0.0.1:", prometheus_port_));
          httplib::Result r = api.Get("/-/ready");
          return (r && r->status == 200) || !(*started)->Running();
        },
        absl::Seconds(30), "Prometheus to be ready", absl::Milliseconds(100));
    if (ready.ok() && (*started)->Running()) prometheus = *std::move(started);
  }
  ASSERT_NE(prometheus, nullptr) << "Prometheus did not start; see " << dir.Sub("prometheus.log");

  // Every target up (scraped at least once, so that the traffic below shows
  // as a rate), and the series Prometheus stored say what happened.
  ExpectEventually("count(up == 1)", 5);
  ExpectEventually("count(up)", 5);

  // Traffic through the router: 6 writes (one claim each) and 4 queries, one
  // of them refused for its input.
  auto router = v1::Data::NewStub(testing::MemberChannel(cluster.router().address()));
  for (int i = 0; i < 6; ++i) {
    v1::WriteRequest w;
    w.set_tenant("prom");
    v1::Claim* c = w.add_ops()->mutable_claim();
    c->set_claim_id(absl::StrCat("p", i));
    c->set_text(absl::StrCat("claim number ", i, " about rivers"));
    v1::Evidence* e = w.add_ops()->mutable_evidence();
    e->set_evidence_id(absl::StrCat("p", i, "-e"));
    e->set_claim_id(c->claim_id());
    e->set_stance(v1::STANCE_SUPPORTS);
    e->mutable_citation()->set_source_uri("https://example.org/rivers");
    e->mutable_citation()->set_quote("rivers flow");
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    ASSERT_TRUE(router->Write(&ctx, w, &resp).ok());
  }
  for (int i = 0; i < 4; ++i) {
    v1::QueryRequest q;
    q.set_tenant("prom");
    q.set_text("rivers");
    q.set_k(i == 3 ? 100000 : 3);  // Over the limit: INVALID_ARGUMENT.
    grpc::ClientContext ctx;
    v1::QueryResponse resp;
    EXPECT_EQ(router->Query(&ctx, q, &resp).ok(), i != 3);
  }

  ExpectEventually(Calls("dash-router", "Data/Write", "OK"), 6);
  ExpectEventually(Calls("dash-router", "Data/Query", "OK"), 3);
  ExpectEventually(Calls("dash-router", "Data/Query", "INVALID_ARGUMENT"), 1);
  // The nodes' writes: each leader forwarded them, none was refused.
  ExpectEventually(Calls("dash-node", "Data/Write", "OK"), 6);
  ExpectEventually(R"(sum(dash_shard_leader_healthy{job="dash-controlplane"}))", 2);
  ExpectEventually(R"(sum(dash_shard_leader_healthy{job="dash-router"}))", 2);
  ExpectEventually(R"(count(dash_replica_last_lsn{job="dash-node"}))", 6);  // 2 shards x 3.
  ExpectEventually(R"(sum(dash_replica_leader{job="dash-node"}))", 2);
  ExpectEventually(R"(sum(dash_replica_in_sync_followers{job="dash-node"}))", 4);
  ExpectEventually(R"(sum(dash_nodes{job="dash-controlplane",health="healthy"}))", 3);
  // Every replica holds the same log end per shard: min equals max.
  ExpectEventually(
      R"(count(max by (shard) (dash_replica_commit_lsn{job="dash-node"}) == min by (shard) (dash_replica_commit_lsn{job="dash-node"})))",
      2);
  // The alert rules are loaded, and on a healthy cluster none fires.
  ExpectEventually("dash:data_call_errors:ratio_rate5m", 0);
  EXPECT_TRUE(std::isnan(Query(R"(count(ALERTS{alertstate="firing"}))")));

  prometheus->Signal(SIGTERM);
  prometheus->Wait();
}

}  // namespace
}  // namespace dash
