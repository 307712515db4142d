// The storage snapshots a replica serves reads from. A replica's log may end
// past what is known to be committed (a leader waiting for its followers, a
// follower ahead of its leader's commit notice, a restart holding unconfirmed
// records): each commit queues a snapshot of its log end, and a queued
// snapshot becomes the readable view once the commit LSN reaches it. Reads
// therefore never see an uncommitted write, and a write is readable before it
// is acknowledged (its owner advances the views before answering).
//
// Each queued view carries the claims its commits touched, per tenant, so
// that the owner can invalidate (or patch) their cached filter results when
// the view becomes readable.
// Thread-safe.
#ifndef DASH_NODE_SHARD_READ_VIEWS_H_
#define DASH_NODE_SHARD_READ_VIEWS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "node/storage/engine.h"

namespace dash::shard {

class ReadViews {
 public:
  // Queued views beyond this are merged (the newest two): the state of the
  // merged-away LSN just becomes readable a little later.
  static constexpr size_t kMaxQueued = 256;

  // Starts from `initial`, a snapshot of the log end `lsn`: readable at once
  // when `committed`, otherwise queued until the commit LSN reaches `lsn`.
  ReadViews(uint32_t shard_id, std::shared_ptr<const storage::Reader> initial, uint64_t lsn,
            bool committed);

  ReadViews(const ReadViews&) = delete;
  ReadViews& operator=(const ReadViews&) = delete;

  // Tenant -> the claims commits changed; an empty set stands for every
  // claim of the tenant (the changes are not known claim by claim).
  using Touched = std::map<std::string, std::set<std::string>>;
  // Adds `from` to `into` (a tenant unknown in either stays unknown).
  static void Merge(const Touched& from, Touched* into);

  // Queues `reader`, a snapshot of the log end `lsn`, whose commits touched
  // `touched`. REQUIRES: lsn is not below an already queued view's.
  void Queue(uint64_t lsn, std::shared_ptr<const storage::Reader> reader, Touched touched);

  struct Advanced {
    bool moved = false;     // The readable view changed.
    uint64_t read_lsn = 0;  // The readable view's LSN after it.
    Touched touched;        // By the views now readable.
  };
  // Makes the newest queued view at or below `commit_lsn` readable. When the
  // view moves, `before_readable` is called with what it touched while no
  // reader can take the new view yet (under this object's lock: it must not
  // call back into it): a filter cache bumped there is never read at an old
  // generation together with the new view (PrefilterCache's patching needs
  // every view change and its bump to be seen in the same order).
  Advanced Advance(uint64_t commit_lsn,
                   const std::function<void(const Touched&)>& before_readable = nullptr);

  // Drops the queued views of LSN >= `lsn` (the log was truncated back to
  // `lsn`) and returns the tenants they touched.
  std::set<std::string> DropFrom(uint64_t lsn);

  // The readable view. UNAVAILABLE while there is none (a restart holding
  // records not yet known committed).
  absl::StatusOr<std::shared_ptr<const storage::Reader>> Current() const;
  // The same, with the view's LSN in `lsn`.
  absl::StatusOr<std::shared_ptr<const storage::Reader>> CurrentAt(uint64_t* lsn) const;
  // The readable view's LSN; 0 while there is none.
  uint64_t ReadableLsn() const;

 private:
  struct View {
    uint64_t lsn;
    std::shared_ptr<const storage::Reader> reader;
    Touched touched;
  };

  const uint32_t shard_id_;

  mutable absl::Mutex mu_;
  std::deque<View> queued_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const storage::Reader> readable_ ABSL_GUARDED_BY(mu_);
  uint64_t readable_lsn_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_READ_VIEWS_H_
