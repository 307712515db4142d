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
#include "node/shard/shard_replica_test_util.h"
#include "node/storage/log_record.h"
#include "node/storage/records.pb.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace query::testing;         // NOLINT: test builders
using namespace shard_replica_testing;  // NOLINT: shared fixtures

// The lexical leg of one replica, best first.
std::vector<fusion::Candidate> Lexical(const ShardReplica& r, const std::string& tenant,
                                       const std::vector<std::string>& terms,
                                       const index::CorpusStats& stats, size_t k) {
  query::LegRequest req;
  req.terms = terms;
  req.stats = stats;
  req.depth = k;
  auto legs = r.RunLegs(tenant, req);
  EXPECT_TRUE(legs.ok()) << legs.status();
  return legs.ok() ? legs->lexical : std::vector<fusion::Candidate>{};
}

// One claim may not grow without bound: every write to it re-indexes all of
// its evidence on the commit thread (21 MB on one claim stalled its shard for
// 0.8 s a write) and GetClaim must fit a client's message limit.
TEST_F(ShardReplicaTest, AClaimHoldsAtMostItsLimitsOfEvidenceAndBytes) {
  options_.limits.max_evidence_per_claim = 3;
  options_.limits.max_claim_bytes = 4000;
  Reopen();
  MustWrite(ClaimBatch("acme", "c1", 3));
  const uint64_t lsn = replica_->State().last_lsn;
  v1::WriteRequest more;
  more.set_tenant("acme");
  *more.add_ops() = EvidenceOp("c1", "c1-e9");
  auto r = replica_->WriteAndWait(more);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith("ops[0].evidence: claim \"c1\" would hold 4 pieces of evidence; the "
                         "limit is 3"));
  EXPECT_EQ(replica_->State().last_lsn, lsn) << "nothing applied";
  // Replacing evidence keeps the count; a delete and re-add in one batch too.
  v1::WriteRequest replace;
  replace.set_tenant("acme");
  *replace.add_ops() = EvidenceOp("c1", "c1-e0");
  MustWrite(replace);
  // Bytes: one long quote over the claim's budget.
  v1::WriteRequest big = ClaimBatch("acme", "c2", 1);
  big.mutable_ops(1)->mutable_evidence()->mutable_citation()->set_quote(std::string(5000, 'q'));
  r = replica_->WriteAndWait(big);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith("ops[0].claim: claim \"c2\" would hold"));
  auto got = replica_->GetClaim("acme", "c2");
  EXPECT_TRUE(absl::IsNotFound(got.status())) << got.status();
  // Outgoing edges count too.
  options_.limits.max_edges_per_claim = 2;
  Reopen();
  v1::WriteRequest edges;
  edges.set_tenant("acme");
  for (const char* to : {"x", "y", "z"}) {
    v1::Edge* e = edges.add_ops()->mutable_edge();
    e->set_from_claim("c1");
    e->set_to_claim(to);
    e->set_relation(v1::RELATION_SUPPORTS);
  }
  r = replica_->WriteAndWait(edges);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith("ops[0].edge: claim \"c1\" would have 3 outgoing edges"));

  // The limits are the leader's check: a replica with smaller ones still
  // applies records already in a log (they were accepted under other limits).
  options_.limits.max_evidence_per_claim = 1000;
  options_.limits.max_claim_bytes = 1 << 20;
  Reopen();
  MustWrite(big);
  std::vector<std::string> records;
  for (uint64_t l = 1; l <= replica_->State().last_lsn; ++l) {
    auto rec = replica_->ReadLogRecord(l);
    ASSERT_TRUE(rec.ok());
    records.push_back(*rec);
  }
  ReplicaOptions fo = options_;
  fo.dir = dir_.string() + "-small";
  fo.managed = true;
  fo.limits.max_claim_bytes = 100;
  std::filesystem::remove_all(fo.dir);
  auto follower = ShardReplica::Open(fo);
  ASSERT_TRUE(follower.ok());
  EXPECT_TRUE((*follower)->ApplyEncodedRecords(records).ok());
  EXPECT_EQ((*follower)->State().last_lsn, replica_->State().last_lsn);
  follower->reset();
  std::filesystem::remove_all(fo.dir);
}

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
  const uint64_t before = replica_->State().last_lsn;  // The epoch_start record.
  auto r = replica_->WriteAndWait(ClaimBatch("acme", "c1"));
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(replica_->State().last_lsn, before);
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
  // LSN 1 is the leader's epoch_start record. Durable here, but one replica
  // of three is not a majority.
  ASSERT_EQ(replica_->WaitForLsn(2, absl::Seconds(5)), 2u);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(answered) << "acknowledged before a follower held it";
  replica_->OnFollowerAck("x", 2);  // Not a replica of the shard: does not count.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(answered);
  replica_->OnFollowerAck("b", 2);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->token.lsn(), 2u);
  EXPECT_EQ(replica_->State().commit_lsn, 2u);
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
  ASSERT_EQ(replica_->WaitForLsn(2, absl::Seconds(5)), 2u);
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
  // Held, but not yet known committed: reads do not see it.
  EXPECT_EQ(Dump("acme", follower->get()), "");
  (*follower)->OnLeaderCommit(5);
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
  // A managed replica never leads before a role says so; until it has one
  // the write is to be retried (it is opening), not misrouted.
  auto w = (*follower)->WriteAndWait(ClaimBatch("acme", "c9"));
  EXPECT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  EXPECT_EQ((*follower)->State().last_lsn, 5u);
  follower->reset();
  std::filesystem::remove_all(fo.dir);
}

