// Crashes at exact places of the commit path, chosen with the node's
// --kill_at sync points (common/sync_point.h) rather than by timing: a write
// killed before its storage commit is gone after the restart; one killed
// after it, before the answer, survives although it was never acknowledged;
// either way, its retry with the same idempotency key leaves it applied
// exactly once.
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sync_point.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using namespace query::testing;  // NOLINT: test builders

struct KillPoint {
  const char* point;
  bool durable;  // The killed write is on disk when the process dies.
};

class KillPointTest : public ::testing::TestWithParam<KillPoint> {};

grpc::Status Write(v1::Data::Stub& stub, const std::string& id, v1::WriteResponse* resp) {
  v1::WriteRequest req = ClaimBatch("acme", id, 2);
  req.set_idempotency_key(id);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return stub.Write(&ctx, req, resp);
}

uint64_t LastLsn(const testing::NodeProcess& node) {
  grpc::ClientContext ctx;
  v1::NodeInfo info;
  EXPECT_TRUE(v1::NodeAdmin::NewStub(node.channel())
                  ->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info)
                  .ok());
  return info.replicas_size() == 1 ? info.replicas(0).last_lsn() : 0;
}

TEST_P(KillPointTest, AWriteKilledAtThePointIsAppliedExactlyOnceByItsRetry) {
  if (!kTestHooks) GTEST_SKIP() << "a Release build has no sync points";
  const KillPoint& kp = GetParam();
  testing::TestDir dir;
  // One shard: every write is one group commit of the same replica, so the
  // third write reaches the point for the third time.
  testing::NodeProcess node(dir.Sub("node"),
                            {"--shard_count=1", absl::StrCat("--kill_at=", kp.point, ":3")});
  ASSERT_TRUE(node.Start().ok());
  auto stub = v1::Data::NewStub(node.channel());
  v1::WriteResponse resp;
  ASSERT_TRUE(Write(*stub, "c1", &resp).ok());
  ASSERT_TRUE(Write(*stub, "c2", &resp).ok());
  grpc::Status killed = Write(*stub, "c3", &resp);
  EXPECT_FALSE(killed.ok()) << "the node died before answering";
  ASSERT_TRUE(testing::PollUntil([&] { return !node.Running(); }, absl::Seconds(20),
                                 "the node killing itself at " + std::string(kp.point))
                  .ok());

  ASSERT_TRUE(node.Start().ok());  // Reads only from here: the point is not reached again.
  stub = v1::Data::NewStub(node.channel());
  EXPECT_EQ(LastLsn(node), kp.durable ? 3u : 2u);
  for (const char* id : {"c1", "c2", "c3"}) {
    grpc::ClientContext ctx;
    v1::GetClaimRequest get;
    get.set_tenant("acme");
    get.set_claim_id(id);
    v1::GetClaimResponse got;
    grpc::Status st = stub->GetClaim(&ctx, get, &got);
    const bool expected = std::string(id) != "c3" || kp.durable;
    EXPECT_EQ(st.ok(), expected) << id << ": " << st.error_message();
    if (st.ok()) EXPECT_EQ(got.record().evidence_size(), 2) << id << " is whole";
  }

  // The client retries the write it got no answer for.
  ASSERT_TRUE(Write(*stub, "c3", &resp).ok());
  EXPECT_EQ(resp.replayed(), kp.durable);
  EXPECT_EQ(resp.token().lsn(), 3u);
  EXPECT_EQ(LastLsn(node), 3u);
}

INSTANTIATE_TEST_SUITE_P(CommitPath, KillPointTest,
                         ::testing::Values(KillPoint{"ShardReplica::CommitGroup:BeforeCommit",
                                                     false},
                                           KillPoint{"ShardReplica::CommitGroup:Committed", true}),
                         [](const ::testing::TestParamInfo<KillPoint>& info) {
                           const std::string p = info.param.point;
                           return p.substr(p.rfind(':') + 1);
                         });

}  // namespace
}  // namespace dash
