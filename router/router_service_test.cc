// The router's gRPC service (callback API over the bounded executor) as a
// client sees it, with the router core, its gRPC transport and fake nodes.
#include "router/router_service.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/thread_pool.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "router/grpc_node_client.h"
#include "router/test_util.h"

namespace dash::router {
namespace {

using ::dash::router::testing::ClusterTable;
using ::dash::router::testing::FakeNode;
using ::dash::router::testing::TestPlacement;

class RouterServiceTest : public ::testing::Test {
 protected:
  // A router with an executor of `executor_threads` over nodes n1 (leader of
  // the only shard) and n2.
  void Start(size_t executor_threads, size_t max_queued = 10000) {
    executor_ = std::make_unique<ThreadPool>(executor_threads);
    placement_ = std::make_unique<TestPlacement>(ClusterTable({&n1_, &n2_}, /*shard_count=*/1, 2));
    RouterOptions options;
    options.leader_wait = absl::Milliseconds(10);  // For the refused write.
    router_ = std::make_unique<Router>(placement_.get(), &client_, &fanout_, options);
    service_ = std::make_unique<RouterService>(router_.get(), executor_.get(), max_queued);
    admin_ = std::make_unique<RouterAdminService>(router_.get());
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    data_ = v1::Data::NewStub(channel);
    node_admin_ = v1::NodeAdmin::NewStub(channel);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  static void SetDeadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  FakeNode n1_, n2_;
  GrpcNodeClient client_;
  ThreadPool fanout_{2};
  std::unique_ptr<ThreadPool> executor_;
  std::unique_ptr<TestPlacement> placement_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<RouterService> service_;
  std::unique_ptr<RouterAdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Data::Stub> data_;
  std::unique_ptr<v1::NodeAdmin::Stub> node_admin_;
};

TEST_F(RouterServiceTest, AMalformedRequestIsRefusedWithoutReachingANode) {
  Start(1);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::WriteRequest bad = query::testing::ClaimBatch("acme", "c1");
  bad.set_tenant("");
  v1::WriteResponse resp;
  grpc::Status st = data_->Write(&ctx, bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_TRUE(n1_.writes().empty());
}

TEST_F(RouterServiceTest, AWriteIsForwardedAndARoutingHintReachesTheClient) {
  Start(1);
  n1_.OnWrite([](const v1::WriteRequest& r) -> absl::StatusOr<v1::WriteResponse> {
    absl::Status st = absl::UnavailableError("shard 0 is still opening; retry");
    v1::RoutingHint hint;
    hint.set_shard(0);
    hint.set_leader_node_id("n1");
    SetRoutingHint(st, hint);
    if (r.ops(0).claim().claim_id() == "refused") return st;
    v1::WriteResponse resp;
    resp.mutable_token()->set_lsn(12);
    return resp;
  });
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::WriteResponse resp;
    grpc::Status st = data_->Write(&ctx, query::testing::ClaimBatch("acme", "c1"), &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.token().lsn(), 12u);
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::WriteResponse resp;
  grpc::Status st = data_->Write(&ctx, query::testing::ClaimBatch("acme", "refused"), &resp);
  absl::Status back = FromGrpcStatus(st, &ctx);
  EXPECT_TRUE(absl::IsUnavailable(back)) << back;
  std::optional<v1::RoutingHint> hint = GetRoutingHint(back);
  ASSERT_TRUE(hint.has_value()) << "the hint travels in the trailing metadata";
  EXPECT_EQ(hint->leader_node_id(), "n1");
}

TEST_F(RouterServiceTest, AReadSaysInItsTrailingMetadataHowManyReplicasFailed) {
  Start(1);
  n1_.Stop();
  n2_.OnGetClaim([](const v1::GetClaimRequest& r) -> absl::StatusOr<v1::GetClaimResponse> {
    v1::GetClaimResponse resp;
    resp.mutable_record()->mutable_claim()->set_claim_id(r.claim_id());
    return resp;
  });
  v1::GetClaimRequest req;
  req.set_tenant("acme");
  req.set_claim_id("c1");
  req.set_read_preference(v1::READ_PREFERENCE_ANY_HEALTHY);
  auto failovers = [](const grpc::ClientContext& ctx) -> std::string {
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto it = trailers.find(kReadFailoversHeader);
    return it == trailers.end() ? "absent" : std::string(it->second.data(), it->second.size());
  };
  grpc::ClientContext first;
  SetDeadline(&first);
  v1::GetClaimResponse resp;
  grpc::Status st = data_->GetClaim(&first, req, &resp);  // Tries n1 first.
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.record().claim().claim_id(), "c1");
  EXPECT_EQ(failovers(first), "1");
  grpc::ClientContext second;
  SetDeadline(&second);
  st = data_->GetClaim(&second, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(failovers(second), "absent") << "no replica failed";
}

// Requests beyond the executor's threads wait for one; gRPC's threads do not
// wait: a malformed request is still refused, and the admin service still
// answers, while the only executor thread is blocked on a node.
TEST_F(RouterServiceTest, RequestsQueueForTheExecutorWhileGrpcThreadsStayFree) {
  Start(1);
  absl::Notification release;
  n1_.OnWrite([&](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    release.WaitForNotificationWithTimeout(absl::Seconds(20));
    return v1::WriteResponse();
  });
  constexpr int kWrites = 4;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  const std::vector<v1::WriteRequest> requests(kWrites, query::testing::ClaimBatch("acme", "c1"));
  std::vector<v1::WriteResponse> responses(kWrites);
  std::vector<grpc::Status> statuses(kWrites);
  absl::Notification all_done;
  std::atomic<int> done{0};
  for (int i = 0; i < kWrites; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    SetDeadline(contexts.back().get());
    data_->async()->Write(contexts.back().get(), &requests[i], &responses[i],
                          [&, i](grpc::Status st) {
                            statuses[i] = st;
                            if (++done == kWrites) all_done.Notify();
                          });
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::NodeInfo info;
  grpc::Status st = node_admin_->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(info.node_id(), "router");
  grpc::ClientContext bad_ctx;
  SetDeadline(&bad_ctx);
  v1::GetClaimRequest bad;  // No tenant.
  v1::GetClaimResponse bad_resp;
  EXPECT_EQ(data_->GetClaim(&bad_ctx, bad, &bad_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(n1_.writes().size(), 1u) << "one executor thread: one write at a node at a time";
  release.Notify();
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  for (const grpc::Status& s : statuses) EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(n1_.writes().size(), static_cast<size_t>(kWrites));
}

// The executor's queue is bounded: past it a request is refused at once
// (RESOURCE_EXHAUSTED), and the queued ones still complete.
TEST_F(RouterServiceTest, RequestsBeyondTheQueueAreRefusedResourceExhausted) {
  Start(1, /*max_queued=*/2);
  absl::Notification entered, release;
  std::atomic<bool> first{true};
  n1_.OnWrite([&](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    if (first.exchange(false)) entered.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(20));
    return v1::WriteResponse();
  });
  constexpr int kQueued = 3;  // One running, two waiting.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  const v1::WriteRequest request = query::testing::ClaimBatch("acme", "c1");
  std::vector<v1::WriteResponse> responses(kQueued);
  std::vector<grpc::Status> statuses(kQueued);
  absl::Notification all_done;
  std::atomic<int> done{0};
  auto send = [&](int i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    SetDeadline(contexts.back().get());
    data_->async()->Write(contexts.back().get(), &request, &responses[i], [&, i](grpc::Status st) {
      statuses[i] = st;
      if (++done == kQueued) all_done.Notify();
    });
  };
  send(0);
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(20)));
  send(1);
  send(2);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (executor_->queued() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(2));
  ASSERT_EQ(executor_->queued(), 2u);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::WriteResponse resp;
  grpc::Status refused = data_->Write(&ctx, request, &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  release.Notify();
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  for (const grpc::Status& s : statuses) EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(n1_.writes().size(), static_cast<size_t>(kQueued));
}

}  // namespace
}  // namespace dash::router
