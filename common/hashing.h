// Stable hashes the cluster agrees on: shard placement and content digests.
//
// The values are part of the on-disk and on-wire contract: changing them moves
// data between shards. Thread-safe: pure functions.
#ifndef DASH_COMMON_HASHING_H_
#define DASH_COMMON_HASHING_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dash {

// xxHash64 (seed 0) of `tenant` "\0" `claim_id`.
uint64_t ClaimHash(absl::string_view tenant, absl::string_view claim_id);

// xxHash64 (seed 0) of `data`.
uint64_t Hash64(absl::string_view data);

// The shard a claim lives on: ClaimHash % shard_count. REQUIRES: shard_count > 0.
uint32_t ShardOf(absl::string_view tenant, absl::string_view claim_id, uint32_t shard_count);

// SHA-256 of `data`, as raw 32 bytes / as 64 lowercase hex characters.
std::string Sha256(absl::string_view data);
std::string Sha256Hex(absl::string_view data);

// SHA-256 over data given in pieces. Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(absl::string_view data);
  // Appends the length before the bytes, so that ("ab", "c") and ("a", "bc")
  // hash differently.
  void UpdateField(absl::string_view data);
  // 64 lowercase hex characters; the hasher must not be used afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

// CRC-32 (zlib polynomial) of `data`, continuing from `crc` (0 to start).
uint32_t Crc32(absl::string_view data, uint32_t crc = 0);

}  // namespace dash

#endif  // DASH_COMMON_HASHING_H_
