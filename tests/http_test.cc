// The HTTP port of every process (common/http_server.h, common/http_api.h)
// against a secure cluster of real processes: the JSON API through the router
// with the same tokens and codes as gRPC, errors with their HTTP status and
// JSON body (routing hints included), hostile requests refused with a clear
// 4xx while the process keeps serving and nothing is written, and /healthz,
// /readyz and /metrics on the control plane, the nodes and the router.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/harness/cluster.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using Json = nlohmann::json;
using testing::ClusterOptions;
using ::testing::HasSubstr;
using testing::LocalCluster;
using testing::TestSecurity;

constexpr size_t kMaxBody = 64 << 10;  // --http_max_body_bytes of every process here.

class HttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TestDir();
    ClusterOptions options;
    options.shard_count = 2;
    options.http = true;
    const std::string limit = absl::StrCat("--http_max_body_bytes=", kMaxBody);
    options.node_args = {limit};
    options.controlplane_args = {limit};
    options.router_args = {limit};
    cluster_ = new LocalCluster(dir_->Sub("cluster"), options);
    ASSERT_TRUE(cluster_->Start().ok());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete dir_;
  }

  // A client of the process's HTTP port, trusting the cluster CA; `token`
  // is sent as "Authorization: Bearer".
  static std::unique_ptr<httplib::Client> Client(const testing::ServerProcess& process,
                                                 const std::string& token = "") {
    const bool tls = TestSecurity::Get().secure();
    auto client = std::make_unique<httplib::Client>(
        absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", process.http_port()));
    if (tls) {
      client->set_ca_cert_path((TestSecurity::Get().dir() + "/ca.pem").c_str());
      client->enable_server_certificate_verification(true);
    }
    if (!token.empty()) client->set_bearer_token_auth(token.c_str());
    client->set_read_timeout(30, 0);
    return client;
  }

  static std::string Token(const std::vector<std::string>& tenants,
                           const std::vector<jwt::Role>& roles) {
    return TestSecurity::Get().secure() ? TestSecurity::Get().Mint(tenants, roles) : "";
  }

  static Json Body(const httplib::Result& r) {
    return r ? Json::parse(r->body, nullptr, false) : Json();
  }

  static testing::TestDir* dir_;
  static LocalCluster* cluster_;
};

testing::TestDir* HttpTest::dir_ = nullptr;
LocalCluster* HttpTest::cluster_ = nullptr;

std::string Claim(const std::string& id, const std::string& text, const std::string& topic) {
  return Json{
      {"claim",
       {{"claimId", id}, {"text", text}, {"metadata", {{"topic", {{"stringValue", topic}}}}}}}}
      .dump();
}

std::string Evidence(const std::string& claim, const std::string& quote) {
  return Json{{"evidence",
               {{"evidenceId", claim + "-e"},
                {"claimId", claim},
                {"stance", "STANCE_SUPPORTS"},
                {"citation", {{"sourceUri", "https://example.org/" + claim}, {"quote", quote}}}}}}
      .dump();
}

std::string WriteBody(const std::vector<std::string>& ops) {
  std::string body = R"({"ops":[)";
  for (size_t i = 0; i < ops.size(); ++i) absl::StrAppend(&body, i ? "," : "", ops[i]);
  return body + "]}";
}

