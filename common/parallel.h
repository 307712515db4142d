// Fan-out helper: a caller waiting on several independent calls (one per
// shard, typically remote) waits for the slowest instead of their sum.
#ifndef DASH_COMMON_PARALLEL_H_
#define DASH_COMMON_PARALLEL_H_

#include <cstddef>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dash {

// Calls fn(0) .. fn(n - 1) at the same time, each on a thread of its own but
// the first (on the caller's), and returns their results in index order.
// `fn` must be safe to call concurrently with different indexes.
template <typename T, typename Fn>
std::vector<absl::StatusOr<T>> RunAtOnce(size_t n, Fn&& fn) {
  std::vector<absl::StatusOr<T>> results(n, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  threads.reserve(n > 0 ? n - 1 : 0);
  for (size_t i = 1; i < n; ++i) {
    try {
      threads.emplace_back([&results, &fn, i] { results[i] = fn(i); });
    } catch (const std::system_error&) {
      results[i] = fn(i);  // No thread to be had: on the caller's, then.
    }
  }
  if (n > 0) results[0] = fn(0);
  for (std::thread& t : threads) t.join();
  return results;
}

}  // namespace dash

#endif  // DASH_COMMON_PARALLEL_H_
