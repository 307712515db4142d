// A WriteSet decorator that records the before-image of every key a log
// record's changes touch (once per key), so that the record can be undone if
// the log is truncated (ReplicaLog::TruncateAfter). Not thread-safe.
#ifndef DASH_NODE_SHARD_UNDO_CAPTURE_H_
#define DASH_NODE_SHARD_UNDO_CAPTURE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "node/storage/engine.h"
#include "node/storage/records.pb.h"

namespace dash::shard {

class UndoCapture final : public storage::WriteSet {
 public:
  // `inner` receives every change and must outlive this.
  explicit UndoCapture(storage::WriteSet* inner) : inner_(inner) {}

  // A key read before its first change keeps the value read as its
  // before-image, so that the change does not read it again (the applier
  // reads most keys it writes: existence checks, created_at, counters).
  absl::StatusOr<std::optional<std::string>> Get(storage::Family f,
                                                 absl::string_view key) const override {
    absl::StatusOr<std::optional<std::string>> value = inner_->Get(f, key);
    if (value.ok() && !seen_.contains(std::make_pair(static_cast<int>(f), std::string(key)))) {
      read_.insert_or_assign(std::make_pair(static_cast<int>(f), std::string(key)), *value);
    }
    return value;
  }
  std::unique_ptr<storage::Cursor> Scan(storage::Family f, absl::string_view prefix,
                                        absl::string_view start) const override {
    return inner_->Scan(f, prefix, start);
  }
  void Put(storage::Family f, absl::string_view key, absl::string_view value) override {
    Capture(f, key);
    inner_->Put(f, key, value);
  }
  void Delete(storage::Family f, absl::string_view key) override {
    Capture(f, key);
    inner_->Delete(f, key);
  }
  void SetSavePoint() override { inner_->SetSavePoint(); }
  void RollbackToSavePoint() override { inner_->RollbackToSavePoint(); }
  void PopSavePoint() override { inner_->PopSavePoint(); }
  size_t ApproximateBytes() const override { return inner_->ApproximateBytes(); }
  bool Empty() const override { return inner_->Empty(); }

  // Not OK when a before-image could not be read: the undo is incomplete.
  const absl::Status& status() const { return status_; }
  // The undo record (storage::UndoRecord) of everything changed so far.
  std::string Encoded() const { return undo_.SerializeAsString(); }

 private:
  void Capture(storage::Family f, absl::string_view key) {
    auto id = std::make_pair(static_cast<int>(f), std::string(key));
    if (!seen_.insert(id).second) return;
    absl::StatusOr<std::optional<std::string>> old;
    if (auto it = read_.find(id); it != read_.end()) {
      old = std::move(it->second);
      read_.erase(it);
    } else {
      old = inner_->Get(f, key);
    }
    if (!old.ok()) {
      if (status_.ok()) status_ = old.status();
      return;
    }
    storage::UndoEntry* e = undo_.add_entries();
    e->set_family(storage::FamilyName(f));
    e->set_key(std::string(key));
    e->set_existed(old->has_value());
    if (old->has_value()) e->set_value(std::move(**old));
  }

  storage::WriteSet* const inner_;
  absl::flat_hash_set<std::pair<int, std::string>> seen_;
  // Values read (through Get) of keys not changed yet. Changes go through
  // this object only, so a value here is still the key's current one.
  mutable absl::flat_hash_map<std::pair<int, std::string>, std::optional<std::string>> read_;
  storage::UndoRecord undo_;
  absl::Status status_;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_UNDO_CAPTURE_H_
