#include "common/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace dash::jwt {
namespace {

using Json = nlohmann::json;

absl::Status Refused(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("bearer token refused: ", why));
}

// RFC 7515 §2: base64url without padding, in its one canonical spelling: the
// unused low bits of the last character must be zero, or one token would have
// several spellings (a signature's last character could change unnoticed).
bool DecodePart(absl::string_view part, std::string* out) {
  if (part.empty() || absl::StrContains(part, '=')) return false;
  if (!absl::WebSafeBase64Unescape(part, out)) return false;
  return absl::WebSafeBase64Escape(*out) == part;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &length) == nullptr) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(mac), length);
}

// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
bool TimeClaim(const Json& payload, const char* name, absl::Time* out) {
  auto it = payload.find(name);
  if (it == payload.end() || !it->is_number()) return false;
  const double seconds = it->get<double>();
  if (!(seconds > -1e12 && seconds < 1e12)) return false;
  *out = absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
  return true;
}

absl::StatusOr<Role> RoleOf(absl::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "write") return Role::kWrite;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError("unknown role");
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

absl::Status AuthorizeRole(const Grant& grant, Role role) {
  if (grant.roles.count(role) > 0) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("the bearer token does not grant the \"", RoleName(role), "\" role"));
}

absl::Status Authorize(const Grant& grant, absl::string_view tenant, Role role) {
  if (!grant.all_tenants && grant.tenants.count(std::string(tenant)) == 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("the bearer token does not grant tenant \"", tenant, "\""));
  }
  return AuthorizeRole(grant, role);
}

absl::StatusOr<TokenKeys> TokenKeys::Create(std::map<std::string, std::string> keys,
                                            VerifyOptions options) {
  if (keys.empty()) return absl::InvalidArgumentError("keys: no signing key");
  for (const auto& [kid, secret] : keys) {
    if (secret.size() < kMinKeyBytes) {
      return absl::InvalidArgumentError(absl::StrCat("keys: key \"", kid, "\" has ", secret.size(),
                                                     " bytes; HS256 needs at least ",
                                                     kMinKeyBytes));
    }
  }
  return TokenKeys(std::move(keys), std::move(options));
}

absl::StatusOr<TokenKeys> TokenKeys::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read key file ", path));
  std::stringstream text;
  text << in.rdbuf();
  const Json doc = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&path](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("key file ", path, ": ", what));
  };
  if (!doc.is_object()) return bad("not a JSON object");
  auto list = doc.find("keys");
  if (list == doc.end() || !list->is_array()) return bad("\"keys\" must be an array");
  std::map<std::string, std::string> keys;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& k = (*list)[i];
    const std::string where = absl::StrCat("keys[", i, "]");
    if (!k.is_object() || !k.contains("kid") || !k["kid"].is_string() || !k.contains("secret") ||
        !k["secret"].is_string()) {
      return bad(absl::StrCat(where, " needs string fields \"kid\" and \"secret\""));
    }
    const std::string kid = k["kid"].get<std::string>();
    const std::string encoded = k["secret"].get<std::string>();
    std::string secret;
    if (!absl::Base64Unescape(encoded, &secret) && !absl::WebSafeBase64Unescape(encoded, &secret)) {
      return bad(absl::StrCat(where, ".secret is not base64"));
    }
    if (kid.empty()) return bad(absl::StrCat(where, ".kid is empty"));
    if (!keys.emplace(kid, std::move(secret)).second) {
      return bad(absl::StrCat("key id \"", kid, "\" appears twice"));
    }
  }
  VerifyOptions options;
  for (const char* field : {"issuer", "audience"}) {
    auto it = doc.find(field);
    if (it == doc.end()) continue;
    if (!it->is_string()) return bad(absl::StrCat("\"", field, "\" must be a string"));
    (std::string(field) == "issuer" ? options.issuer : options.audience) = it->get<std::string>();
  }
  absl::StatusOr<TokenKeys> created = Create(std::move(keys), std::move(options));
  if (!created.ok()) return bad(created.status().message());
  return created;
}

std::vector<std::string> TokenKeys::key_ids() const {
  std::vector<std::string> out;
  for (const auto& [kid, secret] : keys_) out.push_back(kid);
  return out;
}

