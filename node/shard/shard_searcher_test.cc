// ClaimReader and ShardSearcher on their own: over real storage (RocksDB in a
// temporary directory) written by the batch applier, with the read views a
// replica would give them.
#include "node/shard/shard_searcher.h"

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/batch_applier.h"
#include "node/shard/claim_reader.h"
#include "node/shard/read_views.h"
#include "node/storage/keys.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace query::testing;  // NOLINT: test builders

class ShardSearcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            ("searcher-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    std::filesystem::remove_all(dir_);
    auto engine = storage::OpenRocksEngine(dir_, {});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }
  void TearDown() override {
    searcher_.reset();
    views_.reset();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Applies `request` as log record `lsn` and commits it; returns the claims
  // it touched, as (tenant, id).
  std::vector<std::pair<std::string, std::string>> Apply(const v1::WriteRequest& request,
                                                         uint64_t lsn) {
    storage::LogPayload payload;
    payload.set_tenant(request.tenant());
    *payload.mutable_ops() = request.ops();
    payload.set_vector_metric(request.vector_metric());
    auto ws = engine_->NewWriteSet();
    std::vector<std::string> claims;
    EXPECT_TRUE(ApplyBatch(payload, CommitPoint{1, lsn, 1000}, ws.get(), &claims).ok());
    storage::ShardMeta meta;
    meta.set_epoch(1);
    meta.set_last_lsn(lsn);
    ws->Put(storage::Family::kMeta, storage::keys::kShardMetaKey, meta.SerializeAsString());
    EXPECT_TRUE(engine_->Commit(*ws, true).ok());
    lsn_ = lsn;
    std::vector<std::pair<std::string, std::string>> touched;
    for (auto& c : claims) touched.emplace_back(request.tenant(), c);
    return touched;
  }
  // A searcher whose readable view is the storage as it is now (or none).
  void OpenSearcher(bool readable = true) { ASSERT_TRUE(TryOpenSearcher(readable).ok()); }
  absl::Status TryOpenSearcher(bool readable = true) {
    views_ = std::make_unique<ReadViews>(
        0, std::shared_ptr<const storage::Reader>(engine_->NewSnapshot()), lsn_, readable);
    searcher_ = std::make_unique<ShardSearcher>(0, views_.get(), &reader_);
    ShardSearcher::LexicalOpen open;
    open.engine = engine_.get();
    open.dir = dir_ + "/lexical";
    open.last_lsn = lsn_;
    open.committed_lsn = [this] { return lsn_; };
    open.background = false;
    return searcher_->OpenLexical(open);
  }
  static v1::WriteRequest WithEmbedding(const std::string& id, std::vector<float> e) {
    v1::WriteRequest req = ClaimBatch("acme", id);
    for (float x : e) req.mutable_ops(0)->mutable_claim()->add_embedding(x);
    return req;
  }

  std::string dir_;
  std::unique_ptr<storage::Engine> engine_;
  ClaimReader reader_{0, "n1"};
  std::unique_ptr<ReadViews> views_;
  std::unique_ptr<ShardSearcher> searcher_;
  uint64_t lsn_ = 0;
};

TEST_F(ShardSearcherTest, TheReaderPagesClaimsAndEvidenceAndSaysWhatStateItRead) {
  Apply(ClaimBatch("acme", "c1", 3), 1);
  Apply(ClaimBatch("acme", "c2", 1), 2);
  Apply(ClaimBatch("other", "c0", 1), 3);
  auto snapshot = engine_->NewSnapshot();
  bool more = false;
  auto got = reader_.GetClaim(*snapshot, "acme", "c1", 2, "c1-e0", &more);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->record().evidence_size(), 2);
  EXPECT_EQ(got->record().evidence(0).evidence_id(), "c1-e1");
  EXPECT_FALSE(more) << "c1-e2 was the last";
  EXPECT_EQ(got->read_at().lsn(), 3u);
  EXPECT_EQ(got->read_at().served_by(), "n1");
  EXPECT_TRUE(absl::IsNotFound(reader_.GetClaim(*snapshot, "acme", "c0", 0, "", nullptr).status()))
      << "another tenant's claim is not found";
  auto page = reader_.ListClaims(*snapshot, "acme", "", 1, false);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_EQ(page->records[0].claim().claim_id(), "c1");
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->records[0].evidence_size(), 0) << "evidence only when asked";
  page = reader_.ListClaims(*snapshot, "acme", "c1", 10, true);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_EQ(page->records[0].claim().claim_id(), "c2");
  EXPECT_EQ(page->records[0].evidence_size(), 1);
  EXPECT_FALSE(page->more);
}

