#include "common/hashing.h"

#include <set>

#include "gtest/gtest.h"

namespace dash {
namespace {

TEST(HashingTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HashingTest, Crc32MatchesZlibCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
}

TEST(HashingTest, ClaimHashSeparatesTenantFromId) {
  // "ab" + "c" and "a" + "bc" must not collide by construction.
  EXPECT_NE(ClaimHash("ab", "c"), ClaimHash("a", "bc"));
  EXPECT_EQ(ClaimHash("t", "c1"), ClaimHash("t", "c1"));
}

TEST(HashingTest, ShardOfIsStableAndSpreads) {
  // Placement is part of the on-disk contract: pin one value.
  const uint32_t pinned = ShardOf("tenant", "claim-1", 1024);
  EXPECT_EQ(pinned, ShardOf("tenant", "claim-1", 1024));
  EXPECT_EQ(ShardOf("tenant", "claim-1", 1), 0u);
  std::set<uint32_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(ShardOf("t", "c" + std::to_string(i), 4));
  EXPECT_EQ(seen.size(), 4u);
}

}  // namespace
}  // namespace dash
