// DASH's Data API over HTTP/JSON, on the router and on a node: the same
// messages as gRPC in protobuf's canonical JSON mapping (fields in
// lowerCamelCase on output; either spelling on input), answered by the same
// gRPC handlers — each HTTP request becomes a call on the process's own
// in-process channel, carrying the request's "Authorization" header as the
// call's metadata, so that authentication, validation, limits and codes are
// exactly gRPC's.
//
//   POST /v1/tenants/{tenant}/write          body: WriteRequest
//   GET  /v1/tenants/{tenant}/claims/{id}    query: GetClaimRequest's other fields
//   GET  /v1/tenants/{tenant}/claims         query: ListClaimsRequest's fields
//   POST /v1/tenants/{tenant}/query          body: QueryRequest
//   GET  /v1/placement                       the routing table (router; admin)
//
// The path's tenant is the request's; a body or query naming another is 400.
// Query parameters are fields by their proto or JSON name (page_size=10,
// includeEvidence=true); an unknown one is 400. POST bodies must be
// application/json. Errors: the gRPC code's HTTP status (HttpStatusOf) with
// {"error": {"code": "NOT_FOUND", "message": "...", "routingHint": {...}}}.
#ifndef DASH_COMMON_HTTP_API_H_
#define DASH_COMMON_HTTP_API_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/security.h"
#include "dash/v1/placement.pb.h"
#include "grpcpp/channel.h"
#include "httplib.h"

namespace dash {

struct HttpApiOptions {
  // The process's own gRPC server (grpc::Server::InProcessChannel).
  std::shared_ptr<grpc::Channel> local;
  // Checks GET /v1/placement's token (admin on every tenant).
  std::shared_ptr<const Security> security;
  // The routing table for GET /v1/placement; unset: the route is 404.
  std::function<absl::StatusOr<std::shared_ptr<const v1::Placement>>()> placement;
  absl::Duration deadline = absl::Seconds(30);
};

void AddDataRoutes(httplib::Server& server, HttpApiOptions options);

// 400 INVALID_ARGUMENT, OUT_OF_RANGE; 401 UNAUTHENTICATED; 403
// PERMISSION_DENIED; 404 NOT_FOUND; 409 ALREADY_EXISTS, ABORTED; 412
// FAILED_PRECONDITION; 429 RESOURCE_EXHAUSTED; 499 CANCELLED; 501
// UNIMPLEMENTED; 503 UNAVAILABLE; 504 DEADLINE_EXCEEDED; 500 the rest.
int HttpStatusOf(grpc::StatusCode code);

}  // namespace dash

#endif  // DASH_COMMON_HTTP_API_H_
