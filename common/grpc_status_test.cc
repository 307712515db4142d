#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace dash {
namespace {

TEST(GrpcStatusTest, CodesAndMessagesSurviveTheRoundTrip) {
  for (auto code : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kFailedPrecondition,
                    absl::StatusCode::kUnavailable, absl::StatusCode::kNotFound}) {
    absl::Status in(code, "ops[1].claim.text: must not be empty");
    absl::Status out = FromGrpcStatus(ToGrpcStatus(in));
    EXPECT_EQ(out.code(), code);
    EXPECT_EQ(out.message(), in.message());
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(GrpcStatusTest, RoutingHintIsTypedPayload) {
  absl::Status st = absl::FailedPreconditionError("stale epoch");
  v1::RoutingHint hint;
  hint.set_shard(3);
  hint.set_current_epoch(7);
  hint.set_leader_node_id("node-2");
  SetRoutingHint(st, hint);
  auto got = GetRoutingHint(st);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->shard(), 3u);
  EXPECT_EQ(got->current_epoch(), 7u);
  EXPECT_EQ(got->leader_node_id(), "node-2");
  EXPECT_FALSE(GetRoutingHint(absl::FailedPreconditionError("x")).has_value());
}

}  // namespace
}  // namespace dash
