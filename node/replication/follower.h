// A follower replica's side of log shipping: one thread per followed shard
// pulls the leader's log (dash.v1.Replication.PullLog) from its own last LSN,
// applies each received batch of records atomically, and reconnects after
// errors. It stops at a divergence (the follower holds records the leader
// lacks), which it reports; repairing that is the control plane's call.
#ifndef DASH_NODE_REPLICATION_FOLLOWER_H_
#define DASH_NODE_REPLICATION_FOLLOWER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "grpcpp/client_context.h"
#include "node/shard/shard_replica.h"

namespace dash::replication {

class LogFollower {
 public:
  LogFollower(std::shared_ptr<shard::ShardReplica> replica, std::string leader_address,
              uint64_t epoch, std::string node_id);
  // Stops and joins the thread.
  ~LogFollower();

  const std::string& leader_address() const { return leader_address_; }
  uint64_t epoch() const { return epoch_; }
  bool diverged() const { return diverged_; }

 private:
  void Run();

  const std::shared_ptr<shard::ShardReplica> replica_;
  const std::string leader_address_;
  const uint64_t epoch_;
  const std::string node_id_;
  std::atomic<bool> diverged_{false};

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_FOLLOWER_H_
