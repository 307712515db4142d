#include "node/shard/shard_replica.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/test_util.h"

namespace dash::shard {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace testing;  // NOLINT: test builders

// The lexical leg of one replica, best first.
std::vector<fusion::Candidate> Lexical(const ShardReplica& r, const std::string& tenant,
                                       const std::vector<std::string>& terms,
                                       const index::CorpusStats& stats, size_t k) {
  LegRequest req;
  req.terms = terms;
  req.stats = stats;
  req.depth = k;
  auto legs = r.RunLegs(tenant, req);
  EXPECT_TRUE(legs.ok()) << legs.status();
  return legs.ok() ? legs->lexical : std::vector<fusion::Candidate>{};
}

class ShardReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        ("replica-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    options_.dir = dir_.string();
    Reopen();
  }
  void TearDown() override {
    replica_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    replica_.reset();
    auto r = ShardReplica::Open(options_);
    ASSERT_TRUE(r.ok()) << r.status();
    replica_ = std::move(*r);
  }
  WriteResult MustWrite(const v1::WriteRequest& req) {
    auto r = replica_->WriteAndWait(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : WriteResult{};
  }
  // Everything a tenant holds, as one comparable string.
  std::string Dump(const std::string& tenant, ShardReplica* r = nullptr) {
    auto page = (r ? r : replica_.get())->ListClaims(tenant, "", 1000, true);
    EXPECT_TRUE(page.ok());
    std::string out;
    for (auto& rec : page->records) out += rec.ShortDebugString() + "\n";
    return out;
  }

  std::filesystem::path dir_;
  ReplicaOptions options_;
  std::unique_ptr<ShardReplica> replica_;
};

TEST_F(ShardReplicaTest, WriteReturnsTokenAndReadsBack) {
  WriteResult w = MustWrite(ClaimBatch("acme", "c1", 3));
  EXPECT_EQ(w.token.shard(), 0u);
  EXPECT_EQ(w.token.epoch(), 1u);
  EXPECT_EQ(w.token.lsn(), 1u);
  EXPECT_GT(w.commit_time_micros, 0);
  EXPECT_FALSE(w.replayed);

  auto got = replica_->GetClaim("acme", "c1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->record().claim().tenant(), "acme");
  EXPECT_EQ(got->record().claim().text(), "claim text of c1");
  EXPECT_TRUE(got->record().claim().has_created_at());
  ASSERT_EQ(got->record().evidence_size(), 3);
  // The server fills in the quote hash.
  EXPECT_EQ(got->record().evidence(0).citation().quote_sha256(),
            Sha256Hex(got->record().evidence(0).citation().quote()));
  EXPECT_EQ(got->read_at().lsn(), 1u);

  EXPECT_EQ(replica_->GetClaim("acme", "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(replica_->GetClaim("other", "c1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardReplicaTest, ClaimWithoutEvidenceIsRejectedAndNothingApplied) {
  MustWrite(ClaimBatch("acme", "c1"));
  v1::WriteRequest bad;
  bad.set_tenant("acme");
  *bad.add_ops() = EvidenceOp("c1", "extra");  // valid on its own
  *bad.add_ops() = ClaimOp("c2");              // no evidence anywhere
  auto r = replica_->WriteAndWait(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("ops[1].claim:"));
  EXPECT_EQ(replica_->State().last_lsn, 1u);
  EXPECT_EQ(replica_->GetClaim("acme", "c1")->record().evidence_size(), 1);  // "extra" not applied
  EXPECT_EQ(replica_->GetClaim("acme", "c2").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardReplicaTest, EvidenceForMissingClaimNamesTheField) {
  v1::WriteRequest bad;
  bad.set_tenant("acme");
  *bad.add_ops() = EvidenceOp("ghost", "e1");
  auto r = replica_->WriteAndWait(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("ops[0].evidence.claim_id:"));
  v1::WriteRequest edge;
  edge.set_tenant("acme");
  *edge.add_ops() = EdgeOp("ghost", "c1");
  EXPECT_THAT(std::string(replica_->WriteAndWait(edge).status().message()),
              StartsWith("ops[0].edge.from_claim:"));
  EXPECT_EQ(replica_->State().last_lsn, 0u);
}

TEST_F(ShardReplicaTest, EvidenceMayPrecedeItsClaimInABatch) {
  v1::WriteRequest req;
  req.set_tenant("acme");
  *req.add_ops() = EvidenceOp("c1", "e1");
  *req.add_ops() = ClaimOp("c1");
  MustWrite(req);
  EXPECT_EQ(replica_->GetClaim("acme", "c1")->record().evidence_size(), 1);
}

TEST_F(ShardReplicaTest, DeleteRemovesEvidenceAndEdgesBothWays) {
  MustWrite(ClaimBatch("acme", "a"));
  MustWrite(ClaimBatch("acme", "b"));
  v1::WriteRequest edges;
  edges.set_tenant("acme");
  *edges.add_ops() = EdgeOp("a", "b", v1::RELATION_SUPPORTS);
  *edges.add_ops() = EdgeOp("b", "a", v1::RELATION_CONTRADICTS);
  MustWrite(edges);
  ASSERT_EQ(replica_->GetClaim("acme", "b")->record().edges_size(), 1);

  v1::WriteRequest del;
  del.set_tenant("acme");
  *del.add_ops() = DeleteOp("a");
  MustWrite(del);
  EXPECT_EQ(replica_->GetClaim("acme", "a").status().code(), absl::StatusCode::kNotFound);
  // b's edge into a is gone too: no dangling edge on this shard.
  EXPECT_EQ(replica_->GetClaim("acme", "b")->record().edges_size(), 0);
  // Re-creating a starts from nothing: the old evidence does not come back.
  v1::WriteRequest recreate;
  recreate.set_tenant("acme");
  *recreate.add_ops() = ClaimOp("a");
  *recreate.add_ops() = EvidenceOp("a", "fresh");
  MustWrite(recreate);
  auto a = replica_->GetClaim("acme", "a");
  ASSERT_EQ(a->record().evidence_size(), 1);
  EXPECT_EQ(a->record().evidence(0).evidence_id(), "fresh");
  // Deleting what does not exist is fine.
  v1::WriteRequest del2;
  del2.set_tenant("acme");
  *del2.add_ops() = DeleteOp("never-existed");
  MustWrite(del2);
}

TEST_F(ShardReplicaTest, EmbeddingDimensionIsFixedPerTenant) {
  v1::WriteRequest first = ClaimBatch("acme", "c1");
  for (float f : {0.1f, 0.2f, 0.3f}) first.mutable_ops(0)->mutable_claim()->add_embedding(f);
  MustWrite(first);
  v1::WriteRequest second = ClaimBatch("acme", "c2");
  for (float f : {0.1f, 0.2f}) second.mutable_ops(0)->mutable_claim()->add_embedding(f);
  auto r = replica_->WriteAndWait(second);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("ops[0].claim.embedding:"));
  // A zero vector cannot be compared by cosine (the default metric).
  v1::WriteRequest zero = ClaimBatch("acme", "c3");
  for (int k = 0; k < 3; ++k) zero.mutable_ops(0)->mutable_claim()->add_embedding(0);
  EXPECT_THAT(std::string(replica_->WriteAndWait(zero).status().message()),
              StartsWith("ops[0].claim.embedding:"));
  // The metric is fixed with the dimension.
  v1::WriteRequest dot = ClaimBatch("acme", "c4");
  dot.set_vector_metric(v1::VECTOR_METRIC_DOT);
  for (float f : {0.1f, 0.2f, 0.3f}) dot.mutable_ops(0)->mutable_claim()->add_embedding(f);
  EXPECT_THAT(std::string(replica_->WriteAndWait(dot).status().message()),
              StartsWith("vector_metric:"));
  // Another tenant picks its own dimension.
  v1::WriteRequest other = ClaimBatch("beta", "c2");
  for (float f : {0.1f, 0.2f}) other.mutable_ops(0)->mutable_claim()->add_embedding(f);
  MustWrite(other);
}

TEST_F(ShardReplicaTest, IdempotencyKeyReplaysTheOriginalCommit) {
  v1::WriteRequest req = ClaimBatch("acme", "c1");
  req.set_idempotency_key("batch-1");
  WriteResult first = MustWrite(req);
  WriteResult again = MustWrite(req);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.token.lsn(), first.token.lsn());
  EXPECT_EQ(again.commit_time_micros, first.commit_time_micros);
  EXPECT_EQ(replica_->State().last_lsn, 1u);
  // The key survives a restart.
  Reopen();
  EXPECT_TRUE(MustWrite(req).replayed);
  // Same key, different content.
  v1::WriteRequest other = ClaimBatch("acme", "c2");
  other.set_idempotency_key("batch-1");
  auto r = replica_->WriteAndWait(other);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("idempotency_key:"));
  // Keys are per tenant.
  v1::WriteRequest beta = ClaimBatch("beta", "c1");
  beta.set_idempotency_key("batch-1");
  EXPECT_FALSE(MustWrite(beta).replayed);
}

TEST_F(ShardReplicaTest, StaleExpectedEpochCarriesARoutingHint) {
  v1::WriteRequest req = ClaimBatch("acme", "c1");
  req.set_expected_epoch(5);
  auto r = replica_->WriteAndWait(req);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  auto hint = GetRoutingHint(r.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 1u);
  req.set_expected_epoch(1);
  MustWrite(req);
}

TEST_F(ShardReplicaTest, StateSurvivesReopenAndLsnContinues) {
  for (int i = 0; i < 5; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i), 2));
  const std::string before = Dump("acme");
  Reopen();
  EXPECT_EQ(replica_->State().last_lsn, 5u);
  EXPECT_EQ(Dump("acme"), before);
  EXPECT_EQ(MustWrite(ClaimBatch("acme", "c9")).token.lsn(), 6u);
}

