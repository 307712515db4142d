#include "node/index/lexical_store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/index/segment_file.h"
#include "node/index/segment_vectors.h"
#include "node/storage/records.pb.h"

namespace dash::index {
namespace {

namespace fs = std::filesystem;

// The committed state a test drives the store to: per lsn, every claim's
// document (tenant, claim id) -> terms.
using Docs = std::map<std::pair<std::string, std::string>, std::vector<std::string>>;

// Exhaustive BM25 over `docs` of `tenant`, summing terms in sorted order as
// the index does, ties by claim id.
std::vector<ScoredClaim> BruteForce(const Docs& docs, const std::string& tenant,
                                    const std::vector<std::string>& terms, size_t k,
                                    const Bm25Params& params, const CorpusStats& stats,
                                    const std::set<std::string>* allowed = nullptr) {
  std::vector<ScoredClaim> out;
  if (stats.docs == 0) return out;
  std::map<std::string, int> qtf;
  for (const auto& t : terms) ++qtf[t];
  const double n = static_cast<double>(stats.docs);
  const double avgdl = std::max(1.0, static_cast<double>(stats.total_length) / n);
  for (const auto& [key, doc] : docs) {
    if (key.first != tenant || (allowed != nullptr && !allowed->count(key.second))) continue;
    std::map<std::string, uint32_t> tf;
    for (const auto& t : doc) ++tf[t];
    double score = 0;
    bool any = false;
    for (const auto& [term, q] : qtf) {
      auto it = tf.find(term);
      const double df = static_cast<double>(stats.df.at(term));
      if (it == tf.end() || df <= 0) continue;
      const double weight = q * std::log(1.0 + (n - df + 0.5) / (df + 0.5));
      const double norm = params.k1 * (1.0 - params.b + params.b * doc.size() / avgdl);
      score += weight * (it->second * (params.k1 + 1.0)) / (it->second + norm);
      any = true;
    }
    if (any) out.push_back({key.second, score});
  }
  std::sort(out.begin(), out.end(), [](const ScoredClaim& a, const ScoredClaim& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

// Claims' embeddings: small, cosine, and a function of the document's
// terms (as a real embedding is of its text), so that the reference state
// needs no vectors of its own and every replay or re-apply of a document
// carries the same one. One text in four has none; components in -2..2, so
// that equal texts (and some others) tie.
constexpr uint32_t kDim = 8;

std::optional<DocVector> VectorOf(const std::vector<std::string>& terms) {
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(absl::StrJoin(terms, " "))));
  if (rng() % 4 == 0) return std::nullopt;
  std::vector<float> v(kDim);
  for (float& x : v) x = static_cast<float>(static_cast<int>(rng() % 5) - 2);
  absl::StatusOr<std::vector<float>> p = PrepareVector(Metric::kCosine, kDim, v.data(), v.size());
  if (!p.ok()) return std::nullopt;  // The zero vector.
  return DocVector{Metric::kCosine, std::move(*p)};
}

// A claim's change at `lsn` with its document's vector.
LexicalChange ChangeOf(const std::string& tenant, const std::string& id, uint64_t lsn,
                       std::optional<std::vector<std::string>> terms) {
  LexicalChange c{tenant, id, lsn, std::move(terms), std::nullopt};
  if (c.terms.has_value()) c.vector = VectorOf(*c.terms);
  return c;
}

std::vector<float> RandomQuery(std::mt19937& rng) {
  std::normal_distribution<float> g(0, 1);
  std::vector<float> q(kDim);
  for (float& x : q) x = g(rng);
  absl::StatusOr<std::vector<float>> p = PrepareVector(Metric::kCosine, kDim, q.data(), q.size());
  return p.ok() ? *p : RandomQuery(rng);
}

// Exhaustive vector search over `docs` of `tenant`: every doc with a vector
// scored as the index scores (VectorScore of the stored floats), ties by
// claim id.
std::vector<ScoredClaim> VectorBruteForce(const Docs& docs, const std::string& tenant,
                                          const std::vector<float>& q, size_t k,
                                          const absl::flat_hash_set<std::string>* allowed) {
  std::vector<ScoredClaim> out;
  for (const auto& [key, doc] : docs) {
    if (key.first != tenant || (allowed != nullptr && !allowed->contains(key.second))) continue;
    const std::optional<DocVector> v = VectorOf(doc);
    if (!v.has_value()) continue;
    out.push_back({key.second, VectorScore(Metric::kCosine, q.data(), v->values.data(), kDim)});
  }
  std::sort(out.begin(), out.end(), [](const ScoredClaim& a, const ScoredClaim& b) {
    return a.score != b.score ? a.score > b.score : a.claim_id < b.claim_id;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

void ExpectSameHits(const std::vector<ScoredClaim>& got, const std::vector<ScoredClaim>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].claim_id, want[i].claim_id) << what << ", rank " << i;
    EXPECT_EQ(got[i].score, want[i].score) << what << ", rank " << i;
  }
}

CorpusStats BruteStats(const Docs& docs, const std::string& tenant,
                       const std::vector<std::string>& terms) {
  CorpusStats s;
  for (const auto& t : terms) s.df[t] = 0;
  for (const auto& [key, doc] : docs) {
    if (key.first != tenant) continue;
    ++s.docs;
    s.total_length += doc.size();
    const std::set<std::string> distinct(doc.begin(), doc.end());
    for (auto& [t, df] : s.df) df += distinct.count(t);
  }
  return s;
}

class LexicalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("lexical_store_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    store_ = OpenStore("");
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<LexicalStore> OpenStore(const std::string& manifest) {
    absl::StatusOr<std::unique_ptr<LexicalStore>> s = TryOpen(manifest);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  absl::StatusOr<std::unique_ptr<LexicalStore>> TryOpen(const std::string& manifest) {
    LexicalStoreOptions o;
    o.dir = dir_.string();
    o.committed_lsn = [this] { return committed_; };
    o.readable_lsn = [this] { return readable_; };
    o.persist_manifest = [this](const std::string& m) {
      if (fail_manifest_) return absl::UnavailableError("disk full");
      manifest_ = m;
      return absl::OkStatus();
    };
    o.background = false;
    o.merge_factor = merge_factor_;
    o.max_segments = max_segments_;
    o.max_cap_merge_docs = max_cap_merge_docs_;
    o.cap_min_docs = cap_min_docs_;
    o.merge_bytes_per_second = 0;
    o.graphs.min_rows = graph_min_rows_;
    return LexicalStore::Open(o, manifest);
  }

  // Commits `changes` at `lsn` in the store and the reference.
  void Commit(uint64_t lsn, const std::vector<std::pair<std::string, std::string>>& upserts,
              const std::vector<std::string>& deletes = {}, const std::string& tenant = "t") {
    Docs docs = history_.empty() ? Docs() : history_.rbegin()->second;
    std::vector<LexicalChange> changes;
    for (const auto& [id, text] : upserts) {
      std::vector<std::string> terms = absl::StrSplit(text, ' ', absl::SkipEmpty());
      docs[{tenant, id}] = terms;
      changes.push_back(ChangeOf(tenant, id, lsn, terms));
    }
    for (const auto& id : deletes) {
      docs.erase({tenant, id});
      changes.push_back(ChangeOf(tenant, id, lsn, std::nullopt));
    }
    history_[lsn] = docs;
    ASSERT_TRUE(store_->Apply(std::move(changes), lsn).ok());
  }

  // Commits and flushes a segment of `n` new claims (all "shared word").
  void FlushedSegment(int n) {
    ++segment_lsn_;
    std::vector<std::pair<std::string, std::string>> upserts;
    for (int i = 0; i < n; ++i)
      upserts.emplace_back(absl::StrCat("c", next_claim_++), "shared word");
    Commit(segment_lsn_, upserts);
    committed_ = readable_ = segment_lsn_;
    ASSERT_TRUE(store_->Flush().ok());
  }
  std::multiset<uint32_t> SegmentSizes() {
    std::multiset<uint32_t> out;
    LexicalStore::Snapshot s = At(segment_lsn_);
    for (const auto& seg : *s.segments) out.insert(seg->doc_count());
    return out;
  }
  // One MergeOnce; whether it merged anything.
  bool Merged() {
    uint64_t written = 0;
    EXPECT_TRUE(store_->MergeOnce(&written).ok());
    return written > 0;
  }

  LexicalStore::Snapshot At(uint64_t lsn) {
    absl::StatusOr<LexicalStore::Snapshot> s =
        store_->Acquire([lsn]() -> absl::StatusOr<uint64_t> { return lsn; });
    EXPECT_TRUE(s.ok());
    return *s;
  }

  // The reference state at `lsn`: the newest commit at or below it.
  Docs StateAt(uint64_t lsn) {
    auto it = history_.upper_bound(lsn);
    return it == history_.begin() ? Docs() : std::prev(it)->second;
  }

  // Stats and search at `lsn` equal the brute force over the reference.
  void ExpectMatches(uint64_t lsn, const std::vector<std::string>& terms, size_t k = 10,
                     const std::string& tenant = "t") {
    const Docs docs = StateAt(lsn);
    const LexicalStore::Snapshot snap = At(lsn);
    absl::StatusOr<CorpusStats> stats = store_->Stats(snap, tenant, terms);
    ASSERT_TRUE(stats.ok()) << stats.status();
    const CorpusStats want = BruteStats(docs, tenant, terms);
    EXPECT_EQ(stats->docs, want.docs) << "at lsn " << lsn;
    EXPECT_EQ(stats->total_length, want.total_length) << "at lsn " << lsn;
    EXPECT_EQ(stats->df, want.df) << "at lsn " << lsn;
    absl::StatusOr<std::vector<ScoredClaim>> got =
        store_->Search(snap, tenant, terms, k, params_, want);
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<ScoredClaim> expected = BruteForce(docs, tenant, terms, k, params_, want);
    ASSERT_EQ(got->size(), expected.size()) << "at lsn " << lsn;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ((*got)[i].claim_id, expected[i].claim_id) << "at lsn " << lsn << ", rank " << i;
      EXPECT_EQ((*got)[i].score, expected[i].score) << "at lsn " << lsn << ", rank " << i;
    }
  }

  absl::StatusOr<std::vector<ScoredClaim>> SearchVectors(
      uint64_t lsn, const std::string& tenant, const std::vector<float>& q, size_t k,
      SearchMode mode, const absl::flat_hash_set<std::string>* allowed = nullptr,
      bool* used_exact = nullptr) {
    return store_->SearchVectors(At(lsn), tenant, q, k, mode, allowed, used_exact);
  }

  // SearchVectors at `lsn` in `mode` equals the brute force over the
  // reference state at `lsn`, with and without `allowed`.
  void ExpectVectorsMatch(uint64_t lsn, const std::vector<float>& q, size_t k,
                          const std::string& tenant, SearchMode mode,
                          const absl::flat_hash_set<std::string>& allowed) {
    const Docs docs = StateAt(lsn);
    const absl::flat_hash_set<std::string>* filters[] = {nullptr, &allowed};
    for (const absl::flat_hash_set<std::string>* a : filters) {
      const std::string what =
          absl::StrCat("vectors at lsn ", lsn, " of ", tenant, ", mode ", static_cast<int>(mode),
                       ", k ", k, a == nullptr ? "" : ", filtered");
      bool used_exact = false;
      absl::StatusOr<std::vector<ScoredClaim>> got =
          SearchVectors(lsn, tenant, q, k, mode, a, &used_exact);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status();
      ExpectSameHits(*got, VectorBruteForce(docs, tenant, q, k, a), what);
      if (mode == SearchMode::kExact) {
        EXPECT_TRUE(used_exact) << what;
      }
    }
  }

  std::set<std::string> Files() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.insert(e.path().filename().string());
    return out;
  }

  fs::path dir_;
  size_t graph_min_rows_ = VectorGraphOptions().min_rows;
  size_t merge_factor_ = 3;
  size_t max_segments_ = 2;
  size_t max_cap_merge_docs_ = 131072;
  size_t cap_min_docs_ = 0;  // Every segment counts toward the cap.
  std::unique_ptr<LexicalStore> store_;
  uint64_t committed_ = 0;
  uint64_t readable_ = 0;
  bool fail_manifest_ = false;
  std::string manifest_;
  std::map<uint64_t, Docs> history_;
  Bm25Params params_;
  uint64_t segment_lsn_ = 0;  // FlushedSegment's.
  int next_claim_ = 0;
};

TEST_F(LexicalStoreTest, AnAppliedDocIsSearchableAtOnceAndOnlyFromItsLsn) {
  Commit(1, {{"c1", "solar panels heat water"}, {"c2", "wind turbines make power"}});
  Commit(2, {{"c3", "solar power is cheap"}});
  ExpectMatches(1, {"solar", "power"});
  ExpectMatches(2, {"solar", "power"});
  // At lsn 1, c3 does not exist yet.
  absl::StatusOr<CorpusStats> s1 = store_->Stats(At(1), "t", {"solar"});
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->docs, 2u);
  EXPECT_EQ(s1->df.at("solar"), 1u);
}

TEST_F(LexicalStoreTest, UpdatesAndDeletesAreVersionedByLsn) {
  Commit(1, {{"c1", "alpha beta"}, {"c2", "alpha gamma"}});
  Commit(2, {{"c1", "delta"}});
  Commit(3, {}, {"c2"});
  for (uint64_t lsn : {1, 2, 3}) {
    ExpectMatches(lsn, {"alpha"});
    ExpectMatches(lsn, {"delta", "gamma"});
  }
  absl::StatusOr<std::vector<ScoredClaim>> at3 =
      store_->Search(At(3), "t", {"alpha"}, 10, params_, BruteStats(StateAt(3), "t", {"alpha"}));
  ASSERT_TRUE(at3.ok());
  EXPECT_TRUE(at3->empty()) << "no ghost of an updated or deleted claim";
}

TEST_F(LexicalStoreTest, TenantsAreSeparate) {
  Commit(1, {{"c1", "shared word"}}, {}, "a");
  Commit(2, {{"c1", "shared other"}}, {}, "b");
  ExpectMatches(2, {"shared", "word"}, 10, "a");
  ExpectMatches(2, {"shared", "word"}, 10, "b");
  absl::StatusOr<CorpusStats> b = store_->Stats(At(2), "b", {"word"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->docs, 1u);
  EXPECT_EQ(b->df.at("word"), 0u);
}

TEST_F(LexicalStoreTest, FlushPersistsOnlyCommittedContent) {
  Commit(1, {{"c1", "one"}});
  Commit(2, {{"c2", "two"}});
  committed_ = 1;
  readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(store_->covered_lsn(), 1u);
  LexicalStoreInfo info = store_->Info();
  EXPECT_EQ(info.segments, 1u);
  EXPECT_EQ(info.memory_segments, 1u);
  EXPECT_EQ(info.buffer_docs, 1u);
  ExpectMatches(2, {"one", "two"});
  committed_ = readable_ = 2;
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(store_->covered_lsn(), 2u);
  EXPECT_EQ(store_->Info().memory_segments, 0u);
  ExpectMatches(2, {"one", "two"});
}

TEST_F(LexicalStoreTest, ReopenServesPersistedSegmentsAndReplayedChanges) {
  Commit(1, {{"c1", "red apple"}, {"c2", "green apple"}});
  Commit(2, {{"c3", "red car"}});
  committed_ = readable_ = 2;
  ASSERT_TRUE(store_->Flush().ok());
  Commit(3, {{"c1", "yellow banana"}}, {"c2"});  // Not flushed: replayed.
  committed_ = readable_ = 3;
  store_.reset();
  store_ = OpenStore(manifest_);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->covered_lsn(), 2u);
  ExpectMatches(2, {"red", "apple"});  // What the segments hold.
  // The owner replays the log after the covered lsn.
  ASSERT_TRUE(
      store_
          ->Apply({{"t", "c1", 3, std::vector<std::string>{"yellow", "banana"}, std::nullopt},
                   {"t", "c2", 3, std::nullopt, std::nullopt}},
                  3)
          .ok());
  ExpectMatches(3, {"red", "apple", "banana"});
}

// .dict, .post, .docs and .vec.
constexpr size_t kFilesPerSegment = 4;

TEST_F(LexicalStoreTest, ADamagedOrMissingSegmentIsNotServed) {
  Commit(1, {{"c1", "some words here"}});
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  store_.reset();
  std::string post;
  for (const auto& f : Files()) {
    if (absl::EndsWith(f, ".post")) post = (dir_ / f).string();
  }
  ASSERT_FALSE(post.empty());
  {
    std::fstream f(post, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x5a');
  }
  absl::StatusOr<std::unique_ptr<LexicalStore>> damaged = TryOpen(manifest_);
  EXPECT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();
  EXPECT_THAT(std::string(damaged.status().message()), ::testing::HasSubstr(".post"));
  fs::remove(post);
  absl::StatusOr<std::unique_ptr<LexicalStore>> missing = TryOpen(manifest_);
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
}

// The .vec file of the store's only persisted segment.
std::string VecFile(const fs::path& dir) {
  std::string vec;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (absl::EndsWith(e.path().filename().string(), ".vec")) vec = e.path().string();
  }
  return vec;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(LexicalStoreTest, ADamagedOrMissingVectorFileIsNotServed) {
  Commit(1, {{"c1", "some words here"}, {"c2", "other words"}, {"c3", "more"}, {"c4", "x y"}});
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  ASSERT_GT(store_->Info().vectors, 0u) << "the segment has a vector section";
  store_.reset();
  const std::string vec = VecFile(dir_);
  ASSERT_FALSE(vec.empty());
  const std::string good = ReadAll(vec);
  // Past the 32-byte header: in the body.
  ASSERT_GT(good.size(), 32u + 16u + 20u);
  {
    std::fstream f(vec, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(32 + 12);
    f.put(static_cast<char>(good[32 + 12] ^ 0x01));
  }
  absl::StatusOr<std::unique_ptr<LexicalStore>> damaged = TryOpen(manifest_);
  EXPECT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();
  EXPECT_THAT(std::string(damaged.status().message()), ::testing::HasSubstr(".vec"));
  fs::remove(vec);
  absl::StatusOr<std::unique_ptr<LexicalStore>> missing = TryOpen(manifest_);
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr(".vec"));
}

// A .vec whose frame is whole (its checksum matches) but whose body is not
// a VECS body: the segment is not served either.
TEST_F(LexicalStoreTest, AMalformedVectorBodyIsDataLossNamingTheFile) {
  Commit(1, {{"c1", "some words here"}, {"c2", "other words"}, {"c3", "more"}, {"c4", "x y"}});
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  store_.reset();
  const std::string vec = VecFile(dir_);
  ASSERT_FALSE(vec.empty());
  const std::string file = ReadAll(vec);
  ASSERT_GT(file.size(), 32u);
  // The header: "DASHSEG\0", kind, version, segment id.
  const SegmentFileInfo info{"VECS", 1, file.substr(16, kSegmentIdBytes)};
  uint32_t version = 0;
  absl::StatusOr<absl::string_view> body = UnframeSegmentFile(file, info, vec, &version);
  ASSERT_TRUE(body.ok()) << body.status();
  ASSERT_EQ(version, 1u);
  absl::StatusOr<std::string> reframed =
      FrameSegmentFile(info, absl::StrCat(*body, absl::string_view("\0", 1)));
  ASSERT_TRUE(reframed.ok()) << reframed.status();
  {
    std::ofstream out(vec, std::ios::binary | std::ios::trunc);
    out << *reframed;
  }
  absl::StatusOr<std::unique_ptr<LexicalStore>> damaged = TryOpen(manifest_);
  EXPECT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();
  EXPECT_THAT(std::string(damaged.status().message()), ::testing::HasSubstr(".vec"));
}

// Persisted segments keep their HNSW graphs across a restart: the reopened
// store reads them (no rebuild) and answers every vector search as before.
TEST_F(LexicalStoreTest, VectorGraphsAndAnswersSurviveARestart) {
  store_.reset();
  graph_min_rows_ = 50;
  store_ = OpenStore("");
  ASSERT_NE(store_, nullptr);
  auto upserts = [](int from, int to, const std::string& word) {
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = from; i < to; ++i) out.emplace_back(absl::StrCat("c", i), absl::StrCat(word, i));
    return out;
  };
  Commit(1, upserts(0, 200, "first"));
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  std::vector<std::string> deletes;
  for (int i = 50; i < 60; ++i) deletes.push_back(absl::StrCat("c", i));
  auto second = upserts(0, 50, "second");
  for (auto& u : upserts(200, 300, "second")) second.push_back(u);
  Commit(2, second, deletes);
  committed_ = readable_ = 2;
  ASSERT_TRUE(store_->Flush().ok());
  Commit(3, upserts(300, 400, "third"));
  committed_ = readable_ = 3;
  ASSERT_TRUE(store_->Flush().ok());
  // Merged (graphs rebuilt over the merged rows) until the policy is done.
  for (int i = 0; i < 10; ++i) {
    uint64_t written = 0;
    ASSERT_TRUE(store_->MergeOnce(&written).ok());
    if (written == 0) break;
  }
  // Not flushed: an in-memory segment (no graph), replayed after the restart.
  const std::vector<std::pair<std::string, std::string>> fourth = upserts(100, 120, "fourth");
  Commit(4, fourth, {"c0"});
  committed_ = readable_ = 4;

  const LexicalStoreInfo before = store_->Info();
  ASSERT_GT(before.vector_graphs, 0u);
  EXPECT_EQ(before.memory_segments, 1u);
  std::mt19937 rng(5);
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 20; ++i) queries.push_back(RandomQuery(rng));
  absl::flat_hash_set<std::string> allowed;
  for (int i = 0; i < 400; i += 3) allowed.insert(absl::StrCat("c", i));
  struct Answer {
    std::vector<ScoredClaim> hits;
    bool used_exact = false;
  };
  auto answers = [&] {
    std::vector<Answer> out;
    for (const auto& q : queries) {
      for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate}) {
        const absl::flat_hash_set<std::string>* filters[] = {nullptr, &allowed};
        for (const absl::flat_hash_set<std::string>* a : filters) {
          Answer answer;
          absl::StatusOr<std::vector<ScoredClaim>> hits =
              SearchVectors(4, "t", q, 10, mode, a, &answer.used_exact);
          EXPECT_TRUE(hits.ok()) << hits.status();
          if (hits.ok()) answer.hits = *hits;
          if (mode == SearchMode::kExact) {
            ExpectSameHits(answer.hits, VectorBruteForce(StateAt(4), "t", q, 10, a), "exact");
          } else if (a == nullptr) {
            EXPECT_FALSE(answer.used_exact) << "graphs answer kApproximate";
          }
          out.push_back(std::move(answer));
        }
      }
    }
    return out;
  };
  const std::vector<Answer> was = answers();

  store_.reset();
  store_ = OpenStore(manifest_);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->covered_lsn(), 3u);
  std::vector<LexicalChange> replay;
  for (const auto& [id, text] : fourth) {
    replay.push_back(ChangeOf("t", id, 4, absl::StrSplit(text, ' ', absl::SkipEmpty())));
  }
  replay.push_back(ChangeOf("t", "c0", 4, std::nullopt));
  ASSERT_TRUE(store_->Apply(std::move(replay), 4).ok());

  const LexicalStoreInfo after = store_->Info();
  EXPECT_GT(after.vector_graphs, 0u);
  EXPECT_EQ(after.vector_graphs, before.vector_graphs);
  EXPECT_EQ(after.vectors, before.vectors);
  EXPECT_EQ(after.segments, before.segments);
  const std::vector<Answer> now = answers();
  ASSERT_EQ(now.size(), was.size());
  for (size_t i = 0; i < was.size(); ++i) {
    ExpectSameHits(now[i].hits, was[i].hits, absl::StrCat("answer ", i));
    EXPECT_EQ(now[i].used_exact, was[i].used_exact) << "answer " << i;
  }
}

