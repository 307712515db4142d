#include "node/shard/shard_replica.h"

#include <algorithm>
#include <map>
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
  snapshot.reset();
  if (meta.index_format() < kIndexFormat) DASH_RETURN_IF_ERROR(MigrateIndex(*engine, meta));
  auto replica = std::unique_ptr<ShardReplica>(new ShardReplica(options, std::move(engine), meta));
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
  state_ = ReplicaState{meta.shard_id(), meta.epoch(), meta.last_lsn(), log_start_lsn_};
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
  absl::Status valid = ValidateBatch(request, options_.limits);
  if (valid.ok()) {
    absl::StatusOr<uint32_t> shard = ShardOfBatch(request, options_.shard_count);
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
      mu_.Await(absl::Condition(
          +[](ShardReplica* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
            return r->stopping_ || !r->pending_.empty();
          },
          this));
      stop = stopping_;
      while (!pending_.empty() && (stop || group.size() < options_.max_group_writes)) {
        group.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    if (stop) {
      for (auto& p : group) p.done(absl::UnavailableError("shard replica is shutting down"));
      return;
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
  bool wrote = false;

  auto token = [&](uint64_t ep, uint64_t lsn) {
    v1::CommitToken t;
    t.set_shard(options_.shard_id);
    t.set_epoch(ep);
    t.set_lsn(lsn);
    return t;
  };

  for (Pending& p : group) {
    const v1::WriteRequest& req = p.request;
    if (req.expected_epoch() != 0 && req.expected_epoch() != epoch) {
      absl::Status st = absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard_id, ": expected epoch ", req.expected_epoch(),
                       ", current ", epoch));
      v1::RoutingHint hint;
      hint.set_shard(options_.shard_id);
      hint.set_current_epoch(epoch);
      SetRoutingHint(st, hint);
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

    ws->SetSavePoint();
    absl::Status st = ApplyBatch(payload, CommitPoint{epoch, next_lsn, commit_micros}, ws.get());
    if (!st.ok()) {
      ws->RollbackToSavePoint();
      p.done(st);
      continue;
    }
    ws->PopSavePoint();
    storage::LogRecord record;
    record.epoch = epoch;
    record.lsn = next_lsn;
    record.commit_time_micros = commit_micros;
    record.payload = payload.SerializeAsString();
    ws->Put(Family::kLog, keys::Log(next_lsn), storage::EncodeLogRecord(record));
    staged.push_back(
        {std::move(p.done), WriteResult{token(epoch, next_lsn), commit_micros, false}});
    ++next_lsn;
    wrote = true;
  }

  absl::Status committed = absl::OkStatus();
  if (wrote) {
    storage::ShardMeta meta = meta_;
    meta.set_last_lsn(next_lsn - 1);
    meta.set_last_commit_time_micros(commit_micros);
    ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
    committed = engine_->Commit(*ws, options_.sync);
    if (committed.ok()) {
      if (log_start_lsn_ == 0) log_start_lsn_ = meta_.last_lsn() + 1;
      meta_ = meta;
      absl::MutexLock l(&mu_);
      state_.last_lsn = meta.last_lsn();
      state_.log_start_lsn = log_start_lsn_;
    } else {
      LOG(ERROR) << "shard " << options_.shard_id << ": commit failed: " << committed;
      committed = absl::UnavailableError(absl::StrCat("commit failed: ", committed.message()));
    }
  }
  // Truncation (rare: a step every 1/8 of the retention window) happens before
  // the acknowledgements so that State() seen by a client is never behind it.
  if (committed.ok() && wrote) MaybeTruncateLog();
  for (Staged& s : staged) {
    if (committed.ok()) {
      s.done(std::move(s.result));
    } else {
      s.done(committed);
    }
  }
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
  DASH_ASSIGN_OR_RETURN(storage::LogRecord record, storage::DecodeLogRecord(encoded));
  DASH_ASSIGN_OR_RETURN(storage::LogPayload payload,
                        Parse<storage::LogPayload>(record.payload, "log payload"));
  absl::MutexLock wl(&write_mu_);
  if (record.lsn != meta_.last_lsn() + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "log record lsn ", record.lsn, " does not follow last lsn ", meta_.last_lsn()));
  }
  if (record.epoch < meta_.epoch()) {
    return absl::FailedPreconditionError(
        absl::StrCat("log record epoch ", record.epoch, " is older than epoch ", meta_.epoch()));
  }
  auto ws = engine_->NewWriteSet();
  DASH_RETURN_IF_ERROR(ApplyBatch(
      payload, CommitPoint{record.epoch, record.lsn, record.commit_time_micros}, ws.get()));
  ws->Put(Family::kLog, keys::Log(record.lsn), encoded);
  storage::ShardMeta meta = meta_;
  meta.set_epoch(record.epoch);
  meta.set_last_lsn(record.lsn);
  meta.set_last_commit_time_micros(
      std::max(meta_.last_commit_time_micros(), record.commit_time_micros));
  ws->Put(Family::kMeta, keys::kShardMetaKey, meta.SerializeAsString());
  DASH_RETURN_IF_ERROR(engine_->Commit(*ws, options_.sync));
  if (log_start_lsn_ == 0) log_start_lsn_ = record.lsn;
  meta_ = meta;
  {
    absl::MutexLock l(&mu_);
    state_.epoch = meta.epoch();
    state_.last_lsn = meta.last_lsn();
    state_.log_start_lsn = log_start_lsn_;
  }
  MaybeTruncateLog();
  return absl::OkStatus();
}

