#include "node/shard/shard_host.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using namespace query::testing;  // NOLINT: test builders

const char* kTexts[] = {
    "Arctic sea ice extent is declining rapidly",
    "Polar bears depend on sea ice to hunt seals",
    "Global sea level rise is accelerating",
    "Coral reefs bleach when ocean temperatures rise",
    "Glaciers in the Alps are retreating",
    "Ocean acidification harms shell-forming organisms",
    "Sea ice loss amplifies Arctic warming",
    "Permafrost thaw releases methane",
    "Heat waves are becoming more frequent",
    "Antarctic ice sheets lose mass to the ocean",
};

class ShardHostTest : public ::testing::Test {
 protected:
  std::unique_ptr<ShardHost> MakeHost(uint32_t shards) {
    HostOptions o;
    o.node_id = "n";
    o.data_dir = (std::filesystem::path(::testing::TempDir()) /
                  absl::StrCat("host-", shards, "-",
                               ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                     .string();
    std::filesystem::remove_all(o.data_dir);
    dirs_.push_back(o.data_dir);
    o.shard_count = shards;
    auto host = ShardHost::Open(o);
    EXPECT_TRUE(host.ok()) << host.status();
    // The same claims, each written to the shard it belongs to.
    int n = 0;
    for (const char* text : kTexts) {
      const std::string id = absl::StrCat("c", n++);
      v1::WriteRequest req;
      req.set_tenant("t");
      *req.add_ops() = ClaimOp(id, text);
      *req.add_ops() = EvidenceOp(id, "e");
      req.mutable_ops(1)->mutable_evidence()->mutable_citation()->set_quote(
          absl::StrCat("Observation ", n, " about ", text));
      auto r = (*host)->replica(ShardOf("t", id, shards))->WriteAndWait(req);
      EXPECT_TRUE(r.ok()) << r.status();
    }
    return std::move(*host);
  }
  void TearDown() override {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  static std::vector<std::pair<std::string, double>> Ranking(const v1::QueryResponse& r) {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& h : r.hits()) out.emplace_back(h.record().claim().claim_id(), h.score());
    return out;
  }
  std::vector<std::string> dirs_;
};

TEST_F(ShardHostTest, RankingDoesNotDependOnShardCount) {
  auto one = MakeHost(1);
  auto four = MakeHost(4);
  for (const char* q : {"sea ice", "ocean", "arctic warming", "glaciers retreat alps", "ice"}) {
    v1::QueryRequest req;
    req.set_tenant("t");
    req.set_text(q);
    req.set_k(5);
    auto a = one->Query(req);
    auto b = four->Query(req);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(b->read_at_size(), 4);
    const auto ra = Ranking(*a), rb = Ranking(*b);
    ASSERT_EQ(ra.size(), rb.size()) << q;
    ASSERT_FALSE(ra.empty()) << q;
    for (size_t i = 0; i < ra.size(); ++i) {
      EXPECT_EQ(ra[i].first, rb[i].first) << q << " rank " << i + 1;
      EXPECT_NEAR(ra[i].second, rb[i].second, 1e-9) << q;
      EXPECT_EQ(b->hits(i).lexical().rank(), i + 1);
    }
  }
}

TEST_F(ShardHostTest, NodeInfoSaysWhereEachReplicasBytesAre) {
  auto host = MakeHost(2);
  const v1::NodeInfo info = host->Info();
  ASSERT_EQ(info.replicas_size(), 2);
  for (const v1::ReplicaInfo& r : info.replicas()) {
    std::map<std::string, uint64_t> memtable;
    for (const auto& f : r.storage().families()) memtable[f.name()] = f.memtable_bytes();
    // Every family, by name; nothing flushed yet, so the writes are in the
    // memtables and the write-ahead log.
    EXPECT_EQ(memtable.size(), static_cast<size_t>(storage::Family::kCount));
    EXPECT_GT(memtable["claims"], memtable["edges"]) << "shard " << r.shard();
    EXPECT_GT(memtable["evidence"], memtable["edges"]) << "shard " << r.shard();
    EXPECT_GT(memtable["log"], memtable["edges"]) << "shard " << r.shard();
    EXPECT_GT(r.storage().wal_bytes(), 0u) << "shard " << r.shard();
  }
}

TEST_F(ShardHostTest, QueryReturnsEvidenceWhenAsked) {
  auto host = MakeHost(2);
  v1::QueryRequest req;
  req.set_tenant("t");
  req.set_text("permafrost methane");
  auto r = host->Query(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->hits_size(), 1);
  EXPECT_EQ(r->hits(0).record().claim().claim_id(), "c7");
  EXPECT_EQ(r->hits(0).record().evidence_size(), 0);
  req.set_include_evidence(true);
  r = host->Query(req);
  ASSERT_EQ(r->hits(0).record().evidence_size(), 1);
  // Another tenant sees nothing.
  req.set_tenant("other");
  EXPECT_EQ(host->Query(req)->hits_size(), 0);
}

TEST_F(ShardHostTest, BadQueriesNameTheField) {
  auto host = MakeHost(1);
  v1::QueryRequest req;
  req.set_tenant("t");
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("text:"));
  req.set_text("ice");
  req.set_k(5000);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("k:"));
  req.set_k(10);
  req.mutable_bm25()->set_b(1.5);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("bm25.b:"));
  req.mutable_bm25()->clear_b();
  req.mutable_bm25()->set_k1(-1);
  EXPECT_THAT(std::string(host->Query(req).status().message()), ::testing::StartsWith("bm25.k1:"));
  req.set_tenant("bad tenant");
  EXPECT_EQ(host->Query(req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dash::shard

namespace dash::shard {
namespace {

class ShardHostListTest : public ShardHostTest {};

// Page tokens are opaque and checked: random bytes, base64 of a claim id (what
// tokens used to be) and another tenant's or listing's token are refused,
// where they used to give INTERNAL or silently start after "junk".
TEST_F(ShardHostListTest, PageTokensAreCheckedAndPagesCoverEveryClaimOnce) {
  std::unique_ptr<ShardHost> host = MakeHost(4);
  v1::ListClaimsRequest req;
  req.set_tenant("t");
  req.set_page_size(3);
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    auto r = host->ListClaims(req);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& rec : r->records()) seen.push_back(rec.claim().claim_id());
    if (r->next_page_token().empty()) break;
    req.set_page_token(r->next_page_token());
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(absl::StrCat("c", i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(seen, expected);

  req.set_page_token("");
  req.set_page_size(2);
  auto first = host->ListClaims(req);
  ASSERT_TRUE(first.ok());
  const std::string token = first->next_page_token();
  auto refused = [&](v1::ListClaimsRequest bad, const std::string& what) {
    auto r = host->ListClaims(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << what << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith("page_token: ")) << what;
  };
  v1::ListClaimsRequest bad = req;
  bad.set_page_token(std::string("\x9c\x00\xff\x13garbage", 11));
  refused(bad, "random bytes");
  bad.set_page_token(absl::WebSafeBase64Escape("junk"));
  refused(bad, "base64 of a claim id");
  bad = req;
  bad.set_tenant("other");
  bad.set_page_token(token);
  refused(bad, "another tenant's token");
  bad = req;
  bad.set_shard(1);
  bad.set_page_token(token);
  refused(bad, "a token of the listing of every shard, for one shard");
}

TEST_F(ShardHostListTest, OutOfRangeShardsAndUnknownPreferencesAreInvalidArguments) {
  std::unique_ptr<ShardHost> host = MakeHost(4);
  v1::ListClaimsRequest list;
  list.set_tenant("t");
  list.set_shard(99);
  auto l = host->ListClaims(list);
  EXPECT_TRUE(absl::IsInvalidArgument(l.status())) << l.status();
  EXPECT_THAT(std::string(l.status().message()), ::testing::StartsWith("shard: "));
  list.clear_shard();
  list.set_read_preference(static_cast<v1::ReadPreference>(99));
  EXPECT_TRUE(absl::IsInvalidArgument(host->ListClaims(list).status()));
  v1::GetClaimRequest get;
  get.set_tenant("t");
  get.set_claim_id("c1");
  get.set_read_preference(static_cast<v1::ReadPreference>(99));
  auto g = host->GetClaim(get);
  EXPECT_TRUE(absl::IsInvalidArgument(g.status())) << g.status();
  EXPECT_THAT(std::string(g.status().message()), ::testing::StartsWith("read_preference: "));
}

}  // namespace
}  // namespace dash::shard

namespace dash::shard {
namespace {

// Right after a cluster settles, a node may not have opened (or adopted the
// role of) a replica the placement already gives it. Writes routed there
// used to fail FAILED_PRECONDITION ("not hosted"), which tells a client to
// fix its state; they are transient, so UNAVAILABLE (retry) with a hint.
TEST(ShardHostManagedTest, AReplicaAssignedButNotYetOpenOrAdoptedIsRetryable) {
  HostOptions o;
  o.node_id = "n1";
  o.data_dir = (std::filesystem::path(::testing::TempDir()) / "host-managed-opening").string();
  std::filesystem::remove_all(o.data_dir);
  o.shard_count = 4;
  auto host = ShardHost::Open(o, /*managed=*/true);
  ASSERT_TRUE(host.ok()) << host.status();
  auto write = [&](uint32_t shard) {
    v1::WriteRequest req;
    for (int i = 0;; ++i) {
      const std::string id = absl::StrCat("c", i);
      if (ShardOf("t", id, 4) != shard) continue;
      req = ClaimBatch("t", id);
      break;
    }
    req.set_expected_epoch(1);
    absl::Notification done;
    absl::Status result;
    (*host)->Write(req, [&](absl::StatusOr<WriteResult> r) {
      result = r.status();
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  };
  (*host)->SetAssigned({1});
  absl::Status opening = write(1);
  EXPECT_TRUE(absl::IsUnavailable(opening)) << opening;
  EXPECT_THAT(std::string(opening.message()), ::testing::HasSubstr("still opening"));
  // The hint marks a refusal before anything was logged: routers retry it.
  ASSERT_TRUE(GetRoutingHint(opening).has_value());
  EXPECT_EQ(GetRoutingHint(opening)->shard(), 1u);
  EXPECT_TRUE(absl::IsFailedPrecondition(write(2))) << "not assigned here: refresh placement";
  ASSERT_TRUE((*host)->AddReplica(1).ok());
  absl::Status adopting = write(1);
  EXPECT_TRUE(absl::IsUnavailable(adopting)) << adopting;
  EXPECT_TRUE(GetRoutingHint(adopting).has_value());
  host->reset();
  std::filesystem::remove_all(o.data_dir);
}

}  // namespace
}  // namespace dash::shard

namespace dash::shard {
namespace {

// A claim's evidence comes in pages when asked, in evidence_id order, each
// piece once; the page token is bound to its claim.
TEST_F(ShardHostListTest, GetClaimPagesEvidenceWithTokensBoundToTheClaim) {
  std::unique_ptr<ShardHost> host = MakeHost(4);
  v1::WriteRequest req = ClaimBatch("t", "many", 7);
  ASSERT_TRUE(host->replica(ShardOf("t", "many", 4))->WriteAndWait(req).ok());
  v1::GetClaimRequest get;
  get.set_tenant("t");
  get.set_claim_id("many");
  auto all = host->GetClaim(get);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->record().evidence_size(), 7);
  EXPECT_TRUE(all->next_evidence_page_token().empty());

  get.set_evidence_page_size(3);
  std::vector<std::string> seen;
  std::vector<int> sizes;
  for (int page = 0; page < 5; ++page) {
    auto r = host->GetClaim(get);
    ASSERT_TRUE(r.ok()) << r.status();
    sizes.push_back(r->record().evidence_size());
    for (const auto& e : r->record().evidence()) seen.push_back(e.evidence_id());
    if (r->next_evidence_page_token().empty()) break;
    get.set_evidence_page_token(r->next_evidence_page_token());
  }
  EXPECT_THAT(sizes, ::testing::ElementsAre(3, 3, 1));
  std::vector<std::string> expected;
  for (const auto& e : all->record().evidence()) expected.push_back(e.evidence_id());
  EXPECT_EQ(seen, expected);

  get.set_evidence_page_token("");
  auto first = host->GetClaim(get);
  ASSERT_TRUE(first.ok());
  v1::GetClaimRequest other = get;
  other.set_claim_id("c1");
  other.set_evidence_page_token(first->next_evidence_page_token());
  auto refused = host->GetClaim(other);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::StartsWith("evidence_page_token: "));
  v1::GetClaimRequest no_size = get;
  no_size.set_evidence_page_size(0);
  no_size.set_evidence_page_token(first->next_evidence_page_token());
  EXPECT_TRUE(absl::IsInvalidArgument(host->GetClaim(no_size).status()));
  get.set_evidence_page_size(1001);
  EXPECT_TRUE(absl::IsInvalidArgument(host->GetClaim(get).status()));
}

}  // namespace
}  // namespace dash::shard