// --- Epochs, committed reads, divergence repair, fencing, leases, lag.

TEST_F(ManagedReplicaTest, EachLeadershipStartsWithARecordOfItsEpochInTheHistory) {
  auto r = OpenManaged("r");
  Role role = LeaderOf3(2);
  role.replicas = {"a"};  // Its own majority: commits at once.
  ASSERT_TRUE(r->AdoptRole(role).ok());
  EXPECT_EQ(r->State().last_lsn, 1u);
  EXPECT_EQ(r->State().last_epoch, 2u);
  ASSERT_TRUE(r->WriteAndWait(ClaimBatch("acme", "c1")).ok());
  role.epoch = 3;
  ASSERT_TRUE(r->AdoptRole(role).ok());
  EXPECT_EQ(r->State().last_lsn, 3u);
  ASSERT_TRUE(r->AdoptRole(role).ok());  // Same epoch again: no second record.
  EXPECT_EQ(r->State().last_lsn, 3u);
  const std::map<uint64_t, uint64_t> history = {{2, 1}, {3, 3}};
  EXPECT_EQ(r->EpochHistory(), history);
  // The last LSN of the largest epoch <= the one asked for.
  EXPECT_EQ(r->EpochEndOffset(2), std::make_pair(uint64_t{2}, uint64_t{2}));
  EXPECT_EQ(r->EpochEndOffset(3), std::make_pair(uint64_t{3}, uint64_t{3}));
  EXPECT_EQ(r->EpochEndOffset(9), std::make_pair(uint64_t{3}, uint64_t{3}));
  EXPECT_EQ(r->EpochEndOffset(1), std::make_pair(uint64_t{0}, uint64_t{0}));
  // Followers' copies of the records carry the same history.
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(3)).ok());
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*r->ReadLogRecord(lsn));
  ASSERT_TRUE(f->ApplyEncodedRecords(records, 3).ok());
  EXPECT_EQ(f->EpochHistory(), history);
  // And it survives a restart.
  r.reset();
  ReplicaOptions o;
  o.dir = dir_.string() + "-r";
  o.managed = true;
  auto reopened = ShardReplica::Open(o);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->EpochHistory(), history);
}

TEST_F(ManagedReplicaTest, ALeaderCommitsOnlyFromItsOwnEpochsFirstRecord) {
  // Three records of epoch 1, written by the fixture's standalone leader.
  for (int i = 0; i < 3; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  auto r = OpenManaged("r");
  ASSERT_TRUE(r->AdoptRole(FollowerOf(1)).ok());
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  ASSERT_TRUE(r->ApplyEncodedRecords(records, 1).ok());
  // Promoted at epoch 2: its epoch_start record is LSN 4.
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(2)).ok());
  EXPECT_EQ(r->State().last_lsn, 4u);
  // A majority holding LSN 3 does not commit it (Raft's figure 8: an older
  // epoch's records are committed only by a record of the leader's own).
  r->OnFollowerAck("b", 3);
  EXPECT_EQ(r->State().commit_lsn, 0u);
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "reads wait for the epoch to commit";
  r->OnFollowerAck("b", 4);
  EXPECT_EQ(r->State().commit_lsn, 4u);
  EXPECT_EQ(r->State().read_lsn, 4u);
  EXPECT_TRUE(r->GetClaim("acme", "c2").ok());
}

