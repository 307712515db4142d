#include "router/placement_cache.h"

#include "common/grpc_status.h"
#include "glog/logging.h"
#include "grpcpp/create_channel.h"

namespace dash::router {

PlacementCache::PlacementCache(std::string controlplane, const Security& security)
    : controlplane_(std::move(controlplane)) {
  stub_ = v1::ControlPlane::NewStub(security.PeerChannel(controlplane_));
}

PlacementCache::~PlacementCache() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  if (watch_thread_.joinable()) watch_thread_.join();
}

void PlacementCache::Start() {
  watch_thread_ = std::thread([this] { WatchLoop(); });
}

absl::StatusOr<std::shared_ptr<const v1::Placement>> PlacementCache::Get() const {
  absl::MutexLock l(&mu_);
  if (placement_ == nullptr) {
    return absl::UnavailableError("the router has no placement yet (is the control plane up?)");
  }
  return placement_;
}

bool PlacementCache::WaitForPlacement(absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return placement_ != nullptr; };
  return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
}

bool PlacementCache::WaitForNewer(uint64_t version, absl::Time deadline) const {
  absl::MutexLock l(&mu_);
  auto newer = [this, version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return placement_ != nullptr && placement_->version() > version;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&newer), deadline);
}

void PlacementCache::Store(v1::Placement placement) {
  absl::MutexLock l(&mu_);
  if (placement_ != nullptr && placement.version() <= placement_->version()) return;
  VLOG(1) << "placement version " << placement.version();
  placement_ = std::make_shared<const v1::Placement>(std::move(placement));
}

void PlacementCache::Refresh(absl::Duration timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  v1::Placement placement;
  if (stub_->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement).ok()) {
    Store(std::move(placement));
  }
}

void PlacementCache::WatchLoop() {
  bool warned = false;
  for (;;) {
    grpc::ClientContext ctx;
    v1::WatchPlacementRequest req;
    {
      absl::MutexLock l(&mu_);
      if (stop_) return;
      watch_call_ = &ctx;
      if (placement_ != nullptr) req.set_after_version(placement_->version());
    }
    auto reader = stub_->WatchPlacement(&ctx, req);
    v1::Placement placement;
    while (reader->Read(&placement)) {
      warned = false;
      Store(std::move(placement));
    }
    const grpc::Status st = reader->Finish();
    absl::MutexLock l(&mu_);
    watch_call_ = nullptr;
    if (stop_) return;
    if (!warned) {
      LOG(WARNING) << "placement watch on " << controlplane_ << " ended: " << st.error_message()
                   << " (routing on with the last placement)";
      warned = true;
    }
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(100));
  }
}

}  // namespace dash::router
