// --secure for the in-process benchmarks: the node serves TLS and checks
// bearer tokens as a production server does, and the client connects with
// the CA and a token, so that a run with and one without show what security
// costs. The credentials come from deploy/tls/make-certs.sh.
#ifndef DASH_BENCH_BENCH_SECURITY_H_
#define DASH_BENCH_BENCH_SECURITY_H_

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/jwt.h"
#include "common/security.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace dash::bench {

struct BenchSecurity {
  std::shared_ptr<const Security> server = Security::Insecure();
  ClientCredentials client;  // Empty: plaintext.
};

// Insecure unless `secure`; then certificates and a key made in `dir`, and a
// token for every tenant with every role.
inline absl::StatusOr<BenchSecurity> MakeBenchSecurity(bool secure, const std::string& dir) {
  BenchSecurity s;
  if (!secure) return s;
#ifdef DASH_SOURCE_DIR
  const std::string script = DASH_SOURCE_DIR "/deploy/tls/make-certs.sh";
#else
  const std::string script = "deploy/tls/make-certs.sh";
#endif
  const std::string command = absl::StrCat("bash '", script, "' '", dir, "' node");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(command, " failed"));
  }
  absl::StatusOr<jwt::TokenKeys> keys = jwt::TokenKeys::FromFile(dir + "/auth-keys.json");
  if (!keys.ok()) return keys.status();
  jwt::Claims claims;
  claims.subject = "bench";
  claims.tenants = {"*"};
  claims.roles = {jwt::Role::kRead, jwt::Role::kWrite, jwt::Role::kAdmin};  // NodeInfo too.
  claims.issued_at = absl::Now();
  claims.expires = claims.issued_at + absl::Hours(12);
  absl::StatusOr<std::string> token = keys->Mint(keys->key_ids().back(), claims);
  if (!token.ok()) return token.status();
  absl::StatusOr<std::string> ca = ReadSmallFile(dir + "/ca.pem");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::shared_ptr<const Security>> server = Security::Create(
      *std::move(keys), TlsFiles{dir + "/ca.pem", dir + "/node.pem", dir + "/node.key"});
  if (!server.ok()) return server.status();
  s.server = *std::move(server);
  s.client.ca_pem = *std::move(ca);
  s.client.token = *std::move(token);
  return s;
}

// A client channel to `address` with `s`'s credentials.
inline std::shared_ptr<grpc::Channel> BenchChannel(const std::string& address,
                                                   const BenchSecurity& s) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenChannel(address, s.client, args);
  if (!channel.ok()) std::abort();
  return *std::move(channel);
}

}  // namespace dash::bench

#endif  // DASH_BENCH_BENCH_SECURITY_H_
