#include "dashctl/common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/security.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace dash::ctl {

std::string ConfigDir() {
  if (const char* dir = std::getenv("DASH_CONFIG_DIR"); dir != nullptr && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg) {
    return absl::StrCat(xdg, "/dash");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.config/dash");
}

void ResolveCredentials(GlobalOptions& g) {
  if (g.plaintext) return;
  auto resolve = [](std::string& value, const char* env, const char* file) {
    if (!value.empty()) return;
    if (const char* v = std::getenv(env); v != nullptr && *v) {
      value = v;
      return;
    }
    const std::string path = absl::StrCat(ConfigDir(), "/", file);
    if (access(path.c_str(), R_OK) == 0) value = path;
  };
  resolve(g.token_file, "DASH_TOKEN_FILE", "token");
  resolve(g.tls_ca, "DASH_TLS_CA", "ca.pem");
}

std::shared_ptr<grpc::Channel> ConnectTo(const GlobalOptions& g, const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  ClientCredentials creds;
  if (!g.plaintext) {
    if (!g.tls_ca.empty()) {
      absl::StatusOr<std::string> ca = ReadSmallFile(g.tls_ca);
      if (!ca.ok()) {
        fprintf(stderr, "dashctl: --tls-ca: %s\n", std::string(ca.status().message()).c_str());
        std::exit(kUsage);
      }
      creds.ca_pem = *std::move(ca);
    }
    if (!g.token_file.empty()) {
      absl::StatusOr<std::string> token = ReadSmallFile(g.token_file);
      if (!token.ok()) {
        fprintf(stderr, "dashctl: --token-file: %s\n",
                std::string(token.status().message()).c_str());
        std::exit(kUsage);
      }
      creds.token = std::string(absl::StripAsciiWhitespace(*token));
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenChannel(addr, creds, args);
  if (!channel.ok()) {
    fprintf(stderr, "dashctl: %s\n", std::string(channel.status().message()).c_str());
    std::exit(kUsage);
  }
  return *std::move(channel);
}

std::shared_ptr<grpc::Channel> Connect(const GlobalOptions& g) { return ConnectTo(g, g.addr); }

std::shared_ptr<grpc::Channel> ConnectControlPlane(const GlobalOptions& g) {
  return ConnectTo(g, g.controlplane);
}

void SetDeadline(grpc::ClientContext* ctx, const GlobalOptions& g,
                 std::chrono::milliseconds extra) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000)) + extra);
}

int Fail(const absl::Status& status) {
  fprintf(stderr, "dashctl: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
          std::string(status.message()).c_str());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return kUsage;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kUnreachable;
    default:
      return kServerError;
  }
}

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  opts.add_whitespace = pretty;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (pretty && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* m) {
  google::protobuf::util::JsonParseOptions opts;
  auto st = google::protobuf::util::JsonStringToMessage(json, m, opts);
  if (!st.ok()) return absl::InvalidArgumentError(std::string(st.message()));
  return absl::OkStatus();
}

v1::ReadPreference ReadPreferenceOf(const GlobalOptions& g) {
  if (g.read_preference == "follower-preferred") return v1::READ_PREFERENCE_FOLLOWER_PREFERRED;
  if (g.read_preference == "any-healthy") return v1::READ_PREFERENCE_ANY_HEALTHY;
  return v1::READ_PREFERENCE_LEADER_ONLY;
}

}  // namespace dash::ctl
