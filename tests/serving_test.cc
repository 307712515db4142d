// Health and reflection on every process (common/serving.h), against real
// processes over TLS: each answers the standard grpc.health.v1 protocol and
// gRPC reflection to a client holding only the CA (no token, no client
// certificate), and each status follows what the process can do — the control
// plane once up; a node once registered in a created cluster with its replicas
// open, not while draining, and no longer once stopping; the router once every
// shard has a healthy leader.
#include <signal.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using testing::ControlPlaneProcess;
using testing::NodeProcess;
using testing::PollUntil;
using testing::RouterProcess;
using testing::TestSecurity;

constexpr HealthCheckResponse::ServingStatus kServing = HealthCheckResponse::SERVING;
constexpr HealthCheckResponse::ServingStatus kNotServing = HealthCheckResponse::NOT_SERVING;

// What a probe holds: the cluster's CA (to trust the server) and nothing else.
std::shared_ptr<grpc::Channel> ProbeChannel(const std::string& address) {
  ClientCredentials probe;
  probe.ca_pem = TestSecurity::Get().ca_pem();  // Empty when insecure: plaintext.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenChannel(address, probe);
  EXPECT_TRUE(channel.ok()) << channel.status();
  return *channel;
}

// The status of `service` at `address`; NOT_FOUND and transport failures as
// the gRPC code (negated, so they never equal a serving status).
int Check(const std::string& address, const std::string& service) {
  auto stub = Health::NewStub(ProbeChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  const grpc::Status st = stub->Check(&ctx, req, &resp);
  if (!st.ok()) return -static_cast<int>(st.error_code());
  return resp.status();
}

absl::Status WaitForStatus(const std::string& address, const std::string& service, int status,
                           const std::string& what) {
  return PollUntil([&] { return Check(address, service) == status; }, absl::Seconds(30), what,
                   absl::Milliseconds(50));
}

// The service names gRPC reflection lists at `address` (ServerReflectionInfo
// with list_services, decoded without the reflection .proto: field 6 of the
// answer holds repeated services (1), each with its name (1)).
std::set<std::string> ReflectedServices(const std::string& address) {
  auto channel = ProbeChannel(address);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), method, &ctx));
  const std::string list_services("\x3a\x00", 2);  // Field 7 (list_services), "".
  grpc::Slice slice(list_services);
  grpc::ByteBuffer request(&slice, 1);
  std::set<std::string> names;
  if (!stream->Write(request)) return names;
  stream->WritesDone();
  grpc::ByteBuffer response;
  if (stream->Read(&response)) {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    google::protobuf::UnknownFieldSet answer;
    EXPECT_TRUE(answer.ParseFromString(bytes));
    for (int i = 0; i < answer.field_count(); ++i) {
      if (answer.field(i).number() != 6) continue;
      google::protobuf::UnknownFieldSet list;
      EXPECT_TRUE(list.ParseFromString(answer.field(i).length_delimited()));
      for (int j = 0; j < list.field_count(); ++j) {
        google::protobuf::UnknownFieldSet service;
        EXPECT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
        for (int k = 0; k < service.field_count(); ++k) {
          if (service.field(k).number() == 1) names.insert(service.field(k).length_delimited());
        }
      }
    }
  }
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  return names;
}

// `dashctl health ADDR... [--service S]`: its exit code and output.
testing::CommandResult DashctlHealth(std::vector<std::string> args) {
  args.insert(args.begin(), "health");
  return testing::RunCommand(testing::BinaryPath("dashctl/dashctl"), args);
}

absl::Status Drain(const std::string& controlplane, const std::string& node, bool undrain) {
  auto stub = v1::ControlPlane::NewStub(testing::MemberChannel(controlplane));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::DrainNodeRequest req;
  req.set_node_id(node);
  req.set_undrain(undrain);
  v1::PlacementChange change;
  const grpc::Status st = stub->DrainNode(&ctx, req, &change);
  return st.ok() ? absl::OkStatus() : absl::InternalError(st.error_message());
}

