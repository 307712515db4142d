// Sync points: named places in the code where a test can run a callback,
// order threads, wait for something to have happened, or have the process
// kill itself, in the spirit of RocksDB's test_util/sync_point.h.
//
//   DASH_SYNC_POINT("ShardReplica::CommitGroup:Committed");
//   DASH_SYNC_POINT_ARG("ShardReplica::CommitGroup:BeforeCommit", &group_size);
//
// The points exist only in builds with test hooks (DASH_TEST_HOOKS: every
// build type but Release, see CMakeLists.txt and common/BUILD.bazel). In a
// Release build the macros expand to nothing and the process carries no
// hook. With hooks but processing off (the default), a point costs one
// relaxed atomic load.
//
// Points are named "Component::Method:Where". A test enables processing,
// installs what it needs and clears everything when done (SyncPointScope).
// Thread-safe.
#ifndef DASH_COMMON_SYNC_POINT_H_
#define DASH_COMMON_SYNC_POINT_H_

#ifdef DASH_TEST_HOOKS

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dash {

class SyncPoint {
 public:
  // The process-wide registry.
  static SyncPoint* Get();

  // Each pair (predecessor, successor): a thread reaching `successor` waits
  // until `predecessor` has been processed (once, since the dependency was
  // loaded). Replaces earlier dependencies.
  void LoadDependency(const std::vector<std::pair<std::string, std::string>>& dependencies);
  // Runs `callback` (with the point's argument, or nullptr) each time `point`
  // is processed, on the thread that reached it, with no lock held.
  void SetCallBack(const std::string& point, std::function<void(void*)> callback);
  // Kills the process with SIGKILL when `point` is processed for the
  // `times`-th time: a crash at an exact place, for process tests.
  void KillAt(const std::string& point, int times = 1);
  // Parses "point" or "point:N" (N-th time) as the node's --kill_at flag
  // gives it, and arms KillAt. INVALID_ARGUMENT on a malformed spec.
  absl::Status KillAtSpec(absl::string_view spec);

  void EnableProcessing();
  void DisableProcessing();
  // Disables processing and forgets every callback, dependency, kill and count.
  void ClearAll();

  // How many times `point` was processed since processing was enabled.
  int Count(const std::string& point) const;
  // Waits until `point` was processed at least `times` times; false when the
  // timeout passed first.
  bool WaitFor(const std::string& point, int times, absl::Duration timeout) const;

  // What DASH_SYNC_POINT calls.
  void Process(absl::string_view point, void* arg = nullptr) {
    if (enabled_.load(std::memory_order_relaxed)) ProcessSlow(point, arg);
  }

 private:
  SyncPoint() = default;
  void ProcessSlow(absl::string_view point, void* arg);

  std::atomic<bool> enabled_{false};
  mutable absl::Mutex mu_;
  std::map<std::string, std::set<std::string>> predecessors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::function<void(void*)>> callbacks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> kill_at_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cleared_ ABSL_GUARDED_BY(mu_);  // Processed since the dependencies.
};

// Enables processing for a scope (a test) and clears everything at its end.
class SyncPointScope {
 public:
  SyncPointScope() { SyncPoint::Get()->EnableProcessing(); }
  ~SyncPointScope() { SyncPoint::Get()->ClearAll(); }
  SyncPointScope(const SyncPointScope&) = delete;
  SyncPointScope& operator=(const SyncPointScope&) = delete;
};

}  // namespace dash

#define DASH_SYNC_POINT(name) ::dash::SyncPoint::Get()->Process(name)
#define DASH_SYNC_POINT_ARG(name, arg) ::dash::SyncPoint::Get()->Process(name, arg)

#else  // !DASH_TEST_HOOKS

#define DASH_SYNC_POINT(name)
#define DASH_SYNC_POINT_ARG(name, arg)

#endif  // DASH_TEST_HOOKS

namespace dash {
// Whether this build carries test hooks (sync points, fault injection).
constexpr bool kTestHooks =
#ifdef DASH_TEST_HOOKS
    true;
#else
    false;
#endif
}  // namespace dash

#endif  // DASH_COMMON_SYNC_POINT_H_
