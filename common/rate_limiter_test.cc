#include "common/rate_limiter.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dash {
namespace {

// A clock that only moves when someone sleeps on it.
class FakeClock final : public Clock {
 public:
  int64_t NowMicros() const override { return now_; }
  void Advance(absl::Duration d) { now_ += absl::ToInt64Microseconds(d); }
  RateLimiter::SleepFunction Sleeper() {
    return [this](absl::Duration d) {
      ++sleeps_;
      Advance(d);
    };
  }
  int sleeps() const { return sleeps_; }

 private:
  std::atomic<int64_t> now_{1000000};
  std::atomic<int> sleeps_{0};
};

TEST(RateLimiterTest, ZeroRateNeverWaits) {
  FakeClock clock;
  RateLimiter limiter(0, 1 << 20, &clock, clock.Sleeper());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Acquire(1 << 30));
  EXPECT_EQ(clock.sleeps(), 0);
  EXPECT_EQ(clock.NowMicros(), 1000000);
}

TEST(RateLimiterTest, BurstIsOneSecondOrOneChunk) {
  FakeClock clock;
  EXPECT_EQ(RateLimiter(1000, 100, &clock).burst_bytes(), 1000u);
  EXPECT_EQ(RateLimiter(1000, 4096, &clock).burst_bytes(), 4096u);
}

TEST(RateLimiterTest, AFullBucketPassesWithoutWaiting) {
  FakeClock clock;
  RateLimiter limiter(1000, 100, &clock, clock.Sleeper());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.Acquire(100));
  EXPECT_EQ(clock.sleeps(), 0);
  // The bucket is empty: the next 500 bytes cost half a second.
  const int64_t before = clock.NowMicros();
  EXPECT_TRUE(limiter.Acquire(500));
  EXPECT_EQ(clock.NowMicros() - before, 500000);
}

TEST(RateLimiterTest, ManyBytesTakeBytesOverRate) {
  FakeClock clock;
  constexpr uint64_t kRate = 1 << 20;    // 1 MiB/s
  constexpr uint64_t kChunk = 64 << 10;  // 64 KiB
  RateLimiter limiter(kRate, kChunk, &clock, clock.Sleeper());
  const int64_t start = clock.NowMicros();
  constexpr uint64_t kTotal = 10 << 20;
  for (uint64_t sent = 0; sent < kTotal; sent += kChunk) ASSERT_TRUE(limiter.Acquire(kChunk));
  // The first second's worth (the burst) is free; the rest goes at kRate.
  const double expected_s = static_cast<double>(kTotal - limiter.burst_bytes()) / kRate;
  EXPECT_NEAR((clock.NowMicros() - start) / 1e6, expected_s, 0.001);
  EXPECT_GT(clock.sleeps(), 0);
}

TEST(RateLimiterTest, IdleTimeRefillsOnlyUpToTheBurst) {
  FakeClock clock;
  RateLimiter limiter(1000, 100, &clock, clock.Sleeper());
  ASSERT_TRUE(limiter.Acquire(1000));
  clock.Advance(absl::Hours(1));  // Would earn 3.6 MB without the cap.
  ASSERT_TRUE(limiter.Acquire(1000));
  EXPECT_EQ(clock.sleeps(), 0);
  const int64_t before = clock.NowMicros();
  ASSERT_TRUE(limiter.Acquire(1000));
  EXPECT_EQ(clock.NowMicros() - before, 1000000);
}

TEST(RateLimiterTest, ALargerRequestThanTheBucketStillPasses) {
  FakeClock clock;
  RateLimiter limiter(1000, 100, &clock, clock.Sleeper());
  const int64_t before = clock.NowMicros();
  ASSERT_TRUE(limiter.Acquire(5000));
  EXPECT_EQ(clock.NowMicros() - before, 4000000);
}

TEST(RateLimiterTest, CancelledWaitGivesTheBytesBack) {
  FakeClock clock;
  RateLimiter limiter(1000, 100, &clock, clock.Sleeper());
  ASSERT_TRUE(limiter.Acquire(1000));  // Empty now.
  int polls = 0;
  // Cancelled after the first 100 ms slice of a 10 s wait.
  EXPECT_FALSE(limiter.Acquire(10000, [&] { return ++polls > 1; }));
  EXPECT_EQ(clock.NowMicros() - 1000000, 100000);
  // The 100 ms slept earned 100 bytes; the cancelled 10000 are not owed.
  const int64_t before = clock.NowMicros();
  ASSERT_TRUE(limiter.Acquire(100));
  EXPECT_EQ(clock.NowMicros(), before);
}

TEST(RateLimiterTest, ConcurrentCallersShareTheRate) {
  FakeClock clock;
  constexpr uint64_t kRate = 1000;
  RateLimiter limiter(kRate, 10, &clock, clock.Sleeper());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(limiter.Acquire(10));
    });
  }
  for (auto& t : threads) t.join();
  // Every caller sleeps on the shared fake clock, so time may run ahead of
  // real pacing, but it can never fall short of what the bytes cost.
  const uint64_t total = kThreads * kPerThread * 10;
  EXPECT_GE(clock.NowMicros() - 1000000,
            static_cast<int64_t>((total - limiter.burst_bytes()) * 1000000 / kRate) - 1);
}

}  // namespace
}  // namespace dash