TEST_F(HttpTest, TheJsonApiAnswersThroughTheRouterWithGrpcsAuthAndCodes) {
  const std::string writer = Token({"acme"}, {jwt::Role::kWrite, jwt::Role::kRead});
  auto router = Client(cluster_->router(), writer);
  // One batch per claim: a batch is atomic within one shard.
  const std::vector<std::vector<std::string>> batches = {
      {Claim("h1", "glaciers are retreating in the alps", "ice"),
       Evidence("h1", "alpine glaciers lost a tenth of their volume")},
      {Claim("h2", "sea ice is thinning in the arctic", "ice"),
       Evidence("h2", "arctic sea ice thickness has halved")},
      {Claim("h3", "coral reefs bleach in warm water", "ocean"),
       Evidence("h3", "bleaching follows marine heatwaves")}};
  for (const auto& ops : batches) {
    httplib::Result w = router->Post("/v1/tenants/acme/write", WriteBody(ops), "application/json");
    ASSERT_TRUE(w);
    ASSERT_EQ(w->status, 200) << w->body;
    EXPECT_TRUE(Body(w).contains("token")) << w->body;
  }

  httplib::Result got = router->Get("/v1/tenants/acme/claims/h1");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  const Json record = Body(got)["record"];
  EXPECT_EQ(record["claim"]["text"], "glaciers are retreating in the alps");
  EXPECT_EQ(record["evidence"][0]["citation"]["quote"],
            "alpine glaciers lost a tenth of their volume");
  EXPECT_EQ(record["evidence"][0]["citation"]["quoteSha256"].get<std::string>().size(), 64u);

  // Pages: one claim at a time until there is no next page.
  std::vector<std::string> listed;
  std::string page_token;
  for (int page = 0; page < 10; ++page) {
    httplib::Result l =
        router->Get(absl::StrCat("/v1/tenants/acme/claims?page_size=1&page_token=", page_token));
    ASSERT_TRUE(l);
    ASSERT_EQ(l->status, 200) << l->body;
    const Json list = Body(l);
    for (const Json& r : list["records"]) listed.push_back(r["claim"]["claimId"]);
    if (!list.contains("nextPageToken")) break;
    page_token = list["nextPageToken"];
  }
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre("h1", "h2", "h3"));

  // A query with a metadata filter: only the "ice" claims, best first.
  const std::string query =
      R"({"text":"glaciers ice","k":5,"includeEvidence":true,
          "filter":{"metadata":[{"key":"topic","eq":{"stringValue":"ice"}}]}})";
  httplib::Result q = router->Post("/v1/tenants/acme/query", query, "application/json");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->status, 200) << q->body;
  const Json hits = Body(q)["hits"];
  ASSERT_EQ(hits.size(), 2u) << q->body;
  EXPECT_EQ(hits[0]["record"]["claim"]["claimId"], "h1");
  EXPECT_EQ(hits[1]["record"]["claim"]["claimId"], "h2");
  EXPECT_FALSE(hits[0]["record"]["evidence"].empty());

  httplib::Result missing = router->Get("/v1/tenants/acme/claims/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Body(missing)["error"]["code"], "NOT_FOUND");

  if (!TestSecurity::Get().secure()) GTEST_SKIP() << "the rest checks tokens";
  // The same refusals as gRPC, as 401 and 403 with a JSON body.
  httplib::Result anonymous = Client(cluster_->router())->Get("/v1/tenants/acme/claims/h1");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(Body(anonymous)["error"]["code"], "UNAUTHENTICATED");
  auto reader = Client(cluster_->router(), Token({"acme"}, {jwt::Role::kRead}));
  httplib::Result read_only_write = reader->Post(
      "/v1/tenants/acme/write", WriteBody({Claim("h9", "x", "ice")}), "application/json");
  ASSERT_TRUE(read_only_write);
  EXPECT_EQ(read_only_write->status, 403);
  EXPECT_EQ(Body(read_only_write)["error"]["code"], "PERMISSION_DENIED");
  httplib::Result other_tenant = reader->Get("/v1/tenants/other/claims/h1");
  ASSERT_TRUE(other_tenant);
  EXPECT_EQ(other_tenant->status, 403);
  EXPECT_THAT(other_tenant->body, ::testing::Not(HasSubstr("glaciers")));

  // The routing table: admin on every tenant only.
  httplib::Result denied = reader->Get("/v1/placement");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  auto admin = Client(cluster_->router(), Token({"*"}, {jwt::Role::kAdmin}));
  httplib::Result placement = admin->Get("/v1/placement");
  ASSERT_TRUE(placement);
  ASSERT_EQ(placement->status, 200) << placement->body;
  EXPECT_EQ(Body(placement)["shards"].size(), 2u);
}

// A node asked for an epoch it has not adopted answers 503 with the routing
// hint gRPC carries in its trailers, in the JSON body.
TEST_F(HttpTest, ANodeAnswersAnEpochItHasNotAdoptedWith503AndTheRoutingHint) {
  auto placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok());
  const std::string leader = LocalCluster::LeaderOf(*placement, 0);
  auto node = Client(cluster_->node(leader), Token({"acme"}, {jwt::Role::kRead}));
  httplib::Result r = node->Get("/v1/tenants/acme/claims?shard=0&expected_epoch=999");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  const Json error = Body(r)["error"];
  EXPECT_EQ(error["code"], "UNAVAILABLE");
  ASSERT_TRUE(error.contains("routingHint")) << r->body;
  EXPECT_EQ(error["routingHint"]["leaderNodeId"], leader);
  EXPECT_EQ(error["routingHint"]["currentEpoch"],
            absl::StrCat(placement->shards(0).epoch()));  // uint64 is a JSON string.
}

