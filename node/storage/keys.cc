#include "node/storage/keys.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dash::storage::keys {
namespace {
constexpr char kSep = '\0';
absl::string_view Sep() { return absl::string_view(&kSep, 1); }
}  // namespace

std::string Log(uint64_t lsn) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(lsn & 0xff);
    lsn >>= 8;
  }
  return key;
}

bool ParseLog(absl::string_view key, uint64_t* lsn) {
  if (key.size() != 8) return false;
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<uint8_t>(c);
  *lsn = v;
  return true;
}

std::string EncodeU64(uint64_t v) { return Log(v); }
bool DecodeU64(absl::string_view bytes, uint64_t* v) { return ParseLog(bytes, v); }

std::string EpochStart(uint64_t epoch) { return absl::StrCat(kEpochPrefix, Log(epoch)); }

bool ParseEpochStart(absl::string_view key, uint64_t* epoch) {
  if (!absl::StartsWith(key, kEpochPrefix)) return false;
  return ParseLog(key.substr(sizeof(kEpochPrefix) - 1), epoch);
}

std::string IdempotencyExpiry(int64_t commit_time_micros, uint64_t lsn) {
  return absl::StrCat(kIdempotencyExpiryPrefix,
                      Log(static_cast<uint64_t>(std::max<int64_t>(commit_time_micros, 0))),
                      Log(lsn));
}

bool ParseIdempotencyExpiry(absl::string_view key, int64_t* commit_time_micros, uint64_t* lsn) {
  if (!absl::StartsWith(key, kIdempotencyExpiryPrefix)) return false;
  key.remove_prefix(sizeof(kIdempotencyExpiryPrefix) - 1);
  if (key.size() != 16) return false;
  uint64_t micros = 0;
  if (!ParseLog(key.substr(0, 8), &micros) || !ParseLog(key.substr(8), lsn)) return false;
  *commit_time_micros = static_cast<int64_t>(micros);
  return true;
}

std::string Tenant(absl::string_view tenant) { return std::string(tenant); }
std::string TenantPrefix(absl::string_view tenant) { return absl::StrCat(tenant, Sep()); }

std::string Claim(absl::string_view tenant, absl::string_view claim_id) {
  return absl::StrCat(tenant, Sep(), claim_id);
}
std::string ClaimPrefix(absl::string_view tenant, absl::string_view claim_id) {
  return absl::StrCat(tenant, Sep(), claim_id, Sep());
}
std::string Evidence(absl::string_view tenant, absl::string_view claim_id,
                     absl::string_view evidence_id) {
  return absl::StrCat(tenant, Sep(), claim_id, Sep(), evidence_id);
}
std::string Edge(absl::string_view tenant, absl::string_view from, absl::string_view to,
                 int relation) {
  std::string key = absl::StrCat(tenant, Sep(), from, Sep(), to, Sep());
  key.push_back(static_cast<char>(relation));
  return key;
}
std::string EdgeIn(absl::string_view tenant, absl::string_view to, absl::string_view from,
                   int relation) {
  return Edge(tenant, to, from, relation);
}
bool ParseEdgeInSuffix(absl::string_view suffix, std::string* from, int* relation) {
  // <from> \0 <relation byte>
  if (suffix.size() < 3 || suffix[suffix.size() - 2] != kSep) return false;
  *from = std::string(suffix.substr(0, suffix.size() - 2));
  *relation = static_cast<uint8_t>(suffix.back());
  return true;
}
std::string Idempotency(absl::string_view tenant, absl::string_view key) {
  return absl::StrCat(tenant, Sep(), key);
}

absl::string_view Suffix(absl::string_view key, absl::string_view prefix) {
  return key.substr(prefix.size());
}

}  // namespace dash::storage::keys