TEST_F(ManagedReplicaTest, FollowersServeOnlyCommittedStateAcrossRestarts) {
  for (int i = 0; i < 5; ++i) MustWrite(ClaimBatch("acme", "c" + std::to_string(i)));
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 5; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  // Views are per applied batch: 1-3, then 4-5.
  ASSERT_TRUE(f->ApplyEncodedRecords({records.begin(), records.begin() + 3}, 1).ok());
  ASSERT_TRUE(f->ApplyEncodedRecords({records.begin() + 3, records.end()}, 1).ok());
  EXPECT_TRUE(absl::IsNotFound(f->GetClaim("acme", "c0").status()));
  f->OnLeaderCommit(3);
  EXPECT_TRUE(f->GetClaim("acme", "c2").ok());
  EXPECT_TRUE(absl::IsNotFound(f->GetClaim("acme", "c3").status()));
  auto got = f->GetClaim("acme", "c0");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->read_at().lsn(), 3u) << "the token names the state read";
  // The leader's commit may run ahead of what the follower holds.
  f->OnLeaderCommit(100);
  EXPECT_EQ(f->State().commit_lsn, 5u);
  EXPECT_TRUE(f->GetClaim("acme", "c4").ok());

  // Restarted holding records beyond the commit LSN it had persisted: no
  // reads until the leader confirms them.
  auto g = OpenManaged("g");
  ASSERT_TRUE(g->ApplyEncodedRecords(records, 0).ok());
  g.reset();
  ReplicaOptions o;
  o.dir = dir_.string() + "-g";
  o.managed = true;
  auto reopened = ShardReplica::Open(o);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE((*reopened)->State().readable);
  EXPECT_TRUE(absl::IsUnavailable((*reopened)->GetClaim("acme", "c0").status()));
  (*reopened)->OnLeaderCommit(5);
  EXPECT_TRUE((*reopened)->GetClaim("acme", "c0").ok());
}

TEST_F(ManagedReplicaTest, TruncatingADivergedSuffixRestoresTheStateBeforeIt) {
  // Records 1-3, then a suffix that overwrites, adds and deletes claims.
  MustWrite(ClaimBatch("acme", "c0"));
  MustWrite(ClaimBatch("acme", "c1"));
  v1::WriteRequest edge;
  edge.set_tenant("acme");
  *edge.add_ops() = EdgeOp("c0", "c1");
  MustWrite(edge);
  v1::WriteRequest rewrite = ClaimBatch("acme", "c1", 2);
  rewrite.mutable_ops(0)->mutable_claim()->set_text("a rewritten claim about glaciers");
  MustWrite(rewrite);
  MustWrite(ClaimBatch("acme", "c2"));
  v1::WriteRequest del;
  del.set_tenant("acme");
  *del.add_ops() = DeleteOp("c0");
  MustWrite(del);
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 6; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));

  auto reference = OpenManaged("ref");  // Holds only records 1-3.
  ASSERT_TRUE(reference->ApplyEncodedRecords({records.begin(), records.begin() + 3}, 0).ok());
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  ASSERT_TRUE(f->ApplyEncodedRecords(records, 1).ok());
  f->OnLeaderCommit(2);
  auto before = f->Checksum();
  ASSERT_TRUE(before.ok());
  ASSERT_NE(before->sha256, reference->Checksum()->sha256);

  // Below the commit LSN nothing may go.
  EXPECT_TRUE(absl::IsFailedPrecondition(f->TruncateLogAfter(1)));
  EXPECT_EQ(f->State().last_lsn, 6u);
  ASSERT_TRUE(f->TruncateLogAfter(3).ok());
  EXPECT_EQ(f->State().last_lsn, 3u);
  EXPECT_EQ(f->State().last_epoch, 1u);
  EXPECT_TRUE(absl::IsNotFound(f->ReadLogRecord(4).status()));
  auto after = f->Checksum();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->sha256, reference->Checksum()->sha256) << "state, indexes included, as at 3";
  EXPECT_EQ(after->keys, reference->Checksum()->keys);
  // The lexical index forgot the rewritten text.
  f->OnLeaderCommit(3);
  index::CorpusStats stats;
  stats.docs = 2;
  stats.total_length = 10;
  EXPECT_TRUE(Lexical(*f, "acme", {"glacier"}, stats, 5).empty());
  // And it continues from 3 with other records.
  ASSERT_TRUE(f->ApplyEncodedRecords({records[3]}, 1).ok());
  EXPECT_EQ(f->State().last_lsn, 4u);
}

