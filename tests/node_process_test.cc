// A real dash-node process, spoken to over gRPC and through dashctl.
#include <fstream>
#include <future>
#include <iostream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace query::testing;  // NOLINT: test builders

class NodeProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<testing::NodeProcess>(dir_.Sub("node"),
                                                   std::vector<std::string>{"--shard_count=4"});
    ASSERT_TRUE(node_->Start().ok());
    stub_ = v1::Data::NewStub(node_->channel());
  }

  absl::StatusOr<v1::WriteResponse> Write(const v1::WriteRequest& req) {
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    grpc::Status st = stub_->Write(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, &ctx);
    return resp;
  }

  testing::TestDir dir_;
  std::unique_ptr<testing::NodeProcess> node_;
  std::unique_ptr<v1::Data::Stub> stub_;
};

TEST_F(NodeProcessTest, WriteAndReadBackOverGrpc) {
  auto w = Write(ClaimBatch("acme", "c1", 2));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->token().lsn(), 1u);
  EXPECT_TRUE(w->has_commit_time());

  grpc::ClientContext ctx;
  v1::GetClaimRequest get;
  get.set_tenant("acme");
  get.set_claim_id("c1");
  v1::GetClaimResponse resp;
  ASSERT_TRUE(stub_->GetClaim(&ctx, get, &resp).ok());
  EXPECT_EQ(resp.record().evidence_size(), 2);
  EXPECT_EQ(resp.read_at().shard(), w->token().shard());
  EXPECT_EQ(resp.read_at().lsn(), 1u);
}

TEST_F(NodeProcessTest, BadBatchIsInvalidArgumentWithFieldPathAndChangesNothing) {
  v1::WriteRequest req = ClaimBatch("acme", "c1", 2);
  req.mutable_ops(2)->mutable_evidence()->mutable_citation()->set_quote("");
  auto w = Write(req);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(w.status().message()), StartsWith("ops[2].evidence.citation.quote:"));

  grpc::ClientContext ctx;
  v1::NodeInfo info;
  ASSERT_TRUE(v1::NodeAdmin::NewStub(node_->channel())
                  ->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info)
                  .ok());
  for (const auto& r : info.replicas()) EXPECT_EQ(r.last_lsn(), 0u) << "shard " << r.shard();
}

TEST_F(NodeProcessTest, StaleEpochHintTravelsAsTrailingMetadata) {
  v1::WriteRequest req = ClaimBatch("acme", "c1");
  req.set_expected_epoch(9);
  auto w = Write(req);
  ASSERT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  auto hint = GetRoutingHint(w.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 1u);
}

