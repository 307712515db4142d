// The steps of one ticker step (PlanTick in planner.h), each its own pure
// function; not part of the planner's API. PlanTick copies the table,
// normalizes it and runs the steps in the order declared here on that copy,
// then seals it as one version, so a later step sees what the earlier ones
// decided (failover sees this tick's health, move completion this tick's
// in-sync flags).
//
// Each step edits the table `after` in place and appends to `change` one
// summary line per thing it changed, and each shard whose epoch it bumped to
// change->shards_changed. `change->placement()` is not read: `after` may be
// it. REQUIRES of every step: `after` is normalized (planner_util.h).
//
// Thread-safety: functions of their arguments only.
#ifndef DASH_CONTROLPLANE_FAILOVER_INTERNAL_TICK_STEPS_H_
#define DASH_CONTROLPLANE_FAILOVER_INTERNAL_TICK_STEPS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "controlplane/failover/planner.h"
#include "dash/v1/placement.pb.h"

namespace dash::controlplane::internal {

// (a) Health. Each node `alive` lists becomes HEALTHY (true) or UNHEALTHY
// (false), with a line for each flip ("node n2: HEALTHY -> UNHEALTHY"); nodes
// not listed keep theirs. Then every replica's health mirrors its node's
// (UNHEALTHY when the node is not registered), with no line.
void UpdateHealth(const std::map<std::string, bool>& alive, v1::Placement* after,
                  v1::PlacementChange* change);

// (a') Epoch repair. A fencing at epoch + 1 that then promoted nobody leaves
// the fenced replicas refusing the leader's older epoch. A shard whose leader
// is healthy, that is not in `fencing` (being fenced right now), and one of
// whose replicas reports an epoch above the shard's moves to the highest
// such epoch with the same leader; transfer_to is cleared. Nobody ever led
// at that epoch (the fencer would have published it), so the leader may take
// it up.
void RepairFencedEpochs(const std::set<uint32_t>& fencing, const ReportMap& reports,
                        v1::Placement* after, v1::PlacementChange* change);

// What the ticker concludes about one follower's in_sync flag.
struct InSyncVerdict {
  enum Outcome {
    kInSync,
    kOutOfSync,
    // No evidence either way (its node not heard since start, or its report
    // ahead of an older leader report that lists no followers): the stored
    // flag stands.
    kKeepFlag,
  };
  Outcome outcome = kKeepFlag;
  // kOutOfSync only: why, as the summary line and the README say it
  // ("lag 1200 > 1000"); empty otherwise.
  std::string reason;
};

// (b) The in-sync decision on `follower`, a replica of `shard` other than its
// leader, in this order (the first that applies decides):
//   out of sync: "node unhealthy" (the replica's health), "no leader" (the
//     shard's leader is not among its replicas);
//   keep the flag: its node is not in input.heard;
//   out of sync: "no report for the shard", "diverged", "epoch E not yet
//     adopted (at e)", "fenced at epoch e, above the shard's E";
//   its last_lsn above the leader's (the table's ReplicaEntry.last_lsn):
//     with input.report_order, judged only against a leader report that
//     arrived after its own: then out of sync "ahead of the leader:
//     diverged"; otherwise the leader's verdict (below) when its latest
//     report lists followers, else keep the flag. Without report_order:
//     "ahead of the leader: diverged";
//   out of sync: "last epoch x at the leader's LSN, leader's y: diverged"
//     (same last_lsn, above 0, another last_epoch);
//   when the leader's latest report lists followers, its verdict: in sync
//     when it lists the follower in sync, else "not among leader L's
//     followers" or "leader L reports lag R records, B bytes, S s";
//   otherwise out of sync "lag D > M" when the leader's last_lsn is more than
//     M = input.in_sync_max_lag_records ahead; else in sync.
// input.reports is not read: `reports` stands for it.
InSyncVerdict JudgeInSync(const TickInput& input, const ReportMap& reports,
                          const v1::ShardEntry& shard, const v1::ReplicaEntry& follower);

// (b) Applies JudgeInSync to every follower of every shard (a leader stays
// in sync). Each flip gets a line: "shard 0: n3 out of sync: lag 1200 > 1000
// (last_lsn 3800, leader 5000)" or "shard 0: n3 in sync (...)". No epoch
// changes.
void UpdateInSync(const TickInput& input, const ReportMap& reports, v1::Placement* after,
                  v1::PlacementChange* change);

// (c) Automatic failover. A shard whose leader's node is unhealthy and that
// `fences` (may be null) holds a fencing for gets ChooseFencedLeader's choice
// as leader (epoch: the fenced one), the old leader an out-of-sync follower.
// Otherwise (no fencing, or ChooseFencedLeader refuses) the leader stays and
// a transfer in progress is abandoned.
void FailOverUnhealthyLeaders(const FenceMap* fences, const ReportMap& reports,
                              v1::Placement* after, v1::PlacementChange* change);

// (d) Replica moves. A shard moving a replica away from a node that does not
// lead it loses that replica once the move's target (moving_to) is healthy
// and in sync, or, in a table stored before moving_to existed, once every
// other follower is; moving_from and moving_to are cleared, epoch + 1.
void CompleteMoves(v1::Placement* after, v1::PlacementChange* change);

// (e) Cluster creation (PlanCreation) if the table is not created yet.
void CreateIfPending(v1::Placement* after, v1::PlacementChange* change);

// (f) Leader readiness. A leader is ready once it reports leading at the
// shard's epoch: it has opened its replica and adopted the role, so it takes
// writes (leader_ready_epoch = epoch). It stops being ready when, heard since
// this control plane started (input.heard), it no longer reports so
// (restarted, reopening its replicas); an epoch change needs a new report.
void MarkReadyLeaders(const TickInput& input, const ReportMap& reports, v1::Placement* after,
                      v1::PlacementChange* change);

}  // namespace dash::controlplane::internal

#endif  // DASH_CONTROLPLANE_FAILOVER_INTERNAL_TICK_STEPS_H_