ReplicaState ShardReplica::State() const {
  absl::MutexLock l(&mu_);
  return state_;
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
                                                            absl::string_view claim_id) const {
  auto snapshot = engine_->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(auto raw, snapshot->Get(Family::kClaims, keys::Claim(tenant, claim_id)));
  if (!raw.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("claim \"", claim_id, "\" not found in tenant \"", tenant, "\""));
  }
  DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(*raw, "claim"));
  v1::GetClaimResponse response;
  DASH_ASSIGN_OR_RETURN(*response.mutable_record(),
                        ReadRecord(*snapshot, tenant, claim, /*include_evidence=*/true));
  *response.mutable_read_at() = ReadToken(*snapshot);
  return response;
}

absl::StatusOr<index::CorpusStats> ShardReplica::LexicalStats(
    absl::string_view tenant, const std::vector<std::string>& terms) const {
  auto snapshot = engine_->NewSnapshot();
  return index::ReadStats(*snapshot, tenant, terms);
}

absl::StatusOr<SearchPage> ShardReplica::SearchLexical(absl::string_view tenant,
                                                       const std::vector<std::string>& terms,
                                                       size_t k, const index::Bm25Params& params,
                                                       const index::CorpusStats& stats,
                                                       bool include_evidence) const {
  auto snapshot = engine_->NewSnapshot();
  DASH_ASSIGN_OR_RETURN(auto scored, index::SearchBm25(*snapshot, tenant, terms, k, params, stats));
  SearchPage page;
  for (const auto& s : scored) {
    DASH_ASSIGN_OR_RETURN(auto raw,
                          snapshot->Get(Family::kClaims, keys::Claim(tenant, s.claim_id)));
    if (!raw.has_value()) {
      return absl::DataLossError(
          absl::StrCat("index names claim \"", s.claim_id, "\" which is absent"));
    }
    DASH_ASSIGN_OR_RETURN(v1::Claim claim, Parse<v1::Claim>(*raw, "claim"));
    DASH_ASSIGN_OR_RETURN(v1::ClaimRecord rec,
                          ReadRecord(*snapshot, tenant, claim, include_evidence));
    page.hits.push_back(SearchHit{std::move(rec), s.score});
  }
  page.read_at = ReadToken(*snapshot);
  return page;
}

absl::StatusOr<ListPage> ShardReplica::ListClaims(absl::string_view tenant,
                                                  absl::string_view start_after, size_t limit,
                                                  bool include_evidence) const {
  auto snapshot = engine_->NewSnapshot();
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
