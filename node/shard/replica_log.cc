#include "node/shard/replica_log.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/shard/claim_reader.h"
#include "node/storage/keys.h"

namespace dash::shard {
namespace {

using storage::Family;
namespace keys = storage::keys;

absl::StatusOr<storage::ShardMeta> LoadMeta(const storage::Reader& r) {
  DASH_ASSIGN_OR_RETURN(auto raw, r.Get(Family::kMeta, keys::kShardMetaKey));
  storage::ShardMeta meta;
  if (raw.has_value() && !meta.ParseFromString(*raw)) {
    return absl::DataLossError("shard metadata is corrupt");
  }
  return meta;
}

absl::StatusOr<uint64_t> FirstLogLsn(const storage::Reader& r) {
  auto cursor = r.Scan(Family::kLog, "");
  uint64_t lsn = 0;
  if (cursor->Valid() && !keys::ParseLog(cursor->key(), &lsn)) {
    return absl::DataLossError("malformed log key");
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  return lsn;
}

absl::StatusOr<std::map<uint64_t, uint64_t>> LoadEpochs(const storage::Reader& r) {
  std::map<uint64_t, uint64_t> epochs;
  auto cursor = r.Scan(Family::kMeta, keys::kEpochPrefix);
  for (; cursor->Valid(); cursor->Next()) {
    uint64_t epoch = 0;
    uint64_t lsn = 0;
    if (!keys::ParseEpochStart(cursor->key(), &epoch) || !keys::DecodeU64(cursor->value(), &lsn)) {
      return absl::DataLossError("malformed epoch history entry");
    }
    epochs[epoch] = lsn;
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  return epochs;
}

// Rebuilds the epoch history of a replica written before it was kept, from
// the epochs of the retained log records (the oldest retained one stands for
// everything before it).
absl::StatusOr<std::map<uint64_t, uint64_t>> EpochsFromLog(const storage::Reader& r) {
  std::map<uint64_t, uint64_t> epochs;
  uint64_t last_epoch = 0;
  auto cursor = r.Scan(Family::kLog, "");
  for (; cursor->Valid(); cursor->Next()) {
    DASH_ASSIGN_OR_RETURN(storage::LogRecord rec, storage::DecodeLogRecord(cursor->value()));
    if (epochs.empty() || rec.epoch > last_epoch) {
      epochs[rec.epoch] = epochs.empty() ? 1 : rec.lsn;
      last_epoch = rec.epoch;
    }
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  return epochs;
}

std::optional<Family> FamilyByName(absl::string_view name) {
  for (int f = 0; f < static_cast<int>(Family::kCount); ++f) {
    if (name == storage::FamilyName(static_cast<Family>(f))) return static_cast<Family>(f);
  }
  return std::nullopt;
}

// The claims (tenant, id) an undo record's claim keys name.
void ClaimsOfUndo(const storage::UndoRecord& undo,
                  std::vector<std::pair<std::string, std::string>>* out) {
  for (const auto& e : undo.entries()) {
    if (e.family() != storage::FamilyName(Family::kClaims)) continue;
    const size_t sep = e.key().find('\0');
    if (sep == std::string::npos) continue;
    out->emplace_back(e.key().substr(0, sep), e.key().substr(sep + 1));
  }
}

}  // namespace

absl::StatusOr<ReplicaLog> ReplicaLog::Open(storage::Engine* engine, uint32_t shard_id,
                                            uint32_t shard_count, const std::string& dir,
                                            uint32_t index_format) {
  auto snapshot = engine->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(storage::ShardMeta meta, LoadMeta(*snapshot));
  if (meta.epoch() == 0) {  // A new replica.
    meta.set_shard_id(shard_id);
    meta.set_shard_count(shard_count);
    meta.set_epoch(1);
    meta.set_index_format(index_format);
    auto ws = engine->NewWriteSet();
    ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    DASH_RETURN_IF_ERROR(engine->Commit(*ws, /*sync=*/true));
  } else if (meta.shard_id() != shard_id || meta.shard_count() != shard_count) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " holds shard ", meta.shard_id(), " of ",
                                                      meta.shard_count(), ", not shard ", shard_id,
                                                      " of ", shard_count));
  }
  DASH_ASSIGN_OR_RETURN(auto epochs, LoadEpochs(*snapshot));
  if (epochs.empty() && meta.last_lsn() > 0) {
    // Written before the epoch history was kept: rebuild it once.
    DASH_ASSIGN_OR_RETURN(epochs, EpochsFromLog(*snapshot));
    auto ws = engine->NewWriteSet();
    for (const auto& [epoch, lsn] : epochs) {
      ws->Put(Family::kMeta, keys::EpochStart(epoch), keys::EncodeU64(lsn));
    }
    DASH_RETURN_IF_ERROR(engine->Commit(*ws, /*sync=*/true));
  }
  if (meta.last_epoch() == 0 && meta.last_lsn() > 0) meta.set_last_epoch(meta.epoch());
  DASH_ASSIGN_OR_RETURN(uint64_t first, FirstLogLsn(*snapshot));
  return ReplicaLog(engine, std::move(meta), first, std::move(epochs));
}

void LogAppend::Add(const storage::LogRecord& record, std::string encoded, std::string undo) {
  if (added_++ == 0) first_lsn_ = record.lsn;
  bytes_ += encoded.size();
  ws_->Put(Family::kUndo, keys::Log(record.lsn), undo);
  ws_->Put(Family::kLog, keys::Log(record.lsn), encoded);
  if (known_last_epoch_ < record.epoch) {
    new_epochs_[record.epoch] = record.lsn;
    known_last_epoch_ = record.epoch;
    ws_->Put(Family::kMeta, keys::EpochStart(record.epoch), keys::EncodeU64(record.lsn));
  }
  meta_.set_epoch(std::max(meta_.epoch(), record.epoch));
  meta_.set_last_epoch(record.epoch);
  meta_.set_last_lsn(record.lsn);
  meta_.set_last_commit_time_micros(
      std::max(meta_.last_commit_time_micros(), record.commit_time_micros));
}

LogAppend ReplicaLog::BeginAppend(storage::WriteSet* ws) const {
  return LogAppend(ws, meta_, epochs_.empty() ? 0 : epochs_.rbegin()->first);
}

void ReplicaLog::Seal(LogAppend* append, uint64_t commit_lsn) const {
  append->meta_.set_commit_lsn(std::min(commit_lsn, append->meta_.last_lsn()));
  append->ws_->Put(Family::kMeta, keys::kShardMetaKey, append->meta_.SerializeAsString());
}

void ReplicaLog::Committed(const LogAppend& append) {
  if (append.empty()) return;
  if (log_start_lsn_ == 0) log_start_lsn_ = append.first_lsn_;
  meta_ = append.meta_;
  epochs_.insert(append.new_epochs_.begin(), append.new_epochs_.end());
}

absl::Status ReplicaLog::PersistEpoch(uint64_t epoch) {
  if (epoch <= meta_.epoch()) return absl::OkStatus();
  storage::ShardMeta meta = meta_;
  meta.set_epoch(epoch);
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, /*sync=*/true));
  meta_ = meta;
  return absl::OkStatus();
}