TEST_F(LexicalStoreTest, OpenRemovesFilesNoManifestNames) {
  Commit(1, {{"c1", "kept"}});
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  const std::string kept = manifest_;
  Commit(2, {{"c2", "orphan"}});
  committed_ = readable_ = 2;
  ASSERT_TRUE(store_->Flush().ok());  // As if the crash came before its manifest.
  EXPECT_EQ(Files().size(), 2 * kFilesPerSegment);
  store_.reset();
  store_ = OpenStore(kept);
  EXPECT_EQ(Files().size(), kFilesPerSegment);
}

TEST_F(LexicalStoreTest, AFailedManifestWriteKeepsTheOldFilesAndRetries) {
  Commit(1, {{"c1", "a b"}});
  committed_ = readable_ = 1;
  fail_manifest_ = true;
  EXPECT_FALSE(store_->Flush().ok());
  EXPECT_EQ(store_->covered_lsn(), 0u);
  ExpectMatches(1, {"a"});
  fail_manifest_ = false;
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(store_->covered_lsn(), 1u);
}

TEST_F(LexicalStoreTest, MergedAwayFilesGoWhenTheLastReaderDoes) {
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) {
    Commit(lsn, {{absl::StrCat("c", lsn), "common word"}});
    committed_ = readable_ = lsn;
    ASSERT_TRUE(store_->Flush().ok());
  }
  EXPECT_EQ(store_->Info().segments, 3u);
  EXPECT_EQ(Files().size(), 3 * kFilesPerSegment);
  LexicalStore::Snapshot held = At(3);
  uint64_t written = 0;
  ASSERT_TRUE(store_->MergeOnce(&written).ok());
  EXPECT_GT(written, 0u);
  EXPECT_EQ(store_->Info().segments, 1u);
  EXPECT_EQ(Files().size(), 4 * kFilesPerSegment)
      << "a reader still holds the merged-away segments";
  ExpectMatches(3, {"common"});
  held = LexicalStore::Snapshot();
  EXPECT_EQ(Files().size(), kFilesPerSegment);
  store_.reset();
  store_ = OpenStore(manifest_);
  ExpectMatches(3, {"common", "word"});
}

