#include "common/page_token.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash {
namespace {

using ::testing::HasSubstr;

TEST(PageTokenTest, RoundTripsWithinItsListing) {
  const std::string token = EncodePageToken("acme", ListScope(std::nullopt), "claim-17");
  auto decoded = DecodePageToken(token, "acme", ListScope(std::nullopt));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, "claim-17");
  EXPECT_EQ(token.find('='), std::string::npos) << "URL-safe, no padding";
}

TEST(PageTokenTest, RefusesTokensOfAnotherTenantOrScope) {
  const std::string token = EncodePageToken("acme", ListScope(std::nullopt), "claim-17");
  auto other_tenant = DecodePageToken(token, "globex", ListScope(std::nullopt));
  EXPECT_TRUE(absl::IsInvalidArgument(other_tenant.status()));
  EXPECT_THAT(std::string(other_tenant.status().message()), HasSubstr("page_token: "));
  EXPECT_TRUE(
      absl::IsInvalidArgument(DecodePageToken(token, "acme", ListScope(uint32_t{2})).status()));
  const std::string shard2 = EncodePageToken("acme", ListScope(uint32_t{2}), "x");
  EXPECT_TRUE(
      absl::IsInvalidArgument(DecodePageToken(shard2, "acme", ListScope(uint32_t{3})).status()));
  EXPECT_TRUE(DecodePageToken(shard2, "acme", ListScope(uint32_t{2})).ok());
}

TEST(PageTokenTest, RefusesGarbageForgeriesAndOtherVersions) {
  const std::string scope = ListScope(std::nullopt);
  for (const std::string& bad :
       {std::string("!!!"), std::string("\xff\xfe"), absl::WebSafeBase64Escape("junk"),
        absl::WebSafeBase64Escape(std::string("\x01", 1) + "junk" + std::string(8, '\0')),
        absl::WebSafeBase64Escape(std::string(64, '\x5a'))}) {
    auto r = DecodePageToken(bad, "acme", scope);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << bad << ": " << r.status();
  }
  // Another version with a valid layout.
  std::string raw;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(EncodePageToken("acme", scope, "c"), &raw));
  raw[0] = '\x02';
  auto v2 = DecodePageToken(absl::WebSafeBase64Escape(raw), "acme", scope);
  EXPECT_THAT(std::string(v2.status().message()), HasSubstr("version 2"));
  // Every flipped bit of a real token is caught.
  ASSERT_TRUE(absl::WebSafeBase64Unescape(EncodePageToken("acme", scope, "claim-17"), &raw));
  for (size_t i = 1; i < raw.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = raw;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      EXPECT_FALSE(DecodePageToken(absl::WebSafeBase64Escape(flipped), "acme", scope).ok())
          << "byte " << i << " bit " << bit;
    }
  }
}

}  // namespace
}  // namespace dash
