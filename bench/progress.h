// Progress of a long bench phase on stderr, at most once a second:
// "ingest: 41,000/100,000 claims (41%), 2,410 claims/s, ETA 24 s".
// Thread-safe.
#ifndef DASH_BENCH_PROGRESS_H_
#define DASH_BENCH_PROGRESS_H_

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace dash::bench {

class Progress {
 public:
  Progress(std::string what, size_t total, std::string unit)
      : what_(std::move(what)), unit_(std::move(unit)), total_(total) {}

  void Add(size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    done_ += n;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1) && done_ < total_) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? done_ / secs : 0;
    const double eta = rate > 0 ? (total_ - done_) / rate : 0;
    fprintf(stderr, "%s: %zu/%zu %s (%.0f%%), %.0f %s/s, ETA %.0f s\n", what_.c_str(), done_,
            total_, unit_.c_str(), total_ ? 100.0 * done_ / total_ : 100.0, rate, unit_.c_str(),
            eta);
  }

 private:
  const std::string what_, unit_;
  const size_t total_;
  std::mutex mu_;
  size_t done_ = 0;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace dash::bench

#endif  // DASH_BENCH_PROGRESS_H_