TEST_F(ManagedReplicaTest, IdempotencyKeysExpireAfterTheTtlAlikeOnEveryReplica) {
  options_.clock = &clock_;
  options_.idempotency_ttl = absl::Hours(1);
  Reopen();
  const int64_t t0 = clock_.NowMicros();
  v1::WriteRequest k1 = ClaimBatch("acme", "c1");
  k1.set_idempotency_key("k1");
  v1::WriteRequest k2 = ClaimBatch("acme", "c2");
  k2.set_idempotency_key("k2");
  EXPECT_EQ(MustWrite(k1).token.lsn(), 1u);  // At t0.
  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(MustWrite(k2).token.lsn(), 2u);  // At t0 + 30 min.
  EXPECT_TRUE(MustWrite(k1).replayed) << "30 minutes old: remembered";
  clock_.Advance(absl::Minutes(31));
  // The next record (at t0 + 61 min) removes what committed before t0 + 1 min.
  EXPECT_EQ(MustWrite(ClaimBatch("acme", "c3")).token.lsn(), 3u);
  const WriteResult again = MustWrite(k1);
  EXPECT_FALSE(again.replayed) << "k1 expired: the batch is applied again";
  EXPECT_EQ(again.token.lsn(), 4u);
  EXPECT_TRUE(MustWrite(k2).replayed) << "31 minutes old: remembered";
  EXPECT_TRUE(MustWrite(k1).replayed) << "remembered again from its new commit";

  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 4; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  // A follower with other settings (no TTL, its own clock at t0 + 30 min + 1 s)
  // queues and removes exactly what the leader did: it is all in the records.
  ManualClock follower_clock(t0 + absl::ToInt64Microseconds(absl::Minutes(30) + absl::Seconds(1)));
  ReplicaOptions fo;
  fo.clock = &follower_clock;
  fo.idempotency_ttl = absl::InfiniteDuration();
  auto f = OpenManaged("f", fo);
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  ASSERT_TRUE(f->ApplyEncodedRecords(records, 1).ok());
  auto leader_sum = replica_->Checksum();
  auto follower_sum = f->Checksum();
  ASSERT_TRUE(leader_sum.ok() && follower_sum.ok());
  EXPECT_EQ(follower_sum->sha256, leader_sum->sha256) << "expiry queue and cursor included";
  EXPECT_EQ(follower_sum->keys, leader_sum->keys);

  // Truncating the record that removed k1 brings back k1's first record, its
  // place in the queue, and the commit time of record 2.
  auto reference = OpenManaged("ref");  // Holds records 1-2 only.
  ASSERT_TRUE(reference->ApplyEncodedRecords({records.begin(), records.begin() + 2}, 0).ok());
  ASSERT_TRUE(f->TruncateLogAfter(2).ok());
  EXPECT_EQ(f->Checksum()->sha256, reference->Checksum()->sha256);
  // Leading now, it stamps its own time, not that of the records it removed.
  Role lead = LeaderOf3(2);
  lead.replicas = {"a"};
  ASSERT_TRUE(f->AdoptRole(lead).ok());
  auto w = f->WriteAndWait(ClaimBatch("acme", "c5"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->commit_time_micros, follower_clock.NowMicros());
  // And the same records applied again give the leader's state again.
  auto g = OpenManaged("g");
  ASSERT_TRUE(g->ApplyEncodedRecords({records.begin(), records.begin() + 2}, 0).ok());
  ASSERT_TRUE(g->TruncateLogAfter(1).ok());
  ASSERT_TRUE(g->ApplyEncodedRecords({records.begin() + 1, records.end()}, 0).ok());
  EXPECT_EQ(g->Checksum()->sha256, leader_sum->sha256);

  // With no TTL nothing is queued and nothing is ever removed.
  options_.idempotency_ttl = absl::InfiniteDuration();
  Reopen();
  v1::WriteRequest k6 = ClaimBatch("acme", "c6");
  k6.set_idempotency_key("k6");
  MustWrite(k6);
  clock_.Advance(absl::Hours(1000));
  MustWrite(ClaimBatch("acme", "c7"));
  EXPECT_TRUE(MustWrite(k2).replayed);
  EXPECT_TRUE(MustWrite(k6).replayed);
}

TEST_F(ShardReplicaTest, ABacklogOfExpiredIdempotencyKeysDrains64PerRecord) {
  options_.clock = &clock_;
  options_.idempotency_ttl = absl::Hours(1);
  Reopen();
  // Checksum counts every key: tenant data plus the expiry queue and cursor.
  auto keys = [&] { return replica_->Checksum()->keys; };
  MustWrite(ClaimBatch("acme", "plain0"));  // Creates the tenant and its common terms.
  uint64_t before = keys();
  MustWrite(ClaimBatch("acme", "plain00"));
  const uint64_t plain = keys() - before;  // Keys of one batch without an idempotency key.
  for (int i = 0; i < 100; ++i) {
    v1::WriteRequest req = ClaimBatch("acme", absl::StrCat("c", i));
    req.set_idempotency_key(absl::StrCat("k", i));
    before = keys();
    MustWrite(req);
    EXPECT_EQ(keys(), before + plain + 2) << "the idempotency record and its queue key";
    clock_.Advance(absl::Seconds(1));
  }
  clock_.Advance(absl::Hours(2));
  // Each removal takes the idempotency record and its queue key; the first
  // also creates the cursor.
  for (const auto& [expired, cursor] : {std::pair{64u, 1u}, {36u, 0u}, {0u, 0u}}) {
    before = keys();
    MustWrite(ClaimBatch("acme", absl::StrCat("plain", expired + 1)));
    EXPECT_EQ(keys() + 2 * expired, before + plain + cursor) << expired << " keys removed";
  }
  for (int i = 0; i < 100; i += 33) {
    v1::WriteRequest req = ClaimBatch("acme", absl::StrCat("c", i));
    req.set_idempotency_key(absl::StrCat("k", i));
    EXPECT_FALSE(MustWrite(req).replayed) << i;
    EXPECT_TRUE(MustWrite(req).replayed) << i;
  }
}

// A truncation inside an applied batch keeps part of that batch: the
// filter caches of every tenant the batch touched are stale, not only the
// undone records' tenants.
TEST_F(ManagedReplicaTest, TruncationInvalidatesFilterCachesOfTheKeptRecordsToo) {
  MustWrite(ClaimBatch("ta", "a1"));
  MustWrite(ClaimBatch("ta", "a2"));
  MustWrite(ClaimBatch("tb", "b1"));
  std::vector<std::string> records;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) records.push_back(*replica_->ReadLogRecord(lsn));
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  ASSERT_TRUE(f->ApplyEncodedRecords(records, 1).ok());  // One view, at 3.
  query::LegRequest req;
  req.terms = {"claim"};
  req.support_only = true;  // Goes through the prefilter cache.
  req.depth = 10;
  req.stats.docs = 2;
  req.stats.total_length = 10;
  req.stats.df["claim"] = 2;
  auto before = f->RunLegs("ta", req);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_TRUE(before->lexical.empty()) << "nothing committed yet";
  ASSERT_TRUE(f->TruncateLogAfter(2).ok());  // Undoes tb's record only.
  f->OnLeaderCommit(2);
  auto after = f->RunLegs("ta", req);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->lexical.size(), 2u) << "the cached empty set of ta must not survive";
}

