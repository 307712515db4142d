#include "common/grpc_status.h"

#include <string>

#include "absl/strings/cord.h"

namespace dash {

void SetRoutingHint(absl::Status& status, const v1::RoutingHint& hint) {
  status.SetPayload(kRoutingHintUrl, absl::Cord(hint.SerializeAsString()));
}

std::optional<v1::RoutingHint> GetRoutingHint(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kRoutingHintUrl);
  if (!payload.has_value()) return std::nullopt;
  v1::RoutingHint hint;
  if (!hint.ParseFromString(std::string(*payload))) return std::nullopt;
  return hint;
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* ctx) {
  if (status.ok()) return grpc::Status::OK;
  if (ctx != nullptr) {
    absl::optional<absl::Cord> payload = status.GetPayload(kRoutingHintUrl);
    if (payload.has_value())
      ctx->AddTrailingMetadata(kRoutingHintMetadataKey, std::string(*payload));
  }
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status, const grpc::ClientContext* ctx) {
  if (status.ok()) return absl::OkStatus();
  absl::Status result(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  if (ctx != nullptr) {
    const auto& trailers = ctx->GetServerTrailingMetadata();
    auto it = trailers.find(kRoutingHintMetadataKey);
    if (it != trailers.end()) {
      result.SetPayload(kRoutingHintUrl,
                        absl::Cord(std::string(it->second.data(), it->second.size())));
    }
  }
  return result;
}

}  // namespace dash
