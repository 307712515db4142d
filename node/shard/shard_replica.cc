#include "node/shard/shard_replica.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/shard/batch_applier.h"
#include "node/storage/keys.h"
#include "node/storage/log_record.h"
#include "query/analyzer.h"
#include "query/filter.h"

namespace dash::shard {
namespace {

// How far above its adopted epoch a replica may be fenced (see Fence).
constexpr uint64_t kMaxFenceJump = 1000;

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

std::string BatchDigest(const v1::WriteRequest& request) {
  storage::LogPayload p;
  p.set_tenant(request.tenant());
  *p.mutable_ops() = request.ops();
  p.set_vector_metric(request.vector_metric());
  return Sha256(DeterministicSerialize(p));
}

template <typename Message>
absl::StatusOr<Message> Parse(absl::string_view bytes, absl::string_view what) {
  Message m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", what, " is corrupt"));
  }
  return m;
}

// Records the before-image of every key a log record's changes touch (once
// per key), so that the record can be undone if the log is truncated.
class UndoCapture final : public storage::WriteSet {
 public:
  explicit UndoCapture(storage::WriteSet* inner) : inner_(inner) {}

  absl::StatusOr<std::optional<std::string>> Get(Family f, absl::string_view key) const override {
    return inner_->Get(f, key);
  }
  std::unique_ptr<storage::Cursor> Scan(Family f, absl::string_view prefix,
                                        absl::string_view start) const override {
    return inner_->Scan(f, prefix, start);
  }
  void Put(Family f, absl::string_view key, absl::string_view value) override {
    Capture(f, key);
    inner_->Put(f, key, value);
  }
  void Delete(Family f, absl::string_view key) override {
    Capture(f, key);
    inner_->Delete(f, key);
  }
  void SetSavePoint() override { inner_->SetSavePoint(); }
  void RollbackToSavePoint() override { inner_->RollbackToSavePoint(); }
  void PopSavePoint() override { inner_->PopSavePoint(); }
  size_t ApproximateBytes() const override { return inner_->ApproximateBytes(); }
  bool Empty() const override { return inner_->Empty(); }

  const absl::Status& status() const { return status_; }
  std::string Encoded() const { return undo_.SerializeAsString(); }

 private:
  void Capture(Family f, absl::string_view key) {
    if (!seen_.emplace(static_cast<int>(f), std::string(key)).second) return;
    absl::StatusOr<std::optional<std::string>> old = inner_->Get(f, key);
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
  std::set<std::pair<int, std::string>> seen_;
  storage::UndoRecord undo_;
  absl::Status status_;
};

std::optional<Family> FamilyByName(absl::string_view name) {
  for (int f = 0; f < static_cast<int>(Family::kCount); ++f) {
    if (name == storage::FamilyName(static_cast<Family>(f))) return static_cast<Family>(f);
  }
  return std::nullopt;
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

std::set<std::string> TenantsOf(const std::vector<std::pair<std::string, std::string>>& claims) {
  std::set<std::string> tenants;
  for (const auto& c : claims) tenants.insert(c.first);
  return tenants;
}

// Where a refused caller should go: the shard's epoch and leader as `s` has them.
v1::RoutingHint HintOf(uint32_t shard, const ReplicaState& s) {
  v1::RoutingHint h;
  h.set_shard(shard);
  h.set_current_epoch(s.epoch);
  h.set_leader_node_id(s.leader_node_id);
  h.set_leader_address(s.leader_address);
  return h;
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

// The current format of the derived indexes. 1: the BM25 index (docs, terms,
// postings). Bump it when the analyzer or the index layout changes.
constexpr uint32_t kIndexFormat = 1;

// Re-indexes every claim of a replica whose index is older than kIndexFormat,
// in chunks, each committed atomically with its tenants' statistics. Safe to
// interrupt: re-indexing a claim replaces whatever it had.
absl::Status MigrateIndex(storage::Engine& engine, storage::ShardMeta& meta) {
  size_t claims = 0;
  std::string resume;
  for (bool more = true; more;) {
    auto ws = engine.NewWriteSet();
    std::map<std::string, storage::TenantState> tenants;
    std::vector<std::string> keys_in_chunk;
    {
      auto snapshot = engine.NewSnapshot();
      auto cursor = snapshot->Scan(Family::kClaims, "", resume);
      for (; cursor->Valid() && keys_in_chunk.size() < 512; cursor->Next()) {
        keys_in_chunk.emplace_back(cursor->key());
      }
      DASH_RETURN_IF_ERROR(cursor->status());
      more = cursor->Valid();
    }
    for (const std::string& key : keys_in_chunk) {
      const size_t sep = key.find('\0');
      if (sep == std::string::npos) return absl::DataLossError("malformed claim key");
      const std::string tenant = key.substr(0, sep);
      auto [it, inserted] = tenants.try_emplace(tenant);
      if (inserted) {
        DASH_ASSIGN_OR_RETURN(auto raw, ws->Get(Family::kTenants, keys::Tenant(tenant)));
        if (raw.has_value() && !it->second.ParseFromString(*raw)) {
          return absl::DataLossError("tenant state is corrupt");
        }
      }
      DASH_RETURN_IF_ERROR(index::ReindexClaim(tenant, key.substr(sep + 1), ws.get(), &it->second));
    }
    for (const auto& [tenant, state] : tenants) {
      ws->Put(Family::kTenants, keys::Tenant(tenant), state.SerializeAsString());
    }
    if (!more) {
      meta.set_index_format(kIndexFormat);
      ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    }
    DASH_RETURN_IF_ERROR(engine.Commit(*ws, /*sync=*/true));
    claims += keys_in_chunk.size();
    if (!keys_in_chunk.empty()) resume = keys_in_chunk.back() + std::string(1, '\0');
  }
  LOG(INFO) << "shard " << meta.shard_id() << ": re-indexed " << claims
            << " claims to index format " << kIndexFormat;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardReplica>> ShardReplica::Open(const ReplicaOptions& options) {
  if (options.shard_count == 0 || options.shard_id >= options.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options.shard_id, " is not below the shard count ", options.shard_count));
  }
  DASH_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksEngine(options.dir, options.engine));
  auto snapshot = engine->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(storage::ShardMeta meta, LoadMeta(*snapshot));
  if (meta.epoch() == 0) {  // A new replica.
    meta.set_shard_id(options.shard_id);
    meta.set_shard_count(options.shard_count);
    meta.set_epoch(1);
    meta.set_index_format(kIndexFormat);
    auto ws = engine->NewWriteSet();
    ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    DASH_RETURN_IF_ERROR(engine->Commit(*ws, /*sync=*/true));
  } else if (meta.shard_id() != options.shard_id || meta.shard_count() != options.shard_count) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.dir, " holds shard ", meta.shard_id(), " of ", meta.shard_count(),
                     ", not shard ", options.shard_id, " of ", options.shard_count));
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
  snapshot.reset();
  if (meta.last_epoch() == 0 && meta.last_lsn() > 0) meta.set_last_epoch(meta.epoch());
  if (meta.index_format() < kIndexFormat) DASH_RETURN_IF_ERROR(MigrateIndex(*engine, meta));
  auto replica = std::unique_ptr<ShardReplica>(new ShardReplica(options, std::move(engine), meta));
  {
    absl::MutexLock wl(&replica->write_mu_);
    replica->epochs_ = std::move(epochs);
  }
  DASH_RETURN_IF_ERROR(replica->LoadVectors());
  LOG(INFO) << "shard " << options.shard_id << " open at " << options.dir << ": epoch "
            << meta.epoch() << ", last lsn " << meta.last_lsn();
  return replica;
}

