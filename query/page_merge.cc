#include "query/page_merge.h"

#include <algorithm>
#include <utility>

#include "common/page_token.h"

namespace dash::query {

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
