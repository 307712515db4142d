#include "node/shard/read_views.h"

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::shard {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ReadViews only hands snapshots around: a snapshot that holds nothing is
// enough to tell which one is readable.
class NoData final : public storage::Reader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(storage::Family,
                                                 absl::string_view) const override {
    return std::nullopt;
  }
  std::unique_ptr<storage::Cursor> Scan(storage::Family, absl::string_view,
                                        absl::string_view) const override {
    return nullptr;
  }
};

std::shared_ptr<const storage::Reader> Snap() { return std::make_shared<NoData>(); }

const storage::Reader* CurrentOf(const ReadViews& v) {
  auto current = v.Current();
  return current.ok() ? current->get() : nullptr;
}

TEST(ReadViewsTest, ACommittedStartIsReadableAtOnce) {
  auto s = Snap();
  ReadViews v(0, s, 7, /*committed=*/true);
  EXPECT_EQ(CurrentOf(v), s.get());
  EXPECT_EQ(v.ReadableLsn(), 7u);
}

TEST(ReadViewsTest, AnUnconfirmedStartServesNothingUntilTheCommitLsnReachesIt) {
  auto s = Snap();
  ReadViews v(3, s, 7, /*committed=*/false);
  EXPECT_TRUE(absl::IsUnavailable(v.Current().status()));
  EXPECT_EQ(v.ReadableLsn(), 0u);
  EXPECT_FALSE(v.Advance(6).moved);
  EXPECT_TRUE(absl::IsUnavailable(v.Current().status()));
  ReadViews::Advanced a = v.Advance(7);
  EXPECT_TRUE(a.moved);
  EXPECT_EQ(a.read_lsn, 7u);
  EXPECT_EQ(CurrentOf(v), s.get());
}

using Touched = ReadViews::Touched;

TEST(ReadViewsTest, TheNewestViewTheCommitLsnReachesBecomesReadableWithItsClaims) {
  auto s0 = Snap(), s1 = Snap(), s2 = Snap(), s3 = Snap();
  ReadViews v(0, s0, 0, true);
  v.Queue(1, s1, Touched{{"a", {"c1"}}});
  v.Queue(2, s2, Touched{{"a", {"c2"}}, {"b", {"c1"}}});
  v.Queue(3, s3, Touched{{"c", {"c1"}}});
  EXPECT_EQ(CurrentOf(v), s0.get()) << "nothing is readable before it is committed";
  ReadViews::Advanced a = v.Advance(2);
  EXPECT_TRUE(a.moved);
  EXPECT_EQ(a.read_lsn, 2u);
  EXPECT_EQ(a.touched, (Touched{{"a", {"c1", "c2"}}, {"b", {"c1"}}}));
  EXPECT_EQ(CurrentOf(v), s2.get());
  a = v.Advance(2);
  EXPECT_FALSE(a.moved);
  EXPECT_THAT(a.touched, IsEmpty());
  a = v.Advance(10);
  EXPECT_EQ(a.read_lsn, 3u);
  EXPECT_EQ(CurrentOf(v), s3.get());
}

TEST(ReadViewsTest, NoReaderTakesTheNewViewBeforeItsCallbackReturns) {
  auto s0 = Snap(), s1 = Snap();
  ReadViews v(0, s0, 0, true);
  v.Queue(1, s1, Touched{{"a", {"c1"}}});
  absl::Notification in_callback, release, read;
  const storage::Reader* seen = nullptr;
  std::thread advancer([&] {
    v.Advance(1, [&](const Touched& touched) {
      EXPECT_EQ(touched, (Touched{{"a", {"c1"}}}));
      in_callback.Notify();
      release.WaitForNotification();
    });
  });
  in_callback.WaitForNotification();
  std::thread reader([&] {
    seen = CurrentOf(v);
    read.Notify();
  });
  EXPECT_FALSE(read.WaitForNotificationWithTimeout(absl::Milliseconds(100)))
      << "a reader got a view while the callback ran";
  release.Notify();
  advancer.join();
  reader.join();
  EXPECT_EQ(seen, s1.get()) << "after the callback, the new view";
}

TEST(ReadViewsTest, ATenantNotKnownClaimByClaimStaysSoWhenMerged) {
  Touched into{{"a", {"c1"}}, {"b", {}}};
  ReadViews::Merge(Touched{{"a", {}}, {"b", {"c9"}}, {"c", {"c3"}}}, &into);
  EXPECT_EQ(into, (Touched{{"a", {}}, {"b", {}}, {"c", {"c3"}}}));
}

TEST(ReadViewsTest, DroppingATruncatedSuffixReturnsTheTenantsItsViewsTouched) {
  auto s0 = Snap();
  ReadViews v(0, s0, 0, true);
  v.Queue(1, Snap(), Touched{{"a", {"c1"}}});
  v.Queue(2, Snap(), Touched{{"b", {"c1"}}});
  v.Queue(3, Snap(), Touched{{"c", {"c1"}}});
  EXPECT_THAT(v.DropFrom(2), ElementsAre("b", "c"));
  auto s1 = Snap();
  v.Queue(2, s1, {});  // The truncated log's end.
  ReadViews::Advanced a = v.Advance(3);
  EXPECT_EQ(a.read_lsn, 2u);
  EXPECT_EQ(a.touched, (Touched{{"a", {"c1"}}}));
  EXPECT_EQ(CurrentOf(v), s1.get());
}

TEST(ReadViewsTest, TheQueueIsBoundedByMergingItsNewestViews) {
  ReadViews v(0, Snap(), 0, true);
  for (uint64_t lsn = 1; lsn <= ReadViews::kMaxQueued + 10; ++lsn) {
    v.Queue(lsn, Snap(),
            Touched{{"t" + std::to_string(lsn), {"c"}}, {"all", {std::to_string(lsn)}}});
  }
  // Every tenant and claim survives the merges; the last view is the newest.
  ReadViews::Advanced a = v.Advance(ReadViews::kMaxQueued + 10);
  EXPECT_EQ(a.read_lsn, ReadViews::kMaxQueued + 10);
  EXPECT_EQ(a.touched.size(), ReadViews::kMaxQueued + 11);
  EXPECT_EQ(a.touched["all"].size(), ReadViews::kMaxQueued + 10);
}

}  // namespace
}  // namespace dash::shard
