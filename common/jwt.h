// Bearer tokens: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (JWS
// HS256, RFC 7515), the credentials clients present to DASH, and what a
// verified token grants (tenants and roles).
//
// Verification follows RFC 7519 §7.2 and the JWT best practices of RFC 8725:
// exactly three base64url parts; a header whose "alg" is "HS256" and nothing
// else ("none", other algorithms and an unknown "crit" are refused before any
// key is used); the key named by "kid" (which may be omitted only when one
// key is configured); a constant-time comparison of the signature; "exp"
// required and "nbf" honoured, each with a small leeway; "iss" and "aud"
// checked when configured. OpenSSL computes the HMAC, abseil does base64url
// and nlohmann/json parses the JSON.
//
// A token grants:
//   "tenants": ["a", "b"]   the tenants it may use, or "*" for every tenant;
//   "roles": ["read", "write", "admin"]
//     read  — GetClaim, ListClaims, Query;
//     write — Write;
//     admin — placement, NodeAdmin, verify, snapshots.
// Roles do not imply one another: a token lists each role it needs.
//
// Errors never echo the token, a key or a signature: UNAUTHENTICATED says why
// a token is refused, PERMISSION_DENIED names the tenant or role asked for.
//
// Thread-safety: TokenKeys is immutable once built and may be used from any
// thread.
#ifndef DASH_COMMON_JWT_H_
#define DASH_COMMON_JWT_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dash::jwt {

enum class Role { kRead, kWrite, kAdmin };

// "read", "write", "admin".
const char* RoleName(Role role);

// What a verified token grants.
struct Grant {
  std::string subject;  // "sub", when the token has one.
  bool all_tenants = false;
  std::set<std::string> tenants;
  std::set<Role> roles;
  absl::Time expires = absl::InfinitePast();
  absl::Time not_before = absl::InfinitePast();  // "nbf", when the token has one.
};

// OK when `grant` may use `tenant` in `role`; PERMISSION_DENIED otherwise,
// naming the tenant or the role asked for (nothing else of the grant).
absl::Status Authorize(const Grant& grant, absl::string_view tenant, Role role);
// The same for calls that name no tenant (admin calls): the role only.
absl::Status AuthorizeRole(const Grant& grant, Role role);

struct VerifyOptions {
  std::string issuer;    // Required "iss" when not empty.
  std::string audience;  // Required in "aud" (a string or an array) when not empty.
  absl::Duration leeway = absl::Seconds(30);  // Clock skew allowed for exp and nbf.
};

// What Mint writes.
struct Claims {
  std::string subject;
  std::vector<std::string> tenants;  // {"*"}: every tenant.
  std::vector<Role> roles;
  absl::Time issued_at;
  absl::Time expires;
  std::string issuer;
  std::string audience;
};

// Tokens longer than this are refused unread.
inline constexpr size_t kMaxTokenBytes = 8192;
// RFC 7518 §3.2: an HS256 key has at least as many bits as the hash.
inline constexpr size_t kMinKeyBytes = 32;

class TokenKeys {
 public:
  // `keys`: key id -> secret bytes (each at least kMinKeyBytes).
  // INVALID_ARGUMENT naming the key id otherwise, or when there is none.
  static absl::StatusOr<TokenKeys> Create(std::map<std::string, std::string> keys,
                                          VerifyOptions options = {});
  // A key file (never a command-line secret), JSON:
  //   {"keys": [{"kid": "2026-12", "secret": "<base64 or base64url>"}, ...],
  //    "issuer": "...", "audience": "..."}   (issuer, audience optional)
  // Several keys at once allow rotation: tokens signed with any of them
  // verify. NOT_FOUND when the file cannot be read, INVALID_ARGUMENT naming
  // what is wrong in it (never a secret).
  static absl::StatusOr<TokenKeys> FromFile(const std::string& path);

  // The grant of `token`, or UNAUTHENTICATED with the reason it is refused.
  absl::StatusOr<Grant> Verify(absl::string_view token, absl::Time now) const;
  // The time checks of Verify alone, for a grant verified earlier (a cache of
  // verified tokens must still refuse one that has expired since).
  absl::Status CheckTimes(const Grant& grant, absl::Time now) const;
  // Verify for an "authorization" header value: "Bearer <token>" (the scheme
  // is case-insensitive). UNAUTHENTICATED when absent or of another scheme.
  absl::StatusOr<Grant> VerifyBearer(absl::string_view header, absl::Time now) const;

  // A token for `claims` signed with key `kid` (NOT_FOUND if there is none).
  absl::StatusOr<std::string> Mint(absl::string_view kid, const Claims& claims) const;

  const VerifyOptions& options() const { return options_; }
  std::vector<std::string> key_ids() const;

 private:
  TokenKeys(std::map<std::string, std::string> keys, VerifyOptions options)
      : keys_(std::move(keys)), options_(std::move(options)) {}

  std::map<std::string, std::string> keys_;
  VerifyOptions options_;
};

}  // namespace dash::jwt

#endif  // DASH_COMMON_JWT_H_
