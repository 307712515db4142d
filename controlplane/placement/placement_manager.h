// PlacementManager: the control plane's core. It owns the placement table,
// the failure detector and the latest replica reports, applies the planner's
// decisions, and persists every new version before publishing it.
//
// Knows nothing of gRPC (control_plane_service.h adapts it). Every decision
// is made by the pure functions of failover/planner.h; this class adds time
// (failure detection, transfer timeouts), durability and publication.
//
// Publication order (the invariant the nodes and routers rely on): a change
// is (1) computed from the current table, (2) persisted with sync, (3) made
// the current table, (4) announced to watchers and returned to the caller. A
// failed persist leaves the current table unchanged.
//
// Leader changes after a failure or by an operator (automatic failover,
// Failover, Promote, a leader registering again) are fenced first: the
// shard's replicas are sent FenceShard at epoch + 1 through the Fencer, with
// the lock released, and the change is then planned again on the table as it
// is, from their answers (README.md, "Fencing").
//
// Thread-safety: thread-safe. One mutex guards all state; operations are
// serialized under it, and waits (transfers, watchers, fencing RPCs) release
// it.
#ifndef DASH_CONTROLPLANE_PLACEMENT_PLACEMENT_MANAGER_H_
#define DASH_CONTROLPLANE_PLACEMENT_PLACEMENT_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controlplane/failover/planner.h"
#include "controlplane/fencing/fencer.h"
#include "controlplane/health/failure_detector.h"
#include "controlplane/placement/store.h"
#include "dash/v1/placement.pb.h"

namespace dash::controlplane {

struct ManagerOptions {
  // Used only when the store is empty (first start); a stored table keeps its
  // own shard count and replication factor.
  uint32_t shard_count = 4;
  uint32_t replication_factor = 3;
  // A node silent for longer than this is UNHEALTHY.
  absl::Duration failure_timeout = absl::Milliseconds(750);
  absl::Duration tick = absl::Milliseconds(50);
  uint64_t in_sync_max_lag_records = 1000;
  // The leadership lease granted in heartbeat answers (lease_ms); zero: none.
  // Must be shorter than failure_timeout (ValidateLease).
  absl::Duration lease = absl::Milliseconds(500);
  // Deadline of the FenceShard calls made before a leader changes.
  absl::Duration fence_timeout = absl::Milliseconds(500);
  // Sends FenceShard; not owned; required.
  Fencer* fencer = nullptr;
  absl::Duration default_transfer_timeout = absl::Seconds(5);
  // Failure detection and timeouts (monotonic); not owned.
  const Clock* monotonic_clock = MonotonicClock();
  // NodeEntry.last_heartbeat timestamps (wall); not owned.
  const Clock* wall_clock = Clock::Real();
  // false: no ticker thread; the caller drives Tick() (unit tests).
  bool run_ticker = true;
  // After a restart, how long a node the stored table calls healthy may stay
  // silent without being declared unhealthy when nothing shows that it is
  // gone (see Open). Zero: five failure timeouts.
  absl::Duration restart_grace_limit = absl::ZeroDuration();
};

// The default lease: two thirds of the failure timeout.
absl::Duration DefaultLease(absl::Duration failure_timeout);
// INVALID_ARGUMENT unless 0 <= lease < failure_timeout: a node leads on its
// lease for `lease` after it sent a heartbeat, and the control plane promotes
// another replica only `failure_timeout` after it received the last one.
absl::Status ValidateLease(absl::Duration lease, absl::Duration failure_timeout);

class PlacementManager {
 public:
  // Loads the table from `store` (or creates and persists a fresh one). A
  // restart of the control plane changes nothing while the nodes are alive:
  // every node the stored table calls healthy counts as heard now, and one
  // that has not sent a heartbeat since stays healthy past the failure
  // timeout until something shows it is gone — a follower of a shard it
  // leads reports (at the shard's epoch) that its leader's log stream has
  // been silent for the failure timeout (LeaderSilenceReported) — or until
  // restart_grace_limit passes with no word from it. So a leader whose
  // heartbeats are slow to reconnect is not fenced and failed over (an epoch
  // bump and a write pause) only because the control plane restarted, while
  // a leader that died meanwhile is replaced as fast as without a restart. A
  // transfer that was in progress is abandoned (its caller is gone).
  // INVALID_ARGUMENT for bad options (ValidateLease, no fencer, ...).
  static absl::StatusOr<std::unique_ptr<PlacementManager>> Open(
      std::unique_ptr<PlacementStore> store, const ManagerOptions& options);

  // Shutdown(), then joins the ticker.
  ~PlacementManager();

  // Wakes every waiter (watchers, transfers) and makes later calls fail
  // UNAVAILABLE. Idempotent.
  void Shutdown();
  bool stopped();

  absl::StatusOr<v1::RegisterNodeResponse> RegisterNode(const v1::RegisterNodeRequest& request);
  // NOT_FOUND for a node that is not registered (it should register again).
  // The answer grants options.lease (lease_ms) to the node, healthy as of this
  // heartbeat, unless one of its reports claims leadership of a shard the
  // table gives another node or a shard it leads is being fenced (then 0). A
  // leader's report refreshes its followers' ReplicaEntry.lag in memory (no
  // new version).
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);