TEST_F(HttpTest, MalformedRequestsGetA4xxTheProcessServesOnAndNothingIsWritten) {
  const std::string token = Token({"junk"}, {jwt::Role::kWrite, jwt::Role::kRead});
  auto router = Client(cluster_->router(), token);
  struct Case {
    std::string what, body, type;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not JSON", "{\"ops\": [", "application/json", 400, "not a WriteRequest in JSON"},
      {"wrong type", R"({"ops":"many"})", "application/json", 400, "ops"},
      {"unknown field", R"({"ops":[],"extra":1})", "application/json", 400, "extra"},
      {"wrong content type", WriteBody({Claim("j1", "x", "t")}), "text/plain", 415, "JSON"},
      {"another tenant in the body", R"({"tenant":"acme","ops":[]})", "application/json", 400,
       "tenant"},
      {"empty batch", R"({"ops":[]})", "application/json", 400, ""},
      {"too large", std::string(kMaxBody + 1, ' '), "application/json", 413, "larger than"},
  };
  for (const Case& c : cases) {
    httplib::Result r = router->Post("/v1/tenants/junk/write", c.body, c.type);
    ASSERT_TRUE(r) << c.what;
    EXPECT_EQ(r->status, c.status) << c.what << ": " << r->body;
    const Json body = Body(r);
    ASSERT_TRUE(body.contains("error")) << c.what << ": " << r->body;
    EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr(c.message)) << c.what;
  }
  httplib::Result bad_query = router->Get("/v1/tenants/junk/claims?page_size=many");
  ASSERT_TRUE(bad_query);
  EXPECT_EQ(bad_query->status, 400);
  httplib::Result unknown_param = router->Get("/v1/tenants/junk/claims?color=red");
  ASSERT_TRUE(unknown_param);
  EXPECT_EQ(unknown_param->status, 400);
  EXPECT_THAT(unknown_param->body, HasSubstr("color"));
  httplib::Result no_route = router->Get("/v2/anything");
  ASSERT_TRUE(no_route);
  EXPECT_EQ(no_route->status, 404);

  // Slow clients that never finish a request (slowloris): more of them than
  // the port has threads. They are dropped after the read timeout, and the
  // port answers meanwhile or soon after; gRPC is not touched at all.
  std::vector<int> slow;
  for (int i = 0; i < 40; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(cluster_->router().http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const char partial[] = "\x16\x03\x01\x00";  // The start of a TLS record, then nothing.
      (void)!write(fd, partial, 4);
      slow.push_back(fd);
    } else {
      close(fd);
    }
  }
  const absl::Time asked = absl::Now();
  httplib::Result during = router->Get("/v1/tenants/junk/claims");
  ASSERT_TRUE(during);
  EXPECT_EQ(during->status, 200) << during->body;
  EXPECT_LT(absl::Now() - asked, absl::Seconds(20));
  for (int fd : slow) close(fd);

  // Nothing of the refused writes reached the tenant.
  httplib::Result list = router->Get("/v1/tenants/junk/claims");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200);
  EXPECT_FALSE(Body(list).contains("records")) << list->body;
}