TEST_F(ShardSearcherTest, NoReadableViewMeansUnavailableNotAnEmptyAnswer) {
  Apply(ClaimBatch("acme", "c1"), 1);
  OpenSearcher(/*readable=*/false);
  query::LegRequest req;
  req.terms = {"claim"};
  req.depth = 10;
  EXPECT_TRUE(absl::IsUnavailable(searcher_->RunLegs("acme", req).status()));
  EXPECT_TRUE(absl::IsUnavailable(searcher_->Stats("acme", {"claim"}).status()));
  EXPECT_TRUE(absl::IsUnavailable(searcher_->FetchHits("acme", {"c1"}, {}).status()));
}

TEST_F(ShardSearcherTest, VectorsLoadedAtOpenAndRefreshedAfterACommitAreSearched) {
  Apply(WithEmbedding("c1", {1, 0, 0}), 1);
  OpenSearcher();
  query::LegRequest req;
  req.embedding = {0, 1, 0};
  req.depth = 10;
  req.vector_mode = v1::VECTOR_SEARCH_EXACT;
  auto legs = searcher_->RunLegs("acme", req);
  ASSERT_TRUE(legs.ok()) << legs.status();
  ASSERT_EQ(legs->vector.size(), 1u);
  EXPECT_EQ(legs->vector[0].id, "c1");

  // A commit that adds c2 and deletes c1: the searcher learns both.
  auto touched = Apply(WithEmbedding("c2", {0, 1, 0}), 2);
  v1::WriteRequest del;
  del.set_tenant("acme");
  *del.add_ops() = DeleteOp("c1");
  for (auto& t : Apply(del, 3)) touched.push_back(t);
  searcher_->Refresh(*engine_->NewSnapshot(), touched, 3);
  legs = searcher_->RunLegs("acme", req);
  ASSERT_TRUE(legs.ok()) << legs.status();
  ASSERT_EQ(legs->vector.size(), 1u);
  EXPECT_EQ(legs->vector[0].id, "c1") << "the readable view is still at lsn 1";
  views_->Queue(3, std::shared_ptr<const storage::Reader>(engine_->NewSnapshot()),
                ReadViews::Touched{{"acme", {"c1", "c2"}}});
  views_->Advance(3);
  legs = searcher_->RunLegs("acme", req);
  ASSERT_TRUE(legs.ok()) << legs.status();
  ASSERT_EQ(legs->vector.size(), 1u);
  EXPECT_EQ(legs->vector[0].id, "c2");
  EXPECT_EQ(legs->vector_plan, "exact");

  req.embedding = {1, 0};
  auto wrong = searcher_->RunLegs("acme", req);
  EXPECT_TRUE(absl::IsInvalidArgument(wrong.status())) << wrong.status();
  EXPECT_THAT(wrong.status().message(), HasSubstr("embedding: has 2 dimensions"));
  req.embedding = {0, 0, 0};
  wrong = searcher_->RunLegs("acme", req);
  EXPECT_TRUE(absl::IsInvalidArgument(wrong.status())) << "a zero vector under cosine";
}

