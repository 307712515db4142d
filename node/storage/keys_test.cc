#include "node/storage/keys.h"

#include "gtest/gtest.h"

namespace dash::storage::keys {
namespace {

TEST(KeysTest, LogKeysSortInLsnOrder) {
  EXPECT_LT(Log(1), Log(2));
  EXPECT_LT(Log(255), Log(256));
  EXPECT_LT(Log(0xFFFFFFFF), Log(0x100000000ULL));
  uint64_t lsn = 0;
  ASSERT_TRUE(ParseLog(Log(0x0102030405060708ULL), &lsn));
  EXPECT_EQ(lsn, 0x0102030405060708ULL);
  EXPECT_FALSE(ParseLog("short", &lsn));
}

TEST(KeysTest, TenantPrefixNeverMatchesAnotherTenant) {
  const std::string prefix = TenantPrefix("acme");
  EXPECT_EQ(Claim("acme", "c1").rfind(prefix, 0), 0u);
  EXPECT_NE(Claim("acme2", "c1").rfind(prefix, 0), 0u);
  EXPECT_NE(Claim("acm", "e\x01").rfind(prefix, 0), 0u);
}

TEST(KeysTest, ClaimPrefixCoversOnlyThatClaimsEvidence) {
  const std::string prefix = ClaimPrefix("t", "c1");
  EXPECT_EQ(Evidence("t", "c1", "e1").rfind(prefix, 0), 0u);
  EXPECT_NE(Evidence("t", "c10", "e1").rfind(prefix, 0), 0u);
}

TEST(KeysTest, EdgeInSuffixRoundTrips) {
  const std::string key = EdgeIn("t", "to", "from-claim", 4);
  std::string from;
  int relation = 0;
  ASSERT_TRUE(ParseEdgeInSuffix(Suffix(key, ClaimPrefix("t", "to")), &from, &relation));
  EXPECT_EQ(from, "from-claim");
  EXPECT_EQ(relation, 4);
}

TEST(KeysTest, IdempotencyExpiryKeysSortByCommitTimeThenLsnAndRoundTrip) {
  EXPECT_LT(IdempotencyExpiry(5, 900), IdempotencyExpiry(6, 1));
  EXPECT_LT(IdempotencyExpiry(6, 1), IdempotencyExpiry(6, 2));
  EXPECT_LT(IdempotencyExpiry(255, 1), IdempotencyExpiry(256, 1));
  int64_t micros = 0;
  uint64_t lsn = 0;
  ASSERT_TRUE(ParseIdempotencyExpiry(IdempotencyExpiry(1'700'000'000'000'000, 42), &micros, &lsn));
  EXPECT_EQ(micros, 1'700'000'000'000'000);
  EXPECT_EQ(lsn, 42u);
  EXPECT_FALSE(ParseIdempotencyExpiry(EpochStart(3), &micros, &lsn));
  EXPECT_FALSE(ParseIdempotencyExpiry(std::string(kIdempotencyExpiryPrefix) + "short", &micros,
                                      &lsn));
}

}  // namespace
}  // namespace dash::storage::keys