ShardReplica::ShardReplica(const ReplicaOptions& options, std::unique_ptr<storage::Engine> engine,
                           const storage::ShardMeta& meta)
    : options_(options), engine_(std::move(engine)) {
  auto snapshot = engine_->NewSnapshot();
  absl::StatusOr<uint64_t> first = FirstLogLsn(*snapshot);
  snapshot.reset();
  absl::MutexLock wl(&write_mu_);
  absl::MutexLock l(&mu_);
  meta_ = meta;
  log_start_lsn_ = first.ok() ? *first : 0;
  role_.epoch = meta.epoch();
  role_.leader = !options.managed;
  // A standalone replica is its own majority. A managed one knows what was
  // committed when it last wrote its metadata; the rest it learns from its
  // leader (or by leading).
  const uint64_t committed = options.managed ? meta.commit_lsn() : meta.last_lsn();
  {
    absl::MutexLock a(&ack_mu_);
    durable_lsn_ = meta.last_lsn();
    commit_lsn_ = std::min(committed, meta.last_lsn());
    leading_ = !options.managed;
  }
  {
    absl::MutexLock v(&view_mu_);
    std::shared_ptr<const storage::Reader> now(engine_->NewSnapshot());
    if (committed >= meta.last_lsn()) {
      read_view_ = now;
      read_view_lsn_ = meta.last_lsn();
    } else {
      queued_views_.push_back(View{meta.last_lsn(), now, {}});
    }
  }
  state_.shard_id = meta.shard_id();
  state_.leader = role_.leader;
  state_.epoch = meta.epoch();
  state_.last_epoch = meta.last_epoch();
  state_.last_lsn = meta.last_lsn();
  state_.log_start_lsn = log_start_lsn_;
  state_.commit_lsn = std::min(committed, meta.last_lsn());
  state_.readable = committed >= meta.last_lsn();
  state_.read_lsn = state_.readable ? meta.last_lsn() : 0;
  commit_thread_ = std::thread([this] { CommitLoop(); });
}

ShardReplica::~ShardReplica() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  commit_thread_.join();
}

void ShardReplica::Write(v1::WriteRequest request, WriteDone done) {
  absl::Status valid = query::ValidateBatch(request, options_.limits);
  if (valid.ok()) {
    absl::StatusOr<uint32_t> shard = query::ShardOfBatch(request, options_.shard_count);
    if (!shard.ok()) {
      valid = shard.status();
    } else if (*shard != options_.shard_id) {
      valid =
          absl::InvalidArgumentError(absl::StrCat("shard: the batch belongs to shard ", *shard,
                                                  ", this replica is shard ", options_.shard_id));
    }
  }
  if (!valid.ok()) {
    done(valid);
    return;
  }
  WriteValidated(std::move(request), std::move(done));
}

void ShardReplica::WriteValidated(v1::WriteRequest request, WriteDone done) {
  std::string digest = BatchDigest(request);
  absl::Status rejected;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) {
      rejected = absl::UnavailableError("shard replica is shutting down");
    } else if (pending_.size() >= options_.max_pending_writes) {
      rejected = absl::ResourceExhaustedError(
          absl::StrCat("shard ", options_.shard_id, ": write queue is full; retry with backoff"));
    } else {
      pending_.push_back(Pending{std::move(request), std::move(digest), std::move(done)});
      return;
    }
  }
  done(rejected);
}

absl::StatusOr<WriteResult> ShardReplica::WriteAndWait(v1::WriteRequest request) {
  absl::Notification finished;
  absl::StatusOr<WriteResult> result;
  Write(std::move(request), [&](absl::StatusOr<WriteResult> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

void ShardReplica::CommitLoop() {
  for (;;) {
    std::vector<Pending> group;
    bool stop = false;
    {
      absl::MutexLock l(&mu_);
      // Wakes at least every 100 ms to expire writes a majority never acked.
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](ShardReplica* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
                                 return r->stopping_ || !r->pending_.empty();
                               },
                               this),
                           absl::Milliseconds(100));
      stop = stopping_;
      while (!pending_.empty() && (stop || group.size() < options_.max_group_writes)) {
        group.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    if (stop) {
      for (auto& p : group) p.done(absl::UnavailableError("shard replica is shutting down"));
      ReleaseCommitted(absl::UnavailableError(
          "shard replica is shutting down before a majority acknowledged the write; its outcome "
          "is unknown: retry with the same idempotency key"));
      return;
    }
    if (group.empty()) {
      ReleaseCommitted();
      continue;
    }
    absl::MutexLock wl(&write_mu_);
    CommitGroup(std::move(group));
  }
}

void ShardReplica::CommitGroup(std::vector<Pending> group) {
  auto ws = engine_->NewWriteSet();
  const uint64_t epoch = meta_.epoch();
  uint64_t next_lsn = meta_.last_lsn() + 1;
  const int64_t commit_micros =
      std::max(options_.clock->NowMicros(), meta_.last_commit_time_micros());
  struct Staged {
    WriteDone done;
    WriteResult result;
  };
  std::vector<Staged> staged;
  std::vector<std::pair<std::string, std::string>> touched;  // (tenant, claim id)
  bool wrote = false;
  uint64_t record_bytes = 0;

  auto token = [&](uint64_t ep, uint64_t lsn) {
    v1::CommitToken t;
    t.set_shard(options_.shard_id);
    t.set_epoch(ep);
    t.set_lsn(lsn);
    return t;
  };

  auto hint = [&] {
    v1::RoutingHint h;
    h.set_shard(options_.shard_id);
    h.set_current_epoch(epoch);
    h.set_leader_node_id(role_.leader_node_id);
    h.set_leader_address(role_.leader_address);
    return h;
  };
  for (Pending& p : group) {
    const v1::WriteRequest& req = p.request;
    if (options_.managed && req.expected_epoch() > epoch) {
      // The caller saw a newer placement than this replica has applied yet
      // (just opened, or its placement watch is a moment behind): transient.
      absl::Status st = absl::UnavailableError(
          absl::StrCat("shard ", options_.shard_id, ": this replica has not yet adopted epoch ",
                       req.expected_epoch(), " (it is at ", epoch, "); retry"));
      SetRoutingHint(st, hint());
      p.done(st);
      continue;
    }
    if (!role_.leader && options_.managed && role_.leader_node_id.empty()) {
      // No role adopted yet (just opened), or the shard has no leader now:
      // both pass; the caller retries.
      absl::Status st = absl::UnavailableError(
          absl::StrCat("shard ", options_.shard_id, ": this replica knows no leader at epoch ",
                       epoch, " yet; retry"));
      SetRoutingHint(st, hint());
      p.done(st);
      continue;
    }
    if (!role_.leader) {
      absl::Status st = absl::FailedPreconditionError(absl::StrCat(
          "shard ", options_.shard_id, ": this replica is a follower at epoch ", epoch,
          role_.leader_node_id.empty() ? "; the shard has no leader"
                                       : absl::StrCat("; the leader is ", role_.leader_node_id)));
      SetRoutingHint(st, hint());
      p.done(st);
      continue;
    }
    if (role_.writes_paused) {
      absl::Status st = absl::UnavailableError(
          absl::StrCat("shard ", options_.shard_id, ": leadership transfer in progress; retry"));
      SetRoutingHint(st, hint());
      p.done(st);
      continue;
    }
    if (req.expected_epoch() != 0 && req.expected_epoch() != epoch) {
      absl::Status st = absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard_id, ": expected epoch ", req.expected_epoch(),
                       ", current ", epoch));
      SetRoutingHint(st, hint());
      p.done(st);
      continue;
    }
    if (!req.idempotency_key().empty()) {
      absl::StatusOr<std::optional<std::string>> prior =
          ws->Get(Family::kIdempotency, keys::Idempotency(req.tenant(), req.idempotency_key()));
      if (!prior.ok()) {
        p.done(prior.status());
        continue;
      }
      if (prior->has_value()) {
        absl::StatusOr<storage::IdempotencyRecord> rec =
            Parse<storage::IdempotencyRecord>(**prior, "idempotency record");
        if (!rec.ok()) {
          p.done(rec.status());
        } else if (rec->request_digest() != p.digest) {
          p.done(absl::InvalidArgumentError(
              "idempotency_key: already used for a different batch in this tenant"));
        } else {
          staged.push_back(
              {std::move(p.done), WriteResult{token(rec->epoch(), rec->lsn()),
                                              rec->commit_time_micros(), /*replayed=*/true}});
        }
        continue;
      }
    }
    storage::LogPayload payload;
    payload.set_tenant(req.tenant());
    *payload.mutable_ops() = req.ops();
    payload.set_idempotency_key(req.idempotency_key());
    payload.set_request_digest(p.digest);
    payload.set_vector_metric(req.vector_metric());
    if (options_.idempotency_ttl > absl::ZeroDuration()) {
      const int64_t ttl = absl::ToInt64Microseconds(options_.idempotency_ttl);
      if (commit_micros > ttl) payload.set_idempotency_expire_before_micros(commit_micros - ttl);
    }

    ws->SetSavePoint();
    std::vector<std::string> claims;
    UndoCapture undo(ws.get());
    absl::Status st =
        ApplyBatch(payload, CommitPoint{epoch, next_lsn, commit_micros}, &undo, &claims);
    if (st.ok()) st = undo.status();
    if (st.ok()) st = CheckClaimLimits(payload, claims, options_.limits, ws.get());
    if (!st.ok()) {
      ws->RollbackToSavePoint();
      p.done(st);
      continue;
    }
    ws->PopSavePoint();
    ws->Put(Family::kUndo, keys::Log(next_lsn), undo.Encoded());
    for (auto& c : claims) touched.emplace_back(req.tenant(), std::move(c));
    storage::LogRecord record;
    record.epoch = epoch;
    record.lsn = next_lsn;
    record.commit_time_micros = commit_micros;
    record.payload = payload.SerializeAsString();
    std::string encoded = storage::EncodeLogRecord(record);
    record_bytes += encoded.size();
    ws->Put(Family::kLog, keys::Log(next_lsn), std::move(encoded));
    staged.push_back(
        {std::move(p.done), WriteResult{token(epoch, next_lsn), commit_micros, false}});
    ++next_lsn;
    wrote = true;
  }

  absl::Status committed = absl::OkStatus();
  const uint64_t first_lsn = meta_.last_lsn() + 1;
  const bool new_epoch = epochs_.empty() || epochs_.rbegin()->first < epoch;
  if (wrote) {
    storage::ShardMeta meta = meta_;
    meta.set_last_lsn(next_lsn - 1);
    meta.set_last_epoch(epoch);
    meta.set_last_commit_time_micros(commit_micros);
    {
      absl::MutexLock a(&ack_mu_);
      meta.set_commit_lsn(commit_lsn_);
    }
    if (new_epoch) ws->Put(Family::kMeta, keys::EpochStart(epoch), keys::EncodeU64(first_lsn));
    ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    committed = engine_->Commit(*ws, options_.sync);
    if (committed.ok()) {
      if (log_start_lsn_ == 0) log_start_lsn_ = first_lsn;
      if (new_epoch) epochs_[epoch] = first_lsn;
      meta_ = meta;
      {
        absl::MutexLock a(&ack_mu_);
        log_bytes_ += record_bytes;
        marks_.push_back(GroupMark{meta.last_lsn(), log_bytes_, absl::Now()});
        if (marks_.size() > 100000) marks_.pop_front();
      }
      PublishMeta();
    } else {
      LOG(ERROR) << "shard " << options_.shard_id << ": commit failed: " << committed;
      committed = absl::UnavailableError(absl::StrCat("commit failed: ", committed.message()));
    }
  }
  // Truncation (rare: a step every 1/8 of the retention window) happens before
  // the acknowledgements so that State() seen by a client is never behind it.
  if (committed.ok() && wrote) {
    MaybeTruncateLog();
    MaybeDropUndo();
    RefreshCaches(touched);
    QueueView(meta_.last_lsn(), TenantsOf(touched));
  }
  if (!committed.ok()) {
    for (Staged& s : staged) s.done(committed);
    return;
  }
  // Durable here; answered once a majority of the replicas hold it.
  {
    absl::MutexLock a(&ack_mu_);
    const absl::Time now = absl::Now();
    for (Staged& s : staged) {
      const uint64_t lsn = s.result.token.lsn();
      waiting_.push_back(Waiting{lsn, now, std::move(s.done), std::move(s.result)});
    }
  }
  ReleaseCommitted();
}

