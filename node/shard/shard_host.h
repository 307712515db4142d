// The shard replicas one node hosts, and the node-level operations over them:
// routing a batch or a read to its shard, and merging lists across shards.
// Knows nothing of gRPC. Thread-safe.
#ifndef DASH_NODE_SHARD_SHARD_HOST_H_
#define DASH_NODE_SHARD_SHARD_HOST_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/thread_pool.h"
#include "dash/v1/data.pb.h"
#include "dash/v1/node.pb.h"
#include "node/shard/shard_replica.h"

namespace dash::shard {

// A leader's view of one follower, as heartbeats and NodeInfo carry it.
v1::FollowerLag ToProto(const FollowerLag& lag);

struct HostOptions {
  std::string node_id;
  std::string data_dir;  // Replica i lives in <data_dir>/shard-<i>.
  uint32_t shard_count = 1;
  std::vector<uint32_t> shards;  // Hosted shard ids; empty means all.
  ReplicaOptions replica;        // Template; shard fields and dir are set per replica.
  // Workers of the pool a query fans out on over the hosted shards (the
  // calling thread helps: see common/thread_pool.h).
  size_t query_threads = 16;
};

class ShardHost {
 public:
  // Opens (or creates) every hosted replica. With `managed`, opens none: the
  // placement agent adds and removes replicas as the control plane assigns
  // them.
  static absl::StatusOr<std::unique_ptr<ShardHost>> Open(const HostOptions& options,
                                                         bool managed = false);

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
  // What each followed shard's log puller is doing, as the placement agent
  // last saw it; Info() reports it for follower replicas. Replaces the
  // previous set.
  void PublishFollowStatus(std::map<uint32_t, v1::FollowerStatus> status);
  // The shards the placement assigns to this node (set by the placement
  // agent before it opens them): a call for one of them that is not open yet
  // is UNAVAILABLE (retry: it is opening), not FAILED_PRECONDITION.
  void SetAssigned(std::set<uint32_t> shards);

  // nullptr when `shard` is not hosted here.
  std::shared_ptr<ShardReplica> replica(uint32_t shard) const;
  // The replica of `shard` for a caller at routing epoch `epoch` (0: any):
  // FAILED_PRECONDITION when the shard is not hosted here, when the epochs
  // differ (with a RoutingHint), or, with `must_lead`, when it does not lead.
  absl::StatusOr<std::shared_ptr<ShardReplica>> ReplicaAt(uint32_t shard, uint64_t epoch = 0,
                                                          bool must_lead = false) const;
  // The hosted replicas, by shard.
  std::map<uint32_t, std::shared_ptr<ShardReplica>> replicas() const;

  // Opens (creating if needed) the replica of `shard` if it is not hosted yet.
  absl::StatusOr<std::shared_ptr<ShardReplica>> AddReplica(uint32_t shard);
  // Stops hosting `shard`. Its directory is renamed <dir>.removed-<suffix>, not
  // deleted: an operator decides when the data is really gone. The replica
  // closes once the last in-flight call using it finishes.
  absl::Status RemoveReplica(uint32_t shard, const std::string& suffix);
  // Replaces the replica of `shard` (hosted or not) by the checkpoint that
  // replication::FetchSnapshot left in `staging_dir`, and returns the new
  // replica, opened like AddReplica's (under a control plane it has yet to
  // adopt its role). The staging directory is renamed into place, so it must
  // be on the data dir's file system; it is gone afterwards.
  //
  // The current replica leaves the map first (calls for the shard fail with
  // FAILED_PRECONDITION meanwhile) and is closed once every reference to it
  // is dropped, waiting up to `wait`. REQUIRES: the caller holds no reference
  // and has stopped whatever keeps one (such as a LogFollower).
  //
  // Where the file system can swap two directories atomically (Linux
  // renameat2 RENAME_EXCHANGE), a crash leaves either the old or the new
  // replica in place; the old one is deleted once the new one opened.
  //
  // Errors, after which the old replica is back in service: INVALID_ARGUMENT
  // for a shard beyond the shard count; FAILED_PRECONDITION when the old
  // replica is still in use after `wait`, the staging directory holds no
  // checkpoint, or the checkpoint is not of this shard; UNAVAILABLE on an I/O
  // error.
  absl::StatusOr<std::shared_ptr<ShardReplica>> InstallSnapshot(
      uint32_t shard, const std::string& staging_dir, absl::Duration wait = absl::Seconds(30));
  // Where a snapshot of `shard` is staged while it is fetched:
  // <data_dir>/snapshot-staging/shard-<shard>, on the data dir's file system
  // as InstallSnapshot needs. Kept across restarts, so that a fetch resumes.
  std::string SnapshotStagingDir(uint32_t shard) const;

  uint32_t shard_count() const { return options_.shard_count; }
  const std::string& node_id() const { return options_.node_id; }

 private:
  ShardHost(HostOptions options, bool managed)
      : options_(std::move(options)), managed_(managed), query_pool_(options_.query_threads) {}
  std::string ReplicaDir(uint32_t shard) const;
  // The template options with the fields of `shard` set.
  ReplicaOptions ReplicaOptionsFor(uint32_t shard) const;
  // Opens the replica in ReplicaDir(shard) and puts it in the map.
  absl::StatusOr<std::shared_ptr<ShardReplica>> OpenAndHost(uint32_t shard)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(open_mu_);
  absl::Status NotHosted(uint32_t shard) const;

  // Constant after Open.
  const HostOptions options_;
  const bool managed_;
  // Query fan-out over the hosted shards; thread-safe itself.
  mutable ThreadPool query_pool_;
  // Serializes AddReplica, RemoveReplica and InstallSnapshot.
  absl::Mutex open_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<uint32_t, std::shared_ptr<ShardReplica>> replicas_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, v1::FollowerStatus> follow_status_ ABSL_GUARDED_BY(mu_);
  std::set<uint32_t> assigned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_SHARD_HOST_H_
