// Query semantics through ShardHost: filters, stance modes on labelled data,
// vectors and fusion, graph payload, citation integrity, the prefilter cache.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "common/thread_pool.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "node/shard/local_shard_target.h"
#include "node/shard/shard_host.h"
#include "node/storage/keys.h"
#include "query/query_runner.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using namespace query::testing;  // NOLINT: test builders

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(4); }
  void TearDown() override {
    host_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(uint32_t shards) {
    host_.reset();
    HostOptions o;
    o.node_id = "n";
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("query-", ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    o.data_dir = dir_;
    o.shard_count = shards;
    shards_ = shards;
    host_ = std::move(*ShardHost::Open(o));
  }
  void Write(v1::WriteRequest req) {
    const uint32_t shard =
        ShardOf(req.tenant(), std::string(query::OwningClaimId(req.ops(0))), shards_);
    auto r = host_->replica(shard)->WriteAndWait(req);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  // A claim with metadata year, an optional embedding and one evidence.
  void Put(const std::string& id, const std::string& text, int64_t year,
           std::vector<float> embedding = {}, v1::Stance stance = v1::STANCE_SUPPORTS) {
    v1::WriteRequest req = ClaimBatch("t", id, 1);
    auto* c = req.mutable_ops(0)->mutable_claim();
    c->set_text(text);
    (*c->mutable_metadata())["year"].set_int_value(year);
    for (float f : embedding) c->add_embedding(f);
    req.mutable_ops(1)->mutable_evidence()->set_stance(stance);
    Write(req);
  }
  v1::QueryResponse Query(const v1::QueryRequest& req) {
    auto r = host_->Query(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::QueryResponse();
  }
  static std::vector<std::string> Ids(const v1::QueryResponse& r) {
    std::vector<std::string> out;
    for (const auto& h : r.hits()) out.push_back(h.record().claim().claim_id());
    return out;
  }
  static v1::QueryRequest Text(const std::string& text, uint32_t k = 10) {
    v1::QueryRequest q;
    q.set_tenant("t");
    q.set_text(text);
    q.set_k(k);
    return q;
  }

  std::string dir_;
  uint32_t shards_ = 4;
  std::unique_ptr<ShardHost> host_;
};

TEST_F(QueryTest, FiltersApplyBeforeRankingSoKHitsComeBack) {
  // 40 claims mention "ice"; the 12 from 2020 are the weakest matches.
  for (int i = 0; i < 40; ++i) {
    const bool old = i < 28;
    Put(absl::StrCat("c", i), old ? "ice ice ice sheet" : "ice and many other words here",
        old ? 1990 : 2020);
  }
  v1::QueryRequest q = Text("ice", 10);
  auto* f = q.mutable_filter()->add_metadata();
  f->set_key("year");
  f->mutable_eq()->set_int_value(2020);
  auto r = Query(q);
  ASSERT_EQ(r.hits_size(), 10);  // Not 0: a post-filter of the global top 10 would find none.
  for (const auto& h : r.hits())
    EXPECT_EQ(h.record().claim().metadata().at("year").int_value(), 2020);
  // Range: 1980 <= year < 2000.
  v1::QueryRequest range = Text("ice", 100);
  auto* rf = range.mutable_filter()->add_metadata();
  rf->set_key("year");
  rf->mutable_range()->mutable_min()->set_int_value(1980);
  rf->mutable_range()->mutable_max()->set_int_value(2000);
  rf->mutable_range()->set_max_exclusive(true);
  EXPECT_EQ(Query(range).hits_size(), 28);
}

TEST_F(QueryTest, PrefilterCacheIsInvalidatedByWrites) {
  Put("a", "glacier retreat", 2020);
  v1::QueryRequest q = Text("glacier");
  auto* f = q.mutable_filter()->add_metadata();
  f->set_key("year");
  f->mutable_eq()->set_int_value(2020);
  EXPECT_THAT(Ids(Query(q)), ::testing::ElementsAre("a"));
  EXPECT_THAT(Ids(Query(q)), ::testing::ElementsAre("a"));
  uint64_t hits = 0;
  const v1::NodeInfo info = host_->Info();
  for (const auto& r : info.replicas()) hits += r.filter_cache().hits();
  EXPECT_GE(hits, 4u);                // The second query hit the cache on every shard.
  Put("b", "glacier advance", 2020);  // A new matching claim must appear at once.
  EXPECT_THAT(Ids(Query(q)), ::testing::UnorderedElementsAre("a", "b"));
  Put("a", "glacier retreat", 1999);  // An update that stops matching must vanish at once.
  EXPECT_THAT(Ids(Query(q)), ::testing::ElementsAre("b"));
}

TEST_F(QueryTest, VectorLegExactAndApproximateAgreeAndHybridFuses) {
  // Claim i points at angle i degrees in 2-D; the query at 10 degrees.
  for (int i = 0; i < 60; ++i) {
    const double a = i * M_PI / 180;
    Put(absl::StrCat("v", i), i == 50 ? "special keyword" : "filler text", 2000 + i % 2,
        {static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))});
  }
  v1::QueryRequest q;
  q.set_tenant("t");
  q.set_k(3);
  q.add_embedding(std::cos(10 * M_PI / 180));
  q.add_embedding(std::sin(10 * M_PI / 180));
  auto r = Query(q);
  // v9 and v11 are equally close in exact arithmetic; float rounding decides.
  const auto ids = Ids(r);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], "v10");
  EXPECT_THAT(std::vector<std::string>(ids.begin() + 1, ids.end()),
              ::testing::UnorderedElementsAre("v9", "v11"));
  EXPECT_NEAR(r.hits(0).score(), 1.0, 1e-6);
  EXPECT_EQ(r.hits(0).vector().rank(), 1u);
  EXPECT_FALSE(r.hits(0).has_lexical());
  q.set_vector_mode(v1::VECTOR_SEARCH_APPROXIMATE);
  EXPECT_EQ(Ids(Query(q))[0], "v10");
  // Filter + vector: only odd years (odd i).
  auto* f = q.mutable_filter()->add_metadata();
  f->set_key("year");
  f->mutable_eq()->set_int_value(2001);
  const auto odd = Ids(Query(q));
  ASSERT_EQ(odd.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(odd.begin(), odd.begin() + 2),
              ::testing::UnorderedElementsAre("v9", "v11"));
  EXPECT_EQ(odd[2], "v13");
  // Hybrid: the lexical leg lifts v50 though it is far in vector space.
  v1::QueryRequest h;
  h.set_tenant("t");
  h.set_k(5);
  h.set_text("special keyword");
  h.add_embedding(std::cos(10 * M_PI / 180));
  h.add_embedding(std::sin(10 * M_PI / 180));
  auto hr = Query(h);
  ASSERT_EQ(hr.hits_size(), 5);
  EXPECT_EQ(hr.hits(0).record().claim().claim_id(), "v50");  // in both legs
  EXPECT_TRUE(hr.hits(0).has_lexical());
  EXPECT_TRUE(hr.hits(0).has_vector());
  EXPECT_NEAR(hr.hits(0).score(), 1.0 / 61 + 1.0 / (60 + hr.hits(0).vector().rank()), 1e-12);
  // Linear fusion with alpha 1 is the vector ranking.
  h.mutable_fusion()->mutable_linear()->set_alpha(1.0);
  EXPECT_EQ(Ids(Query(h))[0], "v10");
  // Wrong dimension.
  v1::QueryRequest bad = q;
  bad.add_embedding(0.5);
  EXPECT_THAT(std::string(host_->Query(bad).status().message()),
              ::testing::StartsWith("embedding:"));
}