TEST_F(ShardReplicaTest, ReopenAsAnotherShardIsRefused) {
  replica_.reset();
  ReplicaOptions other = options_;
  other.shard_count = 4;
  other.shard_id = 2;
  EXPECT_EQ(ShardReplica::Open(other).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ShardReplicaTest, ConcurrentWritersGetDistinctConsecutiveLsns) {
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint64_t>> lsns(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = replica_->WriteAndWait(
            ClaimBatch("acme", "t" + std::to_string(t) + "-" + std::to_string(i)));
        if (r.ok()) lsns[t].push_back(r->token.lsn());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (auto& v : lsns) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), uint64_t{kThreads * kPerThread});
  EXPECT_EQ(replica_->ListClaims("acme", "", 1000, false)->records.size(),
            size_t{kThreads * kPerThread});
}

TEST_F(ShardReplicaTest, BadBatchesInAGroupCommitLeaveTheGoodOnesIntact) {
  // Concurrent good and bad batches share group commits; a bad one must roll
  // back to its save point without disturbing its neighbours.
  constexpr int kThreads = 6, kPerThread = 20;
  std::vector<std::thread> threads;
  std::atomic<int> good{0}, bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        v1::WriteRequest req = ClaimBatch("acme", id, 2);
        if (i % 3 == 1) *req.add_ops() = ClaimOp(id + "-orphan");  // no evidence: rejected
        auto r = replica_->WriteAndWait(req);
        (r.ok() ? good : bad)++;
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(bad.load(), 0);
  EXPECT_EQ(replica_->State().last_lsn, static_cast<uint64_t>(good.load()));
  auto page = replica_->ListClaims("acme", "", 1000, true);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), static_cast<size_t>(good.load()));
  for (const auto& rec : page->records) {
    EXPECT_EQ(rec.evidence_size(), 2) << rec.claim().claim_id();
    EXPECT_EQ(rec.claim().claim_id().find("orphan"), std::string::npos);
  }
}