TEST_F(ManagedReplicaTest, DivergencePointFollowsTheLeaderEpochRule) {
  // Follower: epoch 1 at LSNs 1-9, epoch 3 at 10-12 (no-op records).
  // Leader:   epoch 1 at 1-7,     epoch 2 at 8-11, epoch 4 from 12.
  auto f = OpenManaged("f");
  auto l = OpenManaged("l");
  std::vector<std::string> fr, lr;
  for (uint64_t lsn = 1; lsn <= 12; ++lsn) fr.push_back(Record(lsn < 10 ? 1 : 3, lsn));
  for (uint64_t lsn = 1; lsn <= 12; ++lsn) {
    lr.push_back(Record(lsn < 8 ? 1 : (lsn < 12 ? 2 : 4), lsn));
  }
  ASSERT_TRUE(f->ApplyEncodedRecords(fr, 0).ok());
  ASSERT_TRUE(l->ApplyEncodedRecords(lr, 0).ok());
  ASSERT_TRUE(f->AdoptRole(FollowerOf(4)).ok());
  // Round 1: the leader's largest epoch <= 3 is 2, ending at 11; the
  // follower's epoch 2 (none: its epoch 1) ends before its epoch 3, at 9.
  auto [e1, end1] = l->EpochEndOffset(f->State().last_epoch);
  EXPECT_EQ(e1, 2u);
  EXPECT_EQ(end1, 11u);
  EXPECT_EQ(f->DivergencePoint(e1, end1), 9u);
  ASSERT_TRUE(f->TruncateLogAfter(9).ok());
  EXPECT_EQ(f->State().last_epoch, 1u);
  // Round 2: epoch 1 ends at 7 on the leader.
  auto [e2, end2] = l->EpochEndOffset(f->State().last_epoch);
  EXPECT_EQ(e2, 1u);
  EXPECT_EQ(end2, 7u);
  EXPECT_EQ(f->DivergencePoint(e2, end2), 7u);
  ASSERT_TRUE(f->TruncateLogAfter(7).ok());
  const std::map<uint64_t, uint64_t> history = {{1, 1}};
  EXPECT_EQ(f->EpochHistory(), history);
  // Now the leader's records 8-12 follow.
  ASSERT_TRUE(f->ApplyEncodedRecords({lr.begin() + 7, lr.end()}, 4).ok());
  EXPECT_EQ(f->State().last_lsn, 12u);
  EXPECT_EQ(f->EpochHistory(), l->EpochHistory());
}

