#include "common/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace dash {
namespace {
// How long one sleep lasts at most, so that `cancelled` is polled.
constexpr int64_t kMaxSleepMicros = 100000;
}  // namespace

RateLimiter::RateLimiter(uint64_t bytes_per_second, uint64_t chunk_bytes, Clock* clock,
                         SleepFunction sleep)
    : rate_(bytes_per_second),
      burst_(std::max(bytes_per_second, chunk_bytes)),
      clock_(clock),
      sleep_(sleep != nullptr ? std::move(sleep)
                              : SleepFunction([](absl::Duration d) { absl::SleepFor(d); })) {
  absl::MutexLock l(&mu_);
  tokens_ = static_cast<double>(burst_);
  last_refill_micros_ = clock_->NowMicros();
}

void RateLimiter::Refill(int64_t now_micros) {
  // A wall clock may step back: earn nothing then rather than lose tokens.
  if (now_micros <= last_refill_micros_) return;
  const double earned = static_cast<double>(now_micros - last_refill_micros_) * rate_ / 1e6;
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + earned);
  last_refill_micros_ = now_micros;
}

bool RateLimiter::Acquire(uint64_t bytes, const std::function<bool()>& cancelled) {
  if (rate_ == 0 || bytes == 0) return true;
  int64_t wait_micros = 0;  // Until this caller's bytes are paid for.
  int64_t until_micros = 0;
  {
    absl::MutexLock l(&mu_);
    const int64_t now = clock_->NowMicros();
    Refill(now);
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ >= 0) return true;
    wait_micros = static_cast<int64_t>(std::ceil(-tokens_ * 1e6 / rate_));
    until_micros = now + wait_micros;
  }
  // Sleep outside the lock: later callers queue up behind this one's debt.
  // The time slept also counts, so a clock stepping back cannot stretch the
  // wait beyond what was owed.
  int64_t slept_micros = 0;
  for (;;) {
    const int64_t left = std::min(until_micros - clock_->NowMicros(), wait_micros - slept_micros);
    if (left <= 0) return true;
    if (cancelled != nullptr && cancelled()) {
      absl::MutexLock l(&mu_);
      tokens_ = std::min(static_cast<double>(burst_), tokens_ + static_cast<double>(bytes));
      return false;
    }
    const int64_t step = std::min(left, kMaxSleepMicros);
    sleep_(absl::Microseconds(step));
    slept_micros += step;
  }
}

}  // namespace dash
