// Who may call what: the one place a DASH process decides it.
//
// A process runs in one of two modes, chosen at start (common/security_flags.h):
//   secure   — every listening port speaks TLS with the process's certificate,
//              issued by the cluster's CA; clients present a bearer token
//              (common/jwt.h) with the tenants and roles each call needs;
//              cluster members (nodes, routers, the control plane) present
//              their certificate (mutual TLS) and call each other with it.
//   insecure — plaintext, no tokens: anyone who reaches a port may do
//              anything. Only with the explicit --insecure_no_auth, logged at
//              start and shown in NodeInfo.
//
// The three checks, each made before a handler does any work:
//   Authorize(ctx, tenant, role)  a data call (Write, GetClaim, ListClaims,
//                                 Query): a token granting `role` on `tenant`,
//                                 or a cluster member (a router forwarding a
//                                 call it has authorized itself);
//   AuthorizeRole(ctx, role)      an admin call naming no tenant: a token with
//                                 `role` on every tenant ("*"), since such a
//                                 call acts on all of them; or a cluster
//                                 member;
//   AuthorizePeer(ctx)            an internal call (ShardQuery, Replication,
//                                 Snapshots, FenceShard, RegisterNode,
//                                 Heartbeat): a cluster member only; no token
//                                 is ever enough.
// Refusals: UNAUTHENTICATED when the caller proved nothing (no token, or one
// that does not verify), PERMISSION_DENIED when a verified caller lacks the
// tenant or role — naming only what was asked, never anything of another
// tenant.
//
// A cluster member is a peer whose TLS certificate verified against the
// cluster CA and whose common name starts with "dash-node", "dash-router" or
// "dash-controlplane" (what deploy/tls/make-certs.sh issues). Do not sign
// other certificates with the cluster CA.
//
// Verified tokens are remembered by their exact bytes (a client sends the
// same token on every call; verifying one — base64url, HMAC, JSON — costs
// more than a lookup). A remembered token is still refused once it expires.
//
// Thread-safety: share one between services and threads; its only mutable
// state, the verified-token cache, is behind a mutex.
#ifndef DASH_COMMON_SECURITY_H_
#define DASH_COMMON_SECURITY_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/jwt.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/status.h"

namespace dash {

// PEM files of one process's TLS identity.
struct TlsFiles {
  std::string ca;    // The cluster CA's certificate: whom to trust.
  std::string cert;  // This process's certificate (chain), issued by the CA.
  std::string key;   // Its private key.
};

class Security {
 public:
  // Plaintext, no tokens: every caller may do everything.
  static std::shared_ptr<const Security> Insecure();
  // Tokens verified with `keys`, TLS with `tls` (files read now; NOT_FOUND or
  // INVALID_ARGUMENT naming the file that is missing or empty).
  static absl::StatusOr<std::shared_ptr<const Security>> Create(jwt::TokenKeys keys,
                                                                const TlsFiles& tls);

  bool insecure() const { return !keys_.has_value(); }

  grpc::Status Authorize(const grpc::ServerContextBase& ctx, absl::string_view tenant,
                         jwt::Role role) const;
  grpc::Status AuthorizeRole(const grpc::ServerContextBase& ctx, jwt::Role role) const;
  grpc::Status AuthorizePeer(const grpc::ServerContextBase& ctx) const;

  // For the process's listening port: TLS, asking clients for a certificate
  // (verified when presented; clients without one authenticate by token).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  // For calls to other cluster members: mutual TLS with this process's
  // certificate.
  std::shared_ptr<grpc::ChannelCredentials> PeerCredentials() const;
  // The PEM texts of the process's TLS identity (empty when insecure), for
  // its other listeners (the HTTP port, common/http_server.h).
  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  // Authorize (with a tenant) or AuthorizeRole (without) for a caller that
  // is not a gRPC call (HTTP): `authorization` is the header's value; no
  // certificate counts. The same codes.
  grpc::Status AuthorizeBearer(absl::string_view authorization,
                               std::optional<absl::string_view> tenant, jwt::Role role) const;
  // A channel to another cluster member.
  std::shared_ptr<grpc::Channel> PeerChannel(const std::string& target,
                                             const grpc::ChannelArguments& args = {}) const;

 private:
  Security() = default;

  // True when the caller is a cluster member (see above).
  bool IsClusterPeer(const grpc::ServerContextBase& ctx) const;
  absl::StatusOr<std::shared_ptr<const jwt::Grant>> Authenticate(
      const grpc::ServerContextBase& ctx) const;
  absl::StatusOr<std::shared_ptr<const jwt::Grant>> AuthenticateHeader(
      absl::string_view header) const;

  std::optional<jwt::TokenKeys> keys_;  // Empty: insecure.
  std::string ca_pem_, cert_pem_, key_pem_;

  // Tokens that verified, by their "authorization" value. Bounded: emptied
  // when full, so a flood of distinct valid tokens costs verification, not
  // memory.
  static constexpr size_t kMaxVerifiedTokens = 1024;
  mutable absl::Mutex verified_mu_;
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const jwt::Grant>> verified_
      ABSL_GUARDED_BY(verified_mu_);
};

// How a client reaches a DASH port: TLS trusting `ca_pem` (plaintext when it
// is empty) and, when `token` is set, "authorization: Bearer <token>" on
// every call (a token needs TLS: INVALID_ARGUMENT otherwise).
struct ClientCredentials {
  std::string ca_pem;
  std::string token;
  // Optional client certificate (cluster members and tests).
  std::string cert_pem, key_pem;
};
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ClientCredentials& credentials,
                                                           const grpc::ChannelArguments& args = {});

// Reads a whole file; NOT_FOUND naming it when it cannot be read.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

}  // namespace dash

#endif  // DASH_COMMON_SECURITY_H_
