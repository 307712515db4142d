#include "common/page_token.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/hashing.h"

namespace dash {
namespace {

constexpr char kVersion = '\x01';

uint64_t Check(absl::string_view tenant, absl::string_view scope, absl::string_view start_after) {
  return Hash64(absl::StrCat(absl::string_view(&kVersion, 1), absl::string_view("\0", 1), tenant,
                             absl::string_view("\0", 1), scope, absl::string_view("\0", 1),
                             start_after));
}

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", why));
}

}  // namespace

std::string ListScope(std::optional<uint32_t> shard) {
  return shard.has_value() ? absl::StrCat("shard ", *shard) : std::string("all shards");
}

std::string EncodePageToken(absl::string_view tenant, absl::string_view scope,
                            absl::string_view start_after) {
  std::string raw(1, kVersion);
  raw.append(start_after.data(), start_after.size());
  const uint64_t check = Check(tenant, scope, start_after);
  for (int i = 7; i >= 0; --i) raw.push_back(static_cast<char>((check >> (8 * i)) & 0xff));
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view tenant,
                                            absl::string_view scope) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw))
    return Bad("not a token DASH made (not base64url)");
  if (raw.size() < 1 + 1 + 8) return Bad("not a token DASH made (too short)");
  if (raw[0] != kVersion) {
    return Bad(absl::StrCat("token version ", static_cast<int>(static_cast<uint8_t>(raw[0])),
                            " is not known"));
  }
  const std::string start_after = raw.substr(1, raw.size() - 9);
  uint64_t check = 0;
  for (size_t i = raw.size() - 8; i < raw.size(); ++i) {
    check = (check << 8) | static_cast<uint8_t>(raw[i]);
  }
  if (check != Check(tenant, scope, start_after)) {
    return Bad(
        absl::StrCat("not a token of this listing (", scope, " of this tenant), or damaged"));
  }
  return start_after;
}

}  // namespace dash
