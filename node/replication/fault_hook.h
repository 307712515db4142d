// Fault injection for tests: cuts a running node off from the rest of the
// cluster without stopping it. Enabled only by the node flag --fault_file;
// production nodes never set it.
//
// While the file holds the word "isolate", this node's peer traffic fails
// with UNAVAILABLE in both directions: log shipping (serving and pulling),
// snapshots, the control plane (registration, heartbeats, placement watch,
// fencing). Client-facing services (Data, ShardQuery, NodeAdmin reads) stay
// up: it models a partition with clients on this node's side, so a deposed
// leader keeps taking writes it can never commit. The file is re-read when
// its modification time changes, at most every 20 ms. Thread-safe.
#ifndef DASH_NODE_REPLICATION_FAULT_HOOK_H_
#define DASH_NODE_REPLICATION_FAULT_HOOK_H_

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace dash::replication {

class FaultHook {
 public:
  // Call once at start-up, before serving; an empty path disables the hook.
  static void Init(const std::string& path) {
    FaultHook& h = Get();
    absl::MutexLock l(&h.mu_);
    h.path_ = path;
  }

  static bool Isolated() {
    FaultHook& h = Get();
    absl::MutexLock l(&h.mu_);
    if (h.path_.empty()) return false;
    const absl::Time now = absl::Now();
    if (now - h.checked_ < absl::Milliseconds(20)) return h.isolated_;
    h.checked_ = now;
    struct stat st;
    if (stat(h.path_.c_str(), &st) != 0) {
      h.isolated_ = false;
      h.mtime_ns_ = -1;
      return false;
    }
    const long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                               st.st_mtim.tv_nsec + static_cast<long long>(st.st_size);
    if (mtime_ns == h.mtime_ns_) return h.isolated_;
    h.mtime_ns_ = mtime_ns;
    std::ifstream in(h.path_);
    std::stringstream text;
    text << in.rdbuf();
    h.isolated_ = text.str().find("isolate") != std::string::npos;
    return h.isolated_;
  }

  // UNAVAILABLE while isolated, else OK: for the peer-facing call sites.
  static absl::Status CheckPeerTraffic() {
    if (!Isolated()) return absl::OkStatus();
    return absl::UnavailableError("fault injection: this node is isolated from its peers");
  }

 private:
  static FaultHook& Get() {
    static FaultHook* hook = new FaultHook();
    return *hook;
  }

  absl::Mutex mu_;
  std::string path_ ABSL_GUARDED_BY(mu_);
  bool isolated_ ABSL_GUARDED_BY(mu_) = false;
  long long mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Time checked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_FAULT_HOOK_H_
