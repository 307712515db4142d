// Which replica serves a request, as pure functions of the placement table,
// and a per-node circuit breaker that reads consult before the control plane
// has noticed a failure. No I/O here: the service calls these and makes the
// calls (router_service.cc).
//
// Reads with FOLLOWER_PREFERRED or ANY_HEALTHY have an ordered list of
// eligible replicas (ReadCandidates); a read that fails on one with
// UNAVAILABLE (a dead node, a replica that cannot serve yet) tries the next,
// at most `max_attempts` of them, within the request's deadline
// (ReadWithFailover). LEADER_ONLY has one candidate, the leader: it fails
// closed. Writes never fail over (ChooseLeader).
//
// Thread-safety: the functions are pure; ReplicaBreaker is thread-safe.
#ifndef DASH_ROUTER_REPLICA_CHOICE_H_
#define DASH_ROUTER_REPLICA_CHOICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dash/v1/placement.pb.h"

namespace dash::router {

// The node chosen to serve one shard, and under which epoch.
struct Route {
  uint32_t shard = 0;
  // The routing epoch the node must be at; 0: any. Writes and LEADER_ONLY
  // reads pin the shard's epoch. Other reads do not: every replica serves
  // only majority-committed state and its answer names the epoch and LSN it
  // served at, so a replica that adopted an epoch this router has not seen
  // yet (fenced during a failover) still answers instead of failing.
  uint64_t epoch = 0;
  std::string node_id;
  std::string address;
  bool leader_read = false;  // LEADER_ONLY: the node must lead under its lease.
};

// The healthy leader of `entry`, or UNAVAILABLE with a RoutingHint.
absl::StatusOr<Route> ChooseLeader(const v1::Placement& placement, const v1::ShardEntry& entry);

// Whether a router with `placement` can take writes for every shard: the
// cluster is created and each shard has a healthy leader (the router's
// readiness; common/serving.h).
bool EveryShardLed(const v1::Placement& placement);

// Whether a node's answer to a write is a refusal worth a brief wait for
// the next placement table and one more try: UNAVAILABLE with a RoutingHint,
// which nodes attach only when they refused before logging anything (replica
// still opening, role or epoch not yet adopted, writes paused for a
// transfer). A transport failure carries no hint: the write may have been
// applied, so it is never retried.
bool RefusedUntilNextTable(const absl::Status& status);

// Every replica of `entry` that may serve a read under `preference`, best
// first: LEADER_ONLY the healthy leader alone; FOLLOWER_PREFERRED the healthy
// in-sync followers, then the healthy leader; ANY_HEALTHY every healthy
// replica. `spread` rotates equally good replicas so that load spreads.
// Never empty: UNAVAILABLE (with a RoutingHint) when no replica may serve,
// INVALID_ARGUMENT for an unknown preference.
absl::StatusOr<std::vector<Route>> ReadCandidates(const v1::Placement& placement,
                                                  const v1::ShardEntry& entry,
                                                  v1::ReadPreference preference, uint64_t spread);

// The first of ReadCandidates.
absl::StatusOr<Route> ChooseReplica(const v1::Placement& placement, const v1::ShardEntry& entry,
                                    v1::ReadPreference preference, uint64_t spread);

// Remembers, per replica (shard and node), a recent failure to serve: for
// `open_for` after a failure the replica is tried last. It is never skipped
// outright (when every replica has failed lately, they are still tried), and
// one success closes it again.
class ReplicaBreaker {
 public:
  explicit ReplicaBreaker(absl::Duration open_for) : open_for_(open_for) {}

  void Failed(const Route& replica, absl::Time now);
  void Succeeded(const Route& replica);
  bool IsOpen(const Route& replica, absl::Time now) const;
  // `routes` with the replicas whose breaker is closed first, each group in
  // its original order.
  std::vector<Route> Order(std::vector<Route> routes, absl::Time now) const;

 private:
  const absl::Duration open_for_;
  mutable absl::Mutex mu_;
  std::map<std::pair<uint32_t, std::string>, absl::Time> open_until_ ABSL_GUARDED_BY(mu_);
};

// How one read went: the route that answered (or failed last) and how many
// replicas were tried.
struct ReadOutcome {
  Route route;
  int attempts = 0;
  // Replicas that failed and were replaced by the next one.
  int failovers() const { return attempts > 1 ? attempts - 1 : 0; }
};

// Calls `attempt` on `candidates` (ordered by `breaker`) until one succeeds
// or fails with anything but UNAVAILABLE, trying at most `max_attempts`
// replicas and none once `deadline` has passed. Each UNAVAILABLE opens that
// node's breaker; a success closes it. Returns the last status; `outcome`
// (optional) says who answered and after how many attempts.
absl::Status ReadWithFailover(const std::vector<Route>& candidates, ReplicaBreaker* breaker,
                              int max_attempts, absl::Time deadline,
                              const std::function<absl::Status(const Route&)>& attempt,
                              ReadOutcome* outcome = nullptr);

}  // namespace dash::router

#endif  // DASH_ROUTER_REPLICA_CHOICE_H_
