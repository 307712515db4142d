#include "common/sync_point.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dash {
namespace {

#ifdef DASH_TEST_HOOKS

TEST(SyncPointTest, NothingRunsWhileProcessingIsOff) {
  int calls = 0;
  SyncPoint::Get()->SetCallBack("Test:Off", [&](void*) { ++calls; });
  DASH_SYNC_POINT("Test:Off");
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(SyncPoint::Get()->Count("Test:Off"), 0);
  SyncPoint::Get()->ClearAll();
}

TEST(SyncPointTest, ACallbackSeesThePointsArgumentAndItIsCounted) {
  SyncPointScope scope;
  int seen = 0;
  SyncPoint::Get()->SetCallBack("Test:Arg", [&](void* arg) { seen += *static_cast<int*>(arg); });
  int value = 7;
  DASH_SYNC_POINT_ARG("Test:Arg", &value);
  DASH_SYNC_POINT_ARG("Test:Arg", &value);
  EXPECT_EQ(seen, 14);
  EXPECT_EQ(SyncPoint::Get()->Count("Test:Arg"), 2);
  EXPECT_TRUE(SyncPoint::Get()->WaitFor("Test:Arg", 2, absl::ZeroDuration()));
  EXPECT_FALSE(SyncPoint::Get()->WaitFor("Test:Arg", 3, absl::Milliseconds(10)));
}

TEST(SyncPointTest, ASuccessorWaitsForItsPredecessor) {
  SyncPointScope scope;
  SyncPoint::Get()->LoadDependency({{"Test:First", "Test:Second"}});
  std::vector<std::string> order;
  absl::Mutex mu;
  auto record = [&](const std::string& what) {
    absl::MutexLock l(&mu);
    order.push_back(what);
  };
  // The thread reaching the successor starts first, and must wait.
  std::thread second([&] {
    DASH_SYNC_POINT("Test:Second");
    record("second");
  });
  std::thread first([&] {
    absl::SleepFor(absl::Milliseconds(50));  // Gives `second` a head start it must not use.
    record("first");
    DASH_SYNC_POINT("Test:First");
  });
  first.join();
  second.join();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second"}));
}

TEST(SyncPointTest, WaitForReturnsOnceAnotherThreadReachesThePoint) {
  SyncPointScope scope;
  std::thread t([] { DASH_SYNC_POINT("Test:Reached"); });
  EXPECT_TRUE(SyncPoint::Get()->WaitFor("Test:Reached", 1, absl::Seconds(10)));
  t.join();
}

TEST(SyncPointTest, DisablingReleasesAThreadWaitingOnAPredecessor) {
  SyncPointScope scope;
  SyncPoint::Get()->LoadDependency({{"Test:Never", "Test:Blocked"}});
  std::atomic<bool> passed{false};
  std::thread t([&] {
    DASH_SYNC_POINT("Test:Blocked");
    passed = true;
  });
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(passed);
  SyncPoint::Get()->DisableProcessing();
  t.join();
  EXPECT_TRUE(passed);
}

TEST(SyncPointTest, KillAtKillsTheProcessTheNthTimeThePointIsReached) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SyncPoint::Get()->EnableProcessing();
    if (!SyncPoint::Get()->KillAtSpec("Test:Kill:2").ok()) _exit(3);
    DASH_SYNC_POINT("Test:Kill");
    DASH_SYNC_POINT("Test:Other");
    DASH_SYNC_POINT("Test:Kill");
    _exit(0);  // Not reached.
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(SyncPointTest, AKillSpecNamesAPointAndAPositiveCount) {
  SyncPointScope scope;
  EXPECT_TRUE(SyncPoint::Get()->KillAtSpec("ShardReplica::CommitGroup:Committed").ok());
  EXPECT_TRUE(SyncPoint::Get()->KillAtSpec("A::B:C:3").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(SyncPoint::Get()->KillAtSpec("A:0")));
  EXPECT_TRUE(absl::IsInvalidArgument(SyncPoint::Get()->KillAtSpec("")));
  EXPECT_TRUE(absl::IsInvalidArgument(SyncPoint::Get()->KillAtSpec(":2")));
}

#else

TEST(SyncPointTest, AReleaseBuildHasNoHooks) {
  EXPECT_FALSE(kTestHooks);
  DASH_SYNC_POINT("Test:Compiled out");  // Expands to nothing.
}

#endif

}  // namespace
}  // namespace dash
