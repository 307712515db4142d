#include "controlplane/health/failure_detector.h"

#include <chrono>

namespace dash::controlplane {

Clock* MonotonicClock() {
  class Monotonic final : public Clock {
   public:
    int64_t NowMicros() const override {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    }
  };
  static Monotonic* clock = new Monotonic;
  return clock;
}

void FailureDetector::Heard(const std::string& node_id) {
  last_heard_[node_id] = clock_->NowMicros();
}

void FailureDetector::Forget(const std::string& node_id) { last_heard_.erase(node_id); }

bool FailureDetector::Alive(const std::string& node_id) const {
  auto it = last_heard_.find(node_id);
  if (it == last_heard_.end()) return false;
  return clock_->NowMicros() - it->second <= absl::ToInt64Microseconds(timeout_);
}

}  // namespace dash::controlplane
