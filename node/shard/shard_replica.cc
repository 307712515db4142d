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
#include "node/shard/index_migration.h"
#include "node/shard/undo_capture.h"
#include "node/storage/keys.h"
#include "node/storage/log_record.h"

namespace dash::shard {
namespace {

// How far above its adopted epoch a replica may be fenced (see Fence).
constexpr uint64_t kMaxFenceJump = 1000;

using storage::Family;
namespace keys = storage::keys;

std::string BatchDigest(const v1::WriteRequest& request) {
  storage::LogPayload p;
  p.set_tenant(request.tenant());
  *p.mutable_ops() = request.ops();
  p.set_vector_metric(request.vector_metric());
  return Sha256(DeterministicSerialize(p));
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

// What a replica knows to be committed when it opens: a standalone replica is
// its own majority; a managed one knows what was committed when it last
// wrote its metadata, and learns the rest from its leader (or by leading).
uint64_t CommittedAtOpen(const ReplicaOptions& options, const storage::ShardMeta& meta) {
  return std::min(options.managed ? meta.commit_lsn() : meta.last_lsn(), meta.last_lsn());
}

replication::QuorumOptions QuorumOptionsOf(const ReplicaOptions& options) {
  replication::QuorumOptions q;
  q.shard_id = options.shard_id;
  q.commit_timeout = options.commit_timeout;
  q.ack_leader_only = options.ack_leader_only;
  q.in_sync_max_lag_records = options.in_sync_max_lag_records;
  q.in_sync_max_lag = options.in_sync_max_lag;
  return q;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardReplica>> ShardReplica::Open(const ReplicaOptions& options) {
  if (options.shard_count == 0 || options.shard_id >= options.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options.shard_id, " is not below the shard count ", options.shard_count));
  }
  DASH_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksEngine(options.dir, options.engine));
  DASH_ASSIGN_OR_RETURN(ReplicaLog log,
                        ReplicaLog::Open(engine.get(), options.shard_id, options.shard_count,
                                         options.dir, kIndexFormat));
  if (log.meta().index_format() < kIndexFormat) {
    DASH_ASSIGN_OR_RETURN(storage::ShardMeta migrated, MigrateIndex(*engine, log.meta()));
    log.AdoptMeta(migrated);
  }
  const storage::ShardMeta meta = log.meta();
  auto replica =
      std::unique_ptr<ShardReplica>(new ShardReplica(options, std::move(engine), std::move(log)));
  DASH_RETURN_IF_ERROR(replica->searcher_.LoadVectors(*replica->engine_->NewSnapshot()));
  LOG(INFO) << "shard " << options.shard_id << " open at " << options.dir << ": epoch "
            << meta.epoch() << ", last lsn " << meta.last_lsn();
  return replica;
}

ShardReplica::ShardReplica(const ReplicaOptions& options, std::unique_ptr<storage::Engine> engine,
                           ReplicaLog log)
    : options_(options),
      engine_(std::move(engine)),
      reader_(options.shard_id, options.node_id),
      quorum_(QuorumOptionsOf(options), log.meta().last_lsn(), CommittedAtOpen(options, log.meta()),
              /*leading=*/!options.managed),
      views_(options.shard_id, std::shared_ptr<const storage::Reader>(engine_->NewSnapshot()),
             log.meta().last_lsn(), CommittedAtOpen(options, log.meta()) >= log.meta().last_lsn()),
      searcher_(options.shard_id, &views_, &reader_),
      log_(std::move(log)) {
  absl::MutexLock wl(&write_mu_);
  absl::MutexLock l(&mu_);
  const storage::ShardMeta& meta = log_.meta();
  const uint64_t committed = CommittedAtOpen(options, meta);
  role_.epoch = meta.epoch();
  role_.leader = !options.managed;
  state_.shard_id = meta.shard_id();
  state_.leader = role_.leader;
  state_.epoch = meta.epoch();
  state_.last_epoch = meta.last_epoch();
  state_.last_lsn = meta.last_lsn();
  state_.log_start_lsn = log_.log_start_lsn();
  state_.commit_lsn = committed;
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

absl::Status ShardReplica::Refusal(const v1::WriteRequest& req, uint64_t epoch) const {
  absl::Status st;
  if (options_.managed && req.expected_epoch() > epoch) {
    // The caller saw a newer placement than this replica has applied yet
    // (just opened, or its placement watch is a moment behind): transient.
    st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": this replica has not yet adopted epoch ",
                     req.expected_epoch(), " (it is at ", epoch, "); retry"));
  } else if (!role_.leader && options_.managed && role_.leader_node_id.empty()) {
    // No role adopted yet (just opened), or the shard has no leader now:
    // both pass; the caller retries.
    st = absl::UnavailableError(absl::StrCat("shard ", options_.shard_id,
                                             ": this replica knows no leader at epoch ", epoch,
                                             " yet; retry"));
  } else if (!role_.leader) {
    st = absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard_id, ": this replica is a follower at epoch ", epoch,
        role_.leader_node_id.empty() ? "; the shard has no leader"
                                     : absl::StrCat("; the leader is ", role_.leader_node_id)));
  } else if (role_.writes_paused) {
    st = absl::UnavailableError(
        absl::StrCat("shard ", options_.shard_id, ": leadership transfer in progress; retry"));
  } else if (req.expected_epoch() != 0 && req.expected_epoch() != epoch) {
    st =
        absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id, ": expected epoch ",
                                                   req.expected_epoch(), ", current ", epoch));
  } else {
    return absl::OkStatus();
  }
  v1::RoutingHint h;
  h.set_shard(options_.shard_id);
  h.set_current_epoch(epoch);
  h.set_leader_node_id(role_.leader_node_id);
  h.set_leader_address(role_.leader_address);
  SetRoutingHint(st, h);
  return st;
}

