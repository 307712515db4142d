#include "node/shard/shard_replica.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/metrics.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "common/sync_point.h"
#include "glog/logging.h"
#include "node/shard/batch_applier.h"
#include "node/shard/index_migration.h"
#include "node/shard/undo_capture.h"
#include "node/storage/keys.h"
#include "node/storage/log_record.h"

namespace dash::shard {
namespace {

using storage::Family;
namespace keys = storage::keys;

// The ops are lent to the payload for the serialization, not copied.
std::string BatchDigest(v1::WriteRequest& request) {
  storage::LogPayload p;
  p.set_tenant(request.tenant());
  p.mutable_ops()->Swap(request.mutable_ops());
  p.set_vector_metric(request.vector_metric());
  std::string digest = Sha256(DeterministicSerialize(p));
  p.mutable_ops()->Swap(request.mutable_ops());
  return digest;
}

ReadViews::Touched TouchedOf(const std::vector<std::pair<std::string, std::string>>& claims) {
  ReadViews::Touched touched;
  for (const auto& [tenant, claim_id] : claims) touched[tenant].insert(claim_id);
  return touched;
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
  return Open(options, std::move(engine));
}

absl::StatusOr<std::unique_ptr<ShardReplica>> ShardReplica::Open(
    const ReplicaOptions& options, std::unique_ptr<storage::Engine> engine) {
  if (options.shard_count == 0 || options.shard_id >= options.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options.shard_id, " is not below the shard count ", options.shard_count));
  }
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
  ShardSearcher::LexicalOpen lexical;
  lexical.engine = replica->engine_.get();
  lexical.dir = options.dir + "/lexical";
  lexical.last_lsn = meta.last_lsn();
  lexical.log_start_lsn = replica->log_.log_start_lsn();
  lexical.committed_lsn = [r = replica.get()] { return r->quorum_.commit_lsn(); };
  lexical.vector_graph_min_rows = options.vector_graph_min_rows;
  DASH_RETURN_IF_ERROR(replica->searcher_.OpenLexical(lexical));
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
  // Analysis is the costliest step of indexing: done here, on the writer's
  // thread, it does not hold up the commit thread (and so other writers).
  auto analyzed = std::make_unique<index::AnalyzedTexts>();
  for (const v1::WriteOp& op : request.ops()) {
    if (op.has_claim()) analyzed->Add(op.claim().text());
    if (op.has_evidence()) analyzed->Add(op.evidence().citation().quote());
  }
  absl::Status rejected;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) {
      rejected = absl::UnavailableError("shard replica is shutting down");
    } else if (pending_.size() >= options_.max_pending_writes) {
      rejected = absl::ResourceExhaustedError(
          absl::StrCat("shard ", options_.shard_id, ": write queue is full; retry with backoff"));
    } else {
      pending_.push_back(
          Pending{std::move(request), std::move(digest), std::move(done), std::move(analyzed)});
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

namespace {

// The group commit's series (common/metrics.h), over every shard of the node.
struct CommitMetrics {
  prometheus::Histogram& group_batches = metrics::Histogram(
      "dash_commit_group_batches",
      "Write batches committed together by one group commit (one RocksDB write and sync)",
      {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
  prometheus::Histogram& commit_seconds = metrics::Histogram(
      "dash_commit_seconds", "Time of one group commit's RocksDB write, its sync included",
      metrics::LatencyBuckets());
  prometheus::Counter& replays =
      metrics::Counter("dash_idempotent_replays_total",
                       "Write batches answered from their idempotency record, not applied again");
};

CommitMetrics& Commits() {
  static CommitMetrics* const m = new CommitMetrics();
  return *m;
}

}  // namespace

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
    v1::WriteRequest& req = p.request;
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
          Commits().replays.Increment();
          staged.push_back(
              {std::move(p.done), WriteResult{token(rec->epoch(), rec->lsn()),
                                              rec->commit_time_micros(), /*replayed=*/true}});
        }
        continue;
      }
    }
    storage::LogPayload payload;
    payload.set_tenant(req.tenant());
    payload.mutable_ops()->Swap(req.mutable_ops());  // Its ops are not read again.
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
    DASH_SYNC_POINT("ShardReplica::CommitGroup:BeforeCommit");
    const absl::Time commit_start = absl::Now();
    absl::Status committed = engine_->Commit(*ws, options_.sync);
    Commits().commit_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - commit_start));
    Commits().group_batches.Observe(static_cast<double>(group.size()));
    if (!committed.ok()) {
      LOG(ERROR) << "shard " << options_.shard_id << ": commit failed: " << committed;
      committed = absl::UnavailableError(absl::StrCat("commit failed: ", committed.message()));
      for (Staged& s : staged) s.done(committed);
      return;
    }
    log_.Committed(append);
    DASH_SYNC_POINT("ShardReplica::CommitGroup:Committed");
    quorum_.RecordGroup(append.last_lsn(), append.bytes());
    // Before the acknowledgements, so that State() seen by a client is never
    // behind the log's retention.
    std::vector<const index::AnalyzedTexts*> ahead;
    for (const Pending& p : group) {
      if (p.analyzed != nullptr) ahead.push_back(p.analyzed.get());
    }
    AfterCommit(touched, TouchedOf(touched), ahead);
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
  DASH_SYNC_POINT("ShardReplica::CommitGroup:Released");
}