void ShardReplica::ReleaseCommitted(absl::Status fail_all) {
  std::vector<std::pair<WriteDone, absl::StatusOr<WriteResult>>> ready;
  uint64_t commit_lsn = 0;
  {
    absl::MutexLock a(&ack_mu_);
    if (leading_) {
      std::vector<uint64_t> held = {durable_lsn_};
      for (const std::string& n : quorum_nodes_) {
        auto it = acked_.find(n);
        held.push_back(it == acked_.end() ? 0 : std::min(it->second, durable_lsn_));
      }
      std::sort(held.rbegin(), held.rend());
      if (quorum_ <= held.size() && held[quorum_ - 1] >= epoch_start_lsn_) {
        commit_lsn_ = std::max(commit_lsn_, held[quorum_ - 1]);
      }
    }
    commit_lsn = commit_lsn_;
    const absl::Time expired = absl::Now() - options_.commit_timeout;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->lsn <= commit_lsn_ || (options_.ack_leader_only && it->lsn <= durable_lsn_)) {
        // Committed: acknowledged even when leadership is being lost.
        ready.emplace_back(std::move(it->done), std::move(it->result));
      } else if (!fail_all.ok()) {
        ready.emplace_back(std::move(it->done), fail_all);
      } else if (it->since < expired) {
        ready.emplace_back(
            std::move(it->done),
            absl::UnavailableError(absl::StrCat(
                "shard ", options_.shard_id, ": lsn ", it->lsn,
                " is durable on the leader but was not acknowledged by a majority of the ",
                quorum_nodes_.size() + 1, " replicas within ",
                absl::FormatDuration(options_.commit_timeout),
                "; its outcome is unknown: retry with the same idempotency key")));
      } else {
        ++it;
        continue;
      }
      it = waiting_.erase(it);
    }
  }
  {
    absl::MutexLock l(&mu_);
    state_.commit_lsn = std::max(state_.commit_lsn, commit_lsn);
  }
  // Readable before answered: a client reads its acknowledged write.
  AdvanceReadView();
  for (auto& [done, result] : ready) done(std::move(result));
}

void ShardReplica::OnLeaderCommit(uint64_t commit_lsn) {
  uint64_t now_committed = 0;
  {
    absl::MutexLock a(&ack_mu_);
    if (leading_) return;
    // Only what this replica holds: its log matched the leader's up to there.
    commit_lsn_ = std::max(commit_lsn_, std::min(commit_lsn, durable_lsn_));
    now_committed = commit_lsn_;
  }
  {
    absl::MutexLock l(&mu_);
    state_.commit_lsn = std::max(state_.commit_lsn, now_committed);
  }
  AdvanceReadView();
}

void ShardReplica::QueueView(uint64_t lsn, std::set<std::string> tenants) {
  std::shared_ptr<const storage::Reader> reader(engine_->NewSnapshot());
  {
    absl::MutexLock v(&view_mu_);
    // Bounded while nothing commits: merge the newest two (the state of the
    // merged-away LSN just becomes readable a little later).
    if (queued_views_.size() >= 256) {
      View& last = queued_views_.back();
      tenants.insert(last.tenants.begin(), last.tenants.end());
      queued_views_.pop_back();
    }
    queued_views_.push_back(View{lsn, std::move(reader), std::move(tenants)});
  }
  AdvanceReadView();
}

void ShardReplica::AdvanceReadView() {
  uint64_t commit = 0;
  {
    absl::MutexLock a(&ack_mu_);
    commit = commit_lsn_;
  }
  std::set<std::string> invalidate;
  uint64_t read_lsn = 0;
  bool moved = false;
  {
    absl::MutexLock v(&view_mu_);
    while (!queued_views_.empty() && queued_views_.front().lsn <= commit) {
      View& view = queued_views_.front();
      read_view_ = std::move(view.reader);
      read_view_lsn_ = view.lsn;
      invalidate.insert(view.tenants.begin(), view.tenants.end());
      queued_views_.pop_front();
      moved = true;
    }
    read_lsn = read_view_lsn_;
  }
  if (!moved) return;
  // After the view moved (see PrefilterCache): a result computed on the old
  // view is stored under an outdated generation.
  for (const auto& tenant : invalidate) filter_cache_.Invalidate(tenant);
  absl::MutexLock l(&mu_);
  state_.read_lsn = std::max(state_.read_lsn, read_lsn);
  state_.readable = true;
}