void ShardReplica::CommitGroup(std::vector<Pending> group) {
  auto ws = engine_->NewWriteSet();
  LogAppend append = log_.BeginAppend(ws.get());
  const uint64_t epoch = log_.meta().epoch();
  const int64_t commit_micros =
      std::max(options_.clock->NowMicros(), log_.meta().last_commit_time_micros());
  struct Staged {
    WriteDone done;
    WriteResult result;
  };
  std::vector<Staged> staged;
  std::vector<std::pair<std::string, std::string>> touched;  // (tenant, claim id)

  auto token = [&](uint64_t ep, uint64_t lsn) {
    v1::CommitToken t;
    t.set_shard(options_.shard_id);
    t.set_epoch(ep);
    t.set_lsn(lsn);
    return t;
  };

  for (Pending& p : group) {
    const v1::WriteRequest& req = p.request;
    if (absl::Status refused = Refusal(req, epoch); !refused.ok()) {
      p.done(refused);
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
            ParseStored<storage::IdempotencyRecord>(**prior, "idempotency record");
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

    const uint64_t lsn = append.last_lsn() + 1;
    ws->SetSavePoint();
    std::vector<std::string> claims;
    UndoCapture undo(ws.get());
    absl::Status st = ApplyBatch(payload, CommitPoint{epoch, lsn, commit_micros}, &undo, &claims);
    if (st.ok()) st = undo.status();
    if (st.ok()) st = CheckClaimLimits(payload, claims, options_.limits, ws.get());
    if (!st.ok()) {
      ws->RollbackToSavePoint();
      p.done(st);
      continue;
    }
    ws->PopSavePoint();
    for (auto& c : claims) touched.emplace_back(req.tenant(), std::move(c));
    storage::LogRecord record;
    record.epoch = epoch;
    record.lsn = lsn;
    record.commit_time_micros = commit_micros;
    record.payload = payload.SerializeAsString();
    append.Add(record, storage::EncodeLogRecord(record), undo.Encoded());
    staged.push_back({std::move(p.done), WriteResult{token(epoch, lsn), commit_micros, false}});
  }

  if (!append.empty()) {
    log_.Seal(&append, quorum_.commit_lsn());
    absl::Status committed = engine_->Commit(*ws, options_.sync);
    if (!committed.ok()) {
      LOG(ERROR) << "shard " << options_.shard_id << ": commit failed: " << committed;
      committed = absl::UnavailableError(absl::StrCat("commit failed: ", committed.message()));
      for (Staged& s : staged) s.done(committed);
      return;
    }
    log_.Committed(append);
    quorum_.RecordGroup(append.last_lsn(), append.bytes());
    // Before the acknowledgements, so that State() seen by a client is never
    // behind the log's retention.
    AfterCommit(touched, TenantsOf(touched));
  }
  // Durable here; answered once a majority of the replicas hold it.
  for (Staged& s : staged) {
    const uint64_t lsn = s.result.token.lsn();  // Read before the result moves.
    quorum_.Await(lsn, [done = std::move(s.done), result = std::move(s.result)](absl::Status st) {
      if (st.ok()) {
        done(result);
      } else {
        done(st);
      }
    });
  }
  ReleaseCommitted();
}

void ShardReplica::AfterCommit(const std::vector<std::pair<std::string, std::string>>& touched,
                               std::set<std::string> tenants) {
  log_.MaybeTruncate(options_.log_retention_records);
  log_.MaybeDropUndo(quorum_.commit_lsn());
  PublishLog();
  std::shared_ptr<const storage::Reader> now(engine_->NewSnapshot());
  searcher_.Refresh(*now, touched);
  views_.Queue(log_.meta().last_lsn(), std::move(now), std::move(tenants));
  AdvanceReadView();
}

void ShardReplica::PublishLog() {
  quorum_.SetDurable(log_.meta().last_lsn());
  absl::MutexLock l(&mu_);
  state_.epoch = log_.meta().epoch();
  state_.last_lsn = log_.meta().last_lsn();
  state_.last_epoch = log_.meta().last_epoch();
  state_.log_start_lsn = log_.log_start_lsn();
}

void ShardReplica::ReleaseCommitted(const absl::Status& fail_all) {
  replication::QuorumTracker::Released released = quorum_.Release(fail_all);
  {
    absl::MutexLock l(&mu_);
    state_.commit_lsn = std::max(state_.commit_lsn, released.commit_lsn);
  }
  // Readable before answered: a client reads its acknowledged write.
  AdvanceReadView();
  for (auto& [done, status] : released.answers) done(status);
}

void ShardReplica::AdvanceReadView() {
  ReadViews::Advanced advanced = views_.Advance(quorum_.commit_lsn());
  if (!advanced.moved) return;
  // After the view moved (see PrefilterCache): a result computed on the old
  // view is stored under an outdated generation.
  searcher_.InvalidateFilters(advanced.tenants);
  absl::MutexLock l(&mu_);
  state_.read_lsn = std::max(state_.read_lsn, advanced.read_lsn);
  state_.readable = true;
}

void ShardReplica::OnLeaderCommit(uint64_t commit_lsn) {
  std::optional<uint64_t> now_committed = quorum_.OnLeaderCommit(commit_lsn);
  if (!now_committed.has_value()) return;
  {
    absl::MutexLock l(&mu_);
    state_.commit_lsn = std::max(state_.commit_lsn, *now_committed);
  }
  AdvanceReadView();
}

void ShardReplica::OnFollowerAck(const std::string& follower, uint64_t durable_lsn) {
  quorum_.OnFollowerAck(follower, durable_lsn);
  ReleaseCommitted();
}

absl::Status ShardReplica::ApplyEncodedRecord(absl::string_view encoded) {
  return ApplyEncodedRecords({std::string(encoded)});
}

absl::Status ShardReplica::ApplyEncodedRecords(const std::vector<std::string>& encoded,
                                               uint64_t stream_epoch) {
  if (encoded.empty()) return absl::OkStatus();
  absl::MutexLock wl(&write_mu_);
  if (stream_epoch != 0 && log_.meta().epoch() != stream_epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard_id, ": fenced: the replica adopted epoch ", log_.meta().epoch(),
        ", the records come from the leader of epoch ", stream_epoch));
  }
  auto ws = engine_->NewWriteSet();
  LogAppend append = log_.BeginAppend(ws.get());
  std::vector<std::pair<std::string, std::string>> touched;
  for (const std::string& one : encoded) {
    DASH_ASSIGN_OR_RETURN(storage::LogRecord record, storage::DecodeLogRecord(one));
    DASH_ASSIGN_OR_RETURN(storage::LogPayload payload,
                          ParseStored<storage::LogPayload>(record.payload, "log payload"));
    if (record.lsn != append.last_lsn() + 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "log record lsn ", record.lsn, " does not follow last lsn ", append.last_lsn()));
    }
    if (record.epoch < append.last_epoch()) {
      return absl::FailedPreconditionError(absl::StrCat("log record epoch ", record.epoch,
                                                        " is older than the last record's epoch ",
                                                        append.last_epoch()));
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
    append.Add(record, one, undo.Encoded());
  }
  log_.Seal(&append, quorum_.commit_lsn());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, options_.sync));
  log_.Committed(append);
  if (role_.epoch < log_.meta().epoch()) role_.epoch = log_.meta().epoch();
  AfterCommit(touched, TenantsOf(touched));
  // A standalone replica replaying records is its own majority.
  ReleaseCommitted();
  return absl::OkStatus();
}

