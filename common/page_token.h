// ListClaims page tokens: opaque to clients, versioned, and bound to the
// listing they continue. Version 1 is base64url (no padding) of
//   0x01 | start_after (the last claim id of the page) | check (8 bytes, BE)
// where check = xxh64(0x01 "\0" tenant "\0" scope "\0" start_after). A token
// that does not decode, has another version, or was made for another tenant
// or scope (a listing of one shard vs. of all) is refused. The check catches
// corruption and mix-ups; it is not a secret (a client that forges one only
// starts its own tenant's listing elsewhere). Thread-safe: pure functions.
#ifndef DASH_COMMON_PAGE_TOKEN_H_
#define DASH_COMMON_PAGE_TOKEN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dash {

// The scope of a listing: one shard's, or every shard's (nullopt).
std::string ListScope(std::optional<uint32_t> shard);

std::string EncodePageToken(absl::string_view tenant, absl::string_view scope,
                            absl::string_view start_after);

// The claim id the next page starts after. INVALID_ARGUMENT naming
// `page_token` when the token is not one this listing made.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view tenant,
                                            absl::string_view scope);

}  // namespace dash

#endif  // DASH_COMMON_PAGE_TOKEN_H_
