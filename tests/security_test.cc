// The tenant-isolation suite: a secure cluster of real processes (TLS
// everywhere, bearer tokens, a control plane, three nodes, a router), every
// public and internal RPC called with every kind of credential, and checks
// that no byte of one tenant's data reaches another tenant: not in answers,
// error messages, routing hints, BM25 statistics, cached filter results, graph
// payloads or commit tokens.
//
// The table of RPCs x credentials -> codes is printed and must equal the one
// in README.md between the isolation-table markers (DASH_WRITE_ISOLATION_TABLE=1
// rewrites it there), so the README shows what the code does.
#include "common/security.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/jwt.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/cluster.h"

namespace dash {
namespace {

using query::testing::ClaimOp;
using query::testing::EdgeOp;
using query::testing::EvidenceOp;
using ::testing::HasSubstr;
using testing::LocalCluster;
using ::testing::Not;
using testing::TestSecurity;

// What a call needs: a tenant-scoped role, an admin call, or an internal one.
enum class Access { kRead, kWrite, kAdmin, kInternal };

// The credential cases of the table's columns.
enum Case {
  kNoToken,
  kExpired,
  kWrongSignature,
  kAlgNone,
  kWrongTenant,
  kWrongRole,
  kValid,
  kMember,
  kCases
};
const char* const kCaseNames[] = {"no token",     "expired",    "wrong signature", "alg:none",
                                  "wrong tenant", "wrong role", "valid token",     "cluster cert"};

struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string bytes;  // Response, error message and trailing metadata: all the caller saw.
};

std::string Base64Url(absl::string_view raw) {
  std::string out;
  absl::WebSafeBase64Escape(raw, &out);
  return out;
}

// The tenant every scoped call of the table names; "b" is the other tenant.
constexpr char kTenant[] = "a";

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestSecurity::Get().secure()) GTEST_SKIP() << "DASH_TEST_INSECURE=1";
    testing::ClusterOptions options;
    options.shard_count = 2;
    cluster_ = std::make_unique<LocalCluster>(dir_.path(), options);
    absl::Status st = cluster_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }

  // A token signed with the cluster's key.
  static std::string Token(const std::vector<std::string>& tenants,
                           const std::vector<jwt::Role>& roles,
                           absl::Duration ttl = absl::Hours(1)) {
    return TestSecurity::Get().Mint(tenants, roles, ttl);
  }

  // A client channel: TLS trusting the cluster CA, with `token` when set.
  static std::shared_ptr<grpc::Channel> Client(const std::string& address,
                                               const std::string& token) {
    ClientCredentials creds;
    creds.ca_pem = TestSecurity::Get().ca_pem();
    creds.token = token;
    return *OpenChannel(address, creds);
  }

  // The channel of credential case `c` for a call that needs `access`.
  static std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address, Case c,
                                                   Access access) {
    const std::vector<jwt::Role> all = {jwt::Role::kRead, jwt::Role::kWrite, jwt::Role::kAdmin};
    const jwt::Role needed = access == Access::kRead    ? jwt::Role::kRead
                             : access == Access::kWrite ? jwt::Role::kWrite
                                                        : jwt::Role::kAdmin;
    // Admin calls name no tenant and act on all: their tokens grant "*".
    const std::string scope = access == Access::kRead || access == Access::kWrite ? kTenant : "*";
    switch (c) {
      case kNoToken:
        return Client(address, "");
      case kExpired:
        return Client(address, Token({scope}, all, -absl::Minutes(5)));
      case kWrongSignature: {
        // A signature character in the middle: different bytes, surely.
        std::string token = Token({scope}, all);
        char& c = token[token.size() - 20];
        c = c == 'A' ? 'B' : 'A';
        return Client(address, token);
      }
      case kAlgNone: {
        const std::string header = Base64Url(R"({"alg":"none","typ":"JWT"})");
        const std::string payload = Base64Url(
            absl::StrCat(R"({"sub":"x","tenants":"*","roles":["read","write","admin"],"exp":)",
                         absl::ToUnixSeconds(absl::Now() + absl::Hours(1)), "}"));
        return Client(address, absl::StrCat(header, ".", payload, "."));
      }
      case kWrongTenant:
        return Client(address, Token({"b"}, all));
      case kWrongRole: {
        std::vector<jwt::Role> others;
        for (jwt::Role r : all) {
          if (r != needed) others.push_back(r);
        }
        return Client(address, Token({scope}, others));
      }
      case kValid:
        return Client(address, Token({scope}, {needed}));
      case kMember:
      case kCases:
        break;
    }
    return testing::MemberChannel(address);
  }

  testing::TestDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

