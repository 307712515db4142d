#include "common/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::jwt {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kKeyA(32, 'a');
const std::string kKeyB(40, 'b');
const absl::Time kNow = absl::FromUnixSeconds(1800000000);

TokenKeys Keys(VerifyOptions options = {}) {
  auto keys = TokenKeys::Create({{"a", kKeyA}, {"b", kKeyB}}, options);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return *keys;
}

Claims ReadOn(std::vector<std::string> tenants) {
  Claims c;
  c.subject = "alice";
  c.tenants = std::move(tenants);
  c.roles = {Role::kRead};
  c.issued_at = kNow - absl::Minutes(1);
  c.expires = kNow + absl::Hours(1);
  return c;
}

std::string Part(const std::string& json) { return absl::WebSafeBase64Escape(json); }

// A token whose parts are exactly these JSON texts, signed with `key` by
// OpenSSL directly (empty `key`: an empty signature, as "alg":"none" has).
// The known-answer test below ties this relation to another implementation.
std::string Forge(const std::string& header, const std::string& payload, const std::string& key) {
  const std::string input = absl::StrCat(Part(header), ".", Part(payload));
  if (key.empty()) return absl::StrCat(input, ".");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
  return absl::StrCat(
      input, ".",
      absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(mac), length)));
}

TEST(JwtTest, Rfc7515ExampleVerifiesWithItsKeyAndNotWithAnother) {
  // RFC 7515 appendix A.1: an HS256 JWS computed by another implementation.
  std::string key;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
      &key));
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cn"
      "VlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  auto keys = TokenKeys::Create({{"rfc", key}});
  ASSERT_TRUE(keys.ok());
  const absl::Time before_exp = absl::FromUnixSeconds(1300819380 - 60);
  auto grant = keys->Verify(token, before_exp);
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_TRUE(grant->tenants.empty()) << "no tenants claim: grants none";
  EXPECT_TRUE(grant->roles.empty());
  EXPECT_EQ(grant->expires, absl::FromUnixSeconds(1300819380));

  auto other = TokenKeys::Create({{"rfc", std::string(64, 'k')}});
  EXPECT_THAT(other->Verify(token, before_exp).status().message(), HasSubstr("bad signature"));
  EXPECT_THAT(keys->Verify(token, absl::FromUnixSeconds(1300819380 + 31)).status().message(),
              HasSubstr("expired"));
}

TEST(JwtTest, AMintedTokenVerifiesToItsGrant) {
  const TokenKeys keys = Keys();
  Claims c = ReadOn({"acme", "globex"});
  c.roles = {Role::kRead, Role::kWrite};
  auto token = keys.Mint("b", c);
  ASSERT_TRUE(token.ok()) << token.status();
  auto grant = keys.Verify(*token, kNow);
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->subject, "alice");
  EXPECT_FALSE(grant->all_tenants);
  EXPECT_EQ(grant->tenants, (std::set<std::string>{"acme", "globex"}));
  EXPECT_EQ(grant->roles, (std::set<Role>{Role::kRead, Role::kWrite}));
  EXPECT_EQ(grant->expires, c.expires);
  EXPECT_TRUE(Authorize(*grant, "acme", Role::kWrite).ok());
  EXPECT_TRUE(absl::IsNotFound(keys.Mint("nope", c).status()));
}

TEST(JwtTest, AuthorizationNamesOnlyWhatWasAskedFor) {
  const TokenKeys keys = Keys();
  auto grant = keys.Verify(*keys.Mint("a", ReadOn({"acme", "secret-tenant"})), kNow);
  ASSERT_TRUE(grant.ok());
  absl::Status st = Authorize(*grant, "globex", Role::kRead);
  EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("\"globex\""));
  EXPECT_THAT(st.message(), Not(HasSubstr("secret-tenant")));
  EXPECT_THAT(st.message(), Not(HasSubstr("acme")));
  st = Authorize(*grant, "acme", Role::kWrite);
  EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("\"write\""));
  EXPECT_TRUE(absl::IsPermissionDenied(AuthorizeRole(*grant, Role::kAdmin)));

  auto all = keys.Verify(*keys.Mint("a", ReadOn({"*"})), kNow);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->all_tenants);
  EXPECT_TRUE(Authorize(*all, "anything", Role::kRead).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(Authorize(*all, "anything", Role::kAdmin)));
}