absl::StatusOr<std::shared_ptr<const storage::Reader>> ShardReplica::ReadView() const {
  absl::MutexLock v(&view_mu_);
  if (read_view_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id,
        ": this replica restarted holding records not yet known to be committed; it serves "
        "reads once its leader confirms them (retry, or read from another replica)"));
  }
  return read_view_;
}

void ShardReplica::PublishMeta() {
  {
    absl::MutexLock a(&ack_mu_);
    durable_lsn_ = meta_.last_lsn();
  }
  absl::MutexLock l(&mu_);
  state_.epoch = meta_.epoch();
  state_.last_lsn = meta_.last_lsn();
  state_.last_epoch = meta_.last_epoch();
  state_.log_start_lsn = log_start_lsn_;
}

void ShardReplica::MaybeDropUndo() {
  uint64_t commit = 0;
  {
    absl::MutexLock a(&ack_mu_);
    commit = std::min(commit_lsn_, meta_.last_lsn());
  }
  // Amortized: one range delete per 1024 committed records.
  if (commit < undo_dropped_to_ + 1024) return;
  absl::Status st = engine_->DeleteRange(Family::kUndo, keys::Log(0), keys::Log(commit + 1));
  if (!st.ok()) {
    LOG(WARNING) << "shard " << options_.shard_id << ": dropping undo records: " << st;
    return;
  }
  undo_dropped_to_ = commit;
}

void ShardReplica::OnFollowerAck(const std::string& follower, uint64_t durable_lsn) {
  {
    absl::MutexLock a(&ack_mu_);
    uint64_t& acked = acked_[follower];
    acked = std::max(acked, durable_lsn);
    // Group marks every follower is past are no longer needed for lag.
    uint64_t min_acked = durable_lsn_;
    for (const std::string& n : quorum_nodes_) {
      auto it = acked_.find(n);
      min_acked = std::min(min_acked, it == acked_.end() ? 0 : it->second);
    }
    while (marks_.size() > 1 && marks_[1].lsn <= min_acked) marks_.pop_front();
  }
  ReleaseCommitted();
}

void ShardReplica::MaybeTruncateLog() {
  const uint64_t keep = options_.log_retention_records;
  if (keep == 0 || log_start_lsn_ == 0) return;
  const uint64_t last = meta_.last_lsn();
  if (last < keep) return;
  const uint64_t cutoff = last - keep + 1;  // First LSN to keep.
  // Amortize: truncate in steps of at least 1/8 of the retention window.
  if (cutoff <= log_start_lsn_ + std::max<uint64_t>(keep / 8, 1) - 1) return;
  absl::Status st = engine_->DeleteRange(Family::kLog, keys::Log(0), keys::Log(cutoff));
  if (!st.ok()) {
    LOG(WARNING) << "shard " << options_.shard_id << ": log truncation failed: " << st;
    return;
  }
  log_start_lsn_ = cutoff;
  absl::MutexLock l(&mu_);
  state_.log_start_lsn = cutoff;
}

absl::Status ShardReplica::ApplyEncodedRecord(absl::string_view encoded) {
  return ApplyEncodedRecords({std::string(encoded)});
}

absl::Status ShardReplica::ApplyEncodedRecords(const std::vector<std::string>& encoded,
                                               uint64_t stream_epoch) {
  if (encoded.empty()) return absl::OkStatus();
  absl::MutexLock wl(&write_mu_);
  if (stream_epoch != 0 && meta_.epoch() != stream_epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard_id, ": fenced: the replica adopted epoch ",
                     meta_.epoch(), ", the records come from the leader of epoch ", stream_epoch));
  }
  auto ws = engine_->NewWriteSet();
  storage::ShardMeta meta = meta_;
  std::map<uint64_t, uint64_t> new_epochs;
  std::vector<std::pair<std::string, std::string>> touched;
  for (const std::string& one : encoded) {
    DASH_ASSIGN_OR_RETURN(storage::LogRecord record, storage::DecodeLogRecord(one));
    DASH_ASSIGN_OR_RETURN(storage::LogPayload payload,
                          Parse<storage::LogPayload>(record.payload, "log payload"));
    if (record.lsn != meta.last_lsn() + 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "log record lsn ", record.lsn, " does not follow last lsn ", meta.last_lsn()));
    }
    if (record.epoch < meta.last_epoch()) {
      return absl::FailedPreconditionError(absl::StrCat("log record epoch ", record.epoch,
                                                        " is older than the last record's epoch ",
                                                        meta.last_epoch()));
    }
    if (stream_epoch != 0 && record.epoch > stream_epoch) {
      return absl::FailedPreconditionError(absl::StrCat(
          "log record epoch ", record.epoch, " is newer than its leader's ", stream_epoch));
    }
    UndoCapture undo(ws.get());
    if (!payload.epoch_start()) {
      std::vector<std::string> claims;
      DASH_RETURN_IF_ERROR(
          ApplyBatch(payload, CommitPoint{record.epoch, record.lsn, record.commit_time_micros},
                     &undo, &claims));
      DASH_RETURN_IF_ERROR(undo.status());
      for (auto& c : claims) touched.emplace_back(payload.tenant(), std::move(c));
    }
    ws->Put(Family::kUndo, keys::Log(record.lsn), undo.Encoded());
    ws->Put(Family::kLog, keys::Log(record.lsn), one);
    const uint64_t known_last_epoch = new_epochs.empty()
                                          ? (epochs_.empty() ? 0 : epochs_.rbegin()->first)
                                          : new_epochs.rbegin()->first;
    if (known_last_epoch < record.epoch) {
      new_epochs[record.epoch] = record.lsn;
      ws->Put(Family::kMeta, keys::EpochStart(record.epoch), keys::EncodeU64(record.lsn));
    }
    meta.set_epoch(std::max(meta.epoch(), record.epoch));
    meta.set_last_epoch(record.epoch);
    meta.set_last_lsn(record.lsn);
    meta.set_last_commit_time_micros(
        std::max(meta.last_commit_time_micros(), record.commit_time_micros));
  }
  {
    absl::MutexLock a(&ack_mu_);
    meta.set_commit_lsn(std::min(commit_lsn_, meta.last_lsn()));
  }
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, options_.sync));
  if (log_start_lsn_ == 0) log_start_lsn_ = meta_.last_lsn() + 1;
  meta_ = meta;
  epochs_.insert(new_epochs.begin(), new_epochs.end());
  PublishMeta();
  // A standalone replica replaying records is its own majority.
  ReleaseCommitted();
  if (role_.epoch < meta.epoch()) role_.epoch = meta.epoch();
  MaybeTruncateLog();
  MaybeDropUndo();
  RefreshCaches(touched);
  QueueView(meta.last_lsn(), TenantsOf(touched));
  return absl::OkStatus();
}