TEST_F(QueryTest, VectorIndexIsRebuiltFromStorageOnRestart) {
  for (int i = 0; i < 30; ++i) {
    const double a = i * M_PI / 180;
    Put(absl::StrCat("v", i), "text", 2000,
        {static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))});
  }
  v1::WriteRequest del;
  del.set_tenant("t");
  *del.add_ops() = DeleteOp("v20");
  Write(del);
  v1::QueryRequest q;
  q.set_tenant("t");
  q.set_k(1);
  q.add_embedding(std::cos(20 * M_PI / 180));
  q.add_embedding(std::sin(20 * M_PI / 180));
  const auto before = Ids(Query(q));
  ASSERT_EQ(before.size(), 1u);
  EXPECT_NE(before[0], "v20");  // deleted: no ghost hit
  HostOptions o;
  o.node_id = "n";
  o.data_dir = dir_;
  o.shard_count = shards_;
  host_.reset();
  host_ = std::move(*ShardHost::Open(o));
  EXPECT_EQ(Ids(Query(q)), before);
  q.set_k(100);
  EXPECT_EQ(Query(q).hits_size(), 29);
}

TEST_F(QueryTest, GraphPayloadHasEdgesAmongHitsAndOneHopOut) {
  Put("a", "sea level rise", 2020);
  Put("b", "sea level rise accelerates", 2020);
  Put("c", "unrelated coral topic", 2020);
  v1::WriteRequest edges;
  edges.set_tenant("t");
  *edges.add_ops() = EdgeOp("a", "b", v1::RELATION_SUPPORTS);
  Write(edges);
  v1::WriteRequest e2;
  e2.set_tenant("t");
  *e2.add_ops() = EdgeOp("b", "c", v1::RELATION_REFINES);
  Write(e2);
  v1::QueryRequest q = Text("sea level");
  q.mutable_graph()->set_include(true);
  auto r = Query(q);
  ASSERT_EQ(r.hits_size(), 2);
  ASSERT_EQ(r.graph().edges_size(), 1);
  EXPECT_EQ(r.graph().edges(0).from_claim(), "a");
  EXPECT_EQ(r.graph().edges(0).to_claim(), "b");
  EXPECT_EQ(r.hits(0).record().edges_size(), 0);  // edges only in the graph unless asked
  q.mutable_graph()->set_one_hop(true);
  r = Query(q);
  EXPECT_EQ(r.graph().edges_size(), 2);
  EXPECT_THAT(r.graph().neighbor_claim_ids(), ::testing::ElementsAre("c"));
}