TEST_F(ManagedReplicaTest, FencingDeposesALeaderAndRefusesItsRecords) {
  auto r = OpenManaged("r");
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  absl::StatusOr<WriteResult> result;
  absl::Notification done;
  r->Write(ClaimBatch("acme", "c1"), [&](absl::StatusOr<WriteResult> w) {
    result = std::move(w);
    done.Notify();
  });
  ASSERT_EQ(r->WaitForLsn(2, absl::Seconds(5)), 2u);
  auto fenced = r->Fence(2);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->epoch, 2u);
  EXPECT_EQ(fenced->last_lsn, 2u);
  EXPECT_FALSE(fenced->leader);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  // Deposed, it knows no leader until the new placement arrives: retry.
  auto refused = r->WriteAndWait(ClaimBatch("acme", "c2"));
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(r->State().last_lsn, 2u);
  // A follower fenced at 2 applies nothing more from the leader of epoch 1.
  auto f = OpenManaged("f");
  ASSERT_TRUE(f->AdoptRole(FollowerOf(1)).ok());
  ASSERT_TRUE(f->Fence(2).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(f->ApplyEncodedRecords({Record(1, 1)}, 1)));
  EXPECT_EQ(f->State().last_lsn, 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(f->Fence(1).status())) << "epochs never go back";
}

TEST_F(ManagedReplicaTest, LeaderOnlyReadsNeedALease) {
  auto r = OpenManaged("r");
  Role role = LeaderOf3(1);
  role.replicas = {"a"};
  ASSERT_TRUE(r->AdoptRole(role).ok());
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "no lease yet";
  r->SetLeaseUntil(absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(r->CheckLeaderRead().ok());
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_TRUE(absl::IsUnavailable(r->CheckLeaderRead())) << "the lease ran out";
  r->SetLeaseUntil(absl::Now() + absl::Seconds(30));
  EXPECT_TRUE(r->CheckLeaderRead().ok());
  ASSERT_TRUE(r->AdoptRole(FollowerOf(2)).ok());
  absl::Status st = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->leader_node_id(), "b");
  // A standalone replica always leads.
  EXPECT_TRUE(replica_->CheckLeaderRead().ok());
}

// The explicit weaker mode: answered on the leader's own durability, while
// reads still see only what a majority holds.
TEST_F(ManagedReplicaTest, LeaderAckModeAnswersBeforeAMajorityButReadsWaitForIt) {
  ReplicaOptions o;
  o.ack_leader_only = true;
  auto r = OpenManaged("r", o);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  auto w = r->WriteAndWait(ClaimBatch("acme", "c1"));  // No follower ever acks.
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->token.lsn(), 2u);
  EXPECT_EQ(r->State().commit_lsn, 0u);
  EXPECT_TRUE(absl::IsNotFound(r->GetClaim("acme", "c1").status()));
  r->OnFollowerAck("b", 2);
  EXPECT_TRUE(r->GetClaim("acme", "c1").ok());
  // The default waits for the majority (see ALeaderAnswersOnceAMajorityHoldsTheWrite).
}