absl::Status ShardReplica::TruncateLogAfter(uint64_t lsn) {
  absl::MutexLock wl(&write_mu_);
  const uint64_t last = meta_.last_lsn();
  if (lsn >= last) return absl::OkStatus();
  if (role_.leader) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard_id, ": a leader's log is not truncated"));
  }
  uint64_t commit = 0;
  {
    absl::MutexLock a(&ack_mu_);
    commit = commit_lsn_;
  }
  if (lsn < commit) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard_id, ": truncating the log after lsn ", lsn,
                     " would remove committed records (committed up to ", commit,
                     "); the replica needs a snapshot"));
  }
  auto ws = engine_->NewWriteSet();
  std::vector<std::pair<std::string, std::string>> touched;
  // Newest first: the oldest before-image of a key is the one that stays.
  for (uint64_t l = last; l > lsn; --l) {
    DASH_ASSIGN_OR_RETURN(auto raw, ws->Get(Family::kUndo, keys::Log(l)));
    if (!raw.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id,
                                                        ": no undo record for lsn ", l,
                                                        "; the replica needs a snapshot"));
    }
    DASH_ASSIGN_OR_RETURN(storage::UndoRecord undo, Parse<storage::UndoRecord>(*raw, "undo"));
    for (const storage::UndoEntry& e : undo.entries()) {
      std::optional<Family> f = FamilyByName(e.family());
      if (!f.has_value()) return absl::DataLossError("undo record names an unknown family");
      if (e.existed()) {
        ws->Put(*f, e.key(), e.value());
      } else {
        ws->Delete(*f, e.key());
      }
    }
    ClaimsOfUndo(undo, &touched);
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
  LOG(WARNING) << "shard " << options_.shard_id << ": truncated the log after lsn " << lsn
               << " (removed " << last - lsn << " records of a diverged suffix)";
  meta_ = meta;
  epochs_ = std::move(epochs);
  if (log_start_lsn_ > lsn) log_start_lsn_ = 0;
  PublishMeta();
  std::set<std::string> tenants = TenantsOf(touched);
  {
    // The dropped views also covered kept records: their tenants' filter
    // caches must be invalidated when the new view becomes readable.
    absl::MutexLock v(&view_mu_);
    while (!queued_views_.empty() && queued_views_.back().lsn >= lsn) {
      tenants.insert(queued_views_.back().tenants.begin(), queued_views_.back().tenants.end());
      queued_views_.pop_back();
    }
  }
  RefreshCaches(touched);
  QueueView(lsn, std::move(tenants));
  return absl::OkStatus();
}

std::map<uint64_t, uint64_t> ShardReplica::EpochHistory() const {
  absl::MutexLock wl(&write_mu_);
  return epochs_;
}

std::pair<uint64_t, uint64_t> ShardReplica::EpochEndOffset(uint64_t requested_epoch) const {
  absl::MutexLock wl(&write_mu_);
  auto next = epochs_.upper_bound(requested_epoch);  // First epoch > requested.
  if (next == epochs_.begin()) return {0, 0};
  auto found = std::prev(next);
  const uint64_t end = next == epochs_.end() ? meta_.last_lsn() : next->second - 1;
  return {found->first, end};
}

uint64_t ShardReplica::DivergencePoint(uint64_t leader_epoch, uint64_t leader_end_lsn) const {
  absl::MutexLock wl(&write_mu_);
  if (leader_epoch == 0) return 0;
  // This replica's end of leader_epoch: just before its first later epoch.
  uint64_t own_end = meta_.last_lsn();
  auto later = epochs_.upper_bound(leader_epoch);
  if (later != epochs_.end()) own_end = later->second - 1;
  return std::min(own_end, leader_end_lsn);
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> ShardReplica::CreateCheckpoint(
    const std::string& dir) {
  absl::MutexLock wl(&write_mu_);
  DASH_RETURN_IF_ERROR(engine_->CreateCheckpoint(dir));
  return std::make_pair(meta_.last_lsn(), meta_.last_epoch());
}

ReplicaState ShardReplica::State() const {
  absl::MutexLock l(&mu_);
  return state_;
}

absl::StatusOr<StateChecksum> ShardReplica::Checksum() const {
  auto snapshot = engine_->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(storage::ShardMeta meta, LoadMeta(*snapshot));
  StateChecksum out;
  out.last_lsn = meta.last_lsn();
  out.last_epoch = meta.last_lsn() == 0 ? 0 : meta.last_epoch();
  Sha256Hasher hasher;
  // The log (whose retained range depends on when each replica truncated) and
  // the metadata (the adopted epoch) are left out: they may differ between
  // replicas holding the same data. The idempotency expiry queue and its
  // cursor, which are replicated state, are in.
  {
    hasher.UpdateField("idempotency-expiry");
    auto cursor = snapshot->Scan(Family::kMeta, keys::kIdempotencyExpiryStatePrefix);
    for (; cursor->Valid(); cursor->Next()) {
      hasher.UpdateField(cursor->key());
      hasher.UpdateField(cursor->value());
      ++out.keys;
    }
    DASH_RETURN_IF_ERROR(cursor->status());
  }
  for (int f = static_cast<int>(Family::kTenants); f < static_cast<int>(Family::kCount); ++f) {
    const Family family = static_cast<Family>(f);
    hasher.UpdateField(storage::FamilyName(family));
    auto cursor = snapshot->Scan(family, "");
    for (; cursor->Valid(); cursor->Next()) {
      hasher.UpdateField(cursor->key());
      hasher.UpdateField(cursor->value());
      ++out.keys;
    }
    DASH_RETURN_IF_ERROR(cursor->status());
  }
  out.sha256 = hasher.HexDigest();
  return out;
}

absl::Status ShardReplica::PersistEpoch(uint64_t epoch) {
  if (epoch <= meta_.epoch()) return absl::OkStatus();
  // Persisted before acting on it: after a restart the replica still refuses
  // callers of older epochs.
  storage::ShardMeta meta = meta_;
  meta.set_epoch(epoch);
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, /*sync=*/true));
  meta_ = meta;
  PublishMeta();
  return absl::OkStatus();
}

absl::Status ShardReplica::WriteEpochStart() {
  const uint64_t lsn = meta_.last_lsn() + 1;
  const uint64_t epoch = meta_.epoch();
  storage::LogPayload payload;
  payload.set_epoch_start(true);
  storage::LogRecord record;
  record.epoch = epoch;
  record.lsn = lsn;
  record.commit_time_micros =
      std::max(options_.clock->NowMicros(), meta_.last_commit_time_micros());
  record.payload = payload.SerializeAsString();
  const std::string encoded = storage::EncodeLogRecord(record);
  storage::ShardMeta meta = meta_;
  meta.set_last_lsn(lsn);
  meta.set_last_epoch(epoch);
  meta.set_last_commit_time_micros(record.commit_time_micros);
  {
    absl::MutexLock a(&ack_mu_);
    meta.set_commit_lsn(commit_lsn_);
  }
  auto ws = engine_->NewWriteSet();
  ws->Put(Family::kLog, keys::Log(lsn), encoded);
  ws->Put(Family::kUndo, keys::Log(lsn), storage::UndoRecord().SerializeAsString());
  ws->Put(Family::kMeta, keys::EpochStart(epoch), keys::EncodeU64(lsn));
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, /*sync=*/true));
  if (log_start_lsn_ == 0) log_start_lsn_ = lsn;
  meta_ = meta;
  epochs_[epoch] = lsn;
  {
    absl::MutexLock a(&ack_mu_);
    log_bytes_ += encoded.size();
    marks_.push_back(GroupMark{lsn, log_bytes_, absl::Now()});
  }
  PublishMeta();
  QueueView(lsn, {});
  return absl::OkStatus();
}

absl::Status ShardReplica::AdoptRole(const Role& role) {
  absl::MutexLock wl(&write_mu_);
  if (role.epoch < meta_.epoch()) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id, ": epoch ",
                                                      role.epoch, " is older than the adopted ",
                                                      meta_.epoch()));
  }
  DASH_RETURN_IF_ERROR(PersistEpoch(role.epoch));
  // A leader's log holds a record of its epoch before anything counts toward
  // its commit LSN (and the epoch history records where the epoch starts).
  if (role.leader && meta_.last_epoch() < role.epoch) DASH_RETURN_IF_ERROR(WriteEpochStart());
  const bool changed = role.leader != role_.leader || role.epoch != role_.epoch ||
                       role.writes_paused != role_.writes_paused ||
                       role.leader_node_id != role_.leader_node_id;
  const bool gained_leadership = role.leader && (!role_.leader || role.epoch != role_.epoch);
  const bool lost_leadership = role_.leader && !role.leader;
  role_ = role;
  {
    absl::MutexLock a(&ack_mu_);
    durable_lsn_ = meta_.last_lsn();
    quorum_nodes_.clear();
    for (const std::string& n : role.replicas) {
      if (n != role.self_node_id) quorum_nodes_.push_back(n);
    }
    quorum_ = role.replicas.size() <= 1 ? 1 : role.replicas.size() / 2 + 1;
    leading_ = role.leader;
    if (role.leader) {
      auto start = epochs_.find(role.epoch);
      epoch_start_lsn_ = start == epochs_.end() ? meta_.last_lsn() + 1 : start->second;
    }
    if (gained_leadership) {
      // Positions reported to an earlier leadership are not evidence for this
      // one. The commit LSN learned as a follower stays: it was committed.
      acked_.clear();
      marks_.clear();
      marks_.push_back(GroupMark{meta_.last_lsn(), log_bytes_, absl::Now()});
    }
  }
  if (lost_leadership) {
    ReleaseCommitted(absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id, ": this replica stopped leading (epoch ", role.epoch,
        ") before a majority acknowledged the write; its outcome is unknown: retry with the "
        "same idempotency key")));
  } else if (role.leader) {
    ReleaseCommitted();
  }
  if (changed) {
    LOG(INFO) << "shard " << options_.shard_id << ": "
              << (role.leader ? (role.writes_paused ? "leader (writes paused)" : "leader")
                              : "follower")
              << " at epoch " << role.epoch << ", leader "
              << (role.leader_node_id.empty() ? "none" : role.leader_node_id) << ", last lsn "
              << meta_.last_lsn();
  }
  absl::MutexLock l(&mu_);
  state_.epoch = meta_.epoch();
  state_.leader = role.leader;
  state_.writes_paused = role.writes_paused;
  state_.leader_node_id = role.leader_node_id;
  state_.leader_address = role.leader_address;
  return absl::OkStatus();
}

