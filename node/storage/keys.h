// Key layout of a shard replica (documented in key_layout.md).
//
// Every key of tenant data starts with the tenant followed by a NUL byte, so a
// scan bounded by a tenant prefix can never cross tenants. Ids never contain
// NUL (validation rejects control characters), which keeps the separators
// unambiguous. Thread-safe: pure functions.
#ifndef DASH_NODE_STORAGE_KEYS_H_
#define DASH_NODE_STORAGE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dash::storage::keys {

inline constexpr char kShardMetaKey[] = "shard";
// The BM25 index's segment manifest (LexicalManifest).
inline constexpr char kLexicalManifestKey[] = "lexical-manifest";

// log: 8-byte big-endian LSN, so byte order is LSN order.
std::string Log(uint64_t lsn);
// Returns false when `key` is not a log key.
bool ParseLog(absl::string_view key, uint64_t* lsn);

// Epoch history, in the meta family: "epoch/" + 8-byte big-endian epoch ->
// 8-byte big-endian LSN of the epoch's first record in this replica's log.
inline constexpr char kEpochPrefix[] = "epoch/";
std::string EpochStart(uint64_t epoch);
bool ParseEpochStart(absl::string_view key, uint64_t* epoch);

// Idempotency expiry queue, in the meta family: "idem-exp/" + 8-byte
// big-endian commit time (microseconds) + 8-byte big-endian LSN of the record
// that wrote an idempotency record -> that record's idempotency key
// (Idempotency(tenant, key)). Byte order is commit-time order.
inline constexpr char kIdempotencyExpiryPrefix[] = "idem-exp/";
// The last queue key removed (every key before it is gone too): scans of the
// queue start there instead of walking the tombstones of removed keys.
inline constexpr char kIdempotencyExpiryCursorKey[] = "idem-exp-cursor";
// The prefix of both: the expiry state a replica checksum covers.
inline constexpr char kIdempotencyExpiryStatePrefix[] = "idem-exp";
std::string IdempotencyExpiry(int64_t commit_time_micros, uint64_t lsn);
bool ParseIdempotencyExpiry(absl::string_view key, int64_t* commit_time_micros, uint64_t* lsn);
std::string EncodeU64(uint64_t v);
bool DecodeU64(absl::string_view bytes, uint64_t* v);

std::string Tenant(absl::string_view tenant);  // tenants
// Prefix of all of a tenant's claims / evidence / edges: <tenant> \0.
std::string TenantPrefix(absl::string_view tenant);
std::string Claim(absl::string_view tenant, absl::string_view claim_id);
// <tenant> \0 <claim_id> \0: prefix of a claim's evidence and outgoing edges.
std::string ClaimPrefix(absl::string_view tenant, absl::string_view claim_id);
std::string Evidence(absl::string_view tenant, absl::string_view claim_id,
                     absl::string_view evidence_id);
std::string Edge(absl::string_view tenant, absl::string_view from, absl::string_view to,
                 int relation);
// Reverse index of edges: <tenant> \0 <to> \0 <from> \0 <relation byte>.
std::string EdgeIn(absl::string_view tenant, absl::string_view to, absl::string_view from,
                   int relation);
// Splits the part after a ClaimPrefix of an edge_in key into (from, relation).
bool ParseEdgeInSuffix(absl::string_view suffix, std::string* from, int* relation);
std::string Idempotency(absl::string_view tenant, absl::string_view key);

// Returns the part of `key` after `prefix`. REQUIRES: key starts with prefix.
absl::string_view Suffix(absl::string_view key, absl::string_view prefix);

}  // namespace dash::storage::keys

#endif  // DASH_NODE_STORAGE_KEYS_H_
