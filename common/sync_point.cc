#include "common/sync_point.h"

#ifdef DASH_TEST_HOOKS

#include <signal.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dash {

SyncPoint* SyncPoint::Get() {
  static SyncPoint* registry = new SyncPoint();
  return registry;
}

void SyncPoint::LoadDependency(
    const std::vector<std::pair<std::string, std::string>>& dependencies) {
  absl::MutexLock l(&mu_);
  predecessors_.clear();
  cleared_.clear();
  for (const auto& [before, after] : dependencies) predecessors_[after].insert(before);
}

void SyncPoint::SetCallBack(const std::string& point, std::function<void(void*)> callback) {
  absl::MutexLock l(&mu_);
  callbacks_[point] = std::move(callback);
}

void SyncPoint::KillAt(const std::string& point, int times) {
  absl::MutexLock l(&mu_);
  kill_at_[point] = times;
}

absl::Status SyncPoint::KillAtSpec(absl::string_view spec) {
  int times = 1;
  std::string point(spec);
  // The count follows the last ':' when it is a number ("A::B:Where:3").
  const size_t colon = spec.rfind(':');
  if (colon != absl::string_view::npos && colon + 1 < spec.size() &&
      absl::SimpleAtoi(spec.substr(colon + 1), &times)) {
    point = std::string(spec.substr(0, colon));
    if (times < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("kill_at: the count in \"", spec, "\" must be at least 1"));
    }
  }
  if (point.empty()) return absl::InvalidArgumentError("kill_at: names no sync point");
  KillAt(point, times);
  return absl::OkStatus();
}

void SyncPoint::EnableProcessing() { enabled_.store(true); }

void SyncPoint::DisableProcessing() {
  enabled_.store(false);
  absl::MutexLock l(&mu_);  // Wakes the threads waiting on a predecessor.
}

void SyncPoint::ClearAll() {
  enabled_.store(false);
  absl::MutexLock l(&mu_);
  predecessors_.clear();
  callbacks_.clear();
  kill_at_.clear();
  counts_.clear();
  cleared_.clear();
}

int SyncPoint::Count(const std::string& point) const {
  absl::MutexLock l(&mu_);
  auto it = counts_.find(point);
  return it == counts_.end() ? 0 : it->second;
}

bool SyncPoint::WaitFor(const std::string& point, int times, absl::Duration timeout) const {
  struct Arg {
    const SyncPoint* self;
    const std::string* point;
    int times;
  } arg{this, &point, times};
  absl::MutexLock l(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    auto it = a->self->counts_.find(*a->point);
                                    return it != a->self->counts_.end() && it->second >= a->times;
                                  },
                                  &arg),
                              timeout);
}

void SyncPoint::ProcessSlow(absl::string_view point_view, void* arg) {
  const std::string point(point_view);
  std::function<void(void*)> callback;
  {
    struct Arg {
      SyncPoint* self;
      const std::string* point;
    } wait{this, &point};
    absl::MutexLock l(&mu_);
    // Until every predecessor was processed (or processing stops).
    mu_.Await(absl::Condition(
        +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          if (!a->self->enabled_.load()) return true;
          auto it = a->self->predecessors_.find(*a->point);
          if (it == a->self->predecessors_.end()) return true;
          for (const std::string& before : it->second) {
            if (a->self->cleared_.count(before) == 0) return false;
          }
          return true;
        },
        &wait));
    auto cb = callbacks_.find(point);
    if (cb != callbacks_.end()) callback = cb->second;
  }
  if (callback) callback(arg);
  bool kill = false;
  {
    absl::MutexLock l(&mu_);
    const int n = ++counts_[point];
    cleared_.insert(point);
    auto k = kill_at_.find(point);
    kill = k != kill_at_.end() && n >= k->second;
  }
  if (kill) raise(SIGKILL);
}

}  // namespace dash

#endif  // DASH_TEST_HOOKS
