#include "common/proto_log.h"

#include <atomic>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "google/protobuf/stubs/logging.h"

namespace dash {
namespace {

std::atomic<uint64_t> lines{0};
absl::Mutex mu;
absl::Time last_logged ABSL_GUARDED_BY(mu) = absl::InfinitePast();
uint64_t dropped ABSL_GUARDED_BY(mu) = 0;

void Handle(google::protobuf::LogLevel level, const char* filename, int line,
            const std::string& message) {
  ++lines;
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    LOG(FATAL) << "protobuf " << filename << ":" << line << ": " << message;
  }
  uint64_t skipped = 0;
  {
    absl::MutexLock l(&mu);
    const absl::Time now = absl::Now();
    if (now - last_logged < absl::Seconds(10)) {
      ++dropped;
      return;
    }
    last_logged = now;
    skipped = dropped;
    dropped = 0;
  }
  LOG(WARNING) << "protobuf " << filename << ":" << line << ": " << message
               << (skipped > 0 ? " (" + std::to_string(skipped) + " more lines dropped)" : "");
}

}  // namespace

void RateLimitProtobufLogs() { google::protobuf::SetLogHandler(&Handle); }

uint64_t ProtobufLogLines() { return lines.load(); }

}  // namespace dash