// CLIMATE-FEVER sample (deploy/sample): claims with labelled evidence.
class StanceTest : public QueryTest {
 protected:
  void SetUp() override {
    QueryTest::SetUp();
    std::ifstream in(DASH_SAMPLE_FILE);
    ASSERT_TRUE(in.good());
    std::string line;
    while (std::getline(in, line)) {
      v1::ClaimRecord rec;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &rec).ok());
      v1::WriteRequest req;
      req.set_tenant("t");
      *req.add_ops()->mutable_claim() = rec.claim();
      for (auto e : rec.evidence()) {
        e.set_claim_id(rec.claim().claim_id());
        if (e.stance() == v1::STANCE_SUPPORTS) supported_.insert(rec.claim().claim_id());
        *req.add_ops()->mutable_evidence() = e;
      }
      Write(req);
      stances_[rec.claim().claim_id()] = rec;
    }
    ASSERT_FALSE(supported_.empty());
  }
  std::set<std::string> supported_;
  std::map<std::string, v1::ClaimRecord> stances_;
};

TEST_F(StanceTest, BalancedReturnsTheStrongestOfEachSide) {
  v1::QueryRequest q = Text("global warming temperature climate", 20);
  q.set_stance_mode(v1::STANCE_MODE_BALANCED);
  auto r = Query(q);
  ASSERT_GT(r.hits_size(), 5);
  int both = 0;
  for (const auto& h : r.hits()) {
    const auto& stored = stances_.at(h.record().claim().claim_id());
    int supports = 0, contradicts = 0, stored_s = 0, stored_c = 0;
    for (const auto& e : h.record().evidence()) {
      supports += e.stance() == v1::STANCE_SUPPORTS;
      contradicts += e.stance() == v1::STANCE_CONTRADICTS;
      EXPECT_NE(e.stance(), v1::STANCE_NEUTRAL);
    }
    for (const auto& e : stored.evidence()) {
      stored_s += e.stance() == v1::STANCE_SUPPORTS;
      stored_c += e.stance() == v1::STANCE_CONTRADICTS;
    }
    // Exactly one of each side whenever the data has that side.
    EXPECT_EQ(supports, stored_s > 0 ? 1 : 0) << h.record().claim().claim_id();
    EXPECT_EQ(contradicts, stored_c > 0 ? 1 : 0) << h.record().claim().claim_id();
    both += supports && contradicts;
  }
  EXPECT_GT(both, 0);  // The sample has claims with both sides.
}

