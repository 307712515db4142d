// Stateless validation of a write batch: every rule that can be checked
// without reading stored data (formats, sizes, required fields, hashes).
// The stateful rules (evidence-first, embedding dimension) are checked by
// ApplyBatch. Thread-safe: pure functions.
#ifndef DASH_QUERY_BATCH_VALIDATOR_H_
#define DASH_QUERY_BATCH_VALIDATOR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dash/v1/data.pb.h"

namespace dash::query {

struct Limits {
  size_t max_ops = 1000;
  size_t max_tenant_bytes = 64;
  size_t max_id_bytes = 256;
  size_t max_text_bytes = 64 << 10;
  size_t max_quote_bytes = 16 << 10;
  size_t max_uri_bytes = 2048;
  size_t max_title_bytes = 1024;
  size_t max_metadata_entries = 64;
  size_t max_metadata_key_bytes = 128;
  size_t max_metadata_string_bytes = 4096;
  size_t max_embedding_dim = 4096;
  size_t max_idempotency_key_bytes = 128;
  // What one claim may hold once a batch is applied (checked by the leader
  // against stored state, not by the stateless ValidateBatch): its evidence
  // count, and the stored bytes of the claim and all its evidence. They bound
  // what one write to a claim re-indexes on the shard's commit thread and
  // keep a GetClaim answer far below gRPC's default 4 MiB message limit.
  size_t max_evidence_per_claim = 1000;
  size_t max_edges_per_claim = 1000;  // Outgoing.
  size_t max_claim_bytes = 1 << 20;   // Claim, evidence and outgoing edges.
};

// Returns INVALID_ARGUMENT whose message begins with the path of the first
// offending field (e.g. "ops[3].evidence.citation.quote: must not be empty").
absl::Status ValidateBatch(const v1::WriteRequest& request, const Limits& limits = Limits());

// Checks a tenant name alone (for reads). INVALID_ARGUMENT naming `field`.
absl::Status ValidateTenant(absl::string_view tenant, absl::string_view field,
                            const Limits& limits = Limits());
// Checks a claim or evidence id alone. INVALID_ARGUMENT naming `field`.
absl::Status ValidateId(absl::string_view id, absl::string_view field,
                        const Limits& limits = Limits());

// The claim id an operation is stored with (claim, evidence's claim, edge's
// from_claim, deleted claim).
absl::string_view OwningClaimId(const v1::WriteOp& op);

// The shard every op of `request` belongs to. INVALID_ARGUMENT naming the
// first op that belongs to another shard than the first op (or than
// request.shard when set).
absl::StatusOr<uint32_t> ShardOfBatch(const v1::WriteRequest& request, uint32_t shard_count);

}  // namespace dash::query

#endif  // DASH_QUERY_BATCH_VALIDATOR_H_