TEST_F(ShardSearcherTest, EmbeddingsWithoutAStoredDimensionAreDataLoss) {
  Apply(WithEmbedding("c1", {1, 0, 0}), 1);
  auto ws = engine_->NewWriteSet();
  ws->Delete(storage::Family::kTenants, storage::keys::Tenant("acme"));
  ASSERT_TRUE(engine_->Commit(*ws, true).ok());
  absl::Status st = TryOpenSearcher();
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("tenant \"acme\" has embeddings but no dimension"));
}

TEST_F(ShardSearcherTest, FilterResultsAreCachedUntilTheirTenantIsInvalidated) {
  Apply(ClaimBatch("acme", "c1"), 1);
  OpenSearcher();
  query::LegRequest req;
  req.terms = {"claim"};
  req.depth = 10;
  req.support_only = true;  // Goes through the prefilter cache.
  ASSERT_TRUE(searcher_->RunLegs("acme", req).ok());
  ASSERT_TRUE(searcher_->RunLegs("acme", req).ok());
  EXPECT_EQ(searcher_->FilterCacheStats().hits, 1u);
  searcher_->InvalidateFilters({{"other", {}}});
  ASSERT_TRUE(searcher_->RunLegs("acme", req).ok());
  EXPECT_EQ(searcher_->FilterCacheStats().hits, 2u) << "another tenant's invalidation";
  searcher_->InvalidateFilters({{"acme", {}}});
  ASSERT_TRUE(searcher_->RunLegs("acme", req).ok());
  EXPECT_EQ(searcher_->FilterCacheStats().hits, 2u) << "recomputed after its tenant's";
}

TEST_F(ShardSearcherTest, AFilterResultIsPatchedWithTheClaimsChangedSinceAndEqualsARescan) {
  Apply(ClaimBatch("acme", "c1"), 1);
  Apply(ClaimBatch("acme", "c2"), 2);
  OpenSearcher();
  query::LegRequest req;
  req.terms = {"claim"};
  req.depth = 10;
  req.support_only = true;  // Goes through the prefilter cache.
  auto ids = [&](bool bypass) {
    req.bypass_filter_cache = bypass;
    auto stats = searcher_->Stats("acme", req.terms);
    EXPECT_TRUE(stats.ok()) << stats.status();
    req.stats = *stats;
    auto legs = searcher_->RunLegs("acme", req);
    EXPECT_TRUE(legs.ok()) << legs.status();
    std::set<std::string> out;
    for (const auto& c : legs->lexical) out.insert(c.id);
    return out;
  };
  EXPECT_EQ(ids(false), (std::set<std::string>{"c1", "c2"}));
  // c2 loses its support (its evidence now contradicts), c3 arrives with
  // support, c1 is deleted: each changes the filter's answer.
  v1::WriteRequest change;
  change.set_tenant("acme");
  *change.add_ops() = EvidenceOp("c2", "c2-e0", v1::STANCE_CONTRADICTS);
  auto touched = Apply(change, 3);
  for (auto& t : Apply(ClaimBatch("acme", "c3"), 4)) touched.push_back(t);
  v1::WriteRequest del;
  del.set_tenant("acme");
  *del.add_ops() = DeleteOp("c1");
  for (auto& t : Apply(del, 5)) touched.push_back(t);
  searcher_->Refresh(*engine_->NewSnapshot(), touched, 5);
  ReadViews::Touched changed;
  for (const auto& [tenant, id] : touched) changed[tenant].insert(id);
  views_->Queue(5, std::shared_ptr<const storage::Reader>(engine_->NewSnapshot()), changed);
  searcher_->InvalidateFilters(views_->Advance(5).touched);
  EXPECT_EQ(ids(false), (std::set<std::string>{"c3"}));
  EXPECT_EQ(searcher_->FilterCacheStats().patches, 1u) << "patched, not rescanned";
  EXPECT_EQ(ids(true), (std::set<std::string>{"c3"})) << "a rescan agrees";
}

}  // namespace
}  // namespace dash::shard