TEST_F(StanceTest, SupportOnlyDropsUnsupportedClaims) {
  v1::QueryRequest q = Text("global warming temperature climate ice sea", 1000);
  const int all = Query(q).hits_size();
  q.set_stance_mode(v1::STANCE_MODE_SUPPORT_ONLY);
  auto r = Query(q);
  ASSERT_GT(r.hits_size(), 0);
  EXPECT_LT(r.hits_size(), all);
  for (const auto& h : r.hits()) {
    EXPECT_TRUE(supported_.count(h.record().claim().claim_id())) << h.record().claim().claim_id();
    ASSERT_GT(h.record().evidence_size(), 0);
    for (const auto& e : h.record().evidence()) EXPECT_EQ(e.stance(), v1::STANCE_SUPPORTS);
  }
  // Asking for k still gives k when k supported claims match.
  q.set_k(5);
  EXPECT_EQ(Query(q).hits_size(), 5);
}

TEST_F(QueryTest, EvidenceIsVerifiedAgainstItsStoredHash) {
  Put("a", "permafrost thaw", 2020);
  // Corrupt the stored quote behind the API's back.
  host_.reset();
  const uint32_t shard = ShardOf("t", "a", 4);
  {
    auto engine = *storage::OpenRocksEngine(absl::StrCat(dir_, "/shard-", shard), {});
    auto ws = engine->NewWriteSet();
    const std::string key = storage::keys::Evidence("t", "a", "a-e0");
    v1::Evidence e;
    ASSERT_TRUE(e.ParseFromString(**ws->Get(storage::Family::kEvidence, key)));
    e.mutable_citation()->set_quote("a quote that was tampered with");
    ws->Put(storage::Family::kEvidence, key, e.SerializeAsString());
    ASSERT_TRUE(engine->Commit(*ws, true).ok());
  }
  HostOptions o;
  o.node_id = "n";
  o.data_dir = dir_;
  o.shard_count = 4;
  host_ = std::move(*ShardHost::Open(o));
  v1::QueryRequest q = Text("permafrost");
  q.set_include_evidence(true);
  auto r = Query(q);
  ASSERT_EQ(r.hits_size(), 1);
  EXPECT_EQ(r.hits(0).record().evidence_size(), 0);  // never silently returned
  ASSERT_EQ(r.hits(0).integrity_errors_size(), 1);
  EXPECT_THAT(r.hits(0).integrity_errors(0), ::testing::HasSubstr("a-e0"));
  EXPECT_EQ(r.hits(0).read_at().shard(), shard);
}

