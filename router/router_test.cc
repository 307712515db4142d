// The router core over its real gRPC transport (GrpcNodeClient) and fake
// nodes on localhost: the cases that need a node to answer in a particular
// way, which a real cluster reaches only by chance.
#include "router/router.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/page_token.h"
#include "common/thread_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "router/grpc_node_client.h"
#include "router/test_util.h"

namespace dash::router {
namespace {

using ::dash::router::testing::ClusterTable;
using ::dash::router::testing::FakeNode;
using ::dash::router::testing::TestPlacement;
using ::testing::ElementsAre;

class RouterTest : public ::testing::Test {
 protected:
  // `n` fake nodes n1 .. nn.
  void StartNodes(size_t n) {
    for (size_t i = 0; i < n; ++i) nodes_.push_back(std::make_unique<FakeNode>());
  }
  FakeNode& node(size_t i) { return *nodes_[i - 1]; }  // node(1) is n1.
  v1::Placement Table(uint32_t shards, size_t replicas) {
    std::vector<const FakeNode*> nodes;
    for (const auto& n : nodes_) nodes.push_back(n.get());
    return ClusterTable(nodes, shards, replicas);
  }
  void MakeRouter(v1::Placement table, RouterOptions options = RouterOptions()) {
    placement_ = std::make_unique<TestPlacement>(std::move(table));
    router_ = std::make_unique<Router>(placement_.get(), &client_, &fanout_, options);
  }
  static absl::Time Deadline() { return absl::Now() + absl::Seconds(30); }

