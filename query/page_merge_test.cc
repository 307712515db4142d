#include "query/page_merge.h"

#include <string>
#include <vector>

#include "common/page_token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::query {
namespace {

using ::testing::ElementsAre;

ShardPage Page(std::vector<std::string> ids, bool more, uint64_t lsn) {
  ShardPage page;
  for (const std::string& id : ids) {
    v1::ClaimRecord rec;
    rec.mutable_claim()->set_claim_id(id);
    page.records.push_back(std::move(rec));
  }
  page.more = more;
  v1::CommitToken token;
  token.set_lsn(lsn);
  page.read_at.push_back(token);
  return page;
}

std::vector<std::string> Ids(const v1::ListClaimsResponse& r) {
  std::vector<std::string> ids;
  for (const auto& rec : r.records()) ids.push_back(rec.claim().claim_id());
  return ids;
}

std::string StartAfter(const v1::ListClaimsResponse& r, const std::string& scope) {
  absl::StatusOr<std::string> after = DecodePageToken(r.next_page_token(), "acme", scope);
  EXPECT_TRUE(after.ok()) << after.status();
  return after.value_or("");
}

TEST(MergeListPagesTest, SortsByClaimIdAndCutsAtTheLimitWithAToken) {
  const std::string scope = ListScope(std::nullopt);
  std::vector<ShardPage> pages;
  pages.push_back(Page({"a", "d", "e"}, false, 10));
  pages.push_back(Page({"b", "c"}, false, 20));
  v1::ListClaimsResponse r = MergeListPages(std::move(pages), 3, "acme", scope);
  EXPECT_THAT(Ids(r), ElementsAre("a", "b", "c"));
  EXPECT_EQ(StartAfter(r, scope), "c") << "records were cut: the next page starts after c";
  ASSERT_EQ(r.read_at_size(), 2);
  EXPECT_EQ(r.read_at(0).lsn(), 10u) << "read_at in the order of the pages";
  EXPECT_EQ(r.read_at(1).lsn(), 20u);
}

TEST(MergeListPagesTest, AShardWithMoreGivesATokenEvenBelowTheLimit) {
  const std::string scope = ListScope(uint32_t{2});
  std::vector<ShardPage> pages;
  pages.push_back(Page({"x", "y"}, true, 1));
  v1::ListClaimsResponse r = MergeListPages(std::move(pages), 5, "acme", scope);
  EXPECT_THAT(Ids(r), ElementsAre("x", "y"));
  EXPECT_EQ(StartAfter(r, scope), "y");
}

TEST(MergeListPagesTest, TheLastPageHasNoToken) {
  std::vector<ShardPage> pages;
  pages.push_back(Page({"b"}, false, 1));
  pages.push_back(Page({"a"}, false, 2));
  v1::ListClaimsResponse r = MergeListPages(std::move(pages), 2, "acme", ListScope(std::nullopt));
  EXPECT_THAT(Ids(r), ElementsAre("a", "b"));
  EXPECT_TRUE(r.next_page_token().empty()) << "exactly the limit and no shard has more";

  std::vector<ShardPage> empty;
  empty.push_back(Page({}, true, 1));
  r = MergeListPages(std::move(empty), 2, "acme", ListScope(std::nullopt));
  EXPECT_EQ(r.records_size(), 0);
  EXPECT_TRUE(r.next_page_token().empty()) << "no record to continue after";
  EXPECT_EQ(r.read_at_size(), 1);
}

}  // namespace
}  // namespace dash::query