// Holds every Stats and Legs call until `expected` calls are inside at once
// (or `wait` passes): a runner that asked one shard after another would
// time out on every phase instead of meeting.
class Rendezvous {
 public:
  Rendezvous(int expected, absl::Duration wait) : expected_(expected), wait_(wait) {}
  void Arrive() {
    absl::MutexLock l(&mu_);
    const int generation = generation_;
    if (++waiting_ == expected_) {
      waiting_ = 0;
      ++generation_;
      ++met_;
      return;
    }
    struct Arg {
      const Rendezvous* r;
      int generation;
    } arg{this, generation};
    if (!mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return a->r->generation_ != a->generation;
                                  },
                                  &arg),
                              wait_)) {
      --waiting_;
      ++timeouts_;
    }
  }
  int met() const {
    absl::MutexLock l(&mu_);
    return met_;
  }
  int timeouts() const {
    absl::MutexLock l(&mu_);
    return timeouts_;
  }

 private:
  mutable absl::Mutex mu_;
  const int expected_;
  const absl::Duration wait_;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  int met_ ABSL_GUARDED_BY(mu_) = 0;
  int timeouts_ ABSL_GUARDED_BY(mu_) = 0;
};

// A local replica behind a rendezvous, optionally failing every call.
class MeetingTarget : public query::ShardTarget {
 public:
  MeetingTarget(const ShardReplica* replica, Rendezvous* rendezvous, absl::Status fail,
                absl::Duration fail_after = absl::ZeroDuration())
      : local_(replica), rendezvous_(rendezvous), fail_(std::move(fail)), fail_after_(fail_after) {}
  absl::StatusOr<index::CorpusStats> Stats(absl::string_view tenant,
                                           const std::vector<std::string>& terms) override {
    rendezvous_->Arrive();
    if (!fail_.ok()) {
      absl::SleepFor(fail_after_);
      return fail_;
    }
    return local_.Stats(tenant, terms);
  }
  absl::StatusOr<query::LegResult> Legs(absl::string_view tenant,
                                        const query::LegRequest& request) override {
    rendezvous_->Arrive();
    if (!fail_.ok()) return fail_;
    return local_.Legs(tenant, request);
  }
  absl::StatusOr<std::map<std::string, v1::QueryHit>> Fetch(
      absl::string_view tenant, const std::vector<std::string>& ids,
      const query::FetchOptions& options) override {
    return local_.Fetch(tenant, ids, options);
  }

 private:
  LocalShardTarget local_;
  Rendezvous* rendezvous_;
  const absl::Status fail_;
  const absl::Duration fail_after_;
};

// Scoring parameters are bounded so that no score overflows: k1 = 1e308 used
// to give NaN scores and a broken order.
TEST_F(QueryTest, ExtremeScoringParametersAreRefusedAndBoundedOnesScoreFinite) {
  for (int i = 0; i < 12; ++i) {
    Put(absl::StrCat("c", i), i % 2 == 0 ? "sea ice sea ice sea ice decline" : "sea level rise",
        2000 + i, {1.0f + static_cast<float>(i), 0.5f, 0, 0});
  }
  auto refused = [&](v1::QueryRequest q, const std::string& field) {
    absl::StatusOr<v1::QueryResponse> r = host_->Query(q);
    ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << field << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith(field + ": "));
  };
  v1::QueryRequest q = Text("sea ice");
  for (float f : {1.0f, 0.0f, 0.0f, 0.0f}) q.add_embedding(f);
  q.mutable_fusion()->mutable_linear()->set_alpha(0.5);
  v1::QueryRequest bad = q;
  bad.mutable_bm25()->set_k1(1e308);
  refused(bad, "bm25.k1");
  bad = q;
  bad.mutable_bm25()->set_k1(1000.5);
  refused(bad, "bm25.k1");
  bad = q;
  bad.mutable_bm25()->set_k1(std::nan(""));
  refused(bad, "bm25.k1");
  bad = Text("sea ice");
  bad.mutable_fusion()->mutable_rrf()->set_lexical_weight(1e300);
  refused(bad, "fusion.rrf.lexical_weight");
  bad = Text("sea ice");
  bad.mutable_fusion()->mutable_rrf()->set_k(1e12);
  refused(bad, "fusion.rrf.k");

  // A zero query vector under cosine names its field.
  bad = Text("");
  for (int i = 0; i < 4; ++i) bad.add_embedding(0);
  refused(bad, "embedding");

  // The bounds themselves score finite, in order.
  for (double k1 : {0.0, 1000.0}) {
    for (double b : {0.0, 1.0}) {
      v1::QueryRequest ok = q;
      ok.mutable_bm25()->set_k1(k1);
      ok.mutable_bm25()->set_b(b);
      v1::QueryResponse r = Query(ok);
      ASSERT_FALSE(r.hits().empty());
      for (int i = 0; i < r.hits_size(); ++i) {
        EXPECT_TRUE(std::isfinite(r.hits(i).score())) << "k1 " << k1 << " b " << b;
        EXPECT_TRUE(std::isfinite(r.hits(i).lexical().score()));
        if (i > 0) {
          EXPECT_GE(r.hits(i - 1).score(), r.hits(i).score());
        }
      }
    }
  }
}

