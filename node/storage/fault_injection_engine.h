// An Engine for tests that fails storage operations on demand, to check that
// every caller turns an I/O error into a clean refusal that changes nothing
// (in the spirit of RocksDB's FaultInjectionTestFS). It wraps a real engine:
// everything not failed goes through unchanged. Tests only (the test_util
// library); thread-safe.
#ifndef DASH_NODE_STORAGE_FAULT_INJECTION_ENGINE_H_
#define DASH_NODE_STORAGE_FAULT_INJECTION_ENGINE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "node/storage/engine.h"

namespace dash::storage {

class FaultInjectionEngine final : public Engine {
 public:
  // Which operation a fault hits.
  enum class Op { kCommit, kDeleteRange, kCheckpoint };

  explicit FaultInjectionEngine(std::unique_ptr<Engine> base) : base_(std::move(base)) {}

  // The next `count` calls of `op` (every one while `count` < 0) fail with
  // `error` and do nothing.
  void Fail(Op op, absl::Status error, int count = -1);
  // No more faults.
  void Heal();
  // Calls of `op` that were failed so far.
  int failed(Op op) const;

  std::unique_ptr<WriteSet> NewWriteSet() override { return base_->NewWriteSet(); }
  absl::Status Commit(WriteSet& ws, bool sync) override;
  std::unique_ptr<Reader> NewSnapshot() override { return base_->NewSnapshot(); }
  absl::Status DeleteRange(Family f, absl::string_view begin, absl::string_view end) override;
  absl::Status CreateCheckpoint(const std::string& dir) override;
  absl::Status Flush() override { return base_->Flush(); }
  absl::StatusOr<StorageUsage> Usage() override { return base_->Usage(); }

 private:
  struct Fault {
    absl::Status error;
    int remaining = 0;  // < 0: forever.
    int failed = 0;
  };
  // The error for this call of `op`, or OK.
  absl::Status Take(Op op);

  const std::unique_ptr<Engine> base_;
  mutable absl::Mutex mu_;
  Fault faults_[3] ABSL_GUARDED_BY(mu_);
};

}  // namespace dash::storage

#endif  // DASH_NODE_STORAGE_FAULT_INJECTION_ENGINE_H_