// One unary call through the generic stub: every RPC of the table alike.
Outcome CallUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                  const google::protobuf::Message& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const std::string wire = request.SerializeAsString();
  grpc::Slice slice(wire);
  grpc::ByteBuffer in(&slice, 1);
  grpc::ByteBuffer out;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &in, &out,
                 [&](grpc::Status st) { done.set_value(std::move(st)); });
  const grpc::Status st = done.get_future().get();
  Outcome o;
  o.code = st.error_code();
  o.bytes = st.error_message();
  std::vector<grpc::Slice> slices;
  if (st.ok() && out.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      o.bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  for (const auto& [key, value] : ctx.GetServerTrailingMetadata()) {
    o.bytes.append(key.data(), key.size()).append(value.data(), value.size());
  }
  return o;
}

// A request message of `type` with shard 99 (hosted nowhere) and node ids
// "nope" wherever it has such fields: a call that passes authorization then
// fails on its content, changing nothing.
std::unique_ptr<google::protobuf::Message> Harmless(const google::protobuf::Message& prototype) {
  std::unique_ptr<google::protobuf::Message> m(prototype.New());
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  const google::protobuf::Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->name() == "shard") r->SetUInt32(m.get(), f, 99);
    if (f->name() == "epoch") r->SetUInt64(m.get(), f, 1);
    if (absl::EndsWith(f->name(), "node_id")) r->SetString(m.get(), f, "nope");
  }
  return m;
}

struct Rpc {
  std::string method;  // "/dash.v1.Data/Write"
  std::string where;   // "router", "node", "controlplane"
  Access access;
  std::unique_ptr<google::protobuf::Message> request;
};