TEST_F(QueryTest, ShardsAreAskedAtOnceAndRankAsASingleShard) {
  auto put_all = [&] {
    for (int i = 0; i < 40; ++i) {
      Put(absl::StrCat("c", i), i % 3 == 0 ? "sea ice sea level" : "sea level rise", 2000 + i);
    }
  };
  // The reference: one shard, so one target and nothing concurrent.
  Open(1);
  put_all();
  const v1::QueryResponse expected = Query(Text("sea ice", 10));
  ASSERT_EQ(expected.hits_size(), 10);

  Open(4);
  put_all();
  Rendezvous rendezvous(4, absl::Seconds(5));
  std::vector<std::unique_ptr<MeetingTarget>> owned;
  std::map<uint32_t, query::ShardTarget*> targets;
  for (uint32_t s = 0; s < 4; ++s) {
    owned.push_back(
        std::make_unique<MeetingTarget>(host_->replica(s).get(), &rendezvous, absl::OkStatus()));
    targets[s] = owned.back().get();
  }
  ThreadPool pool(3);  // With the caller, all four shards at once.
  absl::StatusOr<v1::QueryResponse> r = query::RunQuery(Text("sea ice", 10), targets, 4, &pool);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(rendezvous.timeouts(), 0) << "a shard was asked while another had not answered";
  EXPECT_EQ(rendezvous.met(), 2) << "statistics, then legs: all four shards at once each time";
  ASSERT_EQ(Ids(*r), Ids(expected));
  for (int i = 0; i < r->hits_size(); ++i) {
    EXPECT_DOUBLE_EQ(r->hits(i).score(), expected.hits(i).score()) << i;
  }
}

TEST_F(QueryTest, WhenSeveralShardsFailTheLowestShardsErrorIsReturned) {
  Put("c1", "sea ice", 2000);
  Rendezvous rendezvous(4, absl::Seconds(5));
  std::vector<std::unique_ptr<MeetingTarget>> owned;
  std::map<uint32_t, query::ShardTarget*> targets;
  for (uint32_t s = 0; s < 4; ++s) {
    absl::Status fail = s == 1 || s == 3
                            ? absl::UnavailableError(absl::StrCat("shard ", s, " is down"))
                            : absl::OkStatus();
    // Shard 1 answers last: the error reported is not the first to arrive.
    owned.push_back(
        std::make_unique<MeetingTarget>(host_->replica(s).get(), &rendezvous, std::move(fail),
                                        s == 1 ? absl::Milliseconds(300) : absl::ZeroDuration()));
    targets[s] = owned.back().get();
  }
  ThreadPool pool(3);  // With the caller, all four shards at once.
  absl::StatusOr<v1::QueryResponse> r = query::RunQuery(Text("sea ice", 10), targets, 4, &pool);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "shard 1 is down");
}

}  // namespace
}  // namespace dash::shard
