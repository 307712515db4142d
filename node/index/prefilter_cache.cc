#include "node/index/prefilter_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dash::index {

uint64_t PrefilterCache::Generation(const std::string& tenant) const {
  absl::MutexLock l(&mu_);
  auto it = generations_.find(tenant);
  return it == generations_.end() ? 0 : it->second;
}

void PrefilterCache::Invalidate(const std::string& tenant) {
  absl::MutexLock l(&mu_);
  BumpLocked(tenant, nullptr);
}

void PrefilterCache::Invalidate(const std::string& tenant, const std::vector<std::string>& claims) {
  absl::MutexLock l(&mu_);
  BumpLocked(tenant, claims.empty() || claims.size() > options_.max_bump_ids
                         ? nullptr
                         : std::make_shared<const std::vector<std::string>>(claims));
}

void PrefilterCache::BumpLocked(const std::string& tenant,
                                std::shared_ptr<const std::vector<std::string>> claims) {
  const uint64_t generation = ++generations_[tenant];
  History& h = history_[tenant];
  if (claims == nullptr) {
    // Nothing before it can be patched across it.
    h.bumps.clear();
    h.ids = 0;
    return;
  }
  h.ids += claims->size();
  h.bumps.push_back(Bump{generation, std::move(claims)});
  while (!h.bumps.empty() &&
         (h.bumps.size() > options_.max_bumps || h.ids > options_.max_bump_ids)) {
    h.ids -= h.bumps.front().claims->size();
    h.bumps.pop_front();
  }
}

std::optional<std::vector<std::string>> PrefilterCache::ChangedLocked(const std::string& tenant,
                                                                      uint64_t from,
                                                                      uint64_t to) const {
  auto it = history_.find(tenant);
  if (it == history_.end() || it->second.bumps.empty()) return std::nullopt;
  const std::deque<Bump>& bumps = it->second.bumps;
  // Bumps are consecutive generations ending at the current one.
  const uint64_t first = bumps.front().generation;
  if (from + 1 < first || to > bumps.back().generation || from >= to) return std::nullopt;
  std::vector<std::string> changed;
  for (uint64_t g = from + 1; g <= to; ++g) {
    const Bump& b = bumps[g - first];
    changed.insert(changed.end(), b.claims->begin(), b.claims->end());
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  return changed;
}

absl::StatusOr<std::shared_ptr<const IdSet>> PrefilterCache::GetOrCompute(
    const std::string& tenant, const std::string& key, uint64_t generation, bool bypass,
    const std::function<absl::StatusOr<IdSet>()>& compute, const Patch& patch) {
  const std::string map_key = absl::StrCat(tenant, std::string(1, '\0'), key);
  std::shared_ptr<const IdSet> outdated;
  std::optional<std::vector<std::string>> changed;
  if (!bypass) {
    absl::MutexLock l(&mu_);
    auto it = index_.find(map_key);
    if (it != index_.end() && it->second->generation == generation) {
      ++stats_.hits;
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->ids;
    }
    ++stats_.misses;
    if (it != index_.end() && patch != nullptr) {
      changed = ChangedLocked(tenant, it->second->generation, generation);
      if (changed.has_value()) outdated = it->second->ids;
    }
  }
  // Outside the lock: both read storage.
  absl::StatusOr<IdSet> computed = absl::UnknownError("not computed");
  if (outdated != nullptr) {
    IdSet patched = *outdated;
    absl::Status st = patch(*changed, &patched);
    if (!st.ok()) return st;
    computed = std::move(patched);
  } else {
    computed = compute();
  }
  if (!computed.ok()) return computed.status();
  auto ids = std::make_shared<const IdSet>(std::move(*computed));
  if (bypass) return ids;
  const size_t bytes = EntryBytes(map_key, *ids);
  absl::MutexLock l(&mu_);
  if (outdated != nullptr) ++stats_.patches;
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
