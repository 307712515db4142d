#include "node/index/prefilter_cache.h"

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
