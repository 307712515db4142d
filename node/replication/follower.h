// A follower replica's side of log shipping: one thread per followed shard
// pulls the leader's log (dash.v1.Replication.PullLog) from its own last LSN,
// applies each received batch of records atomically, acknowledges it, and
// learns the leader's commit LSN (what reads may see). It reconnects after
// errors with a backoff of at most a second, resends an acknowledgement that
// was lost, reports what it is doing (status()), and repairs its log by
// itself:
//  - diverged (it holds records of an older epoch the leader lacks): it asks
//    the leader for the end of its last epoch (KIP-279), truncates its log
//    there, undoing those records' state, and pulls again;
//  - behind the leader's retained log, or a divergence it cannot undo: it
//    copies a snapshot of the leader's replica, installs it in place of its
//    own and goes on from the snapshot's LSN.
#ifndef DASH_NODE_REPLICATION_FOLLOWER_H_
#define DASH_NODE_REPLICATION_FOLLOWER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/security.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "node/shard/shard_host.h"

namespace dash::replication {

struct FollowerStats {
  uint64_t truncations = 0;     // Divergence repairs by truncation.
  uint64_t snapshots = 0;       // Snapshots installed.
  uint64_t snapshot_bytes = 0;  // Bytes received for them.
};

// What the puller is doing; see dash.v1.FollowerStatus for the states.
struct FollowStatus {
  std::string state;
  std::string last_error;
  absl::Duration leader_silent;  // Since it last heard from the leader's stream.
  uint64_t retries = 0;          // Failed attempts since the stream was last open.
};

class LogFollower {
 public:
  // Follows `role.leader_address` for `shard` of `host` at `role.epoch`.
  // `security` gives the follower's TLS identity towards its leader.
  LogFollower(shard::ShardHost* host, uint32_t shard, shard::Role role,
              std::shared_ptr<const Security> security = Security::Insecure());
  // Stops and joins the thread.
  ~LogFollower();

  const std::string& leader_address() const { return role_.leader_address; }
  uint64_t epoch() const { return role_.epoch; }
  // Its log diverged from the leader's and it could not repair it (yet).
  bool diverged() const { return diverged_; }
  FollowerStats stats() const;
  FollowStatus status() const;

 private:
  void Run();
  // Truncates a diverged log to where it agrees with the leader's.
  absl::Status Repair(v1::Replication::Stub& stub);
  // Replaces the replica by a snapshot of the leader's.
  absl::Status CatchUpFromSnapshot(v1::Snapshots::Stub& stub);
  bool Stopped();
  void SetState(const char* state);
  // A failed attempt: remembered for status() until the stream opens again.
  void Failed(const absl::Status& status);
  // The stream spoke: the leader is alive.
  void Heard();

  shard::ShardHost* const host_;
  const uint32_t shard_;
  const std::shared_ptr<const Security> security_;
  const shard::Role role_;
  std::atomic<bool> diverged_{false};

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
  FollowerStats stats_ ABSL_GUARDED_BY(mu_);
  std::string state_ ABSL_GUARDED_BY(mu_) = "connecting";
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  uint64_t retries_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_) = absl::Now();
  std::thread thread_;
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_FOLLOWER_H_
