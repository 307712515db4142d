// Progress of a long job on stderr, for dashctl (ingest, eval, verify) and the
// benchmarks: at most once a second, and once more at Finish().
//   on a terminal, one line redrawn in place:
//     ingest [##########----------]  50% 1,000/2,000 claims  812/s  ETA 1s
//   otherwise (a log, a pipe), one line per update:
//     ingest: 1000/2000 claims (50%), 812 claims/s, ETA 1 s
// A total of 0 means unknown (input from a pipe): count and rate, no ETA.
// Thread-safe.
#ifndef DASH_COMMON_PROGRESS_H_
#define DASH_COMMON_PROGRESS_H_

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace dash {

class Progress {
 public:
  Progress(std::string what, size_t total, std::string unit)
      : what_(std::move(what)),
        unit_(std::move(unit)),
        total_(total),
        tty_(isatty(STDERR_FILENO) == 1) {}

  void Add(size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    done_ += n;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1) && (total_ == 0 || done_ < total_)) return;
    last_ = now;
    PrintLocked(now, false);
  }

  // Ends the display. On a terminal: the bar redrawn with `state` appended
  // (" done", " stopped") and a newline. Otherwise: a last line only when the
  // count moved since the last one (the caller prints its own summary).
  void Finish(const char* state = "") {
    std::lock_guard<std::mutex> l(mu_);
    if (tty_ || printed_ != done_)
      PrintLocked(std::chrono::steady_clock::now(), true, tty_ ? state : "");
  }

 private:
  void PrintLocked(std::chrono::steady_clock::time_point now, bool last, const char* state = "") {
    printed_ = done_;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? done_ / secs : 0;
    const double eta = rate > 0 && total_ > done_ ? (total_ - done_) / rate : 0;
    const double pct = total_ ? 100.0 * done_ / total_ : 0;
    if (tty_) {
      std::string bar;
      if (total_ > 0) {
        const int filled = static_cast<int>(pct / 5);
        bar = "[" + std::string(filled, '#') + std::string(20 - filled, '-') + "] ";
        fprintf(stderr, "\r%s %s%3.0f%% %zu/%zu %s  %.0f/s  ETA %.0fs%s\033[K%s", what_.c_str(),
                bar.c_str(), pct, done_, total_, unit_.c_str(), rate, eta, state, last ? "\n" : "");
      } else {
        fprintf(stderr, "\r%s %zu %s  %.0f/s  %.1fs%s\033[K%s", what_.c_str(), done_, unit_.c_str(),
                rate, secs, state, last ? "\n" : "");
      }
    } else if (total_ > 0) {
      fprintf(stderr, "%s%s: %zu/%zu %s (%.0f%%), %.0f %s/s, ETA %.0f s\n", what_.c_str(), state,
              done_, total_, unit_.c_str(), pct, rate, unit_.c_str(), eta);
    } else {
      fprintf(stderr, "%s%s: %zu %s in %.1f s, %.0f %s/s\n", what_.c_str(), state, done_,
              unit_.c_str(), secs, rate, unit_.c_str());
    }
  }

  const std::string what_, unit_;
  const size_t total_;
  const bool tty_;
  std::mutex mu_;
  size_t done_ = 0;
  size_t printed_ = static_cast<size_t>(-1);  // done_ at the last line printed.
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace dash

#endif  // DASH_COMMON_PROGRESS_H_