absl::Status ShardReplica::TruncateLogAfter(uint64_t lsn) {
  absl::MutexLock wl(&write_mu_);
  if (lsn >= log_.meta().last_lsn()) return absl::OkStatus();
  if (role_.leader) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard_id, ": a leader's log is not truncated"));
  }
  std::vector<std::pair<std::string, std::string>> touched;
  DASH_RETURN_IF_ERROR(log_.TruncateAfter(lsn, quorum_.commit_lsn(), &touched));
  // The dropped views also covered kept records: their tenants' filter
  // caches must be invalidated when the new view becomes readable.
  std::set<std::string> tenants = TenantsOf(touched);
  std::set<std::string> dropped = views_.DropFrom(lsn);
  tenants.insert(dropped.begin(), dropped.end());
  AfterCommit(touched, std::move(tenants));
  return absl::OkStatus();
}

std::map<uint64_t, uint64_t> ShardReplica::EpochHistory() const {
  absl::MutexLock wl(&write_mu_);
  return log_.epochs();
}

std::pair<uint64_t, uint64_t> ShardReplica::EpochEndOffset(uint64_t requested_epoch) const {
  absl::MutexLock wl(&write_mu_);
  return log_.EpochEndOffset(requested_epoch);
}

uint64_t ShardReplica::DivergencePoint(uint64_t leader_epoch, uint64_t leader_end_lsn) const {
  absl::MutexLock wl(&write_mu_);
  return log_.DivergencePoint(leader_epoch, leader_end_lsn);
}