absl::StatusOr<ReplicaState> ShardReplica::Fence(uint64_t epoch) {
  {
    absl::MutexLock wl(&write_mu_);
    if (epoch < meta_.epoch()) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard_id, ": cannot fence epoch ", epoch,
                       ": the replica adopted epoch ", meta_.epoch()));
    }
    if (epoch - meta_.epoch() > kMaxFenceJump) {
      // The control plane fences at the shard's epoch + 1, and a replica
      // trails the table by a few epochs at most; an epoch far above could
      // only wedge the shard (2^64 - 1 leaves no epoch to move on to).
      return absl::InvalidArgumentError(
          absl::StrCat("epoch: ", epoch, " is more than ", kMaxFenceJump,
                       " above the epoch this replica adopted (", meta_.epoch(),
                       "); the control plane fences at the shard's epoch + 1"));
    }
    DASH_RETURN_IF_ERROR(PersistEpoch(epoch));
    if (epoch > role_.epoch) {
      const bool was_leader = role_.leader;
      role_.epoch = epoch;
      role_.leader = false;
      role_.writes_paused = false;
      role_.leader_node_id.clear();
      role_.leader_address.clear();
      {
        absl::MutexLock a(&ack_mu_);
        leading_ = false;
      }
      if (was_leader) {
        LOG(WARNING) << "shard " << options_.shard_id << ": fenced at epoch " << epoch
                     << ": no longer leading";
        ReleaseCommitted(absl::UnavailableError(absl::StrCat(
            "shard ", options_.shard_id, ": this replica was fenced (epoch ", epoch,
            ") before a majority acknowledged the write; its outcome is unknown: retry with "
            "the same idempotency key")));
      }
      absl::MutexLock l(&mu_);
      state_.leader = false;
      state_.writes_paused = false;
      state_.leader_node_id.clear();
      state_.leader_address.clear();
    }
  }
  return State();
}

void ShardReplica::SetLeaseUntil(absl::Time until) {
  absl::MutexLock a(&ack_mu_);
  lease_until_ = std::max(lease_until_, until);
}

absl::Status ShardReplica::CheckLeaderRead() const {
  if (!options_.managed) return absl::OkStatus();
  const ReplicaState state = State();
  const v1::RoutingHint h = HintOf(options_.shard_id, state);
  if (!state.leader) {
    // Between leaders (fenced, the new one not yet named) the caller retries;
    // with a leader named elsewhere it must refresh its placement.
    absl::Status st =
        state.leader_node_id.empty()
            ? absl::UnavailableError(absl::StrCat("shard ", options_.shard_id,
                                                  ": LEADER_ONLY read while this replica knows no "
                                                  "leader at epoch ",
                                                  state.epoch, " yet; retry"))
            : absl::FailedPreconditionError(
                  absl::StrCat("shard ", options_.shard_id,
                               ": LEADER_ONLY read at a replica that does not lead"));
    SetRoutingHint(st, h);
    return st;
  }
  if (state.writes_paused) {
    absl::Status st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": leadership transfer in progress; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  uint64_t epoch_start = 0;
  absl::Time lease_until;
  {
    absl::MutexLock a(&ack_mu_);
    epoch_start = epoch_start_lsn_;
    lease_until = lease_until_;
  }
  uint64_t readable = 0;
  {
    absl::MutexLock v(&view_mu_);
    readable = read_view_ == nullptr ? 0 : read_view_lsn_;
  }
  if (readable < epoch_start) {
    // Until its own epoch's first record is committed and readable, a new
    // leader's reads may miss writes the previous one acknowledged.
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id, ": the new leader has not yet committed its epoch; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  if (absl::Now() >= lease_until) {
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id,
        ": the leader's lease has run out (the control plane has not confirmed it lately); "
        "LEADER_ONLY reads wait for it; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  return absl::OkStatus();
}

std::vector<FollowerLag> ShardReplica::FollowerLags() const {
  std::vector<FollowerLag> out;
  absl::MutexLock a(&ack_mu_);
  if (!leading_) return out;
  const absl::Time now = absl::Now();
  for (const std::string& n : quorum_nodes_) {
    FollowerLag lag;
    lag.node_id = n;
    auto it = acked_.find(n);
    lag.acked_lsn = it == acked_.end() ? 0 : std::min(it->second, durable_lsn_);
    lag.lag_records = durable_lsn_ - lag.acked_lsn;
    if (lag.lag_records > 0) {
      // The first group holding a record the follower lacks.
      auto mark = std::lower_bound(marks_.begin(), marks_.end(), lag.acked_lsn + 1,
                                   [](const GroupMark& m, uint64_t lsn) { return m.lsn < lsn; });
      if (mark == marks_.end()) {
        lag.lag_seconds = 0;
      } else {
        lag.lag_seconds = absl::ToDoubleSeconds(now - mark->at);
        // Bytes of the records after the acked one (whole groups).
        const uint64_t before = mark == marks_.begin() ? 0 : std::prev(mark)->bytes;
        lag.lag_bytes = log_bytes_ - std::min(log_bytes_, before);
      }
    }
    lag.in_sync = lag.lag_records <= options_.in_sync_max_lag_records &&
                  lag.lag_seconds <= absl::ToDoubleSeconds(options_.in_sync_max_lag);
    out.push_back(std::move(lag));
  }
  return out;
}

absl::Status ShardReplica::CheckEpoch(uint64_t expected_epoch) const {
  absl::MutexLock l(&mu_);
  if (expected_epoch == 0 || expected_epoch == state_.epoch) return absl::OkStatus();
  absl::Status st =
      options_.managed && expected_epoch > state_.epoch
          ? absl::UnavailableError(absl::StrCat(
                "shard ", options_.shard_id, ": this replica has not yet adopted epoch ",
                expected_epoch, " (it is at ", state_.epoch, "); retry"))
          : absl::FailedPreconditionError(
                absl::StrCat("shard ", options_.shard_id, ": expected epoch ", expected_epoch,
                             ", this replica is at epoch ", state_.epoch));
  SetRoutingHint(st, HintOf(options_.shard_id, state_));
  return st;
}

uint64_t ShardReplica::WaitForLsn(uint64_t lsn, absl::Duration timeout, uint64_t commit_lsn) const {
  struct Arg {
    const ShardReplica* replica;
    uint64_t lsn;
    uint64_t commit_lsn;
  } arg{this, lsn, commit_lsn};
  absl::MutexLock l(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                             return a->replica->state_.last_lsn >= a->lsn ||
                                    a->replica->state_.commit_lsn > a->commit_lsn ||
                                    a->replica->stopping_;
                           },
                           &arg),
                       timeout);
  return state_.last_lsn;
}

