// Reads of stored claims on one storage snapshot: a claim with its evidence
// and edges, pages of a tenant's claims, and the commit token that says which
// state a read saw. Stateless apart from the replica it names in tokens, so
// thread-safe.
#ifndef DASH_NODE_SHARD_CLAIM_READER_H_
#define DASH_NODE_SHARD_CLAIM_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "dash/v1/data.pb.h"
#include "node/storage/engine.h"

namespace dash::shard {

struct ListPage {
  std::vector<v1::ClaimRecord> records;
  bool more = false;  // More claims follow the last record.
  v1::CommitToken read_at;
};

class ClaimReader {
 public:
  ClaimReader(uint32_t shard_id, std::string node_id)
      : shard_id_(shard_id), node_id_(std::move(node_id)) {}

  // The state `r` holds: this shard, its epoch and last LSN, served by this node.
  v1::CommitToken Token(const storage::Reader& r) const;

  // The claim with its evidence and outgoing edges. NOT_FOUND if absent;
  // DATA_LOSS if a stored record does not parse. With `evidence_page_size` >
  // 0, at most that many pieces of evidence whose id is after
  // `evidence_after`, and `more` set (when non-null) if others follow.
  absl::StatusOr<v1::GetClaimResponse> GetClaim(const storage::Reader& r, absl::string_view tenant,
                                                absl::string_view claim_id,
                                                size_t evidence_page_size,
                                                absl::string_view evidence_after, bool* more) const;
  // Up to `limit` claims of `tenant` with claim_id > `start_after`, in id order.
  absl::StatusOr<ListPage> ListClaims(const storage::Reader& r, absl::string_view tenant,
                                      absl::string_view start_after, size_t limit,
                                      bool include_evidence) const;
  // `claim` as a record, with its evidence and edges when asked.
  absl::StatusOr<v1::ClaimRecord> Record(const storage::Reader& r, absl::string_view tenant,
                                         const v1::Claim& claim, bool include_evidence) const;

 private:
  const uint32_t shard_id_;
  const std::string node_id_;
};

// Parses a stored message; DATA_LOSS naming `what` when it does not parse.
template <typename Message>
absl::StatusOr<Message> ParseStored(absl::string_view bytes, absl::string_view what) {
  Message m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", what, " is corrupt"));
  }
  return m;
}

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_CLAIM_READER_H_
