#include "common/http_api.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "dash/v1/data.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"

namespace dash {
namespace {

using Json = nlohmann::json;

std::string CodeName(grpc::StatusCode code) { return metrics::CodeName(static_cast<int>(code)); }

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// An error answer: the status, and the routing hint when the call had one;
// the HTTP status is the code's unless `http_status` is given.
void Fail(httplib::Response& res, grpc::StatusCode code, const std::string& message,
          const std::optional<v1::RoutingHint>& hint = std::nullopt, int http_status = 0) {
  Json error = {{"code", CodeName(code)}, {"message", message}};
  if (hint.has_value()) error["routingHint"] = Json::parse(ToJson(*hint), nullptr, false);
  res.status = http_status != 0 ? http_status : HttpStatusOf(code);
  res.set_content(Json{{"error", error}}.dump() + "\n", "application/json");
}

void BadRequest(httplib::Response& res, const std::string& message) {
  Fail(res, grpc::StatusCode::INVALID_ARGUMENT, message);
}

// The request body as `message`; false (and the 4xx answer written) when it
// is not JSON for it.
bool ParseBody(const httplib::Request& req, httplib::Response& res,
               google::protobuf::Message* message) {
  const std::string type = absl::AsciiStrToLower(req.get_header_value("Content-Type"));
  if (!absl::StartsWith(type, "application/json")) {
    Fail(res, grpc::StatusCode::INVALID_ARGUMENT,
         "the body must be JSON (Content-Type: application/json)", std::nullopt, 415);
    return false;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto st = google::protobuf::util::JsonStringToMessage(req.body, message, options);
  if (!st.ok()) {
    BadRequest(res, absl::StrCat("body: not a ", message->GetDescriptor()->name(),
                                 " in JSON: ", std::string(st.message())));
    return false;
  }
  return true;
}

// The query parameters as `message`'s fields (true/false as booleans, the
// rest as strings, which protobuf's JSON reads as numbers and enums too).
bool ParseQuery(const httplib::Request& req, httplib::Response& res,
                google::protobuf::Message* message) {
  Json fields = Json::object();
  for (const auto& [name, value] : req.params) {
    if (fields.contains(name)) {
      BadRequest(res, absl::StrCat("query parameter ", name, ": given more than once"));
      return false;
    }
    if (value == "true" || value == "false") {
      fields[name] = value == "true";
    } else {
      fields[name] = value;
    }
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto st = google::protobuf::util::JsonStringToMessage(
      fields.dump(-1, ' ', false, Json::error_handler_t::replace), message, options);
  if (!st.ok()) {
    BadRequest(res, absl::StrCat("query parameters: ", std::string(st.message())));
    return false;
  }
  return true;
}

// The path's tenant into `*tenant`: refused when the request named another.
bool SetTenant(const std::string& path_tenant, std::string* tenant, httplib::Response& res) {
  if (!tenant->empty() && *tenant != path_tenant) {
    BadRequest(res, "tenant: the request names another tenant than its path");
    return false;
  }
  *tenant = path_tenant;
  return true;
}

class Routes {
 public:
  explicit Routes(HttpApiOptions options)
      : options_(std::move(options)), data_(v1::Data::NewStub(options_.local)) {}

  // One call on the local server, answered as JSON.
  template <typename Request, typename Response>
  void Forward(const httplib::Request& req, httplib::Response& res, const Request& request,
               grpc::Status (v1::Data::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                   Response*)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(options_.deadline));
    if (req.has_header("Authorization")) {
      ctx.AddMetadata("authorization", req.get_header_value("Authorization"));
    }
    Response response;
    const grpc::Status st = (data_.get()->*rpc)(&ctx, request, &response);
    if (!st.ok()) {
      Fail(res, st.error_code(), st.error_message(), GetRoutingHint(FromGrpcStatus(st, &ctx)));
      return;
    }
    res.set_content(ToJson(response) + "\n", "application/json");
  }

  // The request from the body (POST) or the query parameters (GET), with the
  // path's tenant; false (and the 4xx answer written) when it is wrong.
  template <typename Request>
  static bool Parse(const httplib::Request& req, httplib::Response& res, Request* request) {
    return (req.method == "POST" ? ParseBody(req, res, request) : ParseQuery(req, res, request)) &&
           SetTenant(req.matches[1], request->mutable_tenant(), res);
  }

  void Write(const httplib::Request& req, httplib::Response& res) {
    v1::WriteRequest request;
    if (Parse(req, res, &request)) Forward(req, res, request, &v1::Data::Stub::Write);
  }

  void Query(const httplib::Request& req, httplib::Response& res) {
    v1::QueryRequest request;
    if (Parse(req, res, &request)) Forward(req, res, request, &v1::Data::Stub::Query);
  }

  void GetClaim(const httplib::Request& req, httplib::Response& res) {
    v1::GetClaimRequest request;
    if (!Parse(req, res, &request)) return;
    if (!request.claim_id().empty() && request.claim_id() != req.matches[2]) {
      BadRequest(res, "claim_id: the query names another claim than the path");
      return;
    }
    request.set_claim_id(req.matches[2]);
    Forward(req, res, request, &v1::Data::Stub::GetClaim);
  }

  void ListClaims(const httplib::Request& req, httplib::Response& res) {
    v1::ListClaimsRequest request;
    if (Parse(req, res, &request)) Forward(req, res, request, &v1::Data::Stub::ListClaims);
  }

  void Placement(const httplib::Request& req, httplib::Response& res) {
    const grpc::Status auth = options_.security->AuthorizeBearer(
        req.get_header_value("Authorization"), std::nullopt, jwt::Role::kAdmin);
    if (!auth.ok()) {
      Fail(res, auth.error_code(), auth.error_message());
      return;
    }
    absl::StatusOr<std::shared_ptr<const v1::Placement>> placement = options_.placement();
    if (!placement.ok()) {
      Fail(res, grpc::StatusCode::UNAVAILABLE, std::string(placement.status().message()));
      return;
    }
    res.set_content(ToJson(**placement) + "\n", "application/json");
  }

  const HttpApiOptions& options() const { return options_; }

 private:
  const HttpApiOptions options_;
  const std::unique_ptr<v1::Data::Stub> data_;
};

}  // namespace

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 412;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

void AddDataRoutes(httplib::Server& server, HttpApiOptions options) {
  auto routes = std::make_shared<Routes>(std::move(options));
  using Handler = void (Routes::*)(const httplib::Request&, httplib::Response&);
  auto to = [routes](Handler handler) {
    return [routes, handler](const httplib::Request& req, httplib::Response& res) {
      (routes.get()->*handler)(req, res);
    };
  };
  constexpr const char* kTenant = "/v1/tenants/([^/]+)";
  server.Post(absl::StrCat(kTenant, "/write"), to(&Routes::Write));
  server.Post(absl::StrCat(kTenant, "/query"), to(&Routes::Query));
  server.Get(absl::StrCat(kTenant, "/claims/([^/]+)"), to(&Routes::GetClaim));
  server.Get(absl::StrCat(kTenant, "/claims"), to(&Routes::ListClaims));
  if (routes->options().placement) server.Get("/v1/placement", to(&Routes::Placement));
}

}  // namespace dash
