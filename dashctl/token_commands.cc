// dashctl token mint: signs a bearer token with a key of the cluster's key
// file (common/jwt.h), for operators handing out access. The key file never
// leaves this machine; the token goes to stdout and nowhere else.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/jwt.h"
#include "dashctl/common.h"

namespace dash::ctl {
namespace {

struct MintOptions {
  std::string key_file;
  std::string kid;
  std::vector<std::string> tenants;
  std::vector<std::string> roles;
  std::string ttl = "24h";
  std::string subject;
};

int Mint(const MintOptions& o) {
  absl::StatusOr<jwt::TokenKeys> keys = jwt::TokenKeys::FromFile(o.key_file);
  if (!keys.ok()) {
    fprintf(stderr, "dashctl: --key-file: %s\n", std::string(keys.status().message()).c_str());
    return kUsage;
  }
  absl::Duration ttl;
  if (!absl::ParseDuration(o.ttl, &ttl) || ttl <= absl::ZeroDuration()) {
    fprintf(stderr, "dashctl: --ttl: \"%s\" is not a positive duration (e.g. 30m, 24h)\n",
            o.ttl.c_str());
    return kUsage;
  }
  std::string kid = o.kid;
  if (kid.empty()) {
    // The last key of the file: rotation appends the new key.
    const std::vector<std::string> ids = keys->key_ids();
    kid = ids.back();
  }
  jwt::Claims claims;
  claims.subject = o.subject;
  claims.tenants = o.tenants;
  for (const std::string& role : o.roles) {
    claims.roles.push_back(role == "read"    ? jwt::Role::kRead
                           : role == "write" ? jwt::Role::kWrite
                                             : jwt::Role::kAdmin);
  }
  claims.issued_at = absl::Now();
  claims.expires = claims.issued_at + ttl;
  claims.issuer = keys->options().issuer;
  claims.audience = keys->options().audience;
  absl::StatusOr<std::string> token = keys->Mint(kid, claims);
  if (!token.ok()) {
    fprintf(stderr, "dashctl: --kid: %s (the file has: %s)\n",
            std::string(token.status().message()).c_str(),
            absl::StrJoin(keys->key_ids(), ", ").c_str());
    return kUsage;
  }
  printf("%s\n", token->c_str());
  return kOk;
}

}  // namespace

void AddTokenCommands(CLI::App& app, std::function<int()>* run) {
  CLI::App* token = app.add_subcommand("token", "Bearer tokens");
  token->require_subcommand(1);
  auto o = std::make_shared<MintOptions>();
  CLI::App* mint = token->add_subcommand(
      "mint", "Sign a token with a key of the cluster's key file and print it");
  mint->add_option("--key-file", o->key_file, "The servers' --auth_key_file")->required();
  mint->add_option("--tenant", o->tenants,
                   "A tenant the token may use (repeat for several); \"*\" for every tenant")
      ->required();
  mint->add_option("--role", o->roles, "read, write or admin (repeat for several)")
      ->required()
      ->check(CLI::IsMember({"read", "write", "admin"}));
  mint->add_option("--ttl", o->ttl, "Lifetime, e.g. 30m, 24h, 720h")->capture_default_str();
  mint->add_option("--kid", o->kid, "Key id to sign with (default: the file's last key)");
  mint->add_option("--subject", o->subject, "Whom the token is for (its \"sub\")");
  mint->callback([o, run] { *run = [o] { return Mint(*o); }; });
}

}  // namespace dash::ctl