absl::StatusOr<Grant> TokenKeys::Verify(absl::string_view token, absl::Time now) const {
  if (token.size() > kMaxTokenBytes) return Refused("longer than 8 KiB");
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Refused("not a JWS in compact form (three dot-separated parts)");
  // The header first: an unsigned ("alg":"none") token is refused for its
  // algorithm, whatever its (empty) signature.
  std::string header_json, payload_json, signature;
  if (!DecodePart(parts[0], &header_json)) return Refused("the header is not base64url");
  const Json header = Json::parse(header_json, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return Refused("the header is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != "HS256") {
    return Refused("the algorithm must be HS256");
  }
  if (header.contains("crit")) return Refused("unsupported critical header parameters");
  if (!DecodePart(parts[1], &payload_json) || !DecodePart(parts[2], &signature)) {
    return Refused("a part is not base64url");
  }
  const std::string* key = nullptr;
  auto kid = header.find("kid");
  if (kid != header.end()) {
    if (!kid->is_string()) return Refused("\"kid\" is not a string");
    auto it = keys_.find(kid->get<std::string>());
    if (it == keys_.end()) return Refused("unknown key id");
    key = &it->second;
  } else if (keys_.size() == 1) {
    key = &keys_.begin()->second;
  } else {
    return Refused("no key id (\"kid\"), and several keys are configured");
  }
  const absl::string_view signed_part(token.data(), parts[0].size() + 1 + parts[1].size());
  const std::string expected = HmacSha256(*key, signed_part);
  if (expected.empty() || signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return Refused("bad signature");
  }

  const Json payload = Json::parse(payload_json, nullptr, /*allow_exceptions=*/false);
  if (!payload.is_object()) return Refused("the claims are not a JSON object");
  Grant grant;
  if (!TimeClaim(payload, "exp", &grant.expires)) return Refused("no valid \"exp\"");
  if (payload.contains("nbf") && !TimeClaim(payload, "nbf", &grant.not_before)) {
    return Refused("\"nbf\" is not a number");
  }
  if (absl::Status st = CheckTimes(grant, now); !st.ok()) return st;
  if (!options_.issuer.empty()) {
    auto iss = payload.find("iss");
    if (iss == payload.end() || !iss->is_string() || iss->get<std::string>() != options_.issuer) {
      return Refused("wrong issuer");
    }
  }
  if (!options_.audience.empty()) {
    auto aud = payload.find("aud");
    bool ok = false;
    if (aud != payload.end() && aud->is_string()) ok = aud->get<std::string>() == options_.audience;
    if (aud != payload.end() && aud->is_array()) {
      for (const Json& a : *aud)
        ok = ok || (a.is_string() && a.get<std::string>() == options_.audience);
    }
    if (!ok) return Refused("wrong audience");
  }
  if (auto sub = payload.find("sub"); sub != payload.end()) {
    if (!sub->is_string()) return Refused("\"sub\" is not a string");
    grant.subject = sub->get<std::string>();
  }
  if (auto tenants = payload.find("tenants"); tenants != payload.end()) {
    if (tenants->is_string() && tenants->get<std::string>() == "*") {
      grant.all_tenants = true;
    } else if (tenants->is_array()) {
      for (const Json& t : *tenants) {
        if (!t.is_string() || t.get<std::string>().empty()) {
          return Refused("\"tenants\" must hold tenant names");
        }
        if (t.get<std::string>() == "*") {
          grant.all_tenants = true;
        } else {
          grant.tenants.insert(t.get<std::string>());
        }
      }
    } else {
      return Refused("\"tenants\" must be an array of names or \"*\"");
    }
  }
  if (auto roles = payload.find("roles"); roles != payload.end()) {
    if (!roles->is_array()) return Refused("\"roles\" must be an array");
    for (const Json& r : *roles) {
      absl::StatusOr<Role> role =
          r.is_string() ? RoleOf(r.get<std::string>()) : absl::InvalidArgumentError("");
      if (!role.ok()) return Refused("\"roles\" holds an unknown role (read, write, admin)");
      grant.roles.insert(*role);
    }
  }
  return grant;
}

absl::Status TokenKeys::CheckTimes(const Grant& grant, absl::Time now) const {
  if (now >= grant.expires + options_.leeway) return Refused("expired");
  if (now + options_.leeway < grant.not_before) return Refused("not valid yet (\"nbf\")");
  return absl::OkStatus();
}

absl::StatusOr<Grant> TokenKeys::VerifyBearer(absl::string_view header, absl::Time now) const {
  header = absl::StripAsciiWhitespace(header);
  if (header.empty()) {
    return absl::UnauthenticatedError(
        "no bearer token: send the metadata \"authorization: Bearer <token>\"");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("the authorization metadata is not \"Bearer <token>\"");
  }
  return Verify(absl::StripLeadingAsciiWhitespace(header.substr(kScheme.size())), now);
}

absl::StatusOr<std::string> TokenKeys::Mint(absl::string_view kid, const Claims& claims) const {
  auto key = keys_.find(std::string(kid));
  if (key == keys_.end()) return absl::NotFoundError(absl::StrCat("no key \"", kid, "\""));
  Json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", std::string(kid)}};
  Json payload = Json::object();
  if (!claims.subject.empty()) payload["sub"] = claims.subject;
  if (claims.tenants.size() == 1 && claims.tenants[0] == "*") {
    payload["tenants"] = "*";
  } else {
    payload["tenants"] = claims.tenants;
  }
  Json roles = Json::array();
  for (Role r : claims.roles) roles.push_back(RoleName(r));
  payload["roles"] = roles;
  payload["iat"] = absl::ToUnixSeconds(claims.issued_at);
  payload["exp"] = absl::ToUnixSeconds(claims.expires);
  if (!claims.issuer.empty()) payload["iss"] = claims.issuer;
  if (!claims.audience.empty()) payload["aud"] = claims.audience;
  const std::string signing_input = absl::StrCat(absl::WebSafeBase64Escape(header.dump()), ".",
                                                 absl::WebSafeBase64Escape(payload.dump()));
  const std::string mac = HmacSha256(key->second, signing_input);
  if (mac.empty()) return absl::InternalError("HMAC-SHA256 failed");
  return absl::StrCat(signing_input, ".", absl::WebSafeBase64Escape(mac));
}

}  // namespace dash::jwt
