// A token-bucket limit on bytes per second, shared by the threads that move
// bulk data (snapshot streams) so that together they leave disk and network
// bandwidth for client traffic.
//
// The bucket holds at most `burst` bytes: one second's worth, or one chunk if
// that is larger (so a chunk never waits for more than the bucket can hold).
// It starts full. Acquire() takes its bytes at once and, when that leaves the
// bucket in debt, sleeps until the debt is paid: callers are paced in the
// order they asked, and a caller larger than the bucket still passes.
//
// Time comes from a Clock and waiting goes through a sleep function, both
// injectable, so tests drive it with a fake clock whose sleep advances time.
// Thread-safe.
#ifndef DASH_COMMON_RATE_LIMITER_H_
#define DASH_COMMON_RATE_LIMITER_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace dash {

class RateLimiter {
 public:
  using SleepFunction = std::function<void(absl::Duration)>;

  // `bytes_per_second` 0: unlimited (Acquire never waits). `chunk_bytes`: the
  // largest single Acquire expected; it sets the minimum burst. `sleep` must
  // be callable from any thread.
  RateLimiter(uint64_t bytes_per_second, uint64_t chunk_bytes, Clock* clock = Clock::Real(),
              SleepFunction sleep = nullptr);

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Blocks until `bytes` may pass. With `cancelled` (polled at least every
  // 100 ms of waiting, from the calling thread), gives up when it turns true:
  // returns false and the bytes are given back to the bucket.
  bool Acquire(uint64_t bytes, const std::function<bool()>& cancelled = nullptr);

  uint64_t bytes_per_second() const { return rate_; }
  uint64_t burst_bytes() const { return burst_; }

 private:
  // Adds the tokens earned since the last refill.
  void Refill(int64_t now_micros) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const uint64_t rate_;
  const uint64_t burst_;
  Clock* const clock_;
  const SleepFunction sleep_;

  absl::Mutex mu_;
  // Bytes available now; negative: the debt callers already waiting owe.
  double tokens_ ABSL_GUARDED_BY(mu_);
  int64_t last_refill_micros_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dash

#endif  // DASH_COMMON_RATE_LIMITER_H_
