#include "node/index/lexical_store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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
    o.merge_factor = 3;
    o.merge_bytes_per_second = 0;
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
      changes.push_back({tenant, id, lsn, terms});
    }
    for (const auto& id : deletes) {
      docs.erase({tenant, id});
      changes.push_back({tenant, id, lsn, std::nullopt});
    }
    history_[lsn] = docs;
    ASSERT_TRUE(store_->Apply(std::move(changes), lsn).ok());
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

  std::set<std::string> Files() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.insert(e.path().filename().string());
    return out;
  }

  fs::path dir_;
  std::unique_ptr<LexicalStore> store_;
  uint64_t committed_ = 0;
  uint64_t readable_ = 0;
  bool fail_manifest_ = false;
  std::string manifest_;
  std::map<uint64_t, Docs> history_;
  Bm25Params params_;
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
  ASSERT_TRUE(store_
                  ->Apply({{"t", "c1", 3, std::vector<std::string>{"yellow", "banana"}},
                           {"t", "c2", 3, std::nullopt}},
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

TEST_F(LexicalStoreTest, TruncationInsideAGroupAsksForTheKeptRecordsAgain) {
  Commit(1, {{"c1", "one"}});
  committed_ = readable_ = 1;
  // Records 2 and 3 applied at once, as a follower applies a batch: the docs
  // carry lsn 3.
  history_[2] = {{{"t", "c1"}, {"one"}}, {{"t", "c2"}, {"two"}}};
  history_[3] = {{{"t", "c1"}, {"three"}}, {{"t", "c2"}, {"two"}}};
  ASSERT_TRUE(store_
                  ->Apply({{"t", "c1", 3, std::vector<std::string>{"three"}},
                           {"t", "c2", 3, std::vector<std::string>{"two"}}},
                          3)
                  .ok());
  std::vector<std::pair<std::string, std::string>> changed;
  EXPECT_FALSE(store_->TruncateAfter(2, &changed));
  EXPECT_THAT(changed, ::testing::UnorderedElementsAre(std::make_pair("t", "c1"),
                                                       std::make_pair("t", "c2")));
  history_.erase(3);
  ASSERT_TRUE(store_
                  ->Apply({{"t", "c1", 2, std::vector<std::string>{"one"}},
                           {"t", "c2", 2, std::vector<std::string>{"two"}}},
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

// Random upserts, deletes, flushes, merges, truncations and reopens: after
// each step, stats and top-k at every view still readable equal the brute
// force over the reference state at that view.
TEST_F(LexicalStoreTest, PropertyEveryViewEqualsBruteForce) {
  const int seed = ::testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE(absl::StrCat("--gtest_random_seed=", seed));
  std::mt19937 rng(seed);
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
        changes.push_back(
            {tenant, id, lsn,
             it == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(it->second)});
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
        again.push_back(
            {key.first, key.second, to,
             it == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(it->second)});
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
        replay.push_back(
            {key.first, key.second, lsn,
             n == now.end() ? std::nullopt : std::optional<std::vector<std::string>>(n->second)});
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
    }
  }
}

}  // namespace
}  // namespace dash::index