absl::StatusOr<std::string> ShardReplica::ReadLogRecord(uint64_t lsn) const {
  auto snapshot = engine_->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kLog, keys::Log(lsn)));
  if (!raw.has_value()) {
    return absl::NotFoundError(absl::StrCat("log record ", lsn, " is not in the retained log"));
  }
  return std::move(*raw);
}

v1::CommitToken ShardReplica::ReadToken(const storage::Reader& r) const {
  v1::CommitToken t;
  t.set_shard(options_.shard_id);
  t.set_served_by(options_.node_id);
  absl::StatusOr<storage::ShardMeta> meta = LoadMeta(r);
  if (meta.ok()) {
    t.set_epoch(meta->epoch());
    t.set_lsn(meta->last_lsn());
  }
  return t;
}

absl::StatusOr<v1::ClaimRecord> ShardReplica::ReadRecord(const storage::Reader& r,
                                                         absl::string_view tenant,
                                                         const v1::Claim& claim,
                                                         bool include_evidence) const {
  v1::ClaimRecord record;
  *record.mutable_claim() = claim;
  if (!include_evidence) return record;
  const std::string prefix = keys::ClaimPrefix(tenant, claim.claim_id());
  auto ev = r.Scan(Family::kEvidence, prefix);
  for (; ev->Valid(); ev->Next()) {
    DASH_ASSIGN_OR_RETURN(*record.add_evidence(), Parse<v1::Evidence>(ev->value(), "evidence"));
  }
  DASH_RETURN_IF_ERROR(ev->status());
  auto edges = r.Scan(Family::kEdges, prefix);
  for (; edges->Valid(); edges->Next()) {
    DASH_ASSIGN_OR_RETURN(*record.add_edges(), Parse<v1::Edge>(edges->value(), "edge"));
  }
  DASH_RETURN_IF_ERROR(edges->status());
  return record;
}

absl::StatusOr<v1::GetClaimResponse> ShardReplica::GetClaim(absl::string_view tenant,
                                                            absl::string_view claim_id,
                                                            size_t evidence_page_size,
                                                            absl::string_view evidence_after,
                                                            bool* more) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, ReadView());
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("claim \"", claim_id, "\" not found in tenant \"", tenant, "\""));
  }
  DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(*raw, "claim"));
  v1::GetClaimResponse response;
  DASH_ASSIGN_OR_RETURN(*response.mutable_record(),
                        ReadRecord(*snapshot, tenant, claim, /*include_evidence=*/true));
  if (more != nullptr) *more = false;
  if (evidence_page_size > 0) {
    // Evidence comes in evidence_id order (its key order); at most 1000.
    auto* evidence = response.mutable_record()->mutable_evidence();
    int from = 0;
    while (from < evidence->size() && evidence->Get(from).evidence_id() <= evidence_after) ++from;
    const int to = std::min(evidence->size(), from + static_cast<int>(evidence_page_size));
    if (more != nullptr) *more = to < evidence->size();
    evidence->DeleteSubrange(to, evidence->size() - to);
    evidence->DeleteSubrange(0, from);
  }
  *response.mutable_read_at() = ReadToken(*snapshot);
  return response;
}

absl::StatusOr<index::CorpusStats> ShardReplica::LexicalStats(
    absl::string_view tenant, const std::vector<std::string>& terms) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, ReadView());
  return index::ReadStats(*snapshot, tenant, terms);
}

index::VectorIndex* ShardReplica::VectorsFor(const std::string& tenant) const {
  absl::MutexLock l(&vectors_mu_);
  auto it = vectors_.find(tenant);
  return it == vectors_.end() ? nullptr : it->second.get();
}

namespace {

index::Metric MetricOf(v1::VectorMetric m) {
  switch (m) {
    case v1::VECTOR_METRIC_DOT:
      return index::Metric::kDot;
    case v1::VECTOR_METRIC_L2:
      return index::Metric::kL2;
    default:
      return index::Metric::kCosine;
  }
}

}  // namespace

absl::Status ShardReplica::LoadVectors() {
  auto snapshot = engine_->NewSnapshot();
  // Per tenant: ids and rows, loaded in one batch per tenant.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<float>>> rows;
  std::map<std::string, storage::TenantState> tenants;
  auto cursor = snapshot->Scan(Family::kClaims, "");
  for (; cursor->Valid(); cursor->Next()) {
    DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(cursor->value(), "claim"));
    if (claim.embedding_size() == 0) continue;
    auto& r = rows[claim.tenant()];
    r.first.push_back(claim.claim_id());
    r.second.insert(r.second.end(), claim.embedding().begin(), claim.embedding().end());
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  size_t total = 0;
  for (auto& [tenant, r] : rows) {
    DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kTenants, keys::Tenant(tenant)));
    storage::TenantState ts;
    if (!raw.has_value() || !ts.ParseFromString(*raw) || ts.embedding_dim() == 0) {
      return absl::DataLossError(
          absl::StrCat("tenant \"", tenant, "\" has embeddings but no dimension"));
    }
    auto vi =
        std::make_unique<index::VectorIndex>(ts.embedding_dim(), MetricOf(ts.vector_metric()));
    DASH_RETURN_IF_ERROR(vi->UpsertBatch(r.first, r.second.data(), r.second.size()));
    total += r.first.size();
    absl::MutexLock l(&vectors_mu_);
    vectors_[tenant] = std::move(vi);
  }
  if (total > 0) LOG(INFO) << "shard " << options_.shard_id << ": loaded " << total << " vectors";
  return absl::OkStatus();
}

void ShardReplica::RefreshCaches(const std::vector<std::pair<std::string, std::string>>& touched) {
  if (touched.empty()) return;
  auto snapshot = engine_->NewSnapshot();
  // Per tenant: the vectors to (re)insert, applied in one batch.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<float>>> upserts;
  std::set<std::string> tenants;
  for (const auto& [tenant, claim_id] : touched) {
    tenants.insert(tenant);
    absl::StatusOr<std::optional<std::string>> raw =
        snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id));
    v1::Claim claim;
    const bool has_vector =
        raw.ok() && raw->has_value() && claim.ParseFromString(**raw) && claim.embedding_size() > 0;
    if (!has_vector) {
      if (index::VectorIndex* vi = VectorsFor(tenant)) vi->Remove(claim_id);
      continue;
    }
    auto& u = upserts[tenant];
    u.first.push_back(claim_id);
    u.second.insert(u.second.end(), claim.embedding().begin(), claim.embedding().end());
  }
  for (auto& [tenant, u] : upserts) {
    index::VectorIndex* vi = VectorsFor(tenant);
    if (vi == nullptr) {
      absl::StatusOr<std::optional<std::string>> ts_raw =
          snapshot->Get(Family::kTenants, keys::Tenant(tenant));
      storage::TenantState ts;
      if (!ts_raw.ok() || !ts_raw->has_value() || !ts.ParseFromString(**ts_raw)) continue;
      absl::MutexLock l(&vectors_mu_);
      auto& slot = vectors_[tenant];
      if (slot == nullptr) {
        slot =
            std::make_unique<index::VectorIndex>(ts.embedding_dim(), MetricOf(ts.vector_metric()));
      }
      vi = slot.get();
    }
    absl::Status st = vi->UpsertBatch(u.first, u.second.data(), u.second.size());
    if (!st.ok()) LOG(ERROR) << "vector index of \"" << tenant << "\": " << st;
  }
  for (const auto& tenant : tenants) filter_cache_.Invalidate(tenant);
}

