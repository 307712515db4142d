// libFuzzer: bearer token verification (common/jwt.h), the first thing every
// RPC runs on bytes from anyone. With the first byte even, the input is a
// token as sent; otherwise it is "header\npayload" JSON that this target signs
// with the key, so that the claims parser behind the signature is reached too.
// Nothing may crash; a token verifies only with HS256 and the right key.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/jwt.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

const dash::jwt::TokenKeys& Keys() {
  static const auto* keys = new dash::jwt::TokenKeys(
      *dash::jwt::TokenKeys::Create({{"k1", kSecret}}, {"dash", "dash-api"}));
  return *keys;
}

std::string Sign(const std::string& signing_input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &length);
  std::string out;
  absl::WebSafeBase64Escape(std::string(reinterpret_cast<char*>(mac), length), &out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  if (data[0] % 2 == 0) {
    (void)Keys().Verify(input, now);
    (void)Keys().VerifyBearer(input, now);
    return 0;
  }
  const size_t newline = input.find('\n');
  if (newline == std::string::npos) return 0;
  std::string header, payload;
  absl::WebSafeBase64Escape(input.substr(0, newline), &header);
  absl::WebSafeBase64Escape(input.substr(newline + 1), &payload);
  const std::string signing_input = absl::StrCat(header, ".", payload);
  absl::StatusOr<dash::jwt::Grant> grant =
      Keys().Verify(absl::StrCat(signing_input, ".", Sign(signing_input)), now);
  if (grant.ok() && input.find("HS256") == std::string::npos) {
    std::abort();  // Verified without saying HS256.
  }
  return 0;
}
