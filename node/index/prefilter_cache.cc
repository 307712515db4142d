#include "node/index/prefilter_cache.h"

#include "absl/strings/str_cat.h"

namespace dash::index {

uint64_t PrefilterCache::Generation(const std::string& tenant) const {
  absl::MutexLock l(&mu_);
  auto it = generations_.find(tenant);
  return it == generations_.end() ? 0 : it->second;
}

void PrefilterCache::Invalidate(const std::string& tenant) {
  absl::MutexLock l(&mu_);
  ++generations_[tenant];
}

absl::StatusOr<std::shared_ptr<const IdSet>> PrefilterCache::GetOrCompute(
    const std::string& tenant, const std::string& key, uint64_t generation, bool bypass,
    const std::function<absl::StatusOr<IdSet>()>& compute) {
  const std::string map_key = absl::StrCat(tenant, std::string(1, '\0'), key);
  if (!bypass) {
    absl::MutexLock l(&mu_);
    auto it = index_.find(map_key);
    if (it != index_.end() && it->second->generation == generation) {
      ++stats_.hits;
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->ids;
    }
    ++stats_.misses;
  }
  absl::StatusOr<IdSet> computed = compute();  // Outside the lock: it scans storage.
  if (!computed.ok()) return computed.status();
  auto ids = std::make_shared<const IdSet>(std::move(*computed));
  if (bypass) return ids;
  const size_t bytes = EntryBytes(map_key, *ids);
  absl::MutexLock l(&mu_);
  auto it = index_.find(map_key);
  if (it != index_.end()) {
    stats_.ids -= it->second->ids->size();
    stats_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  if (bytes > options_.max_bytes) {
    ++stats_.evictions;  // Too large to keep at all.
    stats_.entries = lru_.size();
    return ids;
  }
  lru_.push_front(Entry{map_key, generation, ids, bytes});
  index_[map_key] = lru_.begin();
  stats_.ids += ids->size();
  stats_.bytes += bytes;
  EvictLocked();
  return ids;
}

size_t PrefilterCache::EntryBytes(const std::string& map_key, const IdSet& ids) {
  size_t bytes = 2 * (sizeof(std::string) + map_key.capacity()) + sizeof(Entry) + 128;
  bytes += ids.capacity() * (sizeof(std::string) + 1);  // Slots and control bytes.
  for (const std::string& id : ids) {
    if (id.size() >= sizeof(std::string) / 2) bytes += id.capacity() + 1;  // Beyond SSO.
  }
  return bytes;
}

void PrefilterCache::EvictLocked() {
  // Never evict the entry just added (front), even if it alone exceeds max_ids.
  while (lru_.size() > 1 && (lru_.size() > options_.max_entries || stats_.ids > options_.max_ids ||
                             stats_.bytes > options_.max_bytes)) {
    Entry& victim = lru_.back();
    stats_.ids -= victim.ids->size();
    stats_.bytes -= victim.bytes;
    index_.erase(victim.map_key);
    lru_.pop_back();
    ++stats_.evictions;
  }
  stats_.entries = lru_.size();
}

PrefilterCacheStats PrefilterCache::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

}  // namespace dash::index