TEST_F(ManagedReplicaTest, TheLeaderReportsEachFollowersLag) {
  ReplicaOptions o;
  o.in_sync_max_lag_records = 2;
  o.commit_timeout = absl::Seconds(30);
  auto r = OpenManaged("r", o);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(1)).ok());
  for (int i = 0; i < 4; ++i) {
    r->Write(ClaimBatch("acme", "c" + std::to_string(i)), [](absl::StatusOr<WriteResult>) {});
  }
  ASSERT_EQ(r->WaitForLsn(5, absl::Seconds(5)), 5u);
  r->OnFollowerAck("b", 5);
  absl::SleepFor(absl::Milliseconds(20));
  auto lags = r->FollowerLags();
  ASSERT_EQ(lags.size(), 2u);
  EXPECT_EQ(lags[0].node_id, "b");
  EXPECT_EQ(lags[0].lag_records, 0u);
  EXPECT_EQ(lags[0].lag_bytes, 0u);
  EXPECT_EQ(lags[0].lag_seconds, 0);
  EXPECT_TRUE(lags[0].in_sync);
  EXPECT_EQ(lags[1].node_id, "c");
  EXPECT_EQ(lags[1].acked_lsn, 0u);
  EXPECT_EQ(lags[1].lag_records, 5u);
  EXPECT_GT(lags[1].lag_bytes, 100u);
  EXPECT_GT(lags[1].lag_seconds, 0.01);
  EXPECT_FALSE(lags[1].in_sync) << "5 records behind, bound 2";
  r->OnFollowerAck("c", 4);
  lags = r->FollowerLags();
  EXPECT_EQ(lags[1].lag_records, 1u);
  EXPECT_TRUE(lags[1].in_sync);
  EXPECT_TRUE(OpenManaged("f")->FollowerLags().empty()) << "a follower reports none";
}

// A caller ahead of a managed replica (it has yet to apply the newer
// placement) is told to retry, not to fix its state: the replica will catch
// up. A caller behind it must refresh (FAILED_PRECONDITION).
TEST_F(ManagedReplicaTest, ACallerAheadOfTheReplicasEpochRetriesOneBehindRefreshes) {
  std::unique_ptr<ShardReplica> r = OpenManaged("ahead");
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(4)).ok());
  absl::Status st = r->CheckEpoch(5);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  ASSERT_TRUE(GetRoutingHint(st).has_value());
  EXPECT_EQ(GetRoutingHint(st)->current_epoch(), 4u);
  EXPECT_TRUE(absl::IsFailedPrecondition(r->CheckEpoch(3)));
  v1::WriteRequest ahead = ClaimBatch("t", "c-ahead");
  ahead.set_expected_epoch(5);
  auto w = r->WriteAndWait(ahead);
  EXPECT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  ahead.set_expected_epoch(3);
  w = r->WriteAndWait(ahead);
  EXPECT_TRUE(absl::IsFailedPrecondition(w.status())) << w.status();
  EXPECT_EQ(r->State().last_lsn, 1u) << "only its epoch_start record";
}

// FenceShard is open to any client until authentication lands: an epoch no
// control plane would issue (2^64 - 1 left nothing to move on to) is refused
// and changes nothing.
TEST_F(ManagedReplicaTest, AFenceFarAboveTheAdoptedEpochIsRefused) {
  std::unique_ptr<ShardReplica> r = OpenManaged("bogus-fence");
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->AdoptRole(LeaderOf3(4)).ok());
  auto bogus = r->Fence(UINT64_MAX);
  ASSERT_TRUE(absl::IsInvalidArgument(bogus.status())) << bogus.status();
  EXPECT_THAT(std::string(bogus.status().message()), StartsWith("epoch: "));
  EXPECT_EQ(r->State().epoch, 4u);
  EXPECT_TRUE(r->State().leader) << "still leading: nothing was fenced";
  EXPECT_TRUE(absl::IsInvalidArgument(r->Fence(4 + 1001).status()));
  auto ok = r->Fence(4 + 1000);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->epoch, 1004u);
  // Fenced, it knows no leader until the new placement names one: a
  // LEADER_ONLY read there is to be retried (not a misroute).
  absl::Status read = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsUnavailable(read)) << read;
  ASSERT_TRUE(r->AdoptRole(FollowerOf(1004)).ok());
  read = r->CheckLeaderRead();
  EXPECT_TRUE(absl::IsFailedPrecondition(read)) << "a leader is named elsewhere: " << read;
}

}  // namespace
}  // namespace dash::shard
