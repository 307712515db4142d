// A cache of filter results: for (tenant, filter) the set of claim ids that
// satisfy it, so that a repeated filter does not rescan the tenant's claims.
//
// Correctness comes from generations: the owner bumps a tenant's generation
// on every commit that touches the tenant (Invalidate), and an entry is only
// served while its generation is current. The owner must read the generation
// *before* taking the snapshot it computes from (see GetOrCompute): an entry
// may then hold newer data than its generation says, never older, so it is
// never served stale. Bounded by entries, total ids and total bytes (keys and
// ids as held in memory, estimated), least recently used evicted first; a
// result larger than the byte bound alone is returned but not kept.
//
// A bump that names the claims it concerns lets an outdated entry be patched
// instead of recomputed: when every bump since the entry's generation named
// its claims (and the tenant's bounded history still holds them), the owner
// re-checks just those claims on its snapshot — under writes, a filter costs
// the claims written since, not a scan of the tenant. Each claim of the patch
// is read at the new snapshot or later, so the rule above still holds,
// provided the owner bumps for each change of its readable view before any
// reader can take that view, in the views' order (ReadViews::Advance): then
// the claims named between two generations cover every change between the
// views they stand for.
// Thread-safe.
#ifndef DASH_NODE_INDEX_PREFILTER_CACHE_H_
#define DASH_NODE_INDEX_PREFILTER_CACHE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dash::index {

using IdSet = absl::flat_hash_set<std::string>;

struct PrefilterCacheOptions {
  size_t max_entries = 256;
  size_t max_ids = 2'000'000;   // Summed over entries.
  size_t max_bytes = 64 << 20;  // Summed over entries (EntryBytes).
  // Per tenant, the bumps remembered for patching, and their claims in all;
  // an entry older than what is remembered is recomputed.
  size_t max_bumps = 256;
  size_t max_bump_ids = 4096;
};

struct PrefilterCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t patches = 0;  // Misses answered by patching an outdated entry.
  uint64_t entries = 0;
  uint64_t ids = 0;
  uint64_t bytes = 0;
};

class PrefilterCache {
 public:
  explicit PrefilterCache(PrefilterCacheOptions options = {}) : options_(options) {}

  // The tenant's current generation; read it before taking the snapshot a
  // computation reads.
  uint64_t Generation(const std::string& tenant) const;
  // A commit touched `tenant`: every entry of it becomes stale.
  void Invalidate(const std::string& tenant);
  // The same for a change of only `claims` (not empty): entries of the tenant
  // become stale but can be patched by re-checking those claims.
  void Invalidate(const std::string& tenant, const std::vector<std::string>& claims);

  // Re-checks `changed` claims against the filter: `ids` holds the outdated
  // entry's set on input and the current one on output.
  using Patch = std::function<absl::Status(const std::vector<std::string>& changed, IdSet* ids)>;

  // The cached set for (tenant, key) if it was computed at `generation`;
  // otherwise patches an outdated entry with `patch` when every bump since
  // named its claims, or runs `compute`; caches the result under
  // `generation`. With `bypass` the cache is neither read nor written.
  absl::StatusOr<std::shared_ptr<const IdSet>> GetOrCompute(
      const std::string& tenant, const std::string& key, uint64_t generation, bool bypass,
      const std::function<absl::StatusOr<IdSet>()>& compute, const Patch& patch = nullptr);

  PrefilterCacheStats stats() const;

 private:
  struct Entry {
    std::string map_key;
    uint64_t generation;
    std::shared_ptr<const IdSet> ids;
    size_t bytes;  // EntryBytes.
  };
  // What an entry holds in memory, estimated: its key (twice: list and
  // index), each id's string and hash-set slot, and fixed overheads.
  static size_t EntryBytes(const std::string& map_key, const IdSet& ids);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The claims named by the tenant's bumps after `from` up to `to`, or
  // nullopt when one of them named none or is no longer remembered.
  std::optional<std::vector<std::string>> ChangedLocked(const std::string& tenant, uint64_t from,
                                                        uint64_t to) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A bump to `generation`; `claims` null when it named none.
  struct Bump {
    uint64_t generation;
    std::shared_ptr<const std::vector<std::string>> claims;
  };
  struct History {
    std::deque<Bump> bumps;  // Oldest first, consecutive generations.
    size_t ids = 0;
  };
  void BumpLocked(const std::string& tenant, std::shared_ptr<const std::vector<std::string>> claims)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PrefilterCacheOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint64_t> generations_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, History> history_ ABSL_GUARDED_BY(mu_);
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // Most recently used first.
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  PrefilterCacheStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dash::index

#endif  // DASH_NODE_INDEX_PREFILTER_CACHE_H_
