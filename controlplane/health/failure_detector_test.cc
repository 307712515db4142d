#include "controlplane/health/failure_detector.h"

#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

class FakeClock final : public Clock {
 public:
  int64_t NowMicros() const override { return now_; }
  void Advance(absl::Duration d) { now_ += absl::ToInt64Microseconds(d); }

 private:
  int64_t now_ = 1000000;
};

TEST(FailureDetectorTest, SilentForLongerThanTheTimeoutIsDead) {
  FakeClock clock;
  FailureDetector detector(&clock, absl::Milliseconds(750));
  EXPECT_FALSE(detector.Alive("n1")) << "never heard";
  detector.Heard("n1");
  EXPECT_TRUE(detector.Alive("n1"));
  clock.Advance(absl::Milliseconds(750));
  EXPECT_TRUE(detector.Alive("n1"));
  clock.Advance(absl::Microseconds(1));
  EXPECT_FALSE(detector.Alive("n1"));
  detector.Heard("n1");
  EXPECT_TRUE(detector.Alive("n1"));
  detector.Forget("n1");
  EXPECT_FALSE(detector.Alive("n1"));
  EXPECT_FALSE(detector.Known("n1"));
}

TEST(FailureDetectorTest, MonotonicClockDoesNotGoBack) {
  Clock* clock = MonotonicClock();
  int64_t last = clock->NowMicros();
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = clock->NowMicros();
    ASSERT_GE(now, last);
    last = now;
  }
}

}  // namespace
}  // namespace dash::controlplane
