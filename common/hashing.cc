#include "common/hashing.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <xxhash.h>
#include <zlib.h>

#include "absl/strings/escaping.h"

namespace dash {

uint64_t Hash64(absl::string_view data) { return XXH64(data.data(), data.size(), 0); }

uint64_t ClaimHash(absl::string_view tenant, absl::string_view claim_id) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  XXH64_update(state, tenant.data(), tenant.size());
  const char sep = '\0';
  XXH64_update(state, &sep, 1);
  XXH64_update(state, claim_id.data(), claim_id.size());
  const uint64_t h = XXH64_digest(state);
  XXH64_freeState(state);
  return h;
}

uint32_t ShardOf(absl::string_view tenant, absl::string_view claim_id, uint32_t shard_count) {
  return static_cast<uint32_t>(ClaimHash(tenant, claim_id) % shard_count);
}

std::string Sha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string Sha256Hex(absl::string_view data) { return absl::BytesToHexString(Sha256(data)); }

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(absl::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

void Sha256Hasher::UpdateField(absl::string_view data) {
  const uint64_t n = data.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  Update(absl::string_view(reinterpret_cast<const char*>(len), sizeof(len)));
  Update(data);
}

std::string Sha256Hasher::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &size);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size));
}

uint32_t Crc32(absl::string_view data, uint32_t crc) {
  return static_cast<uint32_t>(
      crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

}  // namespace dash
