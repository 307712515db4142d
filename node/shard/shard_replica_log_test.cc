// ShardReplica's log: retention, replay, records applied by a follower, epoch history,
// truncation and divergence repair.

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/shard/shard_replica_test_util.h"
#include "node/storage/records.pb.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

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

}  // namespace
}  // namespace dash::shard
