// PlanTick (planner.h): the ticker step as a list of steps, each a pure
// function with its contract in internal/tick_steps.h.
#include <utility>

#include "controlplane/failover/internal/planner_util.h"
#include "controlplane/failover/internal/tick_steps.h"
#include "controlplane/failover/planner.h"

namespace dash::controlplane {

v1::PlacementChange PlanTick(const v1::Placement& placement, const TickInput& input) {
  static const ReportMap kNoReports;
  const ReportMap& reports = input.reports != nullptr ? *input.reports : kNoReports;
  v1::PlacementChange change;
  v1::Placement* after = change.mutable_placement();
  *after = placement;
  internal::Normalize(after);  // The summary lines follow the canonical order.

  internal::UpdateHealth(input.alive, after, &change);                        // (a)
  internal::RepairFencedEpochs(input.fencing, reports, after, &change);       // (a')
  internal::UpdateInSync(input, reports, after, &change);                     // (b)
  internal::FailOverUnhealthyLeaders(input.fences, reports, after, &change);  // (c)
  internal::CompleteMoves(after, &change);                                    // (d)
  internal::CreateIfPending(after, &change);                                  // (e)
  internal::MarkReadyLeaders(input, reports, after, &change);                 // (f)
  return internal::Finish(placement, std::move(change));
}

}  // namespace dash::controlplane