TEST_F(LexicalStoreTest, AFormatOneManifestIsRefusedSoTheOwnerRebuilds) {
  // Format 1 segments hold no vectors: serving them would lose every
  // embedding, so the owner must rebuild from the stored claims.
  storage::LexicalManifest old;
  old.set_format(1);
  old.set_covered_lsn(7);
  absl::StatusOr<std::unique_ptr<LexicalStore>> s = TryOpen(old.SerializeAsString());
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("predates segment vectors"));
  storage::LexicalManifest newer;
  newer.set_format(3);
  s = TryOpen(newer.SerializeAsString());
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("newer than this binary"));
}

TEST_F(LexicalStoreTest, BeyondTheSegmentCapTheSmallestAreMergedWithinTheBound) {
  merge_factor_ = 100;  // No size tier fills up: only the cap merges.
  max_cap_merge_docs_ = 5;
  store_ = OpenStore("");
  FlushedSegment(4);
  FlushedSegment(1);
  EXPECT_FALSE(Merged()) << "two segments: within the cap";
  FlushedSegment(1);
  EXPECT_TRUE(Merged());
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{4, 2})) << "the two smallest";
  FlushedSegment(3);
  EXPECT_TRUE(Merged());
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{4, 5}));
  FlushedSegment(1);
  EXPECT_TRUE(Merged());
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{5, 5})) << "1 + 4 is within the bound of 5";
  FlushedSegment(1);
  EXPECT_FALSE(Merged()) << "1 + 5 would pass the bound";
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{5, 5, 1}));
  ExpectMatches(segment_lsn_, {"shared", "word"}, 20);
  store_.reset();
  store_ = OpenStore(manifest_);
  ExpectMatches(segment_lsn_, {"shared"}, 20);
}

