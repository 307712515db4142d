#include "dashctl/common.h"

#include <chrono>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace dash::ctl {

namespace {
std::shared_ptr<grpc::Channel> ConnectTo(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}
}  // namespace

std::shared_ptr<grpc::Channel> Connect(const GlobalOptions& g) { return ConnectTo(g.addr); }

std::shared_ptr<grpc::Channel> ConnectControlPlane(const GlobalOptions& g) {
  return ConnectTo(g.controlplane);
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