  // The current table, with the latest reported positions and lag.
  v1::Placement GetPlacement();
  v1::ListNodesResponse ListNodes();
  // The current table as soon as its version exceeds `after_version`, waiting
  // at most `max_wait`; nullopt on timeout or shutdown.
  std::optional<v1::Placement> WaitForNewer(uint64_t after_version, absl::Duration max_wait);

  // Fenced (see the class comment): the planner's FAILED_PRECONDITION before
  // anything is fenced; UNAVAILABLE naming the replicas that did not answer
  // when too few were fenced; ABORTED if the shard kept changing while it was
  // fenced. Blocks for up to about options.fence_timeout, plus the old
  // leader's remaining lease when it was not fenced itself.
  absl::StatusOr<v1::PlacementChange> Failover(const v1::FailoverRequest& request);
  absl::StatusOr<v1::PlacementChange> Promote(const v1::PromoteRequest& request);
  // Blocks (without holding the lock) until the transfer completes, times out
  // or is abandoned; see README.md for the protocol.
  absl::StatusOr<v1::PlacementChange> TransferLeader(const v1::TransferLeaderRequest& request);
  // Marks the node draining, then transfers each shard it leads. Blocks like
  // TransferLeader.
  absl::StatusOr<v1::PlacementChange> DrainNode(const v1::DrainNodeRequest& request);
  absl::StatusOr<v1::PlacementChange> AddReplica(const v1::AddReplicaRequest& request);
  absl::StatusOr<v1::PlacementChange> RemoveReplica(const v1::RemoveReplicaRequest& request);
  absl::StatusOr<v1::PlacementChange> MoveReplica(const v1::MoveReplicaRequest& request);

  // One ticker step (health, in-sync flags, failover, moves). Shards to fail
  // over are fenced first (the lock is released meanwhile), then the step is
  // planned again with the answers and committed as one version. The ticker
  // thread calls it every options.tick; public for tests.
  void Tick();

 private:
  PlacementManager(std::unique_ptr<PlacementStore> store, const ManagerOptions& options,
                   v1::Placement placement);

  // Persists and publishes `change` if it bumped the version; sets its
  // placement to the published table.
  absl::Status Commit(v1::PlacementChange* change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRunning() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a planner result: on success commits it.
  absl::StatusOr<v1::PlacementChange> CommitPlan(absl::StatusOr<v1::PlacementChange> plan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::PlacementChange> TransferLocked(const v1::TransferLeaderRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Clears the shard's transfer_to (persisted) and returns `error`.
  absl::Status AbandonTransfer(uint32_t shard, absl::Status error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A report of (shard, node) that arrived with a heartbeat after `after_seq`.
  const v1::ReplicaReport* FreshReport(uint32_t shard, const std::string& node_id,
                                       uint64_t after_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TickInput TickInputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Fencing. A plan of a leader change: without a fence, the check made
  // before fencing; with one, the change itself (see PlanFailover).
  using FencedPlan = std::function<absl::StatusOr<v1::PlacementChange>(const ShardFence* fence)>;
  // Checks, fences `shard`, waits out the old leader's lease if it was not
  // fenced, plans with the answers on the current table and commits; fences
  // again (up to 3 times) when the plan says ABORTED.
  absl::StatusOr<v1::PlacementChange> FencedChangeLocked(uint32_t shard, const FencedPlan& plan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends FenceShard at epoch + 1 to every replica of each shard (the leader
  // too, best effort), releasing mu_ while the calls run. REQUIRES: the
  // shards are reserved in fencing_ by the caller.
  FenceMap FenceLocked(const std::vector<uint32_t>& shards) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the last lease granted to `node_id` has run out.
  bool LeaseExpired(const std::string& node_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits (releasing mu_) until LeaseExpired(node_id) or shutdown.
  void AwaitLeaseExpiry(const std::string& node_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickerLoop();

  // Constant after construction.
  const ManagerOptions options_;
  const std::unique_ptr<PlacementStore> store_;

  absl::Mutex mu_;
  // Signalled when the table changes, a heartbeat arrives, or on shutdown.
  absl::CondVar changed_;
  // The published table, plus the latest reported LSNs and heartbeat times.
  v1::Placement current_ ABSL_GUARDED_BY(mu_);
  FailureDetector detector_ ABSL_GUARDED_BY(mu_);
  // The reports of each node's latest heartbeat, and the heartbeat sequence
  // number each arrived with (a transfer trusts only reports newer than its
  // start).
  ReportMap reports_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, std::string>, uint64_t> report_seq_ ABSL_GUARDED_BY(mu_);
  uint64_t heartbeat_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Nodes that sent a heartbeat since this process started, and when it
  // started (options_.monotonic_clock).
  std::set<std::string> heard_ ABSL_GUARDED_BY(mu_);
  const int64_t started_micros_;
  // Shards whose unhealthy leader could not be replaced, and the reason
  // logged (logged again only when it changes).
  std::map<uint32_t, std::string> stuck_shards_ ABSL_GUARDED_BY(mu_);
  // Shards being fenced (the calls run without mu_; one fencing per shard at
  // a time), with the leader each had then: that node gets no lease until
  // the fencing ends.
  std::map<uint32_t, std::string> fencing_ ABSL_GUARDED_BY(mu_);
  // When each node was last granted a lease (options_.monotonic_clock): its
  // lease has run out options_.lease later.
  std::map<std::string, int64_t> lease_granted_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  absl::Notification stop_ticker_;
  std::thread ticker_;
};

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_PLACEMENT_PLACEMENT_MANAGER_H_
