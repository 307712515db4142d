#include "common/security_flags.h"

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

DEFINE_string(auth_key_file, "",
              "JSON file of the keys that verify clients' bearer tokens (JWT HS256): "
              "{\"keys\":[{\"kid\":...,\"secret\":<base64>}],\"issuer\":...,\"audience\":...}. "
              "Needs --tls_ca, --tls_cert and --tls_key.");
DEFINE_string(tls_ca, "", "PEM certificate of the cluster CA: peers and clients trust it.");
DEFINE_string(tls_cert, "", "PEM certificate of this process, issued by --tls_ca.");
DEFINE_string(tls_key, "", "PEM private key of --tls_cert.");
DEFINE_bool(insecure_no_auth, false,
            "Serve plaintext without authentication: anyone who reaches the port may read, "
            "write and administer every tenant. For tests on a closed machine only.");

namespace dash {

absl::StatusOr<std::shared_ptr<const Security>> SecurityFromFlags(const char* program) {
  const bool any_secure = !FLAGS_auth_key_file.empty() || !FLAGS_tls_ca.empty() ||
                          !FLAGS_tls_cert.empty() || !FLAGS_tls_key.empty();
  if (FLAGS_insecure_no_auth) {
    if (any_secure) {
      return absl::InvalidArgumentError(
          "--insecure_no_auth contradicts --auth_key_file/--tls_*: choose one");
    }
    LOG(WARNING) << program
                 << ": --insecure_no_auth: plaintext, no authentication; anyone who reaches "
                    "this port may read, write and administer every tenant";
    return Security::Insecure();
  }
  if (!any_secure) {
    return absl::InvalidArgumentError(
        "refusing to start without security: give --auth_key_file with --tls_ca, --tls_cert "
        "and --tls_key (deploy/tls/make-certs.sh makes a dev CA, certificates and a key file), "
        "or --insecure_no_auth to serve plaintext without authentication");
  }
  if (FLAGS_auth_key_file.empty()) {
    return absl::InvalidArgumentError("--auth_key_file: required with --tls_*");
  }
  absl::StatusOr<jwt::TokenKeys> keys = jwt::TokenKeys::FromFile(FLAGS_auth_key_file);
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        absl::StrCat("--auth_key_file: ", keys.status().message()));
  }
  absl::StatusOr<std::shared_ptr<const Security>> security =
      Security::Create(*std::move(keys), TlsFiles{FLAGS_tls_ca, FLAGS_tls_cert, FLAGS_tls_key});
  if (!security.ok()) {
    return absl::Status(security.status().code(), absl::StrCat("--", security.status().message()));
  }
  LOG(INFO) << program << ": TLS with " << FLAGS_tls_cert << "; bearer tokens verified with "
            << FLAGS_auth_key_file;
  return security;
}

}  // namespace dash
