// ShardReplica: writes and their checks, reads, idempotency keys, group commit, reopening.

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/shard/shard_replica_test_util.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using ::testing::StartsWith;
using namespace query::testing;         // NOLINT: test builders
using namespace shard_replica_testing;  // NOLINT: shared fixtures

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

}  // namespace
}  // namespace dash::shard
