#include "node/shard/state_checksum.h"

#include "common/hashing.h"
#include "common/status_macros.h"
#include "node/shard/replica_log.h"
#include "node/storage/keys.h"

namespace dash::shard {

using storage::Family;
namespace keys = storage::keys;

absl::StatusOr<StateChecksum> ChecksumOf(const storage::Reader& r) {
  const storage::Reader* snapshot = &r;
  DASH_ASSIGN_OR_RETURN(storage::ShardMeta meta, ReplicaLog::MetaOf(*snapshot));
  StateChecksum out;
  out.last_lsn = meta.last_lsn();
  out.last_epoch = meta.last_lsn() == 0 ? 0 : meta.last_epoch();
  Sha256Hasher hasher;
  // The log (whose retained range depends on when each replica truncated) and
  // the metadata (the adopted epoch) are left out: they may differ between
  // replicas holding the same data. The idempotency expiry queue and its
  // cursor, which are replicated state, are in.
  {
    hasher.UpdateField("idempotency-expiry");
    auto cursor = snapshot->Scan(Family::kMeta, keys::kIdempotencyExpiryStatePrefix);
    for (; cursor->Valid(); cursor->Next()) {
      hasher.UpdateField(cursor->key());
      hasher.UpdateField(cursor->value());
      ++out.keys;
    }
    DASH_RETURN_IF_ERROR(cursor->status());
  }
  for (int f = static_cast<int>(Family::kTenants); f < static_cast<int>(Family::kCount); ++f) {
    const Family family = static_cast<Family>(f);
    hasher.UpdateField(storage::FamilyName(family));
    auto cursor = snapshot->Scan(family, "");
    for (; cursor->Valid(); cursor->Next()) {
      hasher.UpdateField(cursor->key());
      hasher.UpdateField(cursor->value());
      ++out.keys;
    }
    DASH_RETURN_IF_ERROR(cursor->status());
  }
  out.sha256 = hasher.HexDigest();
  return out;
}

}  // namespace dash::shard