TEST_F(LexicalStoreTest, SegmentsBelowTheCapsMinimumAreLeftToTheTiers) {
  merge_factor_ = 3;
  cap_min_docs_ = 4;
  store_ = OpenStore("");
  FlushedSegment(30);
  FlushedSegment(20);
  FlushedSegment(1);
  EXPECT_FALSE(Merged()) << "a small flush is not merged into the big segments";
  FlushedSegment(1);
  EXPECT_FALSE(Merged());
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{30, 20, 1, 1}));
  FlushedSegment(2);
  EXPECT_TRUE(Merged()) << "three of one tier";
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{30, 20, 4}));
  EXPECT_TRUE(Merged()) << "now big enough to count: the cap merges the smallest";
  EXPECT_EQ(SegmentSizes(), (std::multiset<uint32_t>{30, 24}));
  EXPECT_FALSE(Merged());
  ExpectMatches(segment_lsn_, {"shared", "word"}, 60);
}

TEST_F(LexicalStoreTest, TruncationInsideAGroupAsksForTheKeptRecordsAgain) {
  Commit(1, {{"c1", "one"}});
  committed_ = readable_ = 1;
  // Records 2 and 3 applied at once, as a follower applies a batch: the docs
  // carry lsn 3.
  history_[2] = {{{"t", "c1"}, {"one"}}, {{"t", "c2"}, {"two"}}};
  history_[3] = {{{"t", "c1"}, {"three"}}, {{"t", "c2"}, {"two"}}};
  ASSERT_TRUE(store_
                  ->Apply({{"t", "c1", 3, std::vector<std::string>{"three"}, std::nullopt},
                           {"t", "c2", 3, std::vector<std::string>{"two"}, std::nullopt}},
                          3)
                  .ok());
  std::vector<std::pair<std::string, std::string>> changed;
  EXPECT_FALSE(store_->TruncateAfter(2, &changed));
  EXPECT_THAT(changed, ::testing::UnorderedElementsAre(std::make_pair("t", "c1"),
                                                       std::make_pair("t", "c2")));
  history_.erase(3);
  ASSERT_TRUE(store_
                  ->Apply({{"t", "c1", 2, std::vector<std::string>{"one"}, std::nullopt},
                           {"t", "c2", 2, std::vector<std::string>{"two"}, std::nullopt}},
                          2)
                  .ok());
  ExpectMatches(1, {"one", "two", "three"});
  ExpectMatches(2, {"one", "two", "three"});
}

