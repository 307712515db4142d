#include "common/http_flags.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/port_file.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

DEFINE_string(http_listen, "",
              "HTTP listen address host:port for /healthz, /readyz, /metrics (and the JSON API "
              "on routers and nodes); HTTPS when the process is secure. Port 0 picks a free "
              "port; empty: no HTTP port.");
DEFINE_string(http_port_file, "", "If set, the bound HTTP port is written here once it serves.");
DEFINE_uint64(http_max_body_bytes, 32 << 20,
              "HTTP request bodies larger than this are refused with 413 before they are read.");

namespace dash {

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServerFromFlags(
    const std::string& program, const Security& security, std::function<bool()> ready,
    const std::function<void(httplib::Server&)>& add_routes) {
  if (FLAGS_http_listen.empty()) return std::unique_ptr<HttpServer>();
  HttpOptions options;
  options.max_body_bytes = FLAGS_http_max_body_bytes;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(FLAGS_http_listen, security, std::move(ready), add_routes, options);
  if (!http.ok()) return http.status();
  LOG(INFO) << program << ": " << ((*http)->tls() ? "HTTPS" : "HTTP") << " on port "
            << (*http)->port();
  if (!FLAGS_http_port_file.empty() && !WritePortFile(FLAGS_http_port_file, (*http)->port())) {
    return absl::InternalError(absl::StrCat("cannot write ", FLAGS_http_port_file));
  }
  return http;
}

}  // namespace dash
