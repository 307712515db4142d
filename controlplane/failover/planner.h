// The placement planner: every decision the control plane makes, as a pure
// function of the placement table (and, where needed, the latest replica
// reports). No clocks, no I/O, no randomness: the same inputs always give the
// same output, byte for byte, so that failover is deterministic and testable.
//
// Each Plan* function takes the current table and returns a PlacementChange
// whose `placement` is the table after the change. When anything changed the
// returned table's version is the input's + 1; otherwise the version is the
// input's and the caller must not persist or publish it. A shard's epoch is
// bumped only when its leader or its replica set changes; those shards are
// listed in shards_changed. `summary` holds one human line per change.
//
// Errors (nothing changed): INVALID_ARGUMENT names the field; NOT_FOUND for an
// unknown node or a node that is not a replica; FAILED_PRECONDITION when the
// change is unsafe now or expected_epoch is stale; UNAVAILABLE before the
// cluster is created.
//
// Thread-safety: pure functions, safe from any thread.
#ifndef DASH_CONTROLPLANE_FAILOVER_PLANNER_H_
#define DASH_CONTROLPLANE_FAILOVER_PLANNER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dash/v1/placement.pb.h"

namespace dash::controlplane {

// The latest ReplicaReport of each (shard, node_id).
using ReportMap = std::map<std::pair<uint32_t, std::string>, v1::ReplicaReport>;
// The arrival order of each report in a ReportMap (larger: arrived later).
using ReportOrder = std::map<std::pair<uint32_t, std::string>, uint64_t>;

// A fresh table before any node registered: version 1, created = false.
v1::Placement NewPlacement(uint32_t shard_count, uint32_t replication_factor);

// INVALID_ARGUMENT unless `node_id` is 1-64 characters of [A-Za-z0-9_.-].
absl::Status ValidateNodeId(const std::string& node_id);

// What one replica answered to NodeAdmin.FenceShard.
struct FenceOutcome {
  absl::Status status;      // OK: the replica adopted the fenced epoch.
  uint64_t last_epoch = 0;  // Its log end when it answered (OK only).
  uint64_t last_lsn = 0;
};
// One fencing round of a shard, at `epoch` (the shard's epoch + 1 when it was
// fenced), with each asked replica's answer; a replica not listed was not asked.
struct ShardFence {
  uint64_t epoch = 0;
  std::map<std::string, FenceOutcome> replicas;
};
using FenceMap = std::map<uint32_t, ShardFence>;

// The check failover starts with, on the latest reports alone (it decides
// nothing by itself: a new leader is chosen by ChooseFencedLeader). Writes
// are acknowledged once a majority (n/2 + 1 of the shard's n replicas) holds
// them, so the choice is made among the electorate: the replicas other than
// the current leader whose node is healthy and whose latest report exists, is
// not diverged and has adopted the shard's epoch (or a newer one: a fencing
// that promoted nobody). With at least n - (n/2 + 1) + 1 members the
// electorate intersects every majority, and its member with the highest
// reported (last_epoch, last_lsn) holds every acknowledged write: that one is
// returned (among equal maxima a non-draining node, then the smallest
// node_id). In-sync flags play no part. FAILED_PRECONDITION when the
// electorate is too small, with the reason ("shard 0: only 1 of 3 replicas
// reachable; promoting could lose acknowledged writes: ...").
absl::StatusOr<std::string> ChooseFailoverLeader(const v1::Placement& placement,
                                                 const v1::ShardEntry& shard,
                                                 const ReportMap& reports);

// The new leader of a failover, chosen on fence answers (fresher than
// reports): the electorate is the replicas other than the leader that
// answered the fence OK, whose node is healthy and whose latest report exists
// and is not diverged. Once fenced they acknowledge nothing of the old leader,
// so with at least n - (n/2 + 1) + 1 of them no majority can still
// acknowledge its writes and the one with the highest answered (last_epoch,
// last_lsn) holds every acknowledged write; ties as in ChooseFailoverLeader.
// ABORTED when `fence` is not at the shard's epoch + 1 (the shard changed:
// fence again); UNAVAILABLE when too few were fenced, naming the replicas that
// did not answer ("shard 0: only 1 of 3 replicas fenced at epoch 2, 2
// needed (not fenced: n3: DEADLINE_EXCEEDED)").
absl::StatusOr<std::string> ChooseFencedLeader(const v1::Placement& placement,
                                               const v1::ShardEntry& shard,
                                               const ReportMap& reports, const ShardFence& fence);

// Shards of `placement` whose leader's node is unhealthy and which
// ChooseFailoverLeader would fail over: the ones the ticker fences.
std::vector<uint32_t> ShardsToFailOver(const v1::Placement& placement, const ReportMap& reports);

// Whether `node_id` is shown gone by its followers: it leads a shard one of
// whose other replicas reports, at the shard's epoch and as a follower, that
// its leader's log stream has been silent for at least `silence_ms`
// (ReplicaReport.follow.leader_silent_ms). An open stream speaks at least
// every 250 ms, so a follower still hearing its leader is evidence that the
// leader is alive.
bool LeaderSilenceReported(const v1::Placement& placement, const ReportMap& reports,
                           const std::string& node_id, uint64_t silence_ms);

// The follower a planned transfer (DrainNode) hands leadership to: among
// followers whose node is healthy and not draining, whose in_sync flag is set
// and whose report (if any) is not diverged, the highest (last_epoch,
// last_lsn); ties go to the smallest node_id. nullopt when there is none.
std::optional<std::string> ChooseTransferTarget(const v1::Placement& placement,
                                                const v1::ShardEntry& shard,
                                                const ReportMap& reports);

// Adds or updates the node (healthy, new address), then creates the cluster
// if this made enough healthy non-draining nodes (see PlanCreation).
absl::StatusOr<v1::PlacementChange> PlanRegister(const v1::Placement& placement,
                                                 const v1::RegisterNodeRequest& request);

// If the table is not created and has >= replication_factor healthy
// non-draining nodes: with those nodes sorted by id, shard s gets replicas
// nodes[(s + i) % n] for i in [0, RF) and leader nodes[s % n], epoch 1, all in
// sync. Otherwise no change.
v1::PlacementChange PlanCreation(const v1::Placement& placement);

// What the ticker knows besides the table.
struct TickInput {
  // Whether each node was heard within the failure timeout. Nodes not listed
  // keep their health.
  std::map<std::string, bool> alive;
  // Latest reports (not owned; must outlive the call).
  const ReportMap* reports = nullptr;
  // Nodes heard since the control plane started. A follower on such a node
  // with no report for its shard is out of sync; a follower on a node not
  // heard yet keeps its flag (a restart must not forget who was in sync).
  std::set<std::string> heard;
  // Arrival order of `reports` (not owned; may be null). With it, a follower
  // whose last_lsn is above the leader's is judged out of sync only against a
  // leader report that arrived after its own (an older leader report may just
  // predate the records the follower since received); otherwise the leader's
  // lag verdict decides (its flag is kept when the leader reports none).
  // Without it, it is judged against whatever the leader last reported.
  const ReportOrder* report_order = nullptr;
  uint64_t in_sync_max_lag_records = 1000;
  // Fence answers per shard (not owned; may be null). Automatic failover
  // happens only for a shard fenced at its epoch + 1 (ChooseFencedLeader).
  const FenceMap* fences = nullptr;
  // Shards being fenced right now by another caller: their epoch is not
  // repaired (see PlanTick).
  std::set<uint32_t> fencing;
};

// One ticker step, all changes in one version: (a) node and replica health,
// (a') epoch repair: a shard with a healthy leader, not in input.fencing, one
// of whose replicas reports an epoch above the shard's (fenced by a failover
// that then promoted nobody, so it refuses the leader's older epoch) moves to
// that epoch with the same leader, (b) follower in_sync flags (out of sync:
// node unhealthy, no report, report diverged, shard epoch not adopted or
// fenced past, last_lsn above the leader's or equal to it (above 0) in
// another last_epoch; then, when the leader's latest report lists followers,
// the leader's own verdict (not listed, or listed out of sync: out of sync),
// else lag above in_sync_max_lag_records; the summary line says which),
// (c) automatic failover of shards whose leader's node is unhealthy and that
// input.fences holds a fencing for (ChooseFencedLeader; otherwise the leader
// stays), (d) completion of replica
// moves: the moving_from replica is removed once it does not lead and the
// moving_to replica is in sync (a table without moving_to: every other
// follower is healthy and in sync), (e) cluster creation (PlanCreation) if
// not created yet, (f) leader readiness: a shard whose leader reports leading
// at the shard's epoch gets leader_ready_epoch = epoch; one whose leader,
// heard since start (input.heard), reports otherwise loses it.
v1::PlacementChange PlanTick(const v1::Placement& placement, const TickInput& input);

// Replaces the leader with ChooseFailoverLeader's choice, whatever the
// leader's health (FAILED_PRECONDITION with its reason when it refuses). The
// old leader becomes an out-of-sync follower. Without `fence` this is the
// check made before fencing (the control plane never commits it); with it the
// leader is ChooseFencedLeader's choice (its errors).
absl::StatusOr<v1::PlacementChange> PlanFailover(const v1::Placement& placement,
                                                 const ReportMap& reports,
                                                 const v1::FailoverRequest& request,
                                                 const ShardFence* fence = nullptr);

// Makes the replica the leader; refused (FAILED_PRECONDITION) when another
// replica has a higher last_lsn unless accept_data_loss, in which case `lost`
// reports the range. Promoting the current leader changes nothing. NOT_FOUND
// when the node is not a replica of the shard. Without `fence` this is the
// check made before fencing, on reported positions. With it: ABORTED when
// `fence` is not at the shard's epoch + 1; UNAVAILABLE when the target did not
// answer the fence OK, or (unless accept_data_loss) fewer than
// n - (n/2 + 1) + 1 replicas other than the old leader did, naming those that
// did not; positions are the fence answers where there are some, else the
// reported ones.
absl::StatusOr<v1::PlacementChange> PlanPromote(const v1::Placement& placement,
                                                const v1::PromoteRequest& request,
                                                const ShardFence* fence = nullptr);

// Step 1 of a planned transfer: sets transfer_to (no epoch bump). Promoting
// the current leader changes nothing. NOT_FOUND when the node is not a
// replica of the shard.
absl::StatusOr<v1::PlacementChange> PlanTransferStart(const v1::Placement& placement,
                                                      const v1::TransferLeaderRequest& request);
// Step 2: the target caught up; it leads under epoch + 1, the old leader
// follows in sync. FAILED_PRECONDITION if the shard's transfer_to is not
// `target` any more.
absl::StatusOr<v1::PlacementChange> PlanTransferFinish(const v1::Placement& placement,
                                                       uint32_t shard, const std::string& target);
// Abandons the shard's transfer (clears transfer_to; no change if none).
v1::PlacementChange PlanTransferAbandon(const v1::Placement& placement, uint32_t shard);

// Sets (or with undrain clears) the node's draining mark. Leadership moves are
// separate transfers (the caller drives them).
absl::StatusOr<v1::PlacementChange> PlanDrainMark(const v1::Placement& placement,
                                                  const v1::DrainNodeRequest& request);

absl::StatusOr<v1::PlacementChange> PlanAddReplica(const v1::Placement& placement,
                                                   const v1::AddReplicaRequest& request);
// Removing either end of a move in progress ends the move (moving_from and
// moving_to are cleared).
absl::StatusOr<v1::PlacementChange> PlanRemoveReplica(const v1::Placement& placement,
                                                      const v1::RemoveReplicaRequest& request);
// Adds `to` as an out-of-sync follower and sets moving_from / moving_to;
// PlanTick removes `from` once `to` is in sync. The source must be a follower
// (a leader: FAILED_PRECONDITION "transfer leadership first"); one move per
// shard at a time.
absl::StatusOr<v1::PlacementChange> PlanMoveReplica(const v1::Placement& placement,
                                                    const v1::MoveReplicaRequest& request);

// Lookups; nullptr when absent.
const v1::NodeEntry* FindNode(const v1::Placement& placement, const std::string& node_id);
const v1::ShardEntry* FindShard(const v1::Placement& placement, uint32_t shard);
const v1::ReplicaEntry* FindReplica(const v1::ShardEntry& shard, const std::string& node_id);

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_FAILOVER_PLANNER_H_
