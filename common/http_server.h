// The HTTP port of a DASH process (cpp-httplib), beside its gRPC port:
//   GET /healthz   200 while the process runs (liveness);
//   GET /readyz    200 when ready, else 503 (the same readiness as the gRPC
//                  health service's "", common/serving.h);
//   GET /metrics   the Prometheus text format (common/metrics.h);
// plus the routes its owner adds (the JSON API, common/http_api.h).
// HTTPS with the process's certificate when the process is secure (the same
// CA as gRPC), plain HTTP only under --insecure_no_auth. The three endpoints
// above ask for no token: they tell liveness, readiness and counters, nothing
// of any tenant (labels are bounded: no tenants, no claim ids).
//
// Hostile clients: bodies over max_body_bytes are refused with 413 before they
// are read; a request that does not arrive whole within read_timeout (a
// slowloris) is dropped; a bounded pool of threads serves connections.
#ifndef DASH_COMMON_HTTP_SERVER_H_
#define DASH_COMMON_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/security.h"
#include "httplib.h"

namespace dash {

struct HttpOptions {
  size_t max_body_bytes = 32 << 20;
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(10);
  int threads = 16;
};

class HttpServer {
 public:
  // Listens on `listen` ("host:port"; port 0 picks one), serving the three
  // endpoints and what `add_routes` adds. `ready` answers /readyz.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const Security& security, std::function<bool()> ready,
      const std::function<void(httplib::Server&)>& add_routes = nullptr,
      const HttpOptions& options = {});
  // Stops listening and waits for the connections being served.
  ~HttpServer();

  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace dash

#endif  // DASH_COMMON_HTTP_SERVER_H_
