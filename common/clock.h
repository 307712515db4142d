// Wall-clock time source, injectable for tests. Thread-safe.
#ifndef DASH_COMMON_CLOCK_H_
#define DASH_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dash {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMicros() const = 0;
  // The process-wide real clock.
  static Clock* Real();
};

inline Clock* Clock::Real() {
  class RealClock final : public Clock {
   public:
    int64_t NowMicros() const override { return absl::GetCurrentTimeNanos() / 1000; }
  };
  static RealClock* clock = new RealClock;
  return clock;
}

// A clock that moves only when told to: for tests and simulations.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_micros) : now_(now_micros) {}
  int64_t NowMicros() const override { return now_.load(); }
  void Advance(absl::Duration d) { now_ += absl::ToInt64Microseconds(d); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace dash

#endif  // DASH_COMMON_CLOCK_H_