TEST_F(LexicalStoreTest, MergesDropDocsDeadAtTheReadableView) {
  Commit(1, {{"c1", "x y"}, {"c2", "x z"}});
  committed_ = readable_ = 1;
  ASSERT_TRUE(store_->Flush().ok());
  Commit(2, {}, {"c1"});
  Commit(3, {{"c2", "z"}});
  committed_ = readable_ = 3;
  ASSERT_TRUE(store_->Flush().ok());
  LexicalStoreInfo before = store_->Info();
  EXPECT_EQ(before.dead_docs, 2u);
  uint64_t written = 0;
  ASSERT_TRUE(store_->MergeOnce(&written).ok());  // 2 of 2 dead in one segment: rewritten.
  EXPECT_GT(written, 0u);
  EXPECT_EQ(store_->Info().dead_docs, 0u);
  ExpectMatches(3, {"x", "z"});
}

TEST_F(LexicalStoreTest, TruncationForgetsTheDroppedRecords) {
  Commit(1, {{"c1", "keep this"}, {"c2", "and this"}});
  committed_ = readable_ = 1;
  Commit(2, {{"c1", "dropped text"}}, {"c2"});
  Commit(3, {{"c3", "dropped too"}});
  std::vector<std::pair<std::string, std::string>> changed;
  EXPECT_TRUE(store_->TruncateAfter(1, &changed)) << "lsn 1 ended an Apply";
  EXPECT_TRUE(changed.empty());
  history_.erase(2);
  history_.erase(3);
  ExpectMatches(1, {"keep", "dropped", "this"});
  ExpectMatches(5, {"keep", "dropped", "this"});
  ExpectMatches(1, {"keep", "dropped", "this"});
  Commit(2, {{"c4", "after the truncation"}});
  ExpectMatches(2, {"keep", "this", "truncation"});
}

