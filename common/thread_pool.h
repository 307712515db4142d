// A fixed-size pool of worker threads, and RunAll: fan-out of independent
// calls (one per shard, typically remote) over a pool, so that a caller waits
// for the slowest call instead of their sum without starting a thread per call.
//
// Deadlock contract ("caller helps"): RunAll never waits for a call that has
// not started. The calling thread runs calls itself, claiming the next index
// until none is left, and pool threads that pick up the batch claim from the
// same counter; the caller then waits only for calls already running on other
// threads. So RunAll may be nested, and may be called from a task running on
// the same pool, whatever the pool's size (even 1): with every worker busy the
// caller simply runs all of its calls in turn. Tasks given to Schedule get no
// such help: a task must not wait for another Schedule'd task of its pool.
//
// Thread-safety: every method may be called from any thread, including the
// pool's own.
#ifndef DASH_COMMON_THREAD_POOL_H_
#define DASH_COMMON_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dash {

class ThreadPool {
 public:
  // Starts `threads` workers (at least one).
  explicit ThreadPool(size_t threads);
  // Runs every task already scheduled (and those they schedule), then joins
  // the workers. REQUIRES: no thread outside the pool calls Schedule or
  // ParallelFor once destruction has begun.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs `task` on a worker, in FIFO order with the other tasks.
  void Schedule(std::function<void()> task);
  // Schedule(), unless `max_queued` tasks already wait for a worker: then
  // false, and `task` is dropped (a bounded queue sheds load).
  bool TrySchedule(std::function<void()> task, size_t max_queued);
  // Tasks waiting for a worker.
  size_t queued() const;

  // Calls fn(0) .. fn(n - 1), at most size() + 1 of them at once (the caller
  // runs some itself, see the contract above), and returns when all have
  // returned. `fn` must be safe to call concurrently with different indexes.
  void ParallelFor(size_t n, absl::FunctionRef<void(size_t)> fn);

  size_t size() const { return workers_.size(); }

 private:
  void WorkLoop();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Constant after construction.
  std::vector<std::thread> workers_;
};

// Calls fn(0) .. fn(n - 1) through pool->ParallelFor (or in turn on the
// calling thread when `pool` is null) and returns their results in index
// order.
template <typename T, typename Fn>
std::vector<absl::StatusOr<T>> RunAll(ThreadPool* pool, size_t n, Fn&& fn) {
  std::vector<absl::StatusOr<T>> results(n, absl::UnknownError("not run"));
  if (pool == nullptr) {
    for (size_t i = 0; i < n; ++i) results[i] = fn(i);
  } else {
    pool->ParallelFor(n, [&results, &fn](size_t i) { results[i] = fn(i); });
  }
  return results;
}

}  // namespace dash

#endif  // DASH_COMMON_THREAD_POOL_H_