absl::StatusOr<std::string> ShardReplica::ReadLogRecord(uint64_t lsn) const {
  return ReplicaLog::ReadRecord(*engine_, lsn);
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> ShardReplica::CreateCheckpoint(
    const std::string& dir) {
  absl::MutexLock wl(&write_mu_);
  DASH_RETURN_IF_ERROR(engine_->CreateCheckpoint(dir));
  return std::make_pair(log_.meta().last_lsn(), log_.meta().last_epoch());
}

ReplicaState ShardReplica::State() const {
  absl::MutexLock l(&mu_);
  return state_;
}

absl::StatusOr<StateChecksum> ShardReplica::Checksum() const {
  auto snapshot = engine_->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(storage::ShardMeta meta, ReplicaLog::MetaOf(*snapshot));
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

absl::Status ShardReplica::WriteEpochStart() {
  const storage::ShardMeta& meta = log_.meta();
  storage::LogPayload payload;
  payload.set_epoch_start(true);
  storage::LogRecord record;
  record.epoch = meta.epoch();
  record.lsn = meta.last_lsn() + 1;
  record.commit_time_micros = std::max(options_.clock->NowMicros(), meta.last_commit_time_micros());
  record.payload = payload.SerializeAsString();
  auto ws = engine_->NewWriteSet();
  LogAppend append = log_.BeginAppend(ws.get());
  append.Add(record, storage::EncodeLogRecord(record), storage::UndoRecord().SerializeAsString());
  log_.Seal(&append, quorum_.commit_lsn());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, /*sync=*/true));
  log_.Committed(append);
  quorum_.RecordGroup(record.lsn, append.bytes());
  AfterCommit({}, {});
  return absl::OkStatus();
}

absl::Status ShardReplica::AdoptRole(const Role& role) {
  absl::MutexLock wl(&write_mu_);
  if (role.epoch < log_.meta().epoch()) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", options_.shard_id, ": epoch ",
                                                      role.epoch, " is older than the adopted ",
                                                      log_.meta().epoch()));
  }
  DASH_RETURN_IF_ERROR(log_.PersistEpoch(role.epoch));
  PublishLog();
  // A leader's log holds a record of its epoch before anything counts toward
  // its commit LSN (and the epoch history records where the epoch starts).
  if (role.leader && log_.meta().last_epoch() < role.epoch) DASH_RETURN_IF_ERROR(WriteEpochStart());
  const bool changed = role.leader != role_.leader || role.epoch != role_.epoch ||
                       role.writes_paused != role_.writes_paused ||
                       role.leader_node_id != role_.leader_node_id;
  const bool gained_leadership = role.leader && (!role_.leader || role.epoch != role_.epoch);
  const bool lost_leadership = role_.leader && !role.leader;
  role_ = role;
  uint64_t epoch_start = 0;
  if (role.leader) {
    auto start = log_.epochs().find(role.epoch);
    epoch_start = start == log_.epochs().end() ? log_.meta().last_lsn() + 1 : start->second;
  }
  quorum_.SetRole(role.leader, role.replicas, role.self_node_id, epoch_start, gained_leadership);
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
              << log_.meta().last_lsn();
  }
  absl::MutexLock l(&mu_);
  state_.epoch = log_.meta().epoch();
  state_.leader = role.leader;
  state_.writes_paused = role.writes_paused;
  state_.leader_node_id = role.leader_node_id;
  state_.leader_address = role.leader_address;
  return absl::OkStatus();
}