TEST(ServingTest, HealthFollowsWhatEachProcessCanDoAndReflectionListsItsServices) {
  testing::TestDir dir;
  ControlPlaneProcess cp(dir.Sub("controlplane"), {"--shard_count=2", "--replication_factor=3",
                                                   "--failure_timeout_ms=1500"});
  ASSERT_TRUE(cp.Start().ok());
  EXPECT_EQ(Check(cp.address(), ""), kServing);
  EXPECT_EQ(Check(cp.address(), "dash.v1.ControlPlane"), kServing);
  EXPECT_EQ(Check(cp.address(), "dash.v1.NoSuchService"), -grpc::StatusCode::NOT_FOUND);

  // A router before any node: up, but no shard is led, so not ready.
  RouterProcess router(dir.Sub("router"), {"--controlplane=" + cp.address()});
  ASSERT_TRUE(router.Start().ok());
  EXPECT_EQ(Check(router.address(), "dash.v1.NodeAdmin"), kServing);
  absl::SleepFor(absl::Milliseconds(500));  // Several readiness checks.
  EXPECT_EQ(Check(router.address(), ""), kNotServing);
  EXPECT_EQ(Check(router.address(), "dash.v1.Data"), kNotServing);
  // dashctl health says so, by exit code (a container health check's way).
  testing::CommandResult not_ready = DashctlHealth({router.address()});
  EXPECT_EQ(not_ready.exit_code, 1) << not_ready.out;
  EXPECT_EQ(not_ready.out, router.address() + " - NOT_SERVING\n");

  // Two nodes of three: registered, but the cluster is not created yet (it
  // needs three replicas per shard), so they hold no replica and take no data
  // calls; their admin service answers meanwhile.
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  for (int i = 1; i <= 3; ++i) {
    nodes.push_back(std::make_unique<NodeProcess>(
        dir.Sub(absl::StrCat("n", i)),
        std::vector<std::string>{absl::StrCat("--node_id=n", i), "--controlplane=" + cp.address(),
                                 "--heartbeat_ms=150"}));
  }
  ASSERT_TRUE(nodes[0]->Start().ok());
  ASSERT_TRUE(nodes[1]->Start().ok());
  absl::SleepFor(absl::Milliseconds(500));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Check(nodes[i]->address(), ""), kNotServing);
    EXPECT_EQ(Check(nodes[i]->address(), "dash.v1.Data"), kNotServing);
    EXPECT_EQ(Check(nodes[i]->address(), "dash.v1.NodeAdmin"), kServing);
    EXPECT_EQ(Check(nodes[i]->address(), "dash.v1.Replication"), kServing);
  }
  EXPECT_EQ(Check(router.address(), ""), kNotServing);

  // The third node: the cluster is created, every node opens its replicas
  // and serves, and the router, seeing every shard led, turns ready.
  ASSERT_TRUE(nodes[2]->Start().ok());
  for (const auto& n : nodes) {
    ASSERT_TRUE(WaitForStatus(n->address(), "", kServing, "a node to serve").ok());
    EXPECT_EQ(Check(n->address(), "dash.v1.Data"), kServing);
    EXPECT_EQ(Check(n->address(), "dash.v1.ShardQuery"), kServing);
  }
  ASSERT_TRUE(WaitForStatus(router.address(), "", kServing, "the router to be ready").ok());
  EXPECT_EQ(Check(router.address(), "dash.v1.Data"), kServing);
  testing::CommandResult ready =
      DashctlHealth({router.address(), cp.address(), nodes[0]->address()});
  EXPECT_EQ(ready.exit_code, 0) << ready.out;
  EXPECT_EQ(ready.out, absl::StrCat(router.address(), " - SERVING\n", cp.address(), " - SERVING\n",
                                    nodes[0]->address(), " - SERVING\n"));
  // A service the process does not have: 1; nothing listening: 3.
  EXPECT_EQ(DashctlHealth({cp.address(), "--service=dash.v1.Data"}).exit_code, 1);
  EXPECT_EQ(DashctlHealth({"127.0.0.1:1", "--timeout=2"}).exit_code, 3);

  // Draining n1: it takes no more data calls (balancers turn away) while its
  // admin and replication services serve on; undrained, it serves again.
  ASSERT_TRUE(Drain(cp.address(), "n1", false).ok());
  ASSERT_TRUE(WaitForStatus(nodes[0]->address(), "", kNotServing, "n1 to stop serving").ok());
  EXPECT_EQ(Check(nodes[0]->address(), "dash.v1.Data"), kNotServing);
  EXPECT_EQ(Check(nodes[0]->address(), "dash.v1.NodeAdmin"), kServing);
  EXPECT_EQ(Check(nodes[0]->address(), "dash.v1.Replication"), kServing);
  EXPECT_EQ(Check(nodes[1]->address(), ""), kServing);
  ASSERT_TRUE(Drain(cp.address(), "n1", true).ok());
  ASSERT_TRUE(WaitForStatus(nodes[0]->address(), "", kServing, "n1 to serve again").ok());

  // Reflection lists each process's services (and the health service).
  const std::set<std::string> node_services = ReflectedServices(nodes[1]->address());
  for (const char* s : {"dash.v1.Data", "dash.v1.NodeAdmin", "dash.v1.ShardQuery",
                        "dash.v1.Replication", "dash.v1.Snapshots", "grpc.health.v1.Health"}) {
    EXPECT_EQ(node_services.count(s), 1u) << s;
  }
  const std::set<std::string> router_services = ReflectedServices(router.address());
  EXPECT_EQ(router_services.count("dash.v1.Data"), 1u);
  EXPECT_EQ(router_services.count("dash.v1.NodeAdmin"), 1u);
  EXPECT_EQ(router_services.count("dash.v1.ShardQuery"), 0u);  // Nodes only.
  const std::set<std::string> cp_services = ReflectedServices(cp.address());
  EXPECT_EQ(cp_services.count("dash.v1.ControlPlane"), 1u);
  EXPECT_EQ(cp_services.count("dash.v1.Data"), 0u);

  // Stopping: a watcher of n2's health hears NOT_SERVING before the process
  // is gone, and the open watch does not hold the stop up.
  auto stub = Health::NewStub(ProbeChannel(nodes[1]->address()));
  grpc::ClientContext watch;
  watch.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  HealthCheckRequest req;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> updates = stub->Watch(&watch, req);
  HealthCheckResponse update;
  ASSERT_TRUE(updates->Read(&update));
  EXPECT_EQ(update.status(), kServing);
  const absl::Time stop_started = absl::Now();
  std::thread stopper([&] { EXPECT_TRUE(nodes[1]->Stop().ok()); });
  bool heard_not_serving = false;
  while (updates->Read(&update)) heard_not_serving |= update.status() == kNotServing;
  stopper.join();
  EXPECT_TRUE(heard_not_serving);
  EXPECT_LT(absl::Now() - stop_started, absl::Seconds(4));
}

}  // namespace
}  // namespace dash
