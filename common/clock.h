// Wall-clock time source, injectable for tests. Thread-safe.
#ifndef DASH_COMMON_CLOCK_H_
#define DASH_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/time/clock.h"

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

}  // namespace dash

#endif  // DASH_COMMON_CLOCK_H_