absl::Status ReplicaLog::TruncateAfter(uint64_t lsn, uint64_t commit_lsn,
                                       std::vector<std::pair<std::string, std::string>>* touched) {
  const uint64_t last = meta_.last_lsn();
  if (lsn >= last) return absl::OkStatus();
  const uint32_t shard = meta_.shard_id();
  if (lsn < commit_lsn) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, ": truncating the log after lsn ", lsn,
                     " would remove committed records (committed up to ", commit_lsn,
                     "); the replica needs a snapshot"));
  }
  auto ws = engine_->NewWriteSet();
  // Newest first: the oldest before-image of a key is the one that stays.
  for (uint64_t l = last; l > lsn; --l) {
    DASH_ASSIGN_OR_RETURN(auto raw, ws->Get(Family::kUndo, keys::Log(l)));
    if (!raw.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", shard, ": no undo record for lsn ", l, "; the replica needs a snapshot"));
    }
    DASH_ASSIGN_OR_RETURN(storage::UndoRecord undo, ParseStored<storage::UndoRecord>(*raw, "undo"));
    for (const storage::UndoEntry& e : undo.entries()) {
      std::optional<Family> f = FamilyByName(e.family());
      if (!f.has_value()) return absl::DataLossError("undo record names an unknown family");
      if (e.existed()) {
        ws->Put(*f, e.key(), e.value());
      } else {
        ws->Delete(*f, e.key());
      }
    }
    ClaimsOfUndo(undo, touched);
    ws->Delete(Family::kUndo, keys::Log(l));
    ws->Delete(Family::kLog, keys::Log(l));
  }
  std::map<uint64_t, uint64_t> epochs = epochs_;
  for (auto it = epochs.begin(); it != epochs.end();) {
    if (it->second > lsn) {
      ws->Delete(Family::kMeta, keys::EpochStart(it->first));
      it = epochs.erase(it);
    } else {
      ++it;
    }
  }
  storage::ShardMeta meta = meta_;
  meta.set_last_lsn(lsn);
  meta.set_last_epoch(lsn == 0 || epochs.empty() ? 0 : epochs.rbegin()->first);
  // The commit time goes back with the log: a removed suffix written by a
  // leader whose clock ran ahead must not carry its time into this replica's
  // own records if it leads later (nor move its idempotency cut-off forward).
  if (lsn == 0) {
    meta.set_last_commit_time_micros(0);
  } else {
    DASH_ASSIGN_OR_RETURN(auto kept, ws->Get(Family::kLog, keys::Log(lsn)));
    if (kept.has_value()) {
      DASH_ASSIGN_OR_RETURN(storage::LogRecord record, storage::DecodeLogRecord(*kept));
      meta.set_last_commit_time_micros(record.commit_time_micros);
    }
  }
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, /*sync=*/true));
  LOG(WARNING) << "shard " << shard << ": truncated the log after lsn " << lsn << " (removed "
               << last - lsn << " records of a diverged suffix)";
  meta_ = meta;
  epochs_ = std::move(epochs);
  if (log_start_lsn_ > lsn) log_start_lsn_ = 0;
  return absl::OkStatus();
}

