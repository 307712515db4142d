// What every DASH server offers besides its own services, so that probes and
// tools need nothing of DASH's:
//   grpc.health.v1.Health — the standard health protocol, per service: ""
//     is the server as a whole; each process names when it is SERVING (a
//     node once registered with its replicas open and not draining; a router
//     once its placement has every shard led; the control plane once its
//     store is open) and every service turns NOT_SERVING when it stops;
//   grpc.reflection.v1alpha.ServerReflection — the services and their
//     descriptors (grpcurl, grpc_cli list and describe them).
// Neither asks for a token: both tell the API's shape (the public .proto
// files) and readiness, nothing of any tenant; a secure server still answers
// them over TLS only.
#ifndef DASH_COMMON_SERVING_H_
#define DASH_COMMON_SERVING_H_

#include <string>
#include <vector>

#include "grpcpp/server.h"

namespace dash {

// Call before building a server: it then answers health and reflection.
void EnableHealthAndReflection();

// Sets the health status of `services` ("" is the whole server). After
// StopServing, changes are ignored.
void SetServing(grpc::Server* server, const std::vector<std::string>& services, bool serving);

// The status SetServing last gave `service` of `server` (false when none, and
// after StopServing): what HTTP readiness probes answer (common/http_server.h).
bool IsServing(const grpc::Server* server, const std::string& service);

// Every service of `server` NOT_SERVING, for good: called first when a
// process stops, so that probes and balancers turn away before calls fail.
void StopServing(grpc::Server* server);

// Drops what is known of `server`; call before destroying it.
void ForgetServer(const grpc::Server* server);

}  // namespace dash

#endif  // DASH_COMMON_SERVING_H_