TEST_F(ShardReplicaTest, LogRetentionKeepsTheNewestRecords) {
  options_.log_retention_records = 16;
  Reopen();
  for (int i = 0; i < 100; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  ReplicaState s = replica_->State();
  EXPECT_EQ(s.last_lsn, 100u);
  EXPECT_GT(s.log_start_lsn, 1u);
  EXPECT_LE(s.log_start_lsn, 100u - 16 + 1);
  EXPECT_EQ(replica_->ReadLogRecord(1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(replica_->ReadLogRecord(100 - 15).ok());
  // Truncation never touches state.
  EXPECT_EQ(replica_->ListClaims("acme", "", 1000, false)->records.size(), 100u);
  Reopen();
  EXPECT_EQ(replica_->State().log_start_lsn, s.log_start_lsn);
}

TEST_F(ShardReplicaTest, ReplayingTheLogReproducesIdenticalState) {
  MustWrite(ClaimBatch("acme", "a", 2));
  MustWrite(ClaimBatch("acme", "b", 1));
  v1::WriteRequest mixed;
  mixed.set_tenant("acme");
  *mixed.add_ops() = EdgeOp("a", "b");
  *mixed.add_ops() = EvidenceOp("b", "b-extra", v1::STANCE_CONTRADICTS);
  *mixed.add_ops() = DeleteOp("a");
  *mixed.add_ops() = ClaimOp("a", "recreated");
  *mixed.add_ops() = EvidenceOp("a", "a-new");
  MustWrite(mixed);
  const uint64_t last = replica_->State().last_lsn;

  ReplicaOptions copy_opts = options_;
  copy_opts.dir = (dir_.string() + "-copy");
  std::filesystem::remove_all(copy_opts.dir);
  auto copy = ShardReplica::Open(copy_opts);
  ASSERT_TRUE(copy.ok());
  for (uint64_t lsn = 1; lsn <= last; ++lsn) {
    auto rec = replica_->ReadLogRecord(lsn);
    ASSERT_TRUE(rec.ok());
    ASSERT_TRUE((*copy)->ApplyEncodedRecord(*rec).ok());
  }
  EXPECT_EQ(Dump("acme", copy->get()), Dump("acme"));
  // The lexical index is rebuilt by replay too, identically.
  const std::vector<std::string> terms = {"claim", "text", "quot", "sentenc", "recreat"};
  auto stats_a = replica_->LexicalStats("acme", terms);
  auto stats_b = (*copy)->LexicalStats("acme", terms);
  ASSERT_TRUE(stats_a.ok() && stats_b.ok());
  EXPECT_EQ(stats_a->docs, stats_b->docs);
  EXPECT_EQ(stats_a->total_length, stats_b->total_length);
  EXPECT_EQ(stats_a->df, stats_b->df);
  const auto hits_a = Lexical(*replica_, "acme", terms, *stats_a, 10);
  const auto hits_b = Lexical(**copy, "acme", terms, *stats_b, 10);
  ASSERT_FALSE(hits_a.empty());
  ASSERT_EQ(hits_a.size(), hits_b.size());
  for (size_t i = 0; i < hits_a.size(); ++i) {
    EXPECT_EQ(hits_a[i].id, hits_b[i].id);
    EXPECT_DOUBLE_EQ(hits_a[i].score, hits_b[i].score);
  }
  // Out-of-order records are refused.
  EXPECT_EQ((*copy)->ApplyEncodedRecord(*replica_->ReadLogRecord(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  copy->reset();
  std::filesystem::remove_all(copy_opts.dir);
}

TEST_F(ShardReplicaTest, ReplaysAStoredVersion1Record) {
  std::ifstream in(DASH_TESTDATA_DIR "/log_record_v1.bin", std::ios::binary);
  ASSERT_TRUE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  ASSERT_TRUE(replica_->ApplyEncodedRecord(buf.str()).ok());
  auto got = replica_->GetClaim("fixture", "claim-v1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->record().evidence_size(), 1);
  EXPECT_EQ(got->record().edges_size(), 1);
  EXPECT_EQ(replica_->State().last_lsn, 1u);
  // Version-1 records carried no commit time.
  EXPECT_FALSE(got->record().claim().created_at().seconds() > 0);
}

TEST_F(ShardReplicaTest, ReplicaFromBeforeTheIndexIsReindexedOnOpen) {
  for (int i = 0; i < 700; ++i) {  // More than one migration chunk.
    MustWrite(ClaimBatch(i % 2 ? "acme" : "beta", "c" + std::to_string(i), 1));
  }
  const std::vector<std::string> terms = {"claim", "text", "c699", "quot"};
  auto before = replica_->LexicalStats("acme", terms);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->docs, 350u);
  const auto hits_before = Lexical(*replica_, "acme", terms, *before, 5);
  ASSERT_EQ(hits_before.size(), 5u);
  // Turn the data into what a replica written before the index looks like.
  replica_.reset();
  {
    auto engine = *storage::OpenRocksEngine(options_.dir, storage::EngineOptions());
    auto snap = engine->NewSnapshot();
    storage::ShardMeta meta;
    meta.ParseFromString(**snap->Get(storage::Family::kMeta, "shard"));
    meta.clear_index_format();
    auto ws = engine->NewWriteSet();
    ws->Put(storage::Family::kMeta, "shard", meta.SerializeAsString());
    for (const char* t : {"acme", "beta"}) {
      storage::TenantState ts;
      ts.ParseFromString(**snap->Get(storage::Family::kTenants, t));
      ts.clear_lexical_docs();
      ts.clear_lexical_length();
      ws->Put(storage::Family::kTenants, t, ts.SerializeAsString());
    }
    ASSERT_TRUE(engine->Commit(*ws, true).ok());
    for (auto f : {storage::Family::kDocs, storage::Family::kTerms, storage::Family::kPostings}) {
      ASSERT_TRUE(engine->DeleteRange(f, "", std::string(8, '\xff')).ok());
    }
  }
  Reopen();
  auto after = replica_->LexicalStats("acme", terms);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->docs, before->docs);
  EXPECT_EQ(after->total_length, before->total_length);
  EXPECT_EQ(after->df, before->df);
  const auto hits_after = Lexical(*replica_, "acme", terms, *after, 5);
  ASSERT_EQ(hits_after.size(), hits_before.size());
  for (size_t i = 0; i < hits_after.size(); ++i) EXPECT_EQ(hits_after[i].id, hits_before[i].id);
}

TEST_F(ShardReplicaTest, ListPaginatesInClaimIdOrderWithinTenant) {
  for (int i = 0; i < 7; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  MustWrite(ClaimBatch("acme2", "zzz"));
  auto p1 = replica_->ListClaims("acme", "", 3, false);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->records.size(), 3u);
  EXPECT_TRUE(p1->more);
  EXPECT_EQ(p1->records[2].claim().claim_id(), "c2");
  EXPECT_EQ(p1->records[0].evidence_size(), 0);  // claims only
  auto p3 = replica_->ListClaims("acme", "c5", 3, true);
  ASSERT_EQ(p3->records.size(), 1u);
  EXPECT_FALSE(p3->more);
  EXPECT_EQ(p3->records[0].claim().claim_id(), "c6");
  EXPECT_EQ(p3->records[0].evidence_size(), 1);
}

TEST_F(ShardReplicaTest, BatchForAnotherShardIsRejected) {
  options_.shard_count = 4;
  options_.shard_id = 1;
  std::filesystem::remove_all(dir_);
  Reopen();
  std::string id;
  for (int i = 0; id.empty(); ++i) {
    if (ShardOf("acme", "c" + std::to_string(i), 4) != 1) id = "c" + std::to_string(i);
  }
  auto r = replica_->WriteAndWait(ClaimBatch("acme", id));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("shard:"));
}

// --- Roles and majority commit (a replica under a control plane).

Role LeaderOf3(uint64_t epoch) {
  Role role;
  role.leader = true;
  role.epoch = epoch;
  role.leader_node_id = "a";
  role.self_node_id = "a";
  role.replicas = {"a", "b", "c"};
  return role;
}

TEST_F(ShardReplicaTest, AFollowerRefusesWritesNamingItsLeader) {
  Role role;
  role.leader = false;
  role.epoch = 3;
  role.leader_node_id = "n2";
  role.leader_address = "127.0.0.1:7102";
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  auto hint = GetRoutingHint(r.status());
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->current_epoch(), 3u);
  EXPECT_EQ(hint->leader_node_id(), "n2");
  EXPECT_EQ(hint->leader_address(), "127.0.0.1:7102");
  EXPECT_EQ(replica_->State().last_lsn, 0u) << "nothing applied";
}

TEST_F(ShardReplicaTest, AnAdoptedEpochIsPersistedAndNeverGoesBack) {
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(4)).ok());
  Reopen();
  EXPECT_EQ(replica_->State().epoch, 4u) << "adopted epochs survive a restart";
  Role older = LeaderOf3(3);
  EXPECT_TRUE(absl::IsFailedPrecondition(replica_->AdoptRole(older)));
  // Readers routing by another epoch are told the current one.
  absl::Status st = replica_->CheckEpoch(2);
  ASSERT_TRUE(absl::IsFailedPrecondition(st));
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->current_epoch(), 4u);
  EXPECT_TRUE(replica_->CheckEpoch(4).ok());
  EXPECT_TRUE(replica_->CheckEpoch(0).ok());
}

