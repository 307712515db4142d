// The fixture of the tests that start a whole cluster as processes and speak
// to it through its router (cluster_test, liveness_test): start it, write
// through the router, read the control plane's table, and make claim ids that
// land on a chosen shard. Header-only; the test links dash_common.
#ifndef DASH_TESTS_HARNESS_ROUTER_CLUSTER_TEST_H_
#define DASH_TESTS_HARNESS_ROUTER_CLUSTER_TEST_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "dash/v1/data.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"

namespace dash::testing {

class RouterClusterTest : public ::testing::Test {
 protected:
  // The shard count of ClusterOptions' default.
  static constexpr uint32_t kShards = 4;

  // Starts the cluster (fatal on failure: wrap in ASSERT_NO_FATAL_FAILURE).
  void StartCluster(ClusterOptions options = {}) {
    cluster_ = std::make_unique<LocalCluster>(dir_.path(), options);
    absl::Status st = cluster_->Start();
    ASSERT_TRUE(st.ok()) << st;
    router_ = v1::Data::NewStub(cluster_->router().channel());
  }

  // A write through the router, with the router's status as an absl::Status.
  absl::StatusOr<v1::WriteResponse> Write(const v1::WriteRequest& req,
                                          absl::Duration timeout = absl::Seconds(10)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
    v1::WriteResponse resp;
    grpc::Status st = router_->Write(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, &ctx);
    return resp;
  }

  // The control plane's table (empty, with a test failure, if unreachable).
  v1::Placement Placement() {
    absl::StatusOr<v1::Placement> p = cluster_->Placement();
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : v1::Placement();
  }

  // A claim id of tenant "acme" on `shard` of kShards, distinct per `n`.
  static std::string IdOnShard(uint32_t shard, int n) {
    for (int i = 0;; ++i) {
      std::string id = absl::StrCat("s", shard, "-", n, "-", i);
      if (ShardOf("acme", id, kShards) == shard) return id;
    }
  }

  TestDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<v1::Data::Stub> router_;
};

}  // namespace dash::testing

#endif  // DASH_TESTS_HARNESS_ROUTER_CLUSTER_TEST_H_
