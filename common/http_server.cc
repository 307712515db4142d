#include "common/http_server.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace dash {
namespace {

// Loads the certificate chain and key from PEM text into `ctx`.
bool UseIdentity(SSL_CTX& ctx, const std::string& cert_pem, const std::string& key_pem) {
  BIO* certs = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* leaf = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
  bool ok = leaf != nullptr && SSL_CTX_use_certificate(&ctx, leaf) == 1;
  X509_free(leaf);
  while (ok) {  // The rest of the chain, if any.
    X509* extra = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    ok = SSL_CTX_add_extra_chain_cert(&ctx, extra) == 1;  // Takes ownership.
  }
  BIO_free(certs);
  BIO* key_bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  ok = ok && key != nullptr && SSL_CTX_use_PrivateKey(&ctx, key) == 1 &&
       SSL_CTX_check_private_key(&ctx) == 1;
  EVP_PKEY_free(key);
  BIO_free(key_bio);
  ERR_clear_error();
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const Security& security, std::function<bool()> ready,
    const std::function<void(httplib::Server&)>& add_routes, const HttpOptions& options) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: \"", listen, "\" is not host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  auto http = std::unique_ptr<HttpServer>(new HttpServer());
  if (security.insecure()) {
    http->server_ = std::make_unique<httplib::Server>();
  } else {
    const std::string cert = security.cert_pem(), key = security.key_pem();
    auto tls = std::make_unique<httplib::SSLServer>([cert, key](SSL_CTX& ctx) {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      return UseIdentity(ctx, cert, key);
    });
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError("http_listen: the TLS certificate or key is not usable");
    }
    http->server_ = std::move(tls);
    http->tls_ = true;
  }
  httplib::Server& server = *http->server_;
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_payload_max_length(options.max_body_bytes);
  server.set_read_timeout(absl::ToChronoSeconds(options.read_timeout));
  server.set_write_timeout(absl::ToChronoSeconds(options.write_timeout));
  server.set_keep_alive_timeout(5);
  server.set_keep_alive_max_count(1000);

  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server.Get("/readyz", [ready](const httplib::Request&, httplib::Response& res) {
    const bool is_ready = ready == nullptr || ready();
    res.status = is_ready ? 200 : 503;
    res.set_content(is_ready ? "ready\n" : "not ready\n", "text/plain");
  });
  server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics::Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (add_routes) add_routes(server);
  // What the library answers itself (no route, body too large, a request it
  // cannot read) gets a JSON body like every other error.
  const size_t max_body = options.max_body_bytes;
  server.set_error_handler([max_body](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string code = "INVALID_ARGUMENT", message = "malformed HTTP request";
    if (res.status == 404) {
      code = "NOT_FOUND";
      message = "no such route (the README lists them)";
    } else if (res.status == 413) {
      message = absl::StrCat("the body is larger than ", max_body, " bytes");
    } else if (res.status == 405) {
      message = "method not allowed on this route";
    } else if (res.status >= 500) {
      code = "INTERNAL";
      message = "internal error";
    }
    res.set_content(
        absl::StrCat(R"({"error":{"code":")", code, R"(","message":")", message, "\"}}\n"),
        "application/json");
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content("{\"error\":{\"code\":\"INTERNAL\",\"message\":\"internal error\"}}\n",
                        "application/json");
      });

  http->port_ = port == 0 ? server.bind_to_any_port(host) : port;
  if (http->port_ <= 0 || (port != 0 && !server.bind_to_port(host, port))) {
    return absl::UnavailableError(absl::StrCat("http_listen: cannot listen on ", listen));
  }
  http->listener_ = std::thread([&server] { server.listen_after_bind(); });
  return http;
}

HttpServer::~HttpServer() {
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace dash