TEST_F(ShardReplicaTest, PausedWritesAreRetryableAndLeaveTheLogAlone) {
  Role role = LeaderOf3(2);
  role.replicas = {"a"};
  role.writes_paused = true;
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(replica_->State().last_lsn, 0u);
  role.writes_paused = false;
  ASSERT_TRUE(replica_->AdoptRole(role).ok());
  MustWrite(ClaimBatch("acme", "c1"));
}

TEST_F(ShardReplicaTest, ALeaderAnswersOnceAMajorityHoldsTheWrite) {
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  std::atomic<bool> answered{false};
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  replica_->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> r) {
    result = std::move(r);
    answered = true;
    done.Notify();
  });
  // Durable here, but one replica of three is not a majority.
  ASSERT_EQ(replica_->WaitForLsn(1, absl::Seconds(5)), 1u);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(answered) << "acknowledged before a follower held it";
  replica_->OnFollowerAck("x", 1);  // Not a replica of the shard: does not count.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(answered);
  replica_->OnFollowerAck("b", 1);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->token.lsn(), 1u);
  EXPECT_EQ(replica_->State().commit_lsn, 1u);
}

TEST_F(ShardReplicaTest, AWriteNoMajorityAcknowledgesFailsAsOutcomeUnknown) {
  options_.commit_timeout = absl::Milliseconds(300);
  Reopen();
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  ASSERT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("outcome is unknown"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("same idempotency key"));
}

