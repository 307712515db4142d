#include "common/security.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/auth_context.h"

namespace dash {
namespace {

constexpr absl::string_view kMemberPrefixes[] = {"dash-node", "dash-router", "dash-controlplane"};

bool IsMemberName(absl::string_view common_name) {
  for (absl::string_view prefix : kMemberPrefixes) {
    if (!absl::StartsWith(common_name, prefix)) continue;
    const absl::string_view rest = common_name.substr(prefix.size());
    // "dash-node" or "dash-node/<id>"; not "dash-nodes-of-mine".
    if (rest.empty() || rest[0] == '/') return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<const Security> Security::Insecure() {
  static const auto* const kInsecure =
      new std::shared_ptr<const Security>(std::shared_ptr<const Security>(new Security()));
  return *kInsecure;
}

absl::StatusOr<std::shared_ptr<const Security>> Security::Create(jwt::TokenKeys keys,
                                                                 const TlsFiles& tls) {
  std::shared_ptr<Security> s(new Security());
  s->keys_.emplace(std::move(keys));
  const std::pair<const char*, const std::string*> files[] = {
      {"tls_ca", &tls.ca}, {"tls_cert", &tls.cert}, {"tls_key", &tls.key}};
  std::string* pems[] = {&s->ca_pem_, &s->cert_pem_, &s->key_pem_};
  for (int i = 0; i < 3; ++i) {
    const auto& [name, path] = files[i];
    if (path->empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": required"));
    absl::StatusOr<std::string> pem = ReadSmallFile(*path);
    if (!pem.ok()) return absl::NotFoundError(absl::StrCat(name, ": ", pem.status().message()));
    if (!absl::StrContains(*pem, "-----BEGIN ")) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", *path, " is not PEM"));
    }
    *pems[i] = *std::move(pem);
  }
  return std::shared_ptr<const Security>(std::move(s));
}

bool Security::IsClusterPeer(const grpc::ServerContextBase& ctx) const {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  // A peer is authenticated only by a client certificate that verified
  // against the CA (the server requests one and verifies what it gets).
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return false;
  for (const grpc::string_ref& name : auth->FindPropertyValues("x509_common_name")) {
    if (IsMemberName(absl::string_view(name.data(), name.size()))) return true;
  }
  return false;
}

absl::StatusOr<std::shared_ptr<const jwt::Grant>> Security::Authenticate(
    const grpc::ServerContextBase& ctx) const {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return AuthenticateHeader("");
  return AuthenticateHeader(absl::string_view(it->second.data(), it->second.size()));
}

absl::StatusOr<std::shared_ptr<const jwt::Grant>> Security::AuthenticateHeader(
    absl::string_view header) const {
  const absl::Time now = absl::Now();
  if (header.empty()) return keys_->VerifyBearer("", now).status();
  std::shared_ptr<const jwt::Grant> grant;
  {
    absl::ReaderMutexLock lock(&verified_mu_);
    if (auto hit = verified_.find(header); hit != verified_.end()) grant = hit->second;
  }
  if (grant != nullptr) {
    if (absl::Status st = keys_->CheckTimes(*grant, now); !st.ok()) return st;
    return grant;
  }
  absl::StatusOr<jwt::Grant> verified = keys_->VerifyBearer(header, now);
  if (!verified.ok()) return verified.status();
  grant = std::make_shared<const jwt::Grant>(*std::move(verified));
  absl::MutexLock lock(&verified_mu_);
  if (verified_.size() >= kMaxVerifiedTokens) verified_.clear();
  verified_.emplace(header, grant);
  return grant;
}

namespace {

// What a verified (or refused) caller may do: `role` on `tenant`, or on every
// tenant when there is none (a call that names no tenant acts on, or shows,
// every tenant's shards).
grpc::Status Permit(const absl::StatusOr<std::shared_ptr<const jwt::Grant>>& grant,
                    std::optional<absl::string_view> tenant, jwt::Role role) {
  if (!grant.ok()) return ToGrpcStatus(grant.status());
  if (tenant.has_value()) return ToGrpcStatus(jwt::Authorize(**grant, *tenant, role));
  if (absl::Status st = jwt::AuthorizeRole(**grant, role); !st.ok()) return ToGrpcStatus(st);
  if (!(*grant)->all_tenants) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("the ", jwt::RoleName(role),
                                     " call acts on every tenant: the token must grant "
                                     "tenants \"*\""));
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status Security::Authorize(const grpc::ServerContextBase& ctx, absl::string_view tenant,
                                 jwt::Role role) const {
  if (insecure() || IsClusterPeer(ctx)) return grpc::Status::OK;
  return Permit(Authenticate(ctx), tenant, role);
}

grpc::Status Security::AuthorizeRole(const grpc::ServerContextBase& ctx, jwt::Role role) const {
  if (insecure() || IsClusterPeer(ctx)) return grpc::Status::OK;
  return Permit(Authenticate(ctx), std::nullopt, role);
}

grpc::Status Security::AuthorizeBearer(absl::string_view authorization,
                                       std::optional<absl::string_view> tenant,
                                       jwt::Role role) const {
  if (insecure()) return grpc::Status::OK;
  return Permit(AuthenticateHeader(authorization), tenant, role);
}

grpc::Status Security::AuthorizePeer(const grpc::ServerContextBase& ctx) const {
  if (insecure() || IsClusterPeer(ctx)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "internal call: only cluster members (by their TLS certificate) may make it");
}

std::shared_ptr<grpc::ServerCredentials> Security::ServerCredentials() const {
  if (insecure()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> Security::PeerCredentials() const {
  if (insecure()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_pem_;
  options.pem_private_key = key_pem_;
  options.pem_cert_chain = cert_pem_;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> Security::PeerChannel(const std::string& target,
                                                     const grpc::ChannelArguments& args) const {
  return grpc::CreateCustomChannel(target, PeerCredentials(), args);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ClientCredentials& credentials,
                                                           const grpc::ChannelArguments& args) {
  if (credentials.ca_pem.empty()) {
    if (!credentials.token.empty()) {
      return absl::InvalidArgumentError(
          "a bearer token is sent over TLS only: give the cluster CA's certificate");
    }
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = credentials.ca_pem;
  options.pem_private_key = credentials.key_pem;
  options.pem_cert_chain = credentials.cert_pem;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(options);
  if (!credentials.token.empty()) {
    creds =
        grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(credentials.token));
  }
  return grpc::CreateCustomChannel(target, creds, args);
}

}  // namespace dash
