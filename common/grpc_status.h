// The one place where absl::Status and grpc::Status are converted.
//
// Routing hints travel as typed data: an absl::Status may carry a serialized
// dash.v1.RoutingHint payload (kRoutingHintUrl); on the wire it becomes the
// trailing metadata "dash-routing-hint-bin". Thread-safe: pure functions.
#ifndef DASH_COMMON_GRPC_STATUS_H_
#define DASH_COMMON_GRPC_STATUS_H_

#include <optional>

#include "absl/status/status.h"
#include "dash/v1/data.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace dash {

inline constexpr char kRoutingHintUrl[] = "type.dash/dash.v1.RoutingHint";
inline constexpr char kRoutingHintMetadataKey[] = "dash-routing-hint-bin";

// Attaches `hint` to `status` (which must not be OK).
void SetRoutingHint(absl::Status& status, const v1::RoutingHint& hint);
std::optional<v1::RoutingHint> GetRoutingHint(const absl::Status& status);

// Server side. When `status` carries a routing hint and `ctx` is non-null, the
// hint is added to ctx's trailing metadata.
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* ctx = nullptr);

// Client side. When `ctx` is non-null, a routing hint found in its trailing
// metadata is attached to the returned status.
absl::Status FromGrpcStatus(const grpc::Status& status, const grpc::ClientContext* ctx = nullptr);

}  // namespace dash

#endif  // DASH_COMMON_GRPC_STATUS_H_
