#include "common/thread_pool.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash {
namespace {

// Long enough never to fire on a loaded machine; a hang fails instead of
// blocking the test binary.
constexpr absl::Duration kHang = absl::Seconds(30);

TEST(RunAllTest, ResultsArriveInIndexOrder) {
  ThreadPool pool(4);
  auto results = RunAll<std::string>(&pool, 50, [](size_t i) -> absl::StatusOr<std::string> {
    if (i % 7 == 3) return absl::NotFoundError(absl::StrCat("no ", i));
    return absl::StrCat("v", i);
  });
  ASSERT_EQ(results.size(), 50u);
  for (size_t i = 0; i < results.size(); ++i) {
    if (i % 7 == 3) {
      EXPECT_EQ(results[i].status(), absl::NotFoundError(absl::StrCat("no ", i)));
    } else {
      ASSERT_TRUE(results[i].ok()) << i;
      EXPECT_EQ(*results[i], absl::StrCat("v", i));
    }
  }
  EXPECT_TRUE(RunAll<int>(&pool, 0, [](size_t) -> absl::StatusOr<int> { return 1; }).empty());
}

TEST(RunAllTest, WithoutAPoolTheCallerRunsEveryCallInTurn) {
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<size_t> order;
  auto results = RunAll<bool>(nullptr, 5, [&](size_t i) -> absl::StatusOr<bool> {
    order.push_back(i);
    if (i == 2) return absl::InternalError("two");
    return std::this_thread::get_id() == caller;
  });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[2].status(), absl::InternalError("two"));
  for (size_t i : {0, 1, 3, 4}) EXPECT_TRUE(results[i].ok() && *results[i]) << i;
}

// Every call of a batch waits until all of them have started: only true
// fan-out (the caller and size() workers together) gets through.
TEST(RunAllTest, CallsRunAtTheSameTimeOnTheCallerAndTheWorkers) {
  ThreadPool pool(3);
  absl::Notification met;
  std::atomic<int> arrived{0};
  auto results = RunAll<bool>(&pool, 4, [&](size_t) -> absl::StatusOr<bool> {
    if (++arrived == 4) met.Notify();
    return met.WaitForNotificationWithTimeout(kHang);
  });
  for (const auto& r : results) EXPECT_TRUE(r.ok() && *r) << "a call ran only after another";
}

TEST(RunAllTest, NestedRunAllOnAPoolOfOneDoesNotDeadlock) {
  ThreadPool pool(1);
  absl::Notification done;
  std::atomic<int> leaves{0};
  // The outer batch runs on the pool's only worker; each of its calls fans
  // out again on the same pool, which has no idle worker left.
  pool.Schedule([&] {
    RunAll<int>(&pool, 3, [&](size_t) -> absl::StatusOr<int> {
      RunAll<int>(&pool, 4, [&](size_t) -> absl::StatusOr<int> { return ++leaves; });
      return 0;
    });
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kHang)) << "deadlocked";
  EXPECT_EQ(leaves.load(), 12);
}

TEST(RunAllTest, CompletesOnTheCallerWhenEveryWorkerIsBusy) {
  ThreadPool pool(1);
  absl::Notification release;
  pool.Schedule([&] { release.WaitForNotification(); });  // The only worker.
  std::set<std::thread::id> threads;
  absl::Mutex mu;
  auto results = RunAll<int>(&pool, 5, [&](size_t i) -> absl::StatusOr<int> {
    absl::MutexLock l(&mu);
    threads.insert(std::this_thread::get_id());
    return static_cast<int>(i);
  });
  release.Notify();
  ASSERT_EQ(results.size(), 5u);
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(*results[i], static_cast<int>(i));
  EXPECT_THAT(threads, ::testing::ElementsAre(std::this_thread::get_id()));
}

TEST(ThreadPoolTest, WorkQueuedBeyondThePoolSizeCompletes) {
  ThreadPool pool(2);
  constexpr int kTasks = 200;
  absl::BlockingCounter left(kTasks);
  std::atomic<int> ran{0};
  for (int i = 0; i < kTasks; ++i) {
    pool.Schedule([&] {
      ++ran;
      left.DecrementCount();
    });
  }
  left.Wait();
  EXPECT_EQ(ran.load(), kTasks);
  auto results = RunAll<int>(
      &pool, 64, [](size_t i) -> absl::StatusOr<int> { return static_cast<int>(i) * 2; });
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(*results[i], static_cast<int>(i) * 2);
}

TEST(ThreadPoolTest, ShutsDownAfterRunningEveryQueuedTask) {
  std::atomic<int> ran{0};
  absl::Notification release;
  {
    ThreadPool pool(2);
    // Both workers wait while more work queues behind them.
    for (int i = 0; i < 2; ++i) pool.Schedule([&] { release.WaitForNotification(); });
    for (int i = 0; i < 20; ++i) {
      pool.Schedule([&pool, &ran] {
        ++ran;
        pool.Schedule([&ran] { ++ran; });  // Scheduled while the pool stops.
      });
    }
    release.Notify();
  }  // ~ThreadPool drains the queue (most of it still waiting), then joins.
  EXPECT_EQ(ran.load(), 40);
}

TEST(ThreadPoolTest, TryScheduleRefusesPastTheQueueBound) {
  ThreadPool pool(1);
  absl::Notification running, release;
  pool.Schedule([&] {
    running.Notify();
    release.WaitForNotification();
  });
  running.WaitForNotification();  // The only worker is busy: the rest queue.
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.TrySchedule([&] { ++ran; }, 2));
  EXPECT_TRUE(pool.TrySchedule([&] { ++ran; }, 2));
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_FALSE(pool.TrySchedule([&] { ran += 100; }, 2)) << "the queue is full";
  release.Notify();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ran.load() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(ran.load(), 2);
  EXPECT_EQ(pool.queued(), 0u);
}

}  // namespace
}  // namespace dash