void ShardReplica::AfterCommit(const std::vector<std::pair<std::string, std::string>>& touched,
                               ReadViews::Touched changed,
                               const std::vector<const index::AnalyzedTexts*>& ahead) {
  log_.MaybeTruncate(options_.log_retention_records);
  log_.MaybeDropUndo(quorum_.commit_lsn());
  PublishLog();
  std::shared_ptr<const storage::Reader> now(engine_->NewSnapshot());
  searcher_.Refresh(*now, touched, log_.meta().last_lsn(), ahead);
  views_.Queue(log_.meta().last_lsn(), std::move(now), std::move(changed));
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
  // The filter cache's bump happens before any reader can take the new view
  // (see PrefilterCache and ReadViews::Advance): a result computed on the old
  // view is stored under an outdated generation, and bumps follow the views'
  // order, as patching needs.
  ReadViews::Advanced advanced = views_.Advance(
      quorum_.commit_lsn(),
      [this](const ReadViews::Touched& touched) { searcher_.InvalidateFilters(touched); });
  if (!advanced.moved) return;
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
  DASH_SYNC_POINT("ShardReplica::ApplyEncodedRecords:BeforeCommit");
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, options_.sync));
  log_.Committed(append);
  DASH_SYNC_POINT("ShardReplica::ApplyEncodedRecords:Committed");
  if (role_.epoch < log_.meta().epoch()) role_.epoch = log_.meta().epoch();
  AfterCommit(touched, TouchedOf(touched));
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
  // The index forgets the dropped records; AfterCommit re-reads what they
  // touched at `lsn`, and what the index changed.
  for (auto& key : searcher_.TruncateIndex(lsn)) touched.push_back(std::move(key));
  // The dropped views also covered kept records, which are not known claim
  // by claim: their tenants' filter caches must be invalidated whole when
  // the new view becomes readable.
  ReadViews::Touched changed = TouchedOf(touched);
  for (const std::string& tenant : views_.DropFrom(lsn)) changed[tenant].clear();
  AfterCommit(touched, std::move(changed));
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
  // Most of the memtables go to table files first, with writes going on: the
  // checkpoint below, which holds writes between two commits so that its log
  // end is known, then flushes only what came since.
  DASH_RETURN_IF_ERROR(engine_->Flush());
  absl::MutexLock wl(&write_mu_);
  DASH_RETURN_IF_ERROR(engine_->CreateCheckpoint(dir));
  return std::make_pair(log_.meta().last_lsn(), log_.meta().last_epoch());
}

ReplicaState ShardReplica::State() const {
  absl::MutexLock l(&mu_);
  return state_;
}

absl::StatusOr<StateChecksum> ShardReplica::Checksum() const {
  return ChecksumOf(*engine_->NewSnapshot());
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

std::vector<FollowerLag> ShardReplica::FollowerLags() const { return quorum_.FollowerLags(); }

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

absl::StatusOr<std::map<std::string, v1::QueryHit>> ShardReplica::FetchHits(
    absl::string_view tenant, const std::vector<std::string>& claim_ids,
    const query::FetchOptions& options) const {
  return searcher_.FetchHits(tenant, claim_ids, options);
}

}  // namespace dash::shard
