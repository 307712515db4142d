#include "node/index/prefilter_cache.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dash::index {
namespace {

TEST(PrefilterCacheTest, HitsUntilTheTenantChanges) {
  PrefilterCache cache;
  int computed = 0;
  auto compute = [&]() -> absl::StatusOr<IdSet> {
    ++computed;
    return IdSet{"a", "b"};
  };
  auto gen = cache.Generation("t");
  ASSERT_TRUE(cache.GetOrCompute("t", "f1", gen, false, compute).ok());
  ASSERT_TRUE(cache.GetOrCompute("t", "f1", gen, false, compute).ok());
  EXPECT_EQ(computed, 1);
  // A write to another tenant does not invalidate.
  cache.Invalidate("other");
  EXPECT_EQ(cache.Generation("t"), gen);
  ASSERT_TRUE(cache.GetOrCompute("t", "f1", cache.Generation("t"), false, compute).ok());
  EXPECT_EQ(computed, 1);
  // A write to this tenant does.
  cache.Invalidate("t");
  ASSERT_TRUE(cache.GetOrCompute("t", "f1", cache.Generation("t"), false, compute).ok());
  EXPECT_EQ(computed, 2);
  auto s = cache.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.entries, 1u);
}

// A "filter" over a fake store: claim -> admitted.
struct FakeFilter {
  std::map<std::string, bool> admitted;
  int computed = 0;
  std::vector<std::vector<std::string>> patched;  // The changed lists seen.
  std::function<absl::StatusOr<IdSet>()> Compute() {
    return [this]() -> absl::StatusOr<IdSet> {
      ++computed;
      IdSet ids;
      for (const auto& [id, ok] : admitted) {
        if (ok) ids.insert(id);
      }
      return ids;
    };
  }
  PrefilterCache::Patch Patch() {
    return [this](const std::vector<std::string>& changed, IdSet* ids) {
      patched.push_back(changed);
      for (const std::string& id : changed) {
        ids->erase(id);
        auto it = admitted.find(id);
        if (it != admitted.end() && it->second) ids->insert(id);
      }
      return absl::OkStatus();
    };
  }
};

TEST(PrefilterCacheTest, AnOutdatedEntryIsPatchedWithTheClaimsNamedSince) {
  PrefilterCache cache;
  FakeFilter f;
  f.admitted = {{"a", true}, {"b", false}, {"c", true}};
  auto get = [&] {
    auto r = cache.GetOrCompute("t", "f", cache.Generation("t"), false, f.Compute(), f.Patch());
    EXPECT_TRUE(r.ok()) << r.status();
    return std::set<std::string>((*r)->begin(), (*r)->end());
  };
  EXPECT_EQ(get(), (std::set<std::string>{"a", "c"}));
  f.admitted["b"] = true;  // Written.
  cache.Invalidate("t", {"b"});
  f.admitted.erase("a");   // Deleted.
  f.admitted["d"] = true;  // Added.
  cache.Invalidate("t", {"a", "d"});
  EXPECT_EQ(get(), (std::set<std::string>{"b", "c", "d"}));
  EXPECT_EQ(f.computed, 1) << "patched, not rescanned";
  ASSERT_EQ(f.patched.size(), 1u);
  EXPECT_EQ(f.patched[0], (std::vector<std::string>{"a", "b", "d"})) << "every bump since, once";
  EXPECT_EQ(get(), (std::set<std::string>{"b", "c", "d"}));
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().patches, 1u);

  // A bump that names no claims cannot be patched across.
  f.admitted["c"] = false;
  cache.Invalidate("t");
  cache.Invalidate("t", {"x"});
  EXPECT_EQ(get(), (std::set<std::string>{"b", "d"}));
  EXPECT_EQ(f.computed, 2);
  // Nor can a history that no longer reaches back: the bound trims it.
  cache.Invalidate("t", {"y"});
  EXPECT_EQ(get(), (std::set<std::string>{"b", "d"}));
  EXPECT_EQ(f.computed, 2) << "patched across the one named bump";
}

TEST(PrefilterCacheTest, TheHistoryIsBoundedByBumpsAndClaims) {
  PrefilterCacheOptions o;
  o.max_bumps = 3;
  o.max_bump_ids = 4;
  PrefilterCache cache(o);
  FakeFilter f;
  f.admitted = {{"a", true}};
  auto get = [&] {
    ASSERT_TRUE(
        cache.GetOrCompute("t", "f", cache.Generation("t"), false, f.Compute(), f.Patch()).ok());
  };
  get();
  for (int i = 0; i < 3; ++i) cache.Invalidate("t", {"a"});
  get();
  EXPECT_EQ(f.computed, 1) << "three bumps are remembered";
  for (int i = 0; i < 4; ++i) cache.Invalidate("t", {"a"});
  get();
  EXPECT_EQ(f.computed, 2) << "the fourth bump back is forgotten";
  cache.Invalidate("t", {"a", "b", "c", "d", "e"});  // More claims than kept: a full bump.
  get();
  EXPECT_EQ(f.computed, 3);
  cache.Invalidate("t", {"a", "b"});
  cache.Invalidate("t", {"c", "d", "e"});  // Together over 4: the first is dropped.
  get();
  EXPECT_EQ(f.computed, 4);
  cache.Invalidate("t", {"a", "b"});
  get();
  EXPECT_EQ(f.computed, 4);
}

