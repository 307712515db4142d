#include "node/storage/fault_injection_engine.h"

namespace dash::storage {

void FaultInjectionEngine::Fail(Op op, absl::Status error, int count) {
  absl::MutexLock l(&mu_);
  Fault& f = faults_[static_cast<int>(op)];
  f.error = std::move(error);
  f.remaining = count;
}

void FaultInjectionEngine::Heal() {
  absl::MutexLock l(&mu_);
  for (Fault& f : faults_) f.remaining = 0;
}

int FaultInjectionEngine::failed(Op op) const {
  absl::MutexLock l(&mu_);
  return faults_[static_cast<int>(op)].failed;
}

absl::Status FaultInjectionEngine::Take(Op op) {
  absl::MutexLock l(&mu_);
  Fault& f = faults_[static_cast<int>(op)];
  if (f.remaining == 0 || f.error.ok()) return absl::OkStatus();
  if (f.remaining > 0) --f.remaining;
  ++f.failed;
  return f.error;
}

absl::Status FaultInjectionEngine::Commit(WriteSet& ws, bool sync) {
  if (absl::Status st = Take(Op::kCommit); !st.ok()) return st;
  return base_->Commit(ws, sync);
}

absl::Status FaultInjectionEngine::DeleteRange(Family f, absl::string_view begin,
                                               absl::string_view end) {
  if (absl::Status st = Take(Op::kDeleteRange); !st.ok()) return st;
  return base_->DeleteRange(f, begin, end);
}

absl::Status FaultInjectionEngine::CreateCheckpoint(const std::string& dir) {
  if (absl::Status st = Take(Op::kCheckpoint); !st.ok()) return st;
  return base_->CreateCheckpoint(dir);
}

}  // namespace dash::storage