bool ReplicaLog::MaybeTruncate(uint64_t keep) {
  if (keep == 0 || log_start_lsn_ == 0) return false;
  const uint64_t last = meta_.last_lsn();
  if (last < keep) return false;
  const uint64_t cutoff = last - keep + 1;  // First LSN to keep.
  // Amortize: truncate in steps of at least 1/8 of the retention window.
  if (cutoff <= log_start_lsn_ + std::max<uint64_t>(keep / 8, 1) - 1) return false;
  absl::Status st = engine_->DeleteRange(Family::kLog, keys::Log(0), keys::Log(cutoff));
  if (!st.ok()) {
    LOG(WARNING) << "shard " << meta_.shard_id() << ": log truncation failed: " << st;
    return false;
  }
  log_start_lsn_ = cutoff;
  return true;
}

void ReplicaLog::MaybeDropUndo(uint64_t commit_lsn) {
  const uint64_t commit = std::min(commit_lsn, meta_.last_lsn());
  // Amortized: one range delete per 1024 committed records.
  if (commit < undo_dropped_to_ + 1024) return;
  absl::Status st = engine_->DeleteRange(Family::kUndo, keys::Log(0), keys::Log(commit + 1));
  if (!st.ok()) {
    LOG(WARNING) << "shard " << meta_.shard_id() << ": dropping undo records: " << st;
    return;
  }
  undo_dropped_to_ = commit;
}

std::pair<uint64_t, uint64_t> ReplicaLog::EpochEndOffset(uint64_t requested_epoch) const {
  auto next = epochs_.upper_bound(requested_epoch);  // First epoch > requested.
  if (next == epochs_.begin()) return {0, 0};
  auto found = std::prev(next);
  const uint64_t end = next == epochs_.end() ? meta_.last_lsn() : next->second - 1;
  return {found->first, end};
}

uint64_t ReplicaLog::DivergencePoint(uint64_t leader_epoch, uint64_t leader_end_lsn) const {
  if (leader_epoch == 0) return 0;
  // This replica's end of leader_epoch: just before its first later epoch.
  uint64_t own_end = meta_.last_lsn();
  auto later = epochs_.upper_bound(leader_epoch);
  if (later != epochs_.end()) own_end = later->second - 1;
  return std::min(own_end, leader_end_lsn);
}

absl::StatusOr<storage::ShardMeta> ReplicaLog::MetaOf(const storage::Reader& r) {
  return LoadMeta(r);
}

absl::StatusOr<std::string> ReplicaLog::ReadRecord(storage::Engine& engine, uint64_t lsn) {
  auto snapshot = engine.NewSnapshot();
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kLog, keys::Log(lsn)));
  if (!raw.has_value()) {
    return absl::NotFoundError(absl::StrCat("log record ", lsn, " is not in the retained log"));
  }
  return std::move(*raw);
}

}  // namespace dash::shard