TEST_F(HttpTest, EveryProcessServesHealthReadinessAndMetrics) {
  // Some traffic first, so that the call histograms have series: a listing,
  // and the same batch written twice under one idempotency key (the second
  // is answered from its record: a replay).
  auto router = Client(cluster_->router(), Token({"acme"}, {jwt::Role::kRead, jwt::Role::kWrite}));
  ASSERT_TRUE(router->Get("/v1/tenants/acme/claims"));
  std::string batch = WriteBody({Claim("m1", "metrics are scraped", "ops"),
                                 Evidence("m1", "prometheus scrapes every target")});
  batch.insert(1, R"("idempotencyKey":"metrics-1",)");
  for (int i = 0; i < 2; ++i) {
    httplib::Result w = router->Post("/v1/tenants/acme/write", batch, "application/json");
    ASSERT_TRUE(w);
    ASSERT_EQ(w->status, 200) << w->body;
  }
  httplib::Result q = router->Post(
      "/v1/tenants/acme/query",
      R"({"text":"scraped","filter":{"metadata":[{"key":"topic","eq":{"stringValue":"ops"}}]}})",
      "application/json");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->status, 200) << q->body;

  std::vector<testing::ServerProcess*> processes = {&cluster_->controlplane(), &cluster_->router()};
  for (const std::string& id : cluster_->node_ids()) processes.push_back(&cluster_->node(id));
  for (testing::ServerProcess* p : processes) {
    auto client = Client(*p);  // No token: probes and scrapers need none.
    httplib::Result alive = client->Get("/healthz");
    ASSERT_TRUE(alive) << p->dir();
    EXPECT_EQ(alive->status, 200);
    httplib::Result ready = client->Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << p->dir();
    httplib::Result metrics = client->Get("/metrics");
    ASSERT_TRUE(metrics);
    ASSERT_EQ(metrics->status, 200);
    EXPECT_THAT(metrics->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
    EXPECT_THAT(metrics->body, HasSubstr("\nprocess_resident_memory_bytes "));
    EXPECT_THAT(metrics->body, HasSubstr("\nprocess_open_fds "));
  }
  // What each process knows: the router its calls, the control plane and the
  // router the table, the leaders their followers.
  const std::string router_metrics = Client(cluster_->router())->Get("/metrics")->body;
  EXPECT_THAT(
      router_metrics,
      HasSubstr(R"(dash_rpc_duration_seconds_count{code="OK",method="dash.v1.Data/ListClaims"})"));
  EXPECT_THAT(router_metrics, HasSubstr(R"(dash_shard_leader_healthy{shard="1"} 1)"));
  const std::string cp_metrics = Client(cluster_->controlplane())->Get("/metrics")->body;
  EXPECT_THAT(cp_metrics, HasSubstr(R"(dash_shard_leader_healthy{shard="0"} 1)"));
  EXPECT_THAT(cp_metrics, HasSubstr(R"(dash_nodes{health="healthy"} 3)"));
  EXPECT_THAT(cp_metrics, HasSubstr(R"(method="dash.v1.ControlPlane/Heartbeat")"));
  auto placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok());
  const std::string leader_metrics =
      Client(cluster_->node(LocalCluster::LeaderOf(*placement, 0)))->Get("/metrics")->body;
  EXPECT_THAT(leader_metrics, HasSubstr(R"(dash_replica_leader{shard="0"} 1)"));
  EXPECT_THAT(leader_metrics, HasSubstr(R"(dash_replica_in_sync_followers{shard="0"} 2)"));
  EXPECT_THAT(leader_metrics, HasSubstr("dash_replication_lag_records{"));
  // The group commit and the replay, summed over the nodes (the leader of
  // m1's shard counts them).
  double groups = 0, replays = 0;
  std::string all_nodes;
  for (const std::string& id : cluster_->node_ids()) {
    const std::string m = Client(cluster_->node(id))->Get("/metrics")->body;
    all_nodes += m;
    for (absl::string_view line : absl::StrSplit(m, '\n')) {
      double v = 0;
      if (absl::StartsWith(line, "dash_commit_group_batches_count ") &&
          absl::SimpleAtod(line.substr(line.find(' ') + 1), &v)) {
        groups += v;
      }
      if (absl::StartsWith(line, "dash_idempotent_replays_total ") &&
          absl::SimpleAtod(line.substr(line.find(' ') + 1), &v)) {
        replays += v;
      }
    }
  }
  EXPECT_GE(groups, 1);
  EXPECT_EQ(replays, 1);
  // The query's legs on the replicas, and the router's calls to them.
  EXPECT_THAT(all_nodes, HasSubstr(R"(dash_query_leg_seconds_count{leg="filter"})"));
  EXPECT_THAT(all_nodes, HasSubstr(R"(dash_query_leg_seconds_count{leg="lexical"})"));
  EXPECT_THAT(
      Client(cluster_->router())->Get("/metrics")->body,
      HasSubstr(
          R"(dash_router_node_call_seconds_count{code="OK",method="dash.v1.ShardQuery/Legs"})"));
  // No tenant or claim reaches a label.
  for (const std::string& m : {router_metrics, cp_metrics, leader_metrics}) {
    EXPECT_THAT(m, ::testing::Not(HasSubstr("acme")));
    EXPECT_THAT(m, ::testing::Not(HasSubstr("tenant=")));
  }
}

}  // namespace
}  // namespace dash