TEST_F(ShardReplicaTest, LosingLeadershipFailsTheWritesStillWaitingForAMajority) {
  ASSERT_TRUE(replica_->AdoptRole(LeaderOf3(1)).ok());
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  replica_->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> r) {
    result = std::move(r);
    done.Notify();
  });
  ASSERT_EQ(replica_->WaitForLsn(1, absl::Seconds(5)), 1u);
  Role follower;
  follower.leader = false;
  follower.epoch = 2;
  follower.leader_node_id = "b";
  ASSERT_TRUE(replica_->AdoptRole(follower).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

TEST_F(ShardReplicaTest, AFollowerAppliesTheLeadersRecordsInOneCommit) {
  // The leader: this fixture's replica.
  for (int i = 0; i < 5; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 5; ++lsn) {
    auto rec = replica_->ReadLogRecord(lsn);
    ASSERT_TRUE(rec.ok());
    records.push_back(*rec);
  }
  ReplicaOptions fo = options_;
  fo.dir = dir_.string() + "-follower";
  fo.managed = true;
  std::filesystem::remove_all(fo.dir);
  auto follower = ShardReplica::Open(fo);
  ASSERT_TRUE(follower.ok());
  // A gap is refused and changes nothing.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      (*follower)->ApplyEncodedRecords({records.begin() + 1, records.end()})));
  EXPECT_EQ((*follower)->State().last_lsn, 0u);
  ASSERT_TRUE((*follower)->ApplyEncodedRecords(records).ok());
  EXPECT_EQ((*follower)->State().last_lsn, 5u);
  EXPECT_EQ(Dump("acme", follower->get()), Dump("acme"));
  // Same LSN, same state: the digests agree (what `dashctl verify` compares)...
  auto leader_sum = replica_->Checksum();
  auto follower_sum = (*follower)->Checksum();
  ASSERT_TRUE(leader_sum.ok() && follower_sum.ok());
  EXPECT_EQ(leader_sum->last_lsn, 5u);
  EXPECT_EQ(follower_sum->last_lsn, 5u);
  EXPECT_EQ(leader_sum->sha256, follower_sum->sha256);
  EXPECT_EQ(leader_sum->keys, follower_sum->keys);
  EXPECT_GT(leader_sum->keys, 10u);
  // ...and one more write on one side changes its digest.
  MustWrite(ClaimBatch("acme", "c5"));
  auto after = replica_->Checksum();
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->sha256, follower_sum->sha256);
  // A managed replica never leads before a role says so.
  auto w = (*follower)->WriteAndWait(ClaimBatch("acme", "c9"));
  EXPECT_TRUE(absl::IsFailedPrecondition(w.status())) << w.status();
  follower->reset();
  std::filesystem::remove_all(fo.dir);
}

}  // namespace
}  // namespace dash::shard
