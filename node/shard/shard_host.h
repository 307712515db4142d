// The shard replicas one node hosts, and the node-level operations over them:
// routing a batch or a read to its shard, and merging lists across shards.
// Knows nothing of gRPC. Thread-safe.
#ifndef DASH_NODE_SHARD_SHARD_HOST_H_
#define DASH_NODE_SHARD_SHARD_HOST_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dash/v1/data.pb.h"
#include "dash/v1/node.pb.h"
#include "node/shard/shard_replica.h"

namespace dash::shard {

struct HostOptions {
  std::string node_id;
  std::string data_dir;  // Replica i lives in <data_dir>/shard-<i>.
  uint32_t shard_count = 1;
  std::vector<uint32_t> shards;  // Hosted shard ids; empty means all.
  ReplicaOptions replica;        // Template; shard fields and dir are set per replica.
};

class ShardHost {
 public:
  // Opens (or creates) every hosted replica.
  static absl::StatusOr<std::unique_ptr<ShardHost>> Open(const HostOptions& options);

  // Routes the batch to its shard's replica (see ShardReplica::Write). A batch
  // for a shard this node does not host fails with FAILED_PRECONDITION.
  void Write(v1::WriteRequest request, ShardReplica::WriteDone done);
  absl::StatusOr<v1::GetClaimResponse> GetClaim(const v1::GetClaimRequest& request) const;
  // Lists across the hosted shards, merged in claim_id order.
  absl::StatusOr<v1::ListClaimsResponse> ListClaims(const v1::ListClaimsRequest& request) const;
  // Ranks across the hosted shards with corpus statistics summed over them,
  // so the ranking does not depend on how claims are spread over shards.
  absl::StatusOr<v1::QueryResponse> Query(const v1::QueryRequest& request) const;
  v1::NodeInfo Info() const;

  // nullptr when `shard` is not hosted here.
  ShardReplica* replica(uint32_t shard) const;

 private:
  explicit ShardHost(HostOptions options) : options_(std::move(options)) {}

  // Constant after Open.
  const HostOptions options_;
  std::map<uint32_t, std::unique_ptr<ShardReplica>> replicas_;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_SHARD_HOST_H_
