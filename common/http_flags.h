// The flags of every server's HTTP port (common/http_server.h):
//   --http_listen=HOST:PORT   serve HTTP(S) there (port 0 picks one); empty: no HTTP port;
//   --http_port_file=PATH     the bound port is written there once it serves;
//   --http_max_body_bytes=N   larger request bodies are refused with 413.
#ifndef DASH_COMMON_HTTP_FLAGS_H_
#define DASH_COMMON_HTTP_FLAGS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http_server.h"
#include "common/security.h"

namespace dash {

// The HTTP port the flags ask for, started; nullptr when --http_listen is
// empty. `program` names the process in the log.
absl::StatusOr<std::unique_ptr<HttpServer>> HttpServerFromFlags(
    const std::string& program, const Security& security, std::function<bool()> ready,
    const std::function<void(httplib::Server&)>& add_routes = nullptr);

}  // namespace dash

#endif  // DASH_COMMON_HTTP_FLAGS_H_