TEST(JwtTest, ExpiryAndNotBeforeAllowTheLeewayAndNoMore) {
  const TokenKeys keys = Keys();  // Leeway 30 s.
  Claims c = ReadOn({"acme"});
  c.expires = kNow;
  const std::string token = *keys.Mint("a", c);
  EXPECT_TRUE(keys.Verify(token, kNow + absl::Seconds(29)).ok());
  absl::Status st = keys.Verify(token, kNow + absl::Seconds(30)).status();
  EXPECT_TRUE(absl::IsUnauthenticated(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("expired"));

  const std::string header = R"({"alg":"HS256","kid":"a"})";
  const std::string later =
      Forge(header, R"({"exp":1800003600,"nbf":1800000100,"tenants":["acme"]})", kKeyA);
  EXPECT_THAT(keys.Verify(later, kNow).status().message(), HasSubstr("not valid yet"));
  EXPECT_TRUE(keys.Verify(later, kNow + absl::Seconds(71)).ok());
  const std::string no_exp = Forge(header, R"({"tenants":["acme"]})", kKeyA);
  EXPECT_THAT(keys.Verify(no_exp, kNow).status().message(), HasSubstr("\"exp\""));
}

// A grant verified once and kept (Security's cache of verified tokens) is
// re-checked for time on every use: it expires, and its "nbf" holds, exactly
// as the token would on a fresh verification.
TEST(JwtTest, AKeptGrantExpiresAsItsTokenWould) {
  const TokenKeys keys = Keys();  // Leeway 30 s.
  const std::string later =
      Forge(R"({"alg":"HS256","kid":"a"})",
            R"({"exp":1800003600,"nbf":1800000100,"tenants":["acme"]})", kKeyA);
  absl::StatusOr<Grant> grant = keys.Verify(later, kNow + absl::Seconds(71));
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->not_before, absl::FromUnixSeconds(1800000100));
  EXPECT_EQ(grant->expires, absl::FromUnixSeconds(1800003600));
  EXPECT_TRUE(keys.CheckTimes(*grant, kNow + absl::Seconds(71)).ok());
  EXPECT_THAT(keys.CheckTimes(*grant, kNow).message(), HasSubstr("not valid yet"));
  EXPECT_TRUE(keys.CheckTimes(*grant, absl::FromUnixSeconds(1800003629)).ok());
  const absl::Status st = keys.CheckTimes(*grant, absl::FromUnixSeconds(1800003630));
  EXPECT_TRUE(absl::IsUnauthenticated(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("expired"));
}

TEST(JwtTest, OnlyHs256WithTheRightKeyIsAccepted) {
  const TokenKeys keys = Keys();
  const std::string payload = R"({"exp":1800003600,"tenants":["acme"],"roles":["read"]})";
  EXPECT_TRUE(keys.Verify(Forge(R"({"alg":"HS256","kid":"a"})", payload, kKeyA), kNow).ok());
  struct Case {
    std::string token;
    const char* why;
  };
  const std::vector<Case> cases = {
      {Forge(R"({"alg":"none","kid":"a"})", payload, ""), "HS256"},
      {Forge(R"({"alg":"none","kid":"a"})", payload, kKeyA), "HS256"},
      {Forge(R"({"alg":"HS512","kid":"a"})", payload, kKeyA), "HS256"},
      {Forge(R"({"alg":"hs256","kid":"a"})", payload, kKeyA), "HS256"},
      {Forge(R"({"kid":"a"})", payload, kKeyA), "HS256"},
      {Forge(R"({"alg":"HS256","kid":"a"})", payload, kKeyB), "bad signature"},
      {Forge(R"({"alg":"HS256","kid":"b"})", payload, kKeyA), "bad signature"},
      {Forge(R"({"alg":"HS256","kid":"c"})", payload, kKeyA), "unknown key id"},
      {Forge(R"({"alg":"HS256"})", payload, kKeyA), "several keys"},
      {Forge(R"({"alg":"HS256","kid":"a","crit":["exp"]})", payload, kKeyA), "critical"},
      {Forge(R"(["alg","HS256"])", payload, kKeyA), "header"},
      {Forge(R"({"alg":"HS256","kid":"a"})", "[1]", kKeyA), "claims"},
      {Forge(R"({"alg":"HS256","kid":"a"})", R"({"exp":1800003600,"roles":["root"]})", kKeyA),
       "unknown role"},
      {Forge(R"({"alg":"HS256","kid":"a"})", R"({"exp":1800003600,"tenants":"acme"})", kKeyA),
       "\"tenants\""},
      {Forge(R"({"alg":"HS256","kid":"a"})", R"({"exp":"soon"})", kKeyA), "\"exp\""},
      {"a.b", "three"},
      {"a.b.c.d", "three"},
      {"!!.e30.e30", "base64url"},
      {absl::StrCat(Part(R"({"alg":"HS256","kid":"a"})"), ".!!.", Part("x")), "base64url"},
      {std::string(kMaxTokenBytes + 1, 'a'), "8 KiB"},
  };
  for (const Case& c : cases) {
    absl::Status st = keys.Verify(c.token, kNow).status();
    EXPECT_TRUE(absl::IsUnauthenticated(st)) << c.why << ": " << st;
    EXPECT_THAT(st.message(), HasSubstr(c.why));
  }
  // A payload changed after signing.
  std::string good = Forge(R"({"alg":"HS256","kid":"a"})", payload, kKeyA);
  std::vector<std::string> parts = absl::StrSplit(good, '.');
  parts[1] = Part(R"({"exp":1800003600,"tenants":"*","roles":["admin"]})");
  EXPECT_THAT(keys.Verify(absl::StrJoin(parts, "."), kNow).status().message(),
              HasSubstr("bad signature"));
  // A signature spelled otherwise: the last character of 32 bytes in
  // base64url carries 2 unused bits; setting them decodes to the same bytes
  // but is not the token that was signed.
  parts = absl::StrSplit(good, '.');
  ASSERT_EQ(parts[2].size(), 43u);
  std::string respelled = parts[2];
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  respelled.back() = alphabet[alphabet.find(respelled.back()) | 1];
  if (respelled.back() == parts[2].back()) {
    respelled.back() = alphabet[alphabet.find(respelled.back()) & ~size_t{3}];
  }
  std::string same_bytes, original_bytes;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(respelled, &same_bytes));
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[2], &original_bytes));
  ASSERT_EQ(same_bytes, original_bytes) << "the respelling must decode to the same signature";
  EXPECT_THAT(
      keys.Verify(absl::StrCat(parts[0], ".", parts[1], ".", respelled), kNow).status().message(),
      HasSubstr("base64url"));
  // Padding is not base64url of JWS.
  parts = absl::StrSplit(good, '.');
  EXPECT_FALSE(keys.Verify(absl::StrCat(parts[0], "=.", parts[1], ".", parts[2]), kNow).ok());
}