TEST_F(NodeProcessTest, ListPagesAcrossShardsInIdOrderWithoutGapsOrRepeats) {
  std::set<std::string> written;
  for (int i = 0; i < 25; ++i) {
    const std::string id = absl::StrCat("claim-", i);
    ASSERT_TRUE(Write(ClaimBatch("acme", id)).ok());
    written.insert(id);
  }
  ASSERT_TRUE(Write(ClaimBatch("other", "claim-x")).ok());
  std::vector<std::string> seen;
  v1::ListClaimsRequest req;
  req.set_tenant("acme");
  req.set_page_size(7);
  for (int pages = 0; pages < 10; ++pages) {
    grpc::ClientContext ctx;
    v1::ListClaimsResponse resp;
    ASSERT_TRUE(stub_->ListClaims(&ctx, req, &resp).ok());
    EXPECT_LE(resp.records_size(), 7);
    EXPECT_EQ(resp.read_at_size(), 4);
    for (const auto& r : resp.records()) seen.push_back(r.claim().claim_id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), written);
  EXPECT_EQ(seen.size(), written.size());

  grpc::ClientContext ctx;
  v1::ListClaimsResponse resp;
  req.set_page_token("not a token!");
  EXPECT_EQ(stub_->ListClaims(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(NodeProcessTest, DashctlIngestGetListAndExitCodes) {
  const std::string ctl = testing::BinaryPath("dashctl/dashctl");
  const std::string addr = "--addr=" + node_->address();
  const std::string input =
      R"({"claim":{"claim_id":"k1","text":"The sea is rising"},"evidence":[{"evidence_id":"e1","stance":"STANCE_SUPPORTS","citation":{"source_uri":"https://example.org/a","quote":"Sea level rose 20 cm."}}]})"
      "\n"
      R"({"claim":{"claim_id":"k2","text":"Ice is melting"},"evidence":[{"evidence_id":"e1","stance":"STANCE_CONTRADICTS","citation":{"source_uri":"https://example.org/b","quote":"Ice grew."}}],"edges":[{"to_claim":"k1","relation":"RELATION_SUPPORTS","weight":0.5}]})"
      "\n";
  auto ingest =
      testing::RunCommand(ctl, {addr, "ingest", "-", "--tenant=t1"}, input, dir_.Sub("ingest.err"));
  ASSERT_EQ(ingest.exit_code, 0) << ingest.out;
  // One commit token per batch, one batch per shard touched.
  std::vector<std::string> lines = absl::StrSplit(ingest.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("\"token\""));
  EXPECT_THAT(lines[0], HasSubstr("\"lsn\""));

  auto again = testing::RunCommand(ctl, {addr, "ingest", "-", "--tenant=t1"}, input);
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_THAT(again.out, HasSubstr("\"replayed\":true"));
  EXPECT_THAT(again.out, ::testing::Not(HasSubstr("\"replayed\":false")));

  auto get = testing::RunCommand(ctl, {addr, "get", "--tenant=t1", "k2"});
  ASSERT_EQ(get.exit_code, 0);
  EXPECT_THAT(get.out, HasSubstr("Ice grew."));
  EXPECT_THAT(get.out, HasSubstr("\"to_claim\": \"k1\""));

  auto list = testing::RunCommand(ctl, {addr, "list", "--tenant=t1"});
  ASSERT_EQ(list.exit_code, 0);
  std::vector<std::string> listed = absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(listed.size(), 2u);

  EXPECT_EQ(testing::RunCommand(ctl, {addr, "get", "--tenant=t1", "missing"}).exit_code, 1);
  auto bad = testing::RunCommand(ctl, {addr, "ingest", "-"},
                                 R"({"claim":{"claim_id":"lonely","text":"no evidence"}})"
                                 "\n",
                                 dir_.Sub("bad.err"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(testing::RunCommand(ctl, {addr, "ingest", "-"}, "{not json\n").exit_code, 2);
  EXPECT_EQ(testing::RunCommand(ctl, {"--addr=127.0.0.1:1", "--timeout=2", "info"}).exit_code, 3);
}

TEST_F(NodeProcessTest, QueryRanksOverGrpcAndThroughDashctl) {
  v1::WriteRequest a = ClaimBatch("acme", "ice", 1);
  a.mutable_ops(0)->mutable_claim()->set_text("Arctic sea ice is shrinking");
  v1::WriteRequest b = ClaimBatch("acme", "coral", 1);
  b.mutable_ops(0)->mutable_claim()->set_text("Coral reefs are bleaching");
  ASSERT_TRUE(Write(a).ok());
  ASSERT_TRUE(Write(b).ok());

  grpc::ClientContext ctx;
  v1::QueryRequest q;
  q.set_tenant("acme");
  q.set_text("shrinking sea ice");
  q.set_include_evidence(true);
  v1::QueryResponse resp;
  ASSERT_TRUE(stub_->Query(&ctx, q, &resp).ok());
  ASSERT_EQ(resp.hits_size(), 1);
  EXPECT_EQ(resp.hits(0).record().claim().claim_id(), "ice");
  EXPECT_EQ(resp.hits(0).lexical().rank(), 1u);
  EXPECT_GT(resp.hits(0).score(), 0);
  EXPECT_EQ(resp.hits(0).record().evidence_size(), 1);
  EXPECT_EQ(resp.read_at_size(), 4);

  grpc::ClientContext bad_ctx;
  q.set_k(100000);
  EXPECT_EQ(stub_->Query(&bad_ctx, q, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::string ctl = testing::BinaryPath("dashctl/dashctl");
  auto out = testing::RunCommand(
      ctl, {"--addr=" + node_->address(), "query", "--tenant=acme", "--evidence", "coral reefs"});
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.out, HasSubstr("coral"));
  EXPECT_THAT(out.out, HasSubstr("[SUPPORTS]"));
  EXPECT_THAT(out.out, ::testing::Not(HasSubstr("Arctic")));
}

// dashctl query --request: the JSON's k and tenant hold unless a flag is
// given (the flags' defaults used to override them: 10 hits, tenant default).
TEST_F(NodeProcessTest, DashctlQueryRequestJsonKeepsItsFieldsUnlessAFlagIsGiven) {
  for (int i = 0; i < 15; ++i) {
    v1::WriteRequest w = ClaimBatch("acme", absl::StrCat("reef-", i), 1);
    w.mutable_ops(0)->mutable_claim()->set_text("coral reefs bleach");
    ASSERT_TRUE(Write(w).ok());
  }
  const std::string ctl = testing::BinaryPath("dashctl/dashctl");
  auto hits = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--addr=" + node_->address(), "query"});
    auto out = testing::RunCommand(ctl, args);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    int n = 0;
    for (size_t at = out.out.find("reef-"); at != std::string::npos;
         at = out.out.find("reef-", at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(hits({"--request={\"tenant\":\"acme\",\"k\":12}", "coral"}), 12);
  EXPECT_EQ(hits({"--request={\"tenant\":\"acme\",\"k\":12}", "-k", "3", "coral"}), 3)
      << "a flag given overrides the JSON";
  EXPECT_EQ(hits({"--request={\"tenant\":\"acme\"}", "coral"}), 10) << "the flag's default fills";
  EXPECT_EQ(hits({"--request={\"tenant\":\"acme\"}", "--tenant=other", "coral"}), 0);
}

// A file broken near its end used to commit a timing-dependent part of
// itself (200 of 421 claims, 300 on a rerun) before exiting 2. Every line is
// now checked first: nothing is written, and the error names the line.
TEST_F(NodeProcessTest, DashctlIngestOfABrokenFileWritesNothingAndNamesTheLine) {
  const std::string ctl = testing::BinaryPath("dashctl/dashctl");
  const std::string addr = "--addr=" + node_->address();
  auto line = [](int i, const std::string& quote) {
    return absl::StrCat(
        R"({"claim":{"claim_id":"b)", i,
        R"(","text":"claim"},"evidence":[{"evidence_id":"e","stance":"STANCE_SUPPORTS","citation":{"source_uri":"https://example.org/x","quote":")",
        quote, R"("}}]})", "\n");
  };
  std::string input;
  for (int i = 1; i <= 421; ++i) input += line(i, i == 401 ? "" : "a quote");
  const std::string path = dir_.Sub("broken.jsonl");
  {
    std::ofstream out(path);
    out << input;
  }
  for (const std::string& source : {path, std::string("-")}) {
    auto run = testing::RunCommand(ctl, {addr, "ingest", source, "--tenant=b"},
                                   source == "-" ? input : "", dir_.Sub("broken.err"));
    EXPECT_EQ(run.exit_code, 2) << source;
    std::ifstream err(dir_.Sub("broken.err"));
    std::stringstream text;
    text << err.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr("line 401: ops[1].evidence.citation.quote"))
        << source << ": " << text.str();
    auto list = testing::RunCommand(ctl, {addr, "list", "--tenant=b"});
    EXPECT_EQ(list.exit_code, 0);
    EXPECT_EQ(list.out, "") << source << ": nothing was written";
  }
  // Streaming, as asked: the lines before the broken one may be written.
  auto streamed = testing::RunCommand(
      ctl, {addr, "ingest", path, "--tenant=b", "--no-validate-first", "--batch-claims=10"});
  EXPECT_NE(streamed.exit_code, 0);
}

// A graceful stop waits for calls in flight, not for idle clients: with any
// client connected (here the test's own channel) SIGTERM used to take the
// whole 5 s shutdown deadline.
TEST_F(NodeProcessTest, AGracefulStopDoesNotWaitForIdleClients) {
  ASSERT_TRUE(Write(ClaimBatch("acme", "c1")).ok());  // The test's channel is connected.
  auto other = v1::Data::NewStub(node_->channel());
  grpc::ClientContext ctx;
  v1::GetClaimRequest get;
  get.set_tenant("acme");
  get.set_claim_id("c1");
  v1::GetClaimResponse resp;
  ASSERT_TRUE(other->GetClaim(&ctx, get, &resp).ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(node_->Stop().ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(3)) << "it waited for idle connections";
  ASSERT_TRUE(node_->Start().ok());
}

// A request the server cannot parse (invalid UTF-8 in a string field) is
// INVALID_ARGUMENT with a message (it was INTERNAL or UNIMPLEMENTED with
// none), and costs no log line each: protobuf's complaints are rate-limited.
TEST_F(NodeProcessTest, UnparseableRequestsAreRefusedWithoutALogLineEach) {
  int refused = 0;
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    v1::GetClaimRequest get;
    get.set_tenant("acme");
    get.set_claim_id("bad\xff\xfe");
    v1::GetClaimResponse resp;
    grpc::Status st = stub_->GetClaim(&ctx, get, &resp);
    if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
        absl::StartsWith(st.error_message(), "request: cannot be parsed")) {
      ++refused;
    } else {
      ADD_FAILURE() << st.error_code() << " " << st.error_message();
    }
  }
  EXPECT_EQ(refused, 50) << "INVALID_ARGUMENT, not INTERNAL with no message";
  // Write is served by the callback API (gRPC answered UNIMPLEMENTED there).
  v1::WriteRequest bad = ClaimBatch("acme", "bad\xff");
  grpc::ClientContext wctx;
  v1::WriteResponse wresp;
  grpc::Status wst = stub_->Write(&wctx, bad, &wresp);
  EXPECT_EQ(wst.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << wst.error_message();
  EXPECT_THAT(wst.error_message(), HasSubstr("dash.v1.Data/Write"));
  // 100,000 nested unknown groups (past protobuf's recursion limit), sent as
  // raw bytes: INVALID_ARGUMENT too, and the node serves on.
  std::string nested;
  const char start_group = static_cast<char>((15 << 3) | 3);  // Field 15, start group.
  const char end_group = static_cast<char>((15 << 3) | 4);
  nested.append(100000, start_group);
  nested.append(100000, end_group);
  grpc::Slice slice(nested);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub generic(node_->channel());
  grpc::ClientContext gctx;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&gctx, "/dash.v1.Data/Query", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status st) { done.set_value(st); });
  const grpc::Status gst = done.get_future().get();
  EXPECT_EQ(gst.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << gst.error_message();
  ASSERT_TRUE(Write(ClaimBatch("acme", "still-serving")).ok());
  std::ifstream log(node_->log_path());
  std::string line;
  int utf8_lines = 0;
  while (std::getline(log, line)) utf8_lines += line.find("UTF-8") != std::string::npos;
  EXPECT_LE(utf8_lines, 2) << "one line per 10 s at most";
}

TEST_F(NodeProcessTest, CleanStopAndRestartKeepsData) {
  ASSERT_TRUE(Write(ClaimBatch("acme", "c1")).ok());
  ASSERT_TRUE(node_->Stop().ok());
  ASSERT_TRUE(node_->Start().ok());
  stub_ = v1::Data::NewStub(node_->channel());
  grpc::ClientContext ctx;
  v1::GetClaimRequest get;
  get.set_tenant("acme");
  get.set_claim_id("c1");
  v1::GetClaimResponse resp;
  EXPECT_TRUE(stub_->GetClaim(&ctx, get, &resp).ok());
}

}  // namespace
}  // namespace dash
