#include "common/thread_pool.h"

#include <algorithm>
#include <memory>

namespace dash {
namespace {

// One ParallelFor call, shared by its caller and the workers that help it.
// Outlives the call when a worker picks up its help task late; such a worker
// finds nothing left to claim and never touches `fn`.
class Batch {
 public:
  Batch(size_t n, absl::FunctionRef<void(size_t)> fn) : n_(n), fn_(fn) {}

  // Runs unclaimed calls until none is left.
  void Help() {
    for (;;) {
      size_t i = 0;
      {
        absl::MutexLock l(&mu_);
        if (next_ == n_) return;
        i = next_++;
      }
      fn_(i);  // Valid: the caller waits for every claimed call.
      absl::MutexLock l(&mu_);
      ++finished_;
    }
  }

  // Waits until every call has returned.
  void Wait() {
    absl::MutexLock l(&mu_);
    auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_ == n_; };
    mu_.Await(absl::Condition(&all_done));
  }

 private:
  const size_t n_;
  const absl::FunctionRef<void(size_t)> fn_;
  absl::Mutex mu_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;      // The next index to claim.
  size_t finished_ ABSL_GUARDED_BY(mu_) = 0;  // Calls that have returned.
};

}  // namespace

ThreadPool::ThreadPool(size_t threads) {
  workers_.reserve(std::max<size_t>(threads, 1));
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    workers_.emplace_back([this] { WorkLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Schedule(std::function<void()> task) {
  absl::MutexLock l(&mu_);
  queue_.push_back(std::move(task));
}

bool ThreadPool::TrySchedule(std::function<void()> task, size_t max_queued) {
  absl::MutexLock l(&mu_);
  if (queue_.size() >= max_queued) return false;
  queue_.push_back(std::move(task));
  return true;
}

size_t ThreadPool::queued() const {
  absl::MutexLock l(&mu_);
  return queue_.size();
}

void ThreadPool::WorkLoop() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      // Stopping: drain the queue first (tasks may schedule more).
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(size_t n, absl::FunctionRef<void(size_t)> fn) {
  if (n == 0) return;
  if (n == 1) {
    fn(0);
    return;
  }
  auto batch = std::make_shared<Batch>(n, fn);
  const size_t helpers = std::min(n - 1, size());
  for (size_t i = 0; i < helpers; ++i) Schedule([batch] { batch->Help(); });
  batch->Help();
  batch->Wait();
}

}  // namespace dash