  ThreadPool fanout_{1};  // Smaller than any fan-out here: the caller helps.
  GrpcNodeClient client_;
  std::vector<std::unique_ptr<FakeNode>> nodes_;
  std::unique_ptr<TestPlacement> placement_;
  std::unique_ptr<Router> router_;
};

v1::WriteResponse Written(uint64_t lsn) {
  v1::WriteResponse r;
  r.mutable_token()->set_lsn(lsn);
  return r;
}

absl::Status WithHint(absl::Status st, uint32_t shard) {
  v1::RoutingHint hint;
  hint.set_shard(shard);
  SetRoutingHint(st, hint);
  return st;
}

TEST_F(RouterTest, AStaleEpochRefreshesThePlacementAndRetriesOnce) {
  StartNodes(1);
  MakeRouter(Table(1, 1));
  node(1).OnWrite([](const v1::WriteRequest& r) -> absl::StatusOr<v1::WriteResponse> {
    if (r.expected_epoch() != 5) return absl::FailedPreconditionError("expected epoch 5");
    return Written(9);
  });
  placement_->OnRefresh([this] {
    v1::Placement next = placement_->Current();
    next.mutable_shards(0)->set_epoch(5);
    placement_->Publish(next);
  });
  absl::StatusOr<v1::WriteResponse> r =
      router_->Write(query::testing::ClaimBatch("acme", "c1"), Deadline());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->token().lsn(), 9u);
  ASSERT_EQ(node(1).writes().size(), 2u);
  EXPECT_EQ(node(1).writes()[0].expected_epoch(), 4u);
  EXPECT_EQ(node(1).writes()[1].expected_epoch(), 5u) << "the refreshed table's epoch";
  EXPECT_EQ(placement_->refreshes(), 1);
}

TEST_F(RouterTest, AStaleEpochIsRetriedOnlyOnce) {
  StartNodes(1);
  MakeRouter(Table(1, 1));
  node(1).OnWrite([](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    return absl::FailedPreconditionError("node n1 does not lead shard 0");
  });
  absl::StatusOr<v1::WriteResponse> r =
      router_->Write(query::testing::ClaimBatch("acme", "c1"), Deadline());
  EXPECT_EQ(r.status(), absl::FailedPreconditionError("node n1 does not lead shard 0"));
  EXPECT_EQ(node(1).writes().size(), 2u);
  EXPECT_EQ(placement_->refreshes(), 1);
}

TEST_F(RouterTest, ALeadersRefusalWithAHintWaitsForTheNextTable) {
  StartNodes(2);
  MakeRouter(Table(1, 2));
  // n1 refuses (before logging) and the next table names n2 the leader, as a
  // failover would.
  node(1).OnWrite([this](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    v1::Placement next = placement_->Current();
    next.mutable_shards(0)->set_leader_node_id("n2");
    next.mutable_shards(0)->set_epoch(5);
    placement_->Publish(next);
    return WithHint(absl::UnavailableError("shard 0 is still opening; retry"), 0);
  });
  node(2).OnWrite(
      [](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> { return Written(3); });
  absl::StatusOr<v1::WriteResponse> r =
      router_->Write(query::testing::ClaimBatch("acme", "c1"), Deadline());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->token().lsn(), 3u);
  EXPECT_EQ(node(1).writes().size(), 1u);
  ASSERT_EQ(node(2).writes().size(), 1u);
  EXPECT_EQ(node(2).writes()[0].expected_epoch(), 5u);
  EXPECT_EQ(placement_->refreshes(), 0) << "not a stale epoch";
}

TEST_F(RouterTest, ARefusalWithoutAHintIsNotRetried) {
  StartNodes(1);
  MakeRouter(Table(1, 1));
  // No hint: the write may have been applied (a transport failure looks alike).
  node(1).OnWrite([this](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    placement_->Publish(placement_->Current());
    return absl::UnavailableError("connection reset");
  });
  absl::StatusOr<v1::WriteResponse> r =
      router_->Write(query::testing::ClaimBatch("acme", "c1"), Deadline());
  EXPECT_EQ(r.status(), absl::UnavailableError("connection reset"));
  EXPECT_EQ(node(1).writes().size(), 1u);
}

TEST_F(RouterTest, ARefusedWriteWaitsNoLongerThanLeaderWait) {
  StartNodes(1);
  RouterOptions options;
  options.leader_wait = absl::Milliseconds(50);
  MakeRouter(Table(1, 1), options);
  node(1).OnWrite([](const v1::WriteRequest&) -> absl::StatusOr<v1::WriteResponse> {
    return WithHint(absl::UnavailableError("shard 0 is still opening; retry"), 0);
  });
  absl::StatusOr<v1::WriteResponse> r =
      router_->Write(query::testing::ClaimBatch("acme", "c1"), Deadline());
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(GetRoutingHint(r.status()).has_value()) << "the node's hint reaches the client";
  EXPECT_EQ(node(1).writes().size(), 1u) << "no newer table came";
}

TEST_F(RouterTest, AReadMovesOnFromADeadReplicaAndCountsTheFailover) {
  StartNodes(2);
  MakeRouter(Table(1, 2));
  node(1).Stop();
  node(2).OnGetClaim([](const v1::GetClaimRequest& r) -> absl::StatusOr<v1::GetClaimResponse> {
    v1::GetClaimResponse resp;
    resp.mutable_record()->mutable_claim()->set_claim_id(r.claim_id());
    return resp;
  });
  v1::GetClaimRequest req;
  req.set_tenant("acme");
  req.set_claim_id("c1");
  req.set_read_preference(v1::READ_PREFERENCE_ANY_HEALTHY);
  // The first read rotates to n1 first.
  ReadResult<v1::GetClaimResponse> r = router_->GetClaim(req, Deadline());
  ASSERT_TRUE(r.response.ok()) << r.response.status();
  EXPECT_EQ(r.response->record().claim().claim_id(), "c1");
  EXPECT_EQ(r.failovers, 1);
  EXPECT_EQ(node(2).gets()[0].expected_epoch(), 0u) << "a follower read does not pin the epoch";

  req.set_read_preference(v1::READ_PREFERENCE_LEADER_ONLY);
  r = router_->GetClaim(req, Deadline());
  EXPECT_TRUE(absl::IsUnavailable(r.response.status())) << "fails closed";
  EXPECT_EQ(r.failovers, 0);
}

// Node side of a listing: the claims of `ids` on the request's shard, after
// the shard's page token, at most page_size of them.
FakeNode::Handler<v1::ListClaimsRequest, v1::ListClaimsResponse> Lister(
    std::vector<std::string> ids) {
  return [ids](const v1::ListClaimsRequest& r) -> absl::StatusOr<v1::ListClaimsResponse> {
    std::string after;
    if (!r.page_token().empty()) {
      absl::StatusOr<std::string> decoded =
          DecodePageToken(r.page_token(), r.tenant(), ListScope(r.shard()));
      if (!decoded.ok()) return decoded.status();
      after = *decoded;
    }
    v1::ListClaimsResponse resp;
    for (const std::string& id : ids) {
      if (id <= after) continue;
      if (resp.records_size() == static_cast<int>(r.page_size())) {
        resp.set_next_page_token(EncodePageToken(r.tenant(), ListScope(r.shard()), after));
        break;
      }
      resp.add_records()->mutable_claim()->set_claim_id(id);
      after = id;
    }
    resp.add_read_at()->set_lsn(r.shard() + 100);
    return resp;
  };
}

std::vector<std::string> Ids(const v1::ListClaimsResponse& r) {
  std::vector<std::string> ids;
  for (const auto& rec : r.records()) ids.push_back(rec.claim().claim_id());
  return ids;
}

TEST_F(RouterTest, ListClaimsPagesThroughEveryShardInClaimIdOrder) {
  StartNodes(2);
  MakeRouter(Table(2, 1));  // Shard 0 on n1, shard 1 on n2.
  node(1).OnListClaims(Lister({"a", "c", "d", "g"}));
  node(2).OnListClaims(Lister({"b", "e", "f"}));
  v1::ListClaimsRequest req;
  req.set_tenant("acme");
  req.set_page_size(3);
  std::vector<std::vector<std::string>> pages;
  for (int i = 0; i < 5; ++i) {
    ReadResult<v1::ListClaimsResponse> r = router_->ListClaims(req, Deadline());
    ASSERT_TRUE(r.response.ok()) << r.response.status();
    pages.push_back(Ids(*r.response));
    ASSERT_EQ(r.response->read_at_size(), 2);
    EXPECT_EQ(r.response->read_at(0).lsn(), 100u) << "shard order";
    EXPECT_EQ(r.response->read_at(1).lsn(), 101u);
    if (r.response->next_page_token().empty()) break;
    req.set_page_token(r.response->next_page_token());
  }
  EXPECT_THAT(
      pages, ElementsAre(ElementsAre("a", "b", "c"), ElementsAre("d", "e", "f"), ElementsAre("g")));
  // Each node got its own shard's token for the listing's position.
  const std::vector<v1::ListClaimsRequest> asked = node(2).lists();
  ASSERT_EQ(asked.size(), 3u);
  const v1::ListClaimsRequest& second = asked[1];
  EXPECT_EQ(second.shard(), 1u);
  EXPECT_EQ(DecodePageToken(second.page_token(), "acme", ListScope(uint32_t{1})).value_or(""), "c");
}

TEST_F(RouterTest, ListClaimsRefusesATokenOfAnotherListing) {
  StartNodes(1);
  MakeRouter(Table(2, 1));
  v1::ListClaimsRequest req;
  req.set_tenant("acme");
  req.set_page_token(EncodePageToken("acme", ListScope(uint32_t{0}), "c"));  // One shard's.
  ReadResult<v1::ListClaimsResponse> r = router_->ListClaims(req, Deadline());
  EXPECT_TRUE(absl::IsInvalidArgument(r.response.status())) << r.response.status();
  EXPECT_TRUE(node(1).lists().empty());
}

TEST_F(RouterTest, ListClaimsAsksEveryShardAtOnceAndNamesTheLowestFailingShard) {
  StartNodes(3);
  MakeRouter(Table(3, 1));
  // Every shard answers only once all three were asked: on a pool of two
  // workers, the caller must run one of the calls itself.
  std::atomic<int> asked{0};
  absl::Notification all_asked;
  auto meet = [&](absl::Status answer) {
    return [&, answer](const v1::ListClaimsRequest&) -> absl::StatusOr<v1::ListClaimsResponse> {
      if (++asked == 3) all_asked.Notify();
      if (!all_asked.WaitForNotificationWithTimeout(absl::Seconds(20))) {
        return absl::DeadlineExceededError("the shards were asked one after another");
      }
      if (!answer.ok()) return answer;
      return v1::ListClaimsResponse();
    };
  };
  ThreadPool two(2);
  router_ = std::make_unique<Router>(placement_.get(), &client_, &two, RouterOptions());
  node(1).OnListClaims(meet(absl::OkStatus()));
  node(2).OnListClaims(meet(absl::NotFoundError("shard 1 failed")));
  node(3).OnListClaims(meet(absl::NotFoundError("shard 2 failed")));
  v1::ListClaimsRequest req;
  req.set_tenant("acme");
  ReadResult<v1::ListClaimsResponse> r = router_->ListClaims(req, Deadline());
  EXPECT_EQ(r.response.status(), absl::NotFoundError("shard 1 failed"));
  router_.reset();
}

TEST_F(RouterTest, AQueryFailsOverOnceAndSendsLaterPhasesToTheReplicaThatAnswered) {
  StartNodes(2);
  MakeRouter(Table(1, 2));
  node(1).Stop();
  node(2).OnStats([](const v1::ShardStatsRequest&) -> absl::StatusOr<v1::ShardStatsResponse> {
    v1::ShardStatsResponse resp;
    resp.mutable_stats()->set_docs(1);
    resp.mutable_stats()->set_total_length(3);
    (*resp.mutable_stats()->mutable_df())["sea"] = 1;
    return resp;
  });
  node(2).OnLegs([](const v1::ShardLegsRequest&) -> absl::StatusOr<v1::ShardLegsResponse> {
    v1::ShardLegsResponse resp;
    v1::ScoredId* hit = resp.add_lexical();
    hit->set_id("c1");
    hit->set_score(1.5);
    resp.set_vector_plan("none");
    resp.mutable_read_at()->set_lsn(7);
    return resp;
  });
  node(2).OnFetch([](const v1::ShardFetchRequest& r) -> absl::StatusOr<v1::ShardFetchResponse> {
    v1::ShardFetchResponse resp;
    for (const auto& id : r.claim_ids()) {
      resp.add_hits()->mutable_record()->mutable_claim()->set_claim_id(id);
    }
    return resp;
  });
  v1::QueryRequest req;
  req.set_tenant("acme");
  req.set_text("sea");
  req.set_read_preference(v1::READ_PREFERENCE_ANY_HEALTHY);
  ReadResult<v1::QueryResponse> r = router_->Query(req, Deadline());
  ASSERT_TRUE(r.response.ok()) << r.response.status();
  ASSERT_EQ(r.response->hits_size(), 1);
  EXPECT_EQ(r.response->hits(0).record().claim().claim_id(), "c1");
  EXPECT_DOUBLE_EQ(r.response->hits(0).score(), 1.5);
  EXPECT_EQ(r.failovers, 1) << "n1 failed the statistics; legs and fetch went to n2";
  EXPECT_EQ(node(2).shard_query_calls(), 3);
}

TEST_F(RouterTest, ClusterInfoReportsEachShardAsItsLeaderDid) {
  StartNodes(2);
  v1::Placement table = Table(2, 2);
  table.mutable_shards(1)->mutable_replicas(0)->set_last_lsn(42);
  MakeRouter(table);
  absl::StatusOr<v1::NodeInfo> info = router_->ClusterInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->node_id(), "router");
  EXPECT_EQ(info->shard_count(), 2u);
  ASSERT_EQ(info->replicas_size(), 2);
  EXPECT_EQ(info->replicas(1).leader_node_id(), "n2");
  EXPECT_EQ(info->replicas(1).last_lsn(), 42u);
}

}  // namespace
}  // namespace dash::router