TEST_F(SecurityTest, EveryRpcRefusesWhatItMustAndTheReadmeTableSaysSo) {
  // Tenant "a"'s data, so that scoped reads have something to find.
  {
    auto router = v1::Data::NewStub(cluster_->router().channel());
    v1::WriteRequest w;
    w.set_tenant(kTenant);
    *w.add_ops() = ClaimOp("a-1", "aardvark migration secret");
    *w.add_ops() = EvidenceOp("a-1", "a-1-e");
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    ASSERT_TRUE(router->Write(&ctx, w, &resp).ok());
  }
  std::vector<Rpc> rpcs;
  auto add = [&](std::string method, std::string where, Access access,
                 std::unique_ptr<google::protobuf::Message> request) {
    rpcs.push_back(Rpc{std::move(method), std::move(where), access, std::move(request)});
  };
  // Replaces a-1 as it is: every Write of the table writes the same.
  auto write = std::make_unique<v1::WriteRequest>();
  write->set_tenant(kTenant);
  *write->add_ops() = ClaimOp("a-1", "aardvark migration secret");
  *write->add_ops() = EvidenceOp("a-1", "a-1-e");
  auto get = std::make_unique<v1::GetClaimRequest>();
  get->set_tenant(kTenant);
  get->set_claim_id("a-1");
  auto list = std::make_unique<v1::ListClaimsRequest>();
  list->set_tenant(kTenant);
  auto query = std::make_unique<v1::QueryRequest>();
  query->set_tenant(kTenant);
  query->set_text("aardvark");
  for (const char* where : {"router", "node"}) {
    add("/dash.v1.Data/Write", where, Access::kWrite, std::make_unique<v1::WriteRequest>(*write));
    add("/dash.v1.Data/GetClaim", where, Access::kRead,
        std::make_unique<v1::GetClaimRequest>(*get));
    add("/dash.v1.Data/ListClaims", where, Access::kRead,
        std::make_unique<v1::ListClaimsRequest>(*list));
    add("/dash.v1.Data/Query", where, Access::kRead, std::make_unique<v1::QueryRequest>(*query));
    add("/dash.v1.NodeAdmin/GetNodeInfo", where, Access::kAdmin,
        std::make_unique<v1::GetNodeInfoRequest>());
  }
  add("/dash.v1.NodeAdmin/GetReplicaChecksum", "node", Access::kAdmin,
      Harmless(v1::ReplicaChecksumRequest()));
  add("/dash.v1.NodeAdmin/FenceShard", "node", Access::kInternal,
      Harmless(v1::FenceShardRequest()));
  add("/dash.v1.ShardQuery/Stats", "node", Access::kInternal, Harmless(v1::ShardStatsRequest()));
  add("/dash.v1.ShardQuery/Legs", "node", Access::kInternal, Harmless(v1::ShardLegsRequest()));
  add("/dash.v1.ShardQuery/Fetch", "node", Access::kInternal, Harmless(v1::ShardFetchRequest()));
  add("/dash.v1.Replication/PullLog", "node", Access::kAdmin, Harmless(v1::PullLogRequest()));
  add("/dash.v1.Replication/AckLog", "node", Access::kInternal, Harmless(v1::AckLogRequest()));
  add("/dash.v1.Replication/EpochEndOffset", "node", Access::kAdmin,
      Harmless(v1::EpochEndOffsetRequest()));
  add("/dash.v1.Snapshots/CreateSnapshot", "node", Access::kAdmin,
      Harmless(v1::CreateSnapshotRequest()));
  add("/dash.v1.Snapshots/FetchSnapshotFile", "node", Access::kAdmin,
      Harmless(v1::FetchSnapshotFileRequest()));
  add("/dash.v1.Snapshots/ReleaseSnapshot", "node", Access::kAdmin,
      Harmless(v1::ReleaseSnapshotRequest()));
  add("/dash.v1.ControlPlane/RegisterNode", "controlplane", Access::kInternal,
      std::make_unique<v1::RegisterNodeRequest>());  // No node id: refused, nothing registered.
  add("/dash.v1.ControlPlane/Heartbeat", "controlplane", Access::kInternal,
      Harmless(v1::HeartbeatRequest()));
  add("/dash.v1.ControlPlane/GetPlacement", "controlplane", Access::kAdmin,
      std::make_unique<v1::GetPlacementRequest>());
  add("/dash.v1.ControlPlane/ListNodes", "controlplane", Access::kAdmin,
      std::make_unique<v1::ListNodesRequest>());
  // The placement changes, each named by its request type ("FailoverRequest").
  for (const google::protobuf::Message* prototype :
       {static_cast<const google::protobuf::Message*>(&v1::FailoverRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(&v1::PromoteRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(
            &v1::TransferLeaderRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(&v1::AddReplicaRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(
            &v1::RemoveReplicaRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(&v1::MoveReplicaRequest::default_instance()),
        static_cast<const google::protobuf::Message*>(&v1::DrainNodeRequest::default_instance())}) {
    const std::string& type = prototype->GetDescriptor()->name();
    add("/dash.v1.ControlPlane/" + type.substr(0, type.size() - std::strlen("Request")),
        "controlplane", Access::kAdmin, Harmless(*prototype));
  }

  // Direct node calls go to the leader of a-1's shard, which takes its writes
  // and leader reads.
  absl::StatusOr<v1::Placement> placement = cluster_->Placement();
  ASSERT_TRUE(placement.ok()) << placement.status();
  const std::string node =
      LocalCluster::LeaderOf(*placement, ShardOf(kTenant, "a-1", placement->shard_count()));
  std::map<std::string, std::string> address = {
      {"router", cluster_->router().address()},
      {"node", cluster_->node(node).address()},
      {"controlplane", cluster_->controlplane().address()}};

  std::ostringstream table;
  table << "| RPC (on) | needs |";
  for (const char* name : kCaseNames) table << " " << name << " |";
  table << "\n|---|---|";
  for (int c = 0; c < kCases; ++c) table << "---|";
  table << "\n";
  for (const Rpc& rpc : rpcs) {
    const char* needs = rpc.access == Access::kRead    ? "read"
                        : rpc.access == Access::kWrite ? "write"
                        : rpc.access == Access::kAdmin ? "admin"
                                                       : "cluster cert";
    table << "| `" << rpc.method.substr(std::string("/dash.v1.").size()) << "` (" << rpc.where
          << ") | " << needs << " |";
    for (int c = 0; c < kCases; ++c) {
      const Case kase = static_cast<Case>(c);
      Outcome o =
          CallUnary(ChannelFor(address[rpc.where], kase, rpc.access), rpc.method, *rpc.request);
      table << " " << absl::StatusCodeToString(static_cast<absl::StatusCode>(o.code)) << " |";
      const std::string what = absl::StrCat(rpc.method, " on ", rpc.where, ", ", kCaseNames[c],
                                            ": ", o.bytes.substr(0, 200));
      // The refusals, exactly.
      if (kase == kNoToken || kase == kExpired || kase == kWrongSignature || kase == kAlgNone) {
        EXPECT_EQ(o.code, grpc::StatusCode::UNAUTHENTICATED) << what;
      } else if (rpc.access == Access::kInternal && kase != kMember) {
        EXPECT_EQ(o.code, grpc::StatusCode::UNAUTHENTICATED) << what << " (tokens never do)";
      } else if (kase == kWrongRole) {
        EXPECT_EQ(o.code, grpc::StatusCode::PERMISSION_DENIED) << what;
      } else if (kase == kWrongTenant) {
        EXPECT_EQ(o.code, grpc::StatusCode::PERMISSION_DENIED) << what;
      } else {
        // Past authorization: whatever the request itself deserves.
        EXPECT_NE(o.code, grpc::StatusCode::UNAUTHENTICATED) << what;
        EXPECT_NE(o.code, grpc::StatusCode::PERMISSION_DENIED) << what;
      }
      if (rpc.access != Access::kInternal && rpc.access != Access::kAdmin &&
          (kase == kValid || kase == kMember)) {
        EXPECT_EQ(o.code, grpc::StatusCode::OK) << what;
      }
      // A refusal says nothing of the tenant's data.
      if (o.code == grpc::StatusCode::UNAUTHENTICATED ||
          o.code == grpc::StatusCode::PERMISSION_DENIED) {
        EXPECT_THAT(o.bytes, Not(HasSubstr("aardvark"))) << what;
        EXPECT_THAT(o.bytes, Not(HasSubstr("a-1"))) << what;
      }
    }
    table << "\n";
  }
  const std::string generated = table.str();
  printf("%s", generated.c_str());

  // The README's copy must be this one.
#ifdef DASH_SOURCE_DIR
  const std::string readme_path = DASH_SOURCE_DIR "/README.md";
#else
  const std::string readme_path = "README.md";
#endif
  std::ifstream in(readme_path);
  ASSERT_TRUE(in.good()) << readme_path;
  std::stringstream buf;
  buf << in.rdbuf();
  std::string readme = buf.str();
  const std::string begin = "<!-- isolation-table:begin -->\n";
  const std::string end = "<!-- isolation-table:end -->";
  const size_t b = readme.find(begin);
  const size_t e = readme.find(end);
  ASSERT_TRUE(b != std::string::npos && e != std::string::npos && b < e)
      << readme_path << " has no isolation-table markers";
  const std::string current = readme.substr(b + begin.size(), e - b - begin.size());
  const char* rewrite = std::getenv("DASH_WRITE_ISOLATION_TABLE");
  if (rewrite != nullptr && std::string(rewrite) == "1") {
    readme.replace(b + begin.size(), e - b - begin.size(), generated);
    std::ofstream(readme_path) << readme;
  } else {
    EXPECT_EQ(current, generated)
        << "README.md's isolation table is stale: rerun with DASH_WRITE_ISOLATION_TABLE=1";
  }
}

// Everything tenant "b" can see, with a token for "b" only, after tenant "a"
// wrote claims sharing b's words, metadata, filters and edges: no byte of a.
TEST_F(SecurityTest, NoByteOfAnotherTenantReachesTheCaller) {
  auto admin = v1::Data::NewStub(cluster_->router().channel());
  // One batch per claim: a batch is atomic within one shard.
  auto write = [&](const std::string& tenant, int n, const std::string& marker) {
    for (int i = 0; i < n; ++i) {
      v1::WriteRequest w;
      w.set_tenant(tenant);
      const std::string id = absl::StrCat(marker, "-", i);
      v1::WriteOp op = ClaimOp(id, absl::StrCat("glacier retreat measured ", marker, " ", i));
      (*op.mutable_claim()->mutable_metadata())["topic"].set_string_value("ice");
      *w.add_ops() = op;
      v1::WriteOp ev = EvidenceOp(id, id + "-ev");
      ev.mutable_evidence()->mutable_citation()->set_quote(absl::StrCat("quote of ", marker));
      *w.add_ops() = ev;
      if (i > 0) *w.add_ops() = EdgeOp(id, absl::StrCat(marker, "-", i - 1));
      grpc::ClientContext ctx;
      v1::WriteResponse resp;
      grpc::Status st = admin->Write(&ctx, w, &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
    }
  };
  ASSERT_NO_FATAL_FAILURE(write("b", 3, "bmark"));
  auto b =
      v1::Data::NewStub(Client(cluster_->router().address(), Token({"b"}, {jwt::Role::kRead})));
  v1::QueryRequest q;
  q.set_tenant("b");
  q.set_text("glacier retreat measured");
  q.set_k(10);
  q.set_include_evidence(true);
  q.mutable_graph()->set_include(true);
  q.mutable_graph()->set_one_hop(true);
  v1::MetadataFilter* f = q.mutable_filter()->add_metadata();
  f->set_key("topic");
  f->mutable_eq()->set_string_value("ice");
  auto run_query = [&](v1::QueryResponse* out) {
    grpc::ClientContext ctx;
    grpc::Status st = b->Query(&ctx, q, out);
    EXPECT_TRUE(st.ok()) << st.error_message();
  };
  // b's filter is cached before a's writes; its scores are b's statistics.
  v1::QueryResponse before;
  run_query(&before);
  ASSERT_EQ(before.hits_size(), 3);

  // a writes many claims with the same words, metadata and edges: a's
  // document frequencies would change b's BM25 scores if statistics leaked.
  ASSERT_NO_FATAL_FAILURE(write("a", 60, "amark0"));
  // a runs b's exact query: its filter result is now cached too, under the
  // same filter. b must still get only its own.
  {
    auto a =
        v1::Data::NewStub(Client(cluster_->router().address(), Token({"a"}, {jwt::Role::kRead})));
    v1::QueryRequest qa = q;
    qa.set_tenant("a");
    grpc::ClientContext ctx;
    v1::QueryResponse resp;
    ASSERT_TRUE(a->Query(&ctx, qa, &resp).ok());
    EXPECT_EQ(resp.hits_size(), 10);
    EXPECT_THAT(resp.SerializeAsString(), Not(HasSubstr("bmark")));
  }

  v1::QueryResponse after;
  run_query(&after);
  ASSERT_EQ(after.hits_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(after.hits(i).record().claim().claim_id(),
              before.hits(i).record().claim().claim_id());
    EXPECT_DOUBLE_EQ(after.hits(i).score(), before.hits(i).score())
        << "b's BM25 statistics moved when a wrote: they are not per tenant";
  }
  std::string seen = after.SerializeAsString();
  // Every other read b may make, and every refusal b may get.
  {
    v1::ListClaimsRequest l;
    l.set_tenant("b");
    l.set_include_evidence(true);
    grpc::ClientContext ctx;
    v1::ListClaimsResponse resp;
    ASSERT_TRUE(b->ListClaims(&ctx, l, &resp).ok());
    EXPECT_EQ(resp.records_size(), 3);
    seen += resp.SerializeAsString();
  }
  // a's claim id, asked for by b, is as absent as one that never existed.
  auto get_b = [&](const std::string& id, v1::GetClaimResponse* resp) {
    v1::GetClaimRequest g;
    g.set_tenant("b");
    g.set_claim_id(id);
    grpc::ClientContext ctx;
    grpc::Status st = b->GetClaim(&ctx, g, resp);
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) seen.append(v.data(), v.size());
    return st;
  };
  {
    v1::GetClaimResponse theirs, never;
    const grpc::Status st_theirs = get_b("amark0-1", &theirs);
    const grpc::Status st_never = get_b("zzzzzz-1", &never);
    EXPECT_EQ(st_theirs.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(st_never.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(absl::StrReplaceAll(st_theirs.error_message(), {{"amark0-1", "ID"}}),
              absl::StrReplaceAll(st_never.error_message(), {{"zzzzzz-1", "ID"}}));
    seen += theirs.SerializeAsString();
    v1::GetClaimResponse own;
    ASSERT_TRUE(get_b("bmark-1", &own).ok());
    seen += own.SerializeAsString();
  }
  for (const std::string& tenant : {std::string("a"), std::string("*")}) {
    v1::QueryRequest other = q;
    other.set_tenant(tenant);
    grpc::ClientContext ctx;
    v1::QueryResponse resp;
    grpc::Status st = b->Query(&ctx, other, &resp);
    EXPECT_NE(st.error_code(), grpc::StatusCode::OK) << tenant;
    seen += resp.SerializeAsString() + st.error_message();
  }
  // A stale epoch: the routing hint b gets back.
  {
    auto node = v1::Data::NewStub(Client(cluster_->node(cluster_->node_ids().front()).address(),
                                         Token({"b"}, {jwt::Role::kRead})));
    v1::GetClaimRequest g;
    g.set_tenant("b");
    g.set_claim_id("bmark-1");
    g.set_expected_epoch(123456);
    grpc::ClientContext ctx;
    v1::GetClaimResponse resp;
    grpc::Status st = node->GetClaim(&ctx, g, &resp);
    seen += st.error_message();
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) seen.append(v.data(), v.size());
  }
  EXPECT_THAT(seen, HasSubstr("bmark")) << "the checks must see b's own data";
  EXPECT_THAT(seen, Not(HasSubstr("amark")));
  EXPECT_THAT(seen, Not(HasSubstr("quote of a")));
  for (const v1::QueryHit& hit : after.hits()) {
    EXPECT_EQ(hit.record().claim().tenant(), "b");
  }
  for (const v1::CommitToken& t : after.read_at()) {
    EXPECT_THAT(t.SerializeAsString(), Not(HasSubstr("amark")));
  }
}

// Secure by default: a server given no security refuses to start and says
// how to proceed; --insecure_no_auth starts, says so in its log and NodeInfo.
TEST(SecureByDefaultTest, ServersRefuseToStartWithoutSecurityAndSayWhy) {
  testing::TestDir dir;
  const std::vector<std::pair<std::string, std::vector<std::string>>> servers = {
      {"node/dash-node", {"--data_dir=" + dir.Sub("node"), "--listen=127.0.0.1:0"}},
      {"router/dash-router", {"--listen=127.0.0.1:0", "--controlplane=127.0.0.1:1"}},
      {"controlplane/dash-controlplane", {"--data_dir=" + dir.Sub("cp"), "--listen=127.0.0.1:0"}}};
  for (const auto& [binary, args] : servers) {
    const std::string err = dir.Sub("stderr");
    testing::CommandResult r = testing::RunCommand(testing::BinaryPath(binary), args, "", err);
    EXPECT_EQ(r.exit_code, 2) << binary;
    std::ifstream in(err);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr("refusing to start without security")) << binary;
    EXPECT_THAT(text.str(), HasSubstr("--auth_key_file")) << binary;
    EXPECT_THAT(text.str(), HasSubstr("--insecure_no_auth")) << binary;

    // Half a configuration is refused too, naming what is missing.
    std::vector<std::string> half = args;
    half.push_back("--tls_ca=" + dir.Sub("nothing.pem"));
    r = testing::RunCommand(testing::BinaryPath(binary), half, "", err);
    EXPECT_EQ(r.exit_code, 2) << binary;
    std::ifstream in2(err);
    std::stringstream text2;
    text2 << in2.rdbuf();
    EXPECT_THAT(text2.str(), HasSubstr("--auth_key_file: required")) << binary;
  }
}

TEST(SecureByDefaultTest, InsecureNoAuthIsShownInNodeInfoAndTheLog) {
  testing::TestDir dir;
  {  // Started by hand: the harness would give it the test's security flags.
    const std::string port_file = dir.Sub("port");
    auto proc = testing::Process::Start(testing::BinaryPath("node/dash-node"),
                                        {"--data_dir=" + dir.Sub("plain"), "--listen=127.0.0.1:0",
                                         "--port_file=" + port_file, "--insecure_no_auth"},
                                        dir.Sub("plain.log"));
    ASSERT_TRUE(proc.ok()) << proc.status();
    int port = 0;
    ASSERT_TRUE(testing::PollUntil(
                    [&] {
                      std::ifstream in(port_file);
                      return static_cast<bool>(in >> port) && port > 0;
                    },
                    absl::Seconds(30), "the port file")
                    .ok());
    ClientCredentials plain;
    auto stub = v1::NodeAdmin::NewStub(*OpenChannel(absl::StrCat("127.0.0.1:", port), plain));
    grpc::ClientContext ctx;
    v1::NodeInfo info;
    ASSERT_TRUE(stub->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok());
    EXPECT_TRUE(info.insecure_no_auth());
    std::ifstream log(dir.Sub("plain.log"));
    std::stringstream text;
    text << log.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr("--insecure_no_auth: plaintext, no authentication"));
  }
}

}  // namespace
}  // namespace dash