TEST(JwtTest, IssuerAndAudienceAreCheckedWhenConfigured) {
  VerifyOptions o;
  o.issuer = "dash-ops";
  o.audience = "dash";
  const TokenKeys keys = Keys(o);
  Claims c = ReadOn({"acme"});
  EXPECT_THAT(keys.Verify(*keys.Mint("a", c), kNow).status().message(), HasSubstr("issuer"));
  c.issuer = "dash-ops";
  EXPECT_THAT(keys.Verify(*keys.Mint("a", c), kNow).status().message(), HasSubstr("audience"));
  c.audience = "dash";
  EXPECT_TRUE(keys.Verify(*keys.Mint("a", c), kNow).ok());
  const std::string header = R"({"alg":"HS256","kid":"a"})";
  EXPECT_TRUE(
      keys.Verify(Forge(header, R"({"exp":1800003600,"iss":"dash-ops","aud":["x","dash"]})", kKeyA),
                  kNow)
          .ok());
  EXPECT_FALSE(
      keys.Verify(Forge(header, R"({"exp":1800003600,"iss":"dash-ops","aud":["x"]})", kKeyA), kNow)
          .ok());
}

TEST(JwtTest, BearerHeadersAreParsed) {
  const TokenKeys keys = Keys();
  const std::string token = *keys.Mint("a", ReadOn({"acme"}));
  EXPECT_TRUE(keys.VerifyBearer(absl::StrCat("Bearer ", token), kNow).ok());
  EXPECT_TRUE(keys.VerifyBearer(absl::StrCat("bearer  ", token, " "), kNow).ok());
  for (const std::string& h : {std::string(), std::string("Basic abc"), std::string("Bearer"),
                               absl::StrCat("Token ", token), token}) {
    absl::Status st = keys.VerifyBearer(h, kNow).status();
    EXPECT_TRUE(absl::IsUnauthenticated(st)) << h << ": " << st;
  }
}

TEST(JwtTest, KeyFilesNameWhatIsWrongButNeverASecret) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "jwt-keys";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string a64 = absl::Base64Escape(kKeyA);
  auto good = TokenKeys::FromFile(
      write("good.json",
            absl::StrCat(R"({"keys":[{"kid":"k1","secret":")", a64, R"("},{"kid":"k2","secret":")",
                         absl::WebSafeBase64Escape(kKeyB), R"("}],"issuer":"ops"})")));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->key_ids(), (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(good->options().issuer, "ops");

  EXPECT_TRUE(absl::IsNotFound(TokenKeys::FromFile((dir / "missing.json").string()).status()));
  const std::string short_secret = absl::Base64Escape(std::string(16, 's'));
  struct Case {
    std::string text;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "not a JSON object"},
           {R"({"keys":{}})", "must be an array"},
           {R"({"keys":[]})", "no signing key"},
           {R"({"keys":[{"kid":"k1"}]})", "keys[0]"},
           {absl::StrCat(R"({"keys":[{"kid":"k1","secret":")", short_secret, R"("}]})"),
            "has 16 bytes"},
           {absl::StrCat(R"({"keys":[{"kid":"k1","secret":")", a64, R"("},{"kid":"k1","secret":")",
                         a64, R"("}]})"),
            "appears twice"},
           {R"({"keys":[{"kid":"k1","secret":"%%%"}]})", "not base64"},
       }) {
    absl::Status st = TokenKeys::FromFile(write("bad.json", c.text)).status();
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << c.why << ": " << st;
    EXPECT_THAT(st.message(), HasSubstr(c.why));
    EXPECT_THAT(st.message(), Not(HasSubstr(a64)));
    EXPECT_THAT(st.message(), Not(HasSubstr(short_secret)));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dash::jwt
