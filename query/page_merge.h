// One page of a ListClaims listing that spans several shards, merged from a
// page of each: a node merges the shards it hosts, the router one replica's
// page of every shard. Records are sorted by claim id and cut at the page
// size; the next page token (common/page_token.h) names the last claim kept.
// Each shard's page must hold the first `limit` claims after the listing's
// start, so that no claim is skipped between two merged pages. Thread-safe:
// pure functions.
#ifndef DASH_QUERY_PAGE_MERGE_H_
#define DASH_QUERY_PAGE_MERGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dash/v1/data.pb.h"

namespace dash::query {

// Page sizes of listings (ListClaims page_size, GetClaim evidence_page_size).
inline constexpr uint32_t kDefaultPageSize = 100;
inline constexpr uint32_t kMaxPageSize = 1000;

// INVALID_ARGUMENT naming the field: a bad tenant, page_size over
// kMaxPageSize, or an unknown read_preference.
absl::Status ValidateListRequest(const v1::ListClaimsRequest& request);

// Where a valid listing resumes, for a cluster of `shard_count` shards.
struct ListPosition {
  size_t limit = kDefaultPageSize;  // The page size (page_size, or the default).
  std::string scope;                // The page token's scope: all shards or one.
  std::string start_after;          // The claim id the page follows ("" at the start).
};
// INVALID_ARGUMENT when `shard` is not below `shard_count`, or the page token
// belongs to another listing (tenant or scope).
absl::StatusOr<ListPosition> ListPositionOf(const v1::ListClaimsRequest& request,
                                            uint32_t shard_count);

// One shard's page of a listing.
struct ShardPage {
  std::vector<v1::ClaimRecord> records;  // At most the merged page's limit.
  bool more = false;                     // The shard has claims after these.
  std::vector<v1::CommitToken> read_at;  // Where the shard's page was read.
};

// The first `limit` records of all `pages` by claim id, every page's read_at
// (in the order of `pages`), and a next page token for (tenant, scope) when
// records were cut or a shard has more; none when the page is empty.
v1::ListClaimsResponse MergeListPages(std::vector<ShardPage> pages, size_t limit,
                                      absl::string_view tenant, absl::string_view scope);

}  // namespace dash::query

#endif  // DASH_QUERY_PAGE_MERGE_H_
