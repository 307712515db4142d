// The BM25 index of a real replica across restarts: persisted segments are
// served again without re-indexing, the log after them is replayed, and a
// damaged segment is rebuilt from the stored claims rather than served.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica_test_util.h"
#include "query/analyzer.h"
#include "query/test_util.h"

namespace dash::shard {
namespace {

using namespace query::testing;         // NOLINT: test builders
using namespace shard_replica_testing;  // NOLINT: shared fixtures
using ::testing::HasSubstr;

class ReplicaIndexTest : public ShardReplicaTest {
 protected:
  void WriteCorpus(int from, int to) {
    for (int i = from; i < to; ++i) {
      v1::WriteRequest req;
      req.set_tenant("acme");
      *req.add_ops() = ClaimOp(absl::StrCat("c", i),
                               absl::StrCat("glacier ", i % 2 ? "melt" : "advance", " in region ",
                                            i % 5, i % 3 ? " ocean heat" : " sea ice"));
      *req.add_ops() = EvidenceOp(absl::StrCat("c", i), absl::StrCat("c", i, "-e"));
      MustWrite(req);
    }
  }
  // Stats and lexical hits (ids and scores) for a few queries, as a string.
  std::string Rankings() {
    std::string out;
    for (const char* text : {"glacier melt", "sea ice region", "ocean heat advance"}) {
      const std::vector<std::string> terms = query::AnalyzeText(text);
      auto stats = replica_->LexicalStats("acme", terms);
      EXPECT_TRUE(stats.ok()) << stats.status();
      if (!stats.ok()) return out;
      query::LegRequest req;
      req.terms = terms;
      req.stats = *stats;
      req.depth = 20;
      auto legs = replica_->RunLegs("acme", req);
      EXPECT_TRUE(legs.ok()) << legs.status();
      if (!legs.ok()) return out;
      absl::StrAppend(&out, text, ": ", stats->docs, " docs\n");
      for (const auto& c : legs->lexical) absl::StrAppend(&out, "  ", c.id, " ", c.score, "\n");
    }
    return out;
  }
  std::string AFile(const std::string& ext) {
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "lexical")) {
      if (e.path().extension() == ext) return e.path().string();
    }
    return "";
  }
};

TEST_F(ReplicaIndexTest, SegmentsAreServedAgainAfterARestartAndTheLogAfterThemReplayed) {
  WriteCorpus(0, 40);
  ASSERT_TRUE(replica_->FlushLexical().ok());
  const uint64_t covered = replica_->LexicalInfo().covered_lsn;
  EXPECT_EQ(covered, replica_->State().last_lsn);
  WriteCorpus(40, 60);  // Not flushed: replayed from the log at open.
  WriteCorpus(0, 5);    // Rewrites of flushed claims.
  const std::string before = Rankings();
  EXPECT_THAT(before, HasSubstr("glacier melt: 60 docs"));
  Reopen();
  EXPECT_EQ(replica_->lexical_status(), "") << "served, not rebuilt";
  const index::LexicalStoreInfo info = replica_->LexicalInfo();
  EXPECT_GE(info.segments, 1u);
  EXPECT_GE(info.covered_lsn, covered);
  if (info.covered_lsn == covered) {  // No background flush came in between.
    EXPECT_EQ(info.buffer_docs, 25u) << "the 25 claims written after the flush";
  }
  EXPECT_EQ(Rankings(), before);
}

TEST_F(ReplicaIndexTest, ADamagedSegmentIsRebuiltFromTheStoredClaimsNotServed) {
  WriteCorpus(0, 30);
  ASSERT_TRUE(replica_->FlushLexical().ok());
  const std::string before = Rankings();
  replica_.reset();
  const std::string post = AFile(".post");
  ASSERT_FALSE(post.empty());
  {
    std::fstream f(post, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(48);
    f.put('\x7f');
  }
  Reopen();
  EXPECT_THAT(replica_->lexical_status(), HasSubstr("rebuilt at open"));
  EXPECT_THAT(replica_->lexical_status(), HasSubstr("DATA_LOSS"));
  EXPECT_EQ(Rankings(), before);
  // The rebuilt index is persisted again, and served at the next open.
  ASSERT_TRUE(replica_->FlushLexical().ok());
  Reopen();
  EXPECT_EQ(replica_->lexical_status(), "");
  EXPECT_EQ(Rankings(), before);
}

}  // namespace
}  // namespace dash::shard