TEST(PrefilterCacheTest, BypassNeitherReadsNorWrites) {
  PrefilterCache cache;
  int computed = 0;
  auto compute = [&]() -> absl::StatusOr<IdSet> {
    ++computed;
    return IdSet{"a"};
  };
  ASSERT_TRUE(cache.GetOrCompute("t", "f", 0, true, compute).ok());
  ASSERT_TRUE(cache.GetOrCompute("t", "f", 0, false, compute).ok());
  ASSERT_TRUE(cache.GetOrCompute("t", "f", 0, true, compute).ok());
  EXPECT_EQ(computed, 3);
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(PrefilterCacheTest, EvictsLeastRecentlyUsedByEntriesAndIds) {
  PrefilterCacheOptions o;
  o.max_entries = 2;
  o.max_ids = 5;
  PrefilterCache cache(o);
  auto ids = [](int n) {
    return [n]() -> absl::StatusOr<IdSet> {
      IdSet s;
      for (int i = 0; i < n; ++i) s.insert(std::to_string(i));
      return s;
    };
  };
  ASSERT_TRUE(cache.GetOrCompute("t", "a", 0, false, ids(1)).ok());
  ASSERT_TRUE(cache.GetOrCompute("t", "b", 0, false, ids(1)).ok());
  ASSERT_TRUE(cache.GetOrCompute("t", "a", 0, false, ids(1)).ok());  // a is now most recent
  ASSERT_TRUE(cache.GetOrCompute("t", "c", 0, false, ids(1)).ok());  // evicts b
  EXPECT_EQ(cache.stats().evictions, 1u);
  const uint64_t misses = cache.stats().misses;
  ASSERT_TRUE(cache.GetOrCompute("t", "a", 0, false, ids(1)).ok());
  EXPECT_EQ(cache.stats().misses, misses);  // a survived
  ASSERT_TRUE(cache.GetOrCompute("t", "b", 0, false, ids(1)).ok());
  EXPECT_EQ(cache.stats().misses, misses + 1);  // b was gone
  // A large entry pushes out the others to respect max_ids.
  ASSERT_TRUE(cache.GetOrCompute("t", "big", 0, false, ids(5)).ok());
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.stats().ids, 5u);
}

TEST(PrefilterCacheTest, ComputeErrorsAreReturnedAndNotCached) {
  PrefilterCache cache;
  auto st = cache.GetOrCompute("t", "f", 0, false,
                               []() -> absl::StatusOr<IdSet> { return absl::DataLossError("x"); });
  EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(cache.stats().entries, 0u);
}

}  // namespace
}  // namespace dash::index

namespace dash::index {
namespace {

// Keys of any size used to grow the cache without bound (16 filters with a
// 4 MiB key each took 285 MiB): entries now count their key and ids in bytes.
TEST(PrefilterCacheTest, BytesOfKeysAndIdsAreBounded) {
  PrefilterCacheOptions o;
  o.max_entries = 1000;
  o.max_bytes = 1 << 20;
  PrefilterCache cache(o);
  auto one = []() -> absl::StatusOr<IdSet> { return IdSet{"c1"}; };
  for (int i = 0; i < 64; ++i) {
    const std::string key = std::to_string(i) + std::string(64 << 10, 'k');  // 64 KiB keys.
    ASSERT_TRUE(cache.GetOrCompute("t", key, 0, false, one).ok());
    EXPECT_LE(cache.stats().bytes, o.max_bytes) << i;
  }
  EXPECT_LT(cache.stats().entries, 10u) << "about 1 MiB of 128 KiB entries";
  EXPECT_GT(cache.stats().evictions, 50u);
  // One result larger than the bound is answered but not kept.
  auto huge = []() -> absl::StatusOr<IdSet> {
    IdSet s;
    for (int i = 0; i < 100000; ++i) s.insert("claim-with-a-long-id-" + std::to_string(i));
    return s;
  };
  auto r = cache.GetOrCompute("t", "huge", 0, false, huge);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->size(), 100000u);
  EXPECT_LE(cache.stats().bytes, o.max_bytes);
  const uint64_t misses = cache.stats().misses;
  ASSERT_TRUE(cache.GetOrCompute("t", "huge", 0, false, huge).ok());
  EXPECT_EQ(cache.stats().misses, misses + 1) << "not cached";
}

}  // namespace
}  // namespace dash::index
