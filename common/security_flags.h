// The security flags every DASH server (node, router, control plane) takes,
// and the Security they configure (common/security.h):
//   --auth_key_file=F  the JWT key file (common/jwt.h; never a secret on the
//                      command line), with
//   --tls_ca=F --tls_cert=F --tls_key=F  the cluster CA and this process's
//                      certificate and key (deploy/tls/make-certs.sh);
//   --insecure_no_auth plaintext and no tokens, said loudly.
// Secure by default: a server given neither refuses to start and says why.
#ifndef DASH_COMMON_SECURITY_FLAGS_H_
#define DASH_COMMON_SECURITY_FLAGS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/security.h"

namespace dash {

// The Security the flags ask for; INVALID_ARGUMENT (what to pass) when they
// ask for none or contradict each other, NOT_FOUND when a file is missing.
// Logs a warning when insecure.
absl::StatusOr<std::shared_ptr<const Security>> SecurityFromFlags(const char* program);

}  // namespace dash

#endif  // DASH_COMMON_SECURITY_FLAGS_H_
