// Fault injection for tests: cuts a running node off from the rest of the
// cluster without stopping it. Enabled only by the node flag --fault_file;
// production nodes never set it.
//
// While the file holds the word "isolate", this node's peer traffic fails
// with UNAVAILABLE in both directions: log shipping (serving and pulling),
// snapshots, the control plane (registration, heartbeats, placement watch,
// fencing). The word "no_replication" cuts only log shipping and snapshots:
// the node stays in touch with the control plane while its replicas fall
// behind. Client-facing services (Data, ShardQuery, NodeAdmin reads) stay
// up: it models a partition with clients on this node's side, so a deposed
// leader keeps taking writes it can never commit. The file is re-read when
// its modification time changes, at most every 20 ms. Thread-safe.
//
// Only builds with test hooks (DASH_TEST_HOOKS, common/sync_point.h) carry
// it: in a Release build every check is a constant "no fault".
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

#ifdef DASH_TEST_HOOKS

class FaultHook {
 public:
  // Call once at start-up, before serving; an empty path disables the hook.
  static void Init(const std::string& path) {
    FaultHook& h = Get();
    absl::MutexLock l(&h.mu_);
    h.path_ = path;
  }

  // Cut off from everything ("isolate").
  static bool Isolated() { return Read() & kIsolate; }
  // Log shipping and snapshots cut ("isolate" or "no_replication").
  static bool ReplicationCut() { return Read() != 0; }

  // UNAVAILABLE while isolated, else OK: for the control-plane-facing sites.
  static absl::Status CheckPeerTraffic() {
    if (!Isolated()) return absl::OkStatus();
    return absl::UnavailableError("fault injection: this node is isolated from its peers");
  }
  // UNAVAILABLE while replication is cut: for log shipping and snapshots.
  static absl::Status CheckReplicationTraffic() {
    if (!ReplicationCut()) return absl::OkStatus();
    return absl::UnavailableError("fault injection: this node's replication traffic is cut");
  }

 private:
  static constexpr int kIsolate = 1;
  static constexpr int kNoReplication = 2;

  // The current faults, as bits.
  static int Read() {
    FaultHook& h = Get();
    absl::MutexLock l(&h.mu_);
    if (h.path_.empty()) return 0;
    const absl::Time now = absl::Now();
    if (now - h.checked_ < absl::Milliseconds(20)) return h.faults_;
    h.checked_ = now;
    struct stat st;
    if (stat(h.path_.c_str(), &st) != 0) {
      h.faults_ = 0;
      h.mtime_ns_ = -1;
      return 0;
    }
    const long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                               st.st_mtim.tv_nsec + static_cast<long long>(st.st_size);
    if (mtime_ns == h.mtime_ns_) return h.faults_;
    h.mtime_ns_ = mtime_ns;
    std::ifstream in(h.path_);
    std::stringstream text;
    text << in.rdbuf();
    h.faults_ = (text.str().find("isolate") != std::string::npos ? kIsolate : 0) |
                (text.str().find("no_replication") != std::string::npos ? kNoReplication : 0);
    return h.faults_;
  }

  static FaultHook& Get() {
    static FaultHook* hook = new FaultHook();
    return *hook;
  }

  absl::Mutex mu_;
  std::string path_ ABSL_GUARDED_BY(mu_);
  int faults_ ABSL_GUARDED_BY(mu_) = 0;
  long long mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Time checked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

#else  // !DASH_TEST_HOOKS

class FaultHook {
 public:
  static void Init(const std::string&) {}
  static constexpr bool Isolated() { return false; }
  static constexpr bool ReplicationCut() { return false; }
  static absl::Status CheckPeerTraffic() { return absl::OkStatus(); }
  static absl::Status CheckReplicationTraffic() { return absl::OkStatus(); }
};

#endif  // DASH_TEST_HOOKS

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_FAULT_HOOK_H_
