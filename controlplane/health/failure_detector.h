// Failure detector: a node is alive while it was heard (registered or sent a
// heartbeat) within the failure timeout, measured on a monotonic clock so
// that wall-clock jumps neither kill nor revive nodes.
//
// Thread-safety: not thread-safe; the owner serializes calls (the control
// plane calls it under its state mutex).
#ifndef DASH_CONTROLPLANE_HEALTH_FAILURE_DETECTOR_H_
#define DASH_CONTROLPLANE_HEALTH_FAILURE_DETECTOR_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"

namespace dash::controlplane {

// A process-wide monotonic clock (std::chrono::steady_clock) behind the
// common Clock interface. NowMicros() counts from an arbitrary origin.
Clock* MonotonicClock();

class FailureDetector {
 public:
  // `clock` is not owned and must outlive the detector.
  FailureDetector(const Clock* clock, absl::Duration timeout) : clock_(clock), timeout_(timeout) {}

  // The node was heard now.
  void Heard(const std::string& node_id);
  // Forgets the node: it is not alive until Heard() again.
  void Forget(const std::string& node_id);
  // True iff the node was heard within the timeout (a node silent for exactly
  // the timeout is still alive; one microsecond more and it is not).
  bool Alive(const std::string& node_id) const;
  // Whether the node was heard at all since construction (or Forget()).
  bool Known(const std::string& node_id) const { return last_heard_.count(node_id) > 0; }

 private:
  const Clock* const clock_;
  const absl::Duration timeout_;
  std::map<std::string, int64_t> last_heard_;  // node id -> clock_->NowMicros().
};

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_HEALTH_FAILURE_DETECTOR_H_
