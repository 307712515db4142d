#include "node/shard/read_views.h"

#include "absl/strings/str_cat.h"

namespace dash::shard {

ReadViews::ReadViews(uint32_t shard_id, std::shared_ptr<const storage::Reader> initial,
                     uint64_t lsn, bool committed)
    : shard_id_(shard_id) {
  absl::MutexLock l(&mu_);
  if (committed) {
    readable_ = std::move(initial);
    readable_lsn_ = lsn;
  } else {
    queued_.push_back(View{lsn, std::move(initial), {}});
  }
}

void ReadViews::Merge(const Touched& from, Touched* into) {
  for (const auto& [tenant, claims] : from) {
    auto [it, added] = into->emplace(tenant, claims);
    if (added || it->second.empty()) continue;  // New, or already every claim.
    if (claims.empty()) {
      it->second.clear();
    } else {
      it->second.insert(claims.begin(), claims.end());
    }
  }
}

void ReadViews::Queue(uint64_t lsn, std::shared_ptr<const storage::Reader> reader,
                      Touched touched) {
  absl::MutexLock l(&mu_);
  if (queued_.size() >= kMaxQueued) {
    Merge(queued_.back().touched, &touched);
    queued_.pop_back();
  }
  queued_.push_back(View{lsn, std::move(reader), std::move(touched)});
}

ReadViews::Advanced ReadViews::Advance(uint64_t commit_lsn,
                                       const std::function<void(const Touched&)>& before_readable) {
  Advanced out;
  absl::MutexLock l(&mu_);
  std::shared_ptr<const storage::Reader> reader;
  uint64_t lsn = 0;
  while (!queued_.empty() && queued_.front().lsn <= commit_lsn) {
    View& view = queued_.front();
    reader = std::move(view.reader);
    lsn = view.lsn;
    Merge(view.touched, &out.touched);
    queued_.pop_front();
    out.moved = true;
  }
  if (out.moved) {
    if (before_readable != nullptr) before_readable(out.touched);
    readable_ = std::move(reader);
    readable_lsn_ = lsn;
  }
  out.read_lsn = readable_lsn_;
  return out;
}

std::set<std::string> ReadViews::DropFrom(uint64_t lsn) {
  std::set<std::string> tenants;
  absl::MutexLock l(&mu_);
  while (!queued_.empty() && queued_.back().lsn >= lsn) {
    for (const auto& [tenant, claims] : queued_.back().touched) tenants.insert(tenant);
    queued_.pop_back();
  }
  return tenants;
}

absl::StatusOr<std::shared_ptr<const storage::Reader>> ReadViews::Current() const {
  uint64_t lsn = 0;
  return CurrentAt(&lsn);
}

absl::StatusOr<std::shared_ptr<const storage::Reader>> ReadViews::CurrentAt(uint64_t* lsn) const {
  absl::MutexLock l(&mu_);
  *lsn = readable_lsn_;
  if (readable_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "shard ", shard_id_,
        ": this replica restarted holding records not yet known to be committed; it serves "
        "reads once its leader confirms them (retry, or read from another replica)"));
  }
  return readable_;
}

uint64_t ReadViews::ReadableLsn() const {
  absl::MutexLock l(&mu_);
  return readable_ == nullptr ? 0 : readable_lsn_;
}

}  // namespace dash::shard