absl::StatusOr<std::shared_ptr<const index::IdSet>> ShardReplica::Allowed(
    const storage::Reader& r, absl::string_view tenant, const query::LegRequest& request,
    uint64_t generation) const {
  const std::string key =
      absl::StrCat(request.support_only ? "S" : "A", DeterministicSerialize(request.filter));
  return filter_cache_.GetOrCompute(
      std::string(tenant), key, generation, request.bypass_filter_cache,
      [&]() -> absl::StatusOr<index::IdSet> {
        index::IdSet ids;
        const bool check_evidence =
            request.support_only || query::HasEvidenceCondition(request.filter);
        auto cursor = r.Scan(Family::kClaims, keys::TenantPrefix(tenant));
        for (; cursor->Valid(); cursor->Next()) {
          DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(cursor->value(), "claim"));
          if (!query::MatchesClaim(request.filter, claim)) continue;
          if (check_evidence) {
            bool ok = false;
            auto ev = r.Scan(Family::kEvidence, keys::ClaimPrefix(tenant, claim.claim_id()));
            for (; ev->Valid() && !ok; ev->Next()) {
              DASH_ASSIGN_OR_RETURN(v1::Evidence e, Parse<v1::Evidence>(ev->value(), "evidence"));
              ok = query::MatchesEvidence(request.filter, e) &&
                   (!request.support_only || e.stance() == v1::STANCE_SUPPORTS);
            }
            DASH_RETURN_IF_ERROR(ev->status());
            if (!ok) continue;
          }
          ids.insert(claim.claim_id());
        }
        DASH_RETURN_IF_ERROR(cursor->status());
        return ids;
      });
}

absl::StatusOr<query::LegResult> ShardReplica::RunLegs(absl::string_view tenant,
                                                       const query::LegRequest& request) const {
  const std::string tenant_s(tenant);
  // The generation is read before the snapshot (see PrefilterCache).
  const uint64_t generation = filter_cache_.Generation(tenant_s);
  DASH_ASSIGN_OR_RETURN(auto snapshot, ReadView());
  query::LegResult result;
  std::shared_ptr<const index::IdSet> allowed;
  if (!query::IsEmpty(request.filter) || request.support_only) {
    DASH_ASSIGN_OR_RETURN(allowed, Allowed(*snapshot, tenant, request, generation));
  }
  if (!request.terms.empty()) {
    DASH_ASSIGN_OR_RETURN(auto scored,
                          index::SearchBm25(*snapshot, tenant, request.terms, request.depth,
                                            request.bm25, request.stats, allowed.get()));
    for (auto& s : scored) result.lexical.push_back({std::move(s.claim_id), s.score});
  }
  if (!request.embedding.empty()) {
    index::VectorIndex* vi = VectorsFor(tenant_s);
    if (vi != nullptr) {
      if (request.embedding.size() != vi->dim()) {
        return absl::InvalidArgumentError(absl::StrCat("embedding: has ", request.embedding.size(),
                                                       " dimensions but tenant \"", tenant,
                                                       "\" uses ", vi->dim()));
      }
      index::SearchMode mode = index::SearchMode::kAuto;
      if (request.vector_mode == v1::VECTOR_SEARCH_EXACT) mode = index::SearchMode::kExact;
      if (request.vector_mode == v1::VECTOR_SEARCH_APPROXIMATE) {
        mode = index::SearchMode::kApproximate;
      }
      bool exact = false;
      // The vector index may run ahead of the snapshot by the commits that
      // happened since it was taken; hits are re-read from storage later.
      absl::StatusOr<std::vector<index::VectorHit>> hits =
          vi->Search(request.embedding.data(), request.embedding.size(), request.depth,
                     allowed.get(), mode, &exact);
      if (absl::IsInvalidArgument(hits.status())) {
        // The query's vector is what is wrong (a zero vector under cosine).
        return absl::InvalidArgumentError(absl::StrCat("embedding: ", hits.status().message()));
      }
      if (!hits.ok()) return hits.status();
      for (auto& h : *hits) result.vector.push_back({std::move(h.claim_id), h.score});
      result.vector_plan = exact ? "exact" : "approximate";
    }
  }
  result.read_at = ReadToken(*snapshot);
  return result;
}

absl::StatusOr<v1::QueryHit> ShardReplica::FetchHit(absl::string_view tenant,
                                                    absl::string_view claim_id,
                                                    const query::FetchOptions& options) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, ReadView());
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value())
    return absl::NotFoundError(absl::StrCat("claim \"", claim_id, "\" is gone"));
  v1::QueryHit hit;
  DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->mutable_claim(), Parse<v1::Claim>(*raw, "claim"));
  *hit.mutable_read_at() = ReadToken(*snapshot);
  const std::string prefix = keys::ClaimPrefix(tenant, claim_id);
  if (options.include_evidence || options.include_edges) {
    auto edges = snapshot->Scan(Family::kEdges, prefix);
    for (; edges->Valid(); edges->Next()) {
      DASH_ASSIGN_OR_RETURN(*hit.mutable_record()->add_edges(),
                            Parse<v1::Edge>(edges->value(), "edge"));
    }
    DASH_RETURN_IF_ERROR(edges->status());
  }
  const bool want_evidence = options.include_evidence || options.stance_mode != v1::STANCE_MODE_ALL;
  if (!want_evidence) return hit;

  std::vector<v1::Evidence> evidence;
  auto ev = snapshot->Scan(Family::kEvidence, prefix);
  for (; ev->Valid(); ev->Next()) {
    DASH_ASSIGN_OR_RETURN(v1::Evidence e, Parse<v1::Evidence>(ev->value(), "evidence"));
    if (Sha256Hex(e.citation().quote()) != e.citation().quote_sha256()) {
      hit.add_integrity_errors(absl::StrCat("evidence \"", e.evidence_id(),
                                            "\": quote does not match its stored SHA-256"));
      continue;
    }
    if (!query::MatchesEvidence(options.filter, e)) continue;
    evidence.push_back(std::move(e));
  }
  DASH_RETURN_IF_ERROR(ev->status());

  auto* out = hit.mutable_record()->mutable_evidence();
  if (options.stance_mode == v1::STANCE_MODE_ALL) {
    for (auto& e : evidence) *out->Add() = std::move(e);
  } else if (options.stance_mode == v1::STANCE_MODE_SUPPORT_ONLY) {
    for (auto& e : evidence) {
      if (e.stance() == v1::STANCE_SUPPORTS) *out->Add() = std::move(e);
    }
  } else {                                           // BALANCED: the strongest of each side.
    std::vector<std::vector<std::string>> analyzed;  // Each quote analyzed once.
    double total = 0;
    for (const auto& e : evidence) {
      analyzed.push_back(query::AnalyzeText(e.citation().quote()));
      total += analyzed.back().size();
    }
    const double avg = evidence.empty() ? 1 : total / evidence.size();
    const v1::Evidence* best[2] = {nullptr, nullptr};
    double best_score[2] = {0, 0};
    for (size_t i = 0; i < evidence.size(); ++i) {
      const v1::Evidence& e = evidence[i];
      const int side =
          e.stance() == v1::STANCE_SUPPORTS ? 0 : (e.stance() == v1::STANCE_CONTRADICTS ? 1 : -1);
      if (side < 0) continue;
      const double score =
          index::ScoreText(analyzed[i], options.terms, options.bm25, options.stats, avg);
      // Evidence is scanned in evidence_id order, so a tie keeps the smaller id.
      if (best[side] == nullptr || score > best_score[side]) {
        best[side] = &e;
        best_score[side] = score;
      }
    }
    for (const auto* e : best) {
      if (e != nullptr) *out->Add() = *e;
    }
  }
  return hit;
}

absl::StatusOr<ListPage> ShardReplica::ListClaims(absl::string_view tenant,
                                                  absl::string_view start_after, size_t limit,
                                                  bool include_evidence) const {
  DASH_ASSIGN_OR_RETURN(auto snapshot, ReadView());
  const std::string prefix = keys::TenantPrefix(tenant);
  // The smallest key after <tenant>\0<start_after>: ids contain no NUL.
  std::string start;
  if (!start_after.empty())
    start = absl::StrCat(keys::Claim(tenant, start_after), std::string(1, '\0'));
  ListPage page;
  auto cursor = snapshot->Scan(Family::kClaims, prefix, start);
  for (; cursor->Valid(); cursor->Next()) {
    if (page.records.size() == limit) {
      page.more = true;
      break;
    }
    DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(cursor->value(), "claim"));
    DASH_ASSIGN_OR_RETURN(v1::ClaimRecord rec,
                          ReadRecord(*snapshot, tenant, claim, include_evidence));
    page.records.push_back(std::move(rec));
  }
  DASH_RETURN_IF_ERROR(cursor->status());
  page.read_at = ReadToken(*snapshot);
  return page;
}

}  // namespace dash::shard