absl::StatusOr<ReplicaState> ShardReplica::Fence(uint64_t epoch) {
  {
    absl::MutexLock wl(&write_mu_);
    if (epoch < log_.meta().epoch()) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard_id, ": cannot fence epoch ", epoch,
                       ": the replica adopted epoch ", log_.meta().epoch()));
    }
    if (epoch - log_.meta().epoch() > kMaxFenceJump) {
      // The control plane fences at the shard's epoch + 1, and a replica
      // trails the table by a few epochs at most; an epoch far above could
      // only wedge the shard (2^64 - 1 leaves no epoch to move on to).
      return absl::InvalidArgumentError(
          absl::StrCat("epoch: ", epoch, " is more than ", kMaxFenceJump,
                       " above the epoch this replica adopted (", log_.meta().epoch(),
                       "); the control plane fences at the shard's epoch + 1"));
    }
    DASH_RETURN_IF_ERROR(log_.PersistEpoch(epoch));
    PublishLog();
    if (epoch > role_.epoch) {
      const bool was_leader = role_.leader;
      role_.epoch = epoch;
      role_.leader = false;
      role_.writes_paused = false;
      role_.leader_node_id.clear();
      role_.leader_address.clear();
      quorum_.StopLeading();
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

void ShardReplica::SetLeaseUntil(absl::Time until) { quorum_.ExtendLease(until); }

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
  if (views_.ReadableLsn() < quorum_.epoch_start_lsn()) {
    // Until its own epoch's first record is committed and readable, a new
    // leader's reads may miss writes the previous one acknowledged.
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id, ": the new leader has not yet committed its epoch; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  if (!quorum_.LeaseValid()) {
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", options_.shard_id,
        ": the leader's lease has run out (the control plane has not confirmed it lately); "
        "LEADER_ONLY reads wait for it; retry"));
    SetRoutingHint(st, h);
    return st;
  }
  return absl::OkStatus();
}

std::vector<FollowerLag> ShardReplica::FollowerLags() const { return quorum_.FollowerLags(); }

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

absl::StatusOr<v1::GetClaimResponse> ShardReplica::GetClaim(absl::string_view tenant,
                                                            absl::string_view claim_id,
                                                            size_t evidence_page_size,
                                                            absl::string_view evidence_after,
                                                            bool* more) const {
  DASH_ASSIGN_OR_RETURN(auto view, views_.Current());
  return reader_.GetClaim(*view, tenant, claim_id, evidence_page_size, evidence_after, more);
}

absl::StatusOr<ListPage> ShardReplica::ListClaims(absl::string_view tenant,
                                                  absl::string_view start_after, size_t limit,
                                                  bool include_evidence) const {
  DASH_ASSIGN_OR_RETURN(auto view, views_.Current());
  return reader_.ListClaims(*view, tenant, start_after, limit, include_evidence);
}

absl::StatusOr<index::CorpusStats> ShardReplica::LexicalStats(
    absl::string_view tenant, const std::vector<std::string>& terms) const {
  return searcher_.Stats(tenant, terms);
}

absl::StatusOr<query::LegResult> ShardReplica::RunLegs(absl::string_view tenant,
                                                       const query::LegRequest& request) const {
  return searcher_.RunLegs(tenant, request);
}

absl::StatusOr<v1::QueryHit> ShardReplica::FetchHit(absl::string_view tenant,
                                                    absl::string_view claim_id,
                                                    const query::FetchOptions& options) const {
  return searcher_.FetchHit(tenant, claim_id, options);
}

}  // namespace dash::shard
