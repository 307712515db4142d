#include "query/page_merge.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "query/batch_validator.h"

namespace dash::query {

absl::Status ValidateListRequest(const v1::ListClaimsRequest& request) {
  DASH_RETURN_IF_ERROR(ValidateTenant(request.tenant(), "tenant"));
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " exceeds the limit of ", kMaxPageSize));
  }
  if (!v1::ReadPreference_IsValid(request.read_preference())) {
    return absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  return absl::OkStatus();
}

absl::StatusOr<ListPosition> ListPositionOf(const v1::ListClaimsRequest& request,
                                            uint32_t shard_count) {
  if (request.has_shard() && request.shard() >= shard_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard: ", request.shard(), " is not below the shard count ", shard_count));
  }
  ListPosition position;
  position.limit = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  position.scope =
      ListScope(request.has_shard() ? std::optional<uint32_t>(request.shard()) : std::nullopt);
  if (!request.page_token().empty()) {
    DASH_ASSIGN_OR_RETURN(position.start_after,
                          DecodePageToken(request.page_token(), request.tenant(), position.scope));
  }
  return position;
}

v1::ListClaimsResponse MergeListPages(std::vector<ShardPage> pages, size_t limit,
                                      absl::string_view tenant, absl::string_view scope) {
  v1::ListClaimsResponse response;
  std::vector<v1::ClaimRecord> merged;
  bool more = false;
  for (ShardPage& page : pages) {
    more = more || page.more;
    for (auto& rec : page.records) merged.push_back(std::move(rec));
    for (auto& t : page.read_at) *response.add_read_at() = std::move(t);
  }
  std::sort(merged.begin(), merged.end(), [](const v1::ClaimRecord& a, const v1::ClaimRecord& b) {
    return a.claim().claim_id() < b.claim().claim_id();
  });
  if (merged.size() > limit) {
    merged.resize(limit);
    more = true;
  }
  if (more && !merged.empty()) {
    response.set_next_page_token(EncodePageToken(tenant, scope, merged.back().claim().claim_id()));
  }
  for (auto& rec : merged) *response.add_records() = std::move(rec);
  return response;
}

}  // namespace dash::query