// Random upserts (three in four with a vector), deletes, flushes, merges,
// truncations and reopens: after each step, stats, BM25 top-k and vector
// top-k (with and without an allowed filter) at every view still readable
// equal the brute force over the reference state at that view.
TEST_F(LexicalStoreTest, PropertyEveryViewEqualsBruteForce) {
  const int seed = ::testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE(absl::StrCat("--gtest_random_seed=", seed));
  std::mt19937 rng(seed);
  std::mt19937 vrng(seed ^ 0x5eed);
  const std::vector<std::string> vocab = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  auto text = [&] {
    std::string t;
    const int n = 1 + rng() % 8;
    for (int i = 0; i < n; ++i) absl::StrAppend(&t, vocab[rng() % (1 + rng() % vocab.size())], " ");
    return t;
  };
  uint64_t lsn = 0;
  std::set<uint64_t> views = {0};  // The LSNs a view can be taken at.
  for (int step = 0; step < 300; ++step) {
    const int action = rng() % 20;
    if (action < 12) {
      // One commit, or a group of them applied at once (as a follower
      // applies a batch of records): docs carry the group's last LSN.
      const int group = rng() % 3 == 0 ? 2 + rng() % 3 : 1;
      const std::string tenant = rng() % 5 == 0 ? "u" : "t";
      std::set<std::string> ids;
      for (int g = 0; g < group; ++g) {
        ++lsn;
        Docs docs = history_.empty() ? Docs() : history_.rbegin()->second;
        std::set<std::string> used;
        const int n = 1 + rng() % 3;
        for (int i = 0; i < n; ++i) {
          const std::string id = absl::StrCat("c", rng() % 40);
          if (!used.insert(id).second) continue;
          ids.insert(id);
          if (rng() % 4 == 0) {
            docs.erase({tenant, id});
          } else {
            docs[{tenant, id}] = absl::StrSplit(text(), ' ', absl::SkipEmpty());
          }
        }
        history_[lsn] = docs;
      }
      std::vector<LexicalChange> changes;
      const Docs& now = history_.rbegin()->second;
      for (const auto& id : ids) {
        auto it = now.find({tenant, id});
        changes.push_back(ChangeOf(
            tenant, id, lsn,
            it == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(it->second)));
      }
      ASSERT_TRUE(store_->Apply(std::move(changes), lsn).ok());
      views.insert(lsn);
    } else if (action < 15) {
      // Commit and readable views move to view points only.
      auto c = views.upper_bound(lsn - std::min<uint64_t>(lsn, rng() % 3));
      committed_ = std::max(committed_, *std::prev(c));
      auto r = views.upper_bound(committed_ - std::min<uint64_t>(committed_, rng() % 2));
      readable_ = std::max(readable_, *std::prev(r));
      ASSERT_TRUE(store_->Flush().ok());
    } else if (action < 18) {
      uint64_t written = 0;
      ASSERT_TRUE(store_->MergeOnce(&written).ok());
    } else if (action < 19 && lsn > committed_) {
      // Only what is not committed can be truncated.
      const uint64_t to = committed_ + rng() % (lsn - committed_);
      // What the dropped records changed, and what the store says it changed.
      std::set<std::pair<std::string, std::string>> touched;
      const Docs kept = StateAt(to);
      for (auto it = history_.upper_bound(to); it != history_.end(); ++it) {
        for (const auto& [key, doc] : it->second) {
          auto k = kept.find(key);
          if (k == kept.end() || k->second != doc) touched.insert(key);
        }
        for (const auto& [key, doc] : kept) {
          if (!it->second.count(key)) touched.insert(key);
        }
      }
      std::vector<std::pair<std::string, std::string>> changed;
      const bool exact = store_->TruncateAfter(to, &changed);
      for (auto& key : changed) touched.insert(key);
      EXPECT_TRUE(!exact || changed.empty());
      history_.erase(history_.upper_bound(to), history_.end());
      lsn = to;
      std::vector<LexicalChange> again;
      const Docs now = StateAt(to);
      for (const auto& key : touched) {
        auto it = now.find(key);
        again.push_back(ChangeOf(
            key.first, key.second, to,
            it == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(it->second)));
      }
      ASSERT_TRUE(store_->Apply(std::move(again), to).ok());
      readable_ = std::min(readable_, to);
      views.erase(views.upper_bound(to), views.end());
      views.insert(to);
    } else if (lsn == committed_) {
      // Restart: segments from the manifest, the rest replayed at the end.
      const uint64_t covered = store_->covered_lsn();
      store_.reset();
      store_ = OpenStore(manifest_);
      ASSERT_NE(store_, nullptr);
      std::vector<LexicalChange> replay;
      const Docs before = StateAt(covered), now = StateAt(lsn);
      std::set<std::pair<std::string, std::string>> keys;
      for (const auto& [key, doc] : before) keys.insert(key);
      for (const auto& [key, doc] : now) keys.insert(key);
      for (const auto& key : keys) {
        auto b = before.find(key), n = now.find(key);
        if (b != before.end() && n != now.end() && b->second == n->second) continue;
        replay.push_back(ChangeOf(
            key.first, key.second, lsn,
            n == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(n->second)));
      }
      ASSERT_TRUE(store_->Apply(std::move(replay), lsn).ok());
      readable_ = lsn;
      // Views below the log's end are never readable after a restart.
      for (auto it = history_.begin(); it != history_.end() && it->first < lsn;) {
        it = history_.erase(it);
      }
      history_[lsn] = now;
      views = {lsn};
    }
    for (auto it = views.lower_bound(readable_); it != views.end(); ++it) {
      const uint64_t view = *it;
      for (const auto& q :
           std::vector<std::vector<std::string>>{{"a"}, {"b", "c"}, {"a", "a", "j"}}) {
        ExpectMatches(view, q, 1 + rng() % 5, "t");
        if (HasFailure()) return;
      }
      // Vectors (a separate generator: the steps stay those of the seed).
      // No section reaches graphs.min_rows, so kApproximate scans exactly
      // too, through `admit` where kExact resolves `allowed` to docs.
      for (const std::string tenant : {"t", "u"}) {
        const Docs docs = StateAt(view);
        std::vector<float> q = RandomQuery(vrng);
        // Now and then a stored vector: its copies tie at the top.
        for (const auto& [key, doc] : docs) {
          const std::optional<DocVector> v = VectorOf(doc);
          if (key.first == tenant && v.has_value() && vrng() % 8 == 0) q = v->values;
        }
        absl::flat_hash_set<std::string> allowed;
        const int one_in = 1 + vrng() % 4;
        for (int c = 0; c < 40; ++c) {
          if (vrng() % one_in == 0) allowed.insert(absl::StrCat("c", c));
        }
        const size_t k = 1 + vrng() % 6;
        for (SearchMode mode : {SearchMode::kExact, SearchMode::kApproximate}) {
          ExpectVectorsMatch(view, q, k, tenant, mode, allowed);
          if (HasFailure()) return;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dash::index
