// SIGKILL in the middle of the BM25 index's maintenance — a flush or a merge
// of segments, just before or just after the manifest naming the new
// segment is written — chosen with the node's --kill_at sync points rather
// than by timing. After the restart, lexical queries return every claim the
// acknowledged writes left, once, with its latest text: no hit lost,
// duplicated or resurrected from a replaced or deleted version. The same
// holds for vector queries: each claim's embedding points along its word, and
// the segments carry the vectors (and their graphs) through the same kills.
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sync_point.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "query/test_util.h"
#include "tests/harness/process.h"

namespace dash {
namespace {

using namespace query::testing;  // NOLINT: test builders

class IndexKillTest : public ::testing::TestWithParam<const char*> {
 protected:
  // One batch: claim `id` (created or rewritten) with `word` in its text, or
  // deleted when `word` is empty; retried with the same idempotency key.
  grpc::Status Write(v1::Data::Stub& stub, int batch, const std::string& id,
                     const std::string& word) {
    v1::WriteRequest req;
    req.set_tenant("acme");
    req.set_idempotency_key(absl::StrCat("batch-", batch));
    if (word.empty()) {
      req.add_ops()->mutable_delete_()->set_claim_id(id);
    } else {
      *req.add_ops() = ClaimOp(id, absl::StrCat("claim ", id, " says ", word, " about glaciers"));
      for (float x : EmbeddingOf(word, batch))
        req.mutable_ops(0)->mutable_claim()->add_embedding(x);
      *req.add_ops() = EvidenceOp(id, id + "-e");
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::WriteResponse resp;
    return stub.Write(&ctx, req, &resp);
  }

  // Near the first axis for "alpha", the second for "beta": every alpha
  // claim is closer to (1, 0, 0) than every beta claim.
  static std::vector<float> EmbeddingOf(const std::string& word, int n) {
    const float jitter = 0.01f * static_cast<float>(n % 10);
    return word == "alpha" ? std::vector<float>{1, 0, jitter} : std::vector<float>{0, 1, jitter};
  }

  // The claim ids of the top `k` by vector similarity to `q`.
  std::multiset<std::string> VectorHits(v1::Data::Stub& stub, const std::vector<float>& q, int k,
                                        v1::VectorSearchMode mode) {
    v1::QueryRequest req;
    req.set_tenant("acme");
    for (float x : q) req.add_embedding(x);
    req.set_k(k);
    req.set_vector_mode(mode);
    return Ids(stub, req);
  }

  // The claim ids a lexical query for `word` returns (all of them: k 1000).
  std::multiset<std::string> Hits(v1::Data::Stub& stub, const std::string& word) {
    v1::QueryRequest req;
    req.set_tenant("acme");
    req.set_text(word);
    req.set_k(1000);
    return Ids(stub, req);
  }

  // The claim ids `req` returns.
  static std::multiset<std::string> Ids(v1::Data::Stub& stub, const v1::QueryRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::QueryResponse resp;
    grpc::Status st = stub.Query(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::multiset<std::string> ids;
    for (const auto& h : resp.hits()) ids.insert(h.record().claim().claim_id());
    return ids;
  }
};

TEST_P(IndexKillTest, NoHitIsLostDuplicatedOrResurrected) {
  if (!kTestHooks) GTEST_SKIP() << "a Release build has no sync points";
  const std::string point = GetParam();
  testing::TestDir dir;
  testing::NodeProcess node(dir.Sub("node"),
                            {"--shard_count=1", "--vector_graph_min_rows=4", "--kill_at=" + point});
  ASSERT_TRUE(node.Start().ok());
  auto stub = v1::Data::NewStub(node.channel());

  // Batches until the node kills itself at the point: a flush comes within
  // about a second of a write, a merge once four segments were flushed.
  std::map<std::string, std::string> model;  // Claim id -> its word.
  struct Batch {
    int n;
    std::string id, word;
  };
  std::vector<Batch> unanswered;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (int n = 0; node.Running() && absl::Now() < deadline; ++n) {
    // New claims, rewrites of earlier ones (the word flips) and deletes.
    Batch b{n, absl::StrCat("c", n % 3 == 2 ? n / 2 : n), ""};
    if (n % 7 == 6) {
      b.id = absl::StrCat("c", n - 3);  // Deleted.
    } else {
      b.word = (n / 3) % 2 == 0 ? "alpha" : "beta";
    }
    grpc::Status st = Write(*stub, n, b.id, b.word);
    if (!st.ok()) {
      unanswered.push_back(b);
      break;
    }
    if (b.word.empty()) {
      model.erase(b.id);
    } else {
      model[b.id] = b.word;
    }
    absl::SleepFor(absl::Milliseconds(150));
  }
  ASSERT_TRUE(testing::PollUntil([&] { return !node.Running(); }, absl::Seconds(30),
                                 "the node killing itself at " + point)
                  .ok());

  ASSERT_TRUE(node.Start().ok());  // Without --kill_at.
  stub = v1::Data::NewStub(node.channel());
  for (const Batch& b : unanswered) {  // The client retries what got no answer.
    ASSERT_TRUE(Write(*stub, b.n, b.id, b.word).ok());
    if (b.word.empty()) {
      model.erase(b.id);
    } else {
      model[b.id] = b.word;
    }
  }
  ASSERT_GE(model.size(), 4u);
  for (const std::string word : {"alpha", "beta", "glaciers"}) {
    std::multiset<std::string> want;
    for (const auto& [id, w] : model) {
      if (w == word || word == "glaciers") want.insert(id);
    }
    EXPECT_EQ(Hits(*stub, word), want) << "query \"" << word << "\" after a kill at " << point;
  }
  for (const std::string word : {"alpha", "beta"}) {
    std::multiset<std::string> want;
    for (const auto& [id, w] : model) {
      if (w == word) want.insert(id);
    }
    if (want.empty()) continue;
    const std::vector<float> q = EmbeddingOf(word, 0);
    for (v1::VectorSearchMode mode : {v1::VECTOR_SEARCH_EXACT, v1::VECTOR_SEARCH_APPROXIMATE}) {
      EXPECT_EQ(VectorHits(*stub, q, static_cast<int>(want.size()), mode), want)
          << "vector query near \"" << word << "\" (mode " << mode << ") after a kill at " << point;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Maintenance, IndexKillTest,
                         // A flush's third time: earlier segments hold deaths.
                         ::testing::Values("LexicalStore::Flush:BeforeManifest:3",
                                           "LexicalStore::Flush:AfterManifest:3",
                                           "LexicalStore::Merge:BeforeManifest",
                                           "LexicalStore::Merge:AfterManifest"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string p = info.param;
                           p = p.substr(p.find("::") + 2);
                           p = p.substr(0, p.find(':')) + p.substr(p.find(':') + 1);
                           return p.substr(0, p.find(':'));
                         });

}  // namespace
}  // namespace dash
