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
#include <vector>

#include "absl/strings/string_view.h"
#include "dash/v1/data.pb.h"

namespace dash::query {

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
