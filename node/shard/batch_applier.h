// Turns one accepted batch into the state changes it implies.
//
// ApplyBatch is deterministic: the same prior state and the same arguments give
// the same changes, which is what lets a replica replay its log or a follower
// apply the leader's records and end with identical state. It checks the
// stateful rules (evidence-first, embedding dimension per tenant) and reports
// violations as INVALID_ARGUMENT naming the field path. Thread-compatible: the
// caller owns the WriteSet.
#ifndef DASH_NODE_SHARD_BATCH_APPLIER_H_
#define DASH_NODE_SHARD_BATCH_APPLIER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"
#include "query/batch_validator.h"

namespace dash::shard {

struct CommitPoint {
  uint64_t epoch = 0;
  uint64_t lsn = 0;
  int64_t commit_time_micros = 0;
};

// Idempotency records removed by one log record at most (see
// LogPayload.idempotency_expire_before_micros): enough to drain a backlog,
// since each record queues at most one. Part of the log's meaning: every
// replica must apply the same number, so changing it is a format change.
inline constexpr size_t kMaxIdempotencyExpiriesPerRecord = 64;

// Stages in `ws` every state change of `payload` committed at `at`: claims,
// evidence, edges (and their reverse index), tenant counters, the
// idempotency record with its expiry-queue key, and the expiry of old ones. Does not write the log
// record or shard metadata. On error `ws` may hold partial changes: the caller rolls back to a save
// point. When `touched` is non-null, the ids of the claims the batch wrote, gave evidence to or
// deleted are appended to it (for the in-memory caches the caller refreshes after the commit).
absl::Status ApplyBatch(const storage::LogPayload& payload, const CommitPoint& at,
                        storage::WriteSet* ws, std::vector<std::string>* touched = nullptr);

// The leader's check, after ApplyBatch staged `payload` in `ws` and before the
// record is logged: every claim the batch touched (or gave an edge) holds at
// most limits.max_evidence_per_claim pieces of evidence,
// max_edges_per_claim outgoing edges and max_claim_bytes stored bytes. INVALID_ARGUMENT naming the
// batch's first op on an offending claim (e.g. "ops[2].evidence: claim \"c1\" would hold 1001
// pieces of evidence; the limit is 1000"). Not part of ApplyBatch: records already in a log are
// replayed whatever the limits of the binary replaying them.
absl::Status CheckClaimLimits(const storage::LogPayload& payload,
                              const std::vector<std::string>& touched, const query::Limits& limits,
                              storage::WriteSet* ws);

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_BATCH_APPLIER_H_
