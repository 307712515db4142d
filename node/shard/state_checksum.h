// A digest of a replica's replicated state, for checking that replicas at
// the same LSN agree (dashctl verify). Thread-safe: a pure function of a
// snapshot.
#ifndef DASH_NODE_SHARD_STATE_CHECKSUM_H_
#define DASH_NODE_SHARD_STATE_CHECKSUM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "node/storage/engine.h"

namespace dash::shard {

// A digest of a replica's state (everything but its log and metadata) as of
// one LSN: replicas at the same LSN must agree.
struct StateChecksum {
  uint64_t last_lsn = 0;
  uint64_t last_epoch = 0;
  std::string sha256;  // Hex.
  uint64_t keys = 0;
};

// The digest of `r`: SHA-256 over every key and value of the data and index
// families, in order, plus the idempotency expiry state. The log (whose
// retained range depends on when each replica truncated) and the metadata
// (the adopted epoch) are left out. DATA_LOSS if the metadata is corrupt.
absl::StatusOr<StateChecksum> ChecksumOf(const storage::Reader& r);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_STATE_CHECKSUM_H_
