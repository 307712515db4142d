#include "node/shard/shard_host.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "glog/logging.h"
#include "node/shard/local_shard_target.h"
#include "node/storage/file_util.h"
#include "query/analyzer.h"
#include "query/batch_validator.h"
#include "query/filter.h"
#include "query/fusion.h"
#include "query/page_merge.h"
#include "query/query_codec.h"
#include "query/query_runner.h"

namespace dash::shard {

v1::FollowerLag ToProto(const FollowerLag& lag) {
  v1::FollowerLag out;
  out.set_node_id(lag.node_id);
  out.set_acked_lsn(lag.acked_lsn);
  out.set_lag_records(lag.lag_records);
  out.set_lag_bytes(lag.lag_bytes);
  out.set_lag_seconds(lag.lag_seconds);
  out.set_in_sync(lag.in_sync);
  return out;
}
namespace {
using query::kMaxPageSize;

// Makes the renames inside `dir` durable.
void SyncDir(const std::string& dir) {
  if (absl::Status st = storage::SyncPath(dir); !st.ok()) LOG(WARNING) << st;
}
}  // namespace

absl::StatusOr<std::unique_ptr<ShardHost>> ShardHost::Open(const HostOptions& options,
                                                           bool managed) {
  if (options.shard_count == 0) return absl::InvalidArgumentError("shard_count must be positive");
  HostOptions opts = options;
  if (opts.shards.empty() && !managed) {
    for (uint32_t s = 0; s < opts.shard_count; ++s) opts.shards.push_back(s);
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", opts.data_dir, ": ", ec.message()));
  }
  auto host = std::unique_ptr<ShardHost>(new ShardHost(opts, managed));
  if (!managed) {
    // Replicas open in parallel: each reads its own RocksDB and index
    // segments, so a restart takes about the longest one, not their sum.
    absl::MutexLock open_lock(&host->open_mu_);
    std::vector<absl::StatusOr<std::unique_ptr<ShardReplica>>> opened;
    for (size_t i = 0; i < opts.shards.size(); ++i) opened.emplace_back(absl::UnknownError(""));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < opts.shards.size(); ++i) {
      threads.emplace_back(
          [&, i] { opened[i] = ShardReplica::Open(host->ReplicaOptionsFor(opts.shards[i])); });
    }
    for (auto& t : threads) t.join();
    absl::MutexLock l(&host->mu_);
    for (size_t i = 0; i < opts.shards.size(); ++i) {
      if (!opened[i].ok()) return opened[i].status();
      host->replicas_.emplace(opts.shards[i], std::shared_ptr<ShardReplica>(std::move(*opened[i])));
    }
  }
  return host;
}

std::string ShardHost::ReplicaDir(uint32_t shard) const {
  return absl::StrCat(options_.data_dir, "/shard-", shard);
}

std::string ShardHost::SnapshotStagingDir(uint32_t shard) const {
  return absl::StrCat(options_.data_dir, "/snapshot-staging/shard-", shard);
}

absl::Status ShardHost::NotHosted(uint32_t shard) const {
  bool assigned = false;
  {
    absl::MutexLock l(&mu_);
    assigned = assigned_.count(shard) > 0;
  }
  if (assigned) {
    // Refused before anything was logged: the hint says so (a router waits
    // for the next table and tries again).
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "shard ", shard, " is assigned to node ", options_.node_id, " and still opening; retry"));
    v1::RoutingHint hint;
    hint.set_shard(shard);
    SetRoutingHint(st, hint);
    return st;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("shard ", shard, " is not hosted on node ", options_.node_id));
}

void ShardHost::SetAssigned(std::set<uint32_t> shards) {
  absl::MutexLock l(&mu_);
  assigned_ = std::move(shards);
}

std::shared_ptr<ShardReplica> ShardHost::replica(uint32_t shard) const {
  absl::MutexLock l(&mu_);
  auto it = replicas_.find(shard);
  return it == replicas_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<ShardReplica>> ShardHost::ReplicaAt(uint32_t shard, uint64_t epoch,
                                                                   bool must_lead) const {
  std::shared_ptr<ShardReplica> r = replica(shard);
  if (r == nullptr) return NotHosted(shard);
  const ReplicaState state = must_lead ? r->State() : ReplicaState();
  if (must_lead && !state.leader) {
    if (managed_ && state.leader_node_id.empty()) {
      absl::Status st = absl::UnavailableError(absl::StrCat(
          "shard ", shard, ": node ", options_.node_id, " knows no leader yet; retry"));
      v1::RoutingHint hint;
      hint.set_shard(shard);
      hint.set_current_epoch(state.epoch);
      SetRoutingHint(st, hint);
      return st;
    }
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, ": node ", options_.node_id, " does not lead it"));
  }
  DASH_RETURN_IF_ERROR(r->CheckEpoch(epoch));
  return r;
}

std::map<uint32_t, std::shared_ptr<ShardReplica>> ShardHost::replicas() const {
  absl::MutexLock l(&mu_);
  return replicas_;
}

absl::StatusOr<std::shared_ptr<ShardReplica>> ShardHost::AddReplica(uint32_t shard) {
  // Opening a replica takes a while (RocksDB, vectors): readers of the map,
  // such as heartbeats, must not wait for it, so only opens are serialized.
  absl::MutexLock open_lock(&open_mu_);
  if (std::shared_ptr<ShardReplica> existing = replica(shard)) return existing;
  return OpenAndHost(shard);
}

ReplicaOptions ShardHost::ReplicaOptionsFor(uint32_t shard) const {
  ReplicaOptions ro = options_.replica;
  ro.node_id = options_.node_id;
  ro.managed = managed_;
  ro.shard_id = shard;
  ro.shard_count = options_.shard_count;
  ro.dir = ReplicaDir(shard);
  return ro;
}

absl::StatusOr<std::shared_ptr<ShardReplica>> ShardHost::OpenAndHost(uint32_t shard) {
  DASH_ASSIGN_OR_RETURN(std::unique_ptr<ShardReplica> opened,
                        ShardReplica::Open(ReplicaOptionsFor(shard)));
  std::shared_ptr<ShardReplica> replica = std::move(opened);
  absl::MutexLock l(&mu_);
  replicas_.emplace(shard, replica);
  return replica;
}

absl::Status ShardHost::RemoveReplica(uint32_t shard, const std::string& suffix) {
  absl::MutexLock open_lock(&open_mu_);
  std::shared_ptr<ShardReplica> replica;
  {
    absl::MutexLock l(&mu_);
    auto it = replicas_.find(shard);
    if (it == replicas_.end()) return absl::OkStatus();
    replica = std::move(it->second);
    replicas_.erase(it);
  }
  // In-flight reads hold their own reference; wait for them so that the
  // database is closed before its directory moves.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (replica.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  replica.reset();
  std::error_code ec;
  const std::string dir = ReplicaDir(shard);
  std::filesystem::rename(dir, absl::StrCat(dir, ".removed-", suffix), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot move aside ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ShardReplica>> ShardHost::InstallSnapshot(
    uint32_t shard, const std::string& staging_dir, absl::Duration wait) {
  namespace fs = std::filesystem;
  if (shard >= options_.shard_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard: ", shard, " is not below the shard count ", options_.shard_count));
  }
  absl::MutexLock open_lock(&open_mu_);
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(staging_dir) / "CURRENT", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(staging_dir, " holds no checkpoint (no CURRENT file)"));
  }

  // Out of service, then closed on this thread: RocksDB must have released
  // the directory before it moves. Dropping the last reference here (rather
  // than watching a weak_ptr expire) is what guarantees the close finished.
  std::shared_ptr<ShardReplica> old;
  {
    absl::MutexLock l(&mu_);
    auto it = replicas_.find(shard);
    if (it != replicas_.end()) {
      old = std::move(it->second);
      replicas_.erase(it);
    }
  }
  const bool was_hosted = old != nullptr;
  // The epoch the old replica adopted (perhaps fenced while the snapshot was
  // copied): the new one must not forget it, or it could acknowledge a
  // deposed leader again.
  uint64_t old_epoch = 0;
  if (was_hosted) {
    const absl::Time deadline = absl::Now() + wait;
    while (old.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    if (old.use_count() > 1) {
      absl::MutexLock l(&mu_);
      replicas_.emplace(shard, std::move(old));
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", shard, ": the replica is still in use after ",
                       absl::FormatDuration(wait), "; not replaced"));
    }
    old_epoch = old->State().epoch;
    old.reset();
  }
  auto reopen_old = [&](absl::Status why) -> absl::Status {
    if (was_hosted) {
      absl::StatusOr<std::shared_ptr<ShardReplica>> back = OpenAndHost(shard);
      if (!back.ok()) LOG(ERROR) << "shard " << shard << ": cannot reopen: " << back.status();
    }
    return why;
  };
  auto io_error = [](absl::string_view what, const std::error_code& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.message()));
  };

  // The staged copy of the manifest is no replica file (snapshot_format.md).
  for (const char* name : {"MANIFEST", "MANIFEST.tmp"}) {
    fs::remove(fs::path(staging_dir) / name, ec);
  }
  const std::string dir = ReplicaDir(shard);
  std::string aside;  // Where the old directory is now.
  bool exchanged = false;
  if (fs::exists(dir, ec)) {
    // Swap atomically where possible: staging_dir then holds the old data.
    if (::renameat2(AT_FDCWD, staging_dir.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      exchanged = true;
      aside = staging_dir;
    } else if (errno == EINVAL || errno == ENOSYS) {
      for (int n = 0; aside.empty() || fs::exists(aside, ec); ++n) {
        aside = absl::StrCat(dir, ".replaced-", n);
      }
      fs::rename(dir, aside, ec);
      if (ec) return reopen_old(io_error(absl::StrCat("cannot move aside ", dir), ec));
    } else {
      return reopen_old(absl::UnavailableError(
          absl::StrCat("cannot swap ", staging_dir, " into ", dir, ": ", std::strerror(errno))));
    }
  }
  if (!exchanged) {
    fs::rename(staging_dir, dir, ec);
    if (ec) {
      const absl::Status why = io_error(absl::StrCat("cannot move ", staging_dir, " to ", dir), ec);
      if (!aside.empty()) fs::rename(aside, dir, ec);
      return reopen_old(why);
    }
  }
  SyncDir(options_.data_dir);
  absl::StatusOr<std::shared_ptr<ShardReplica>> installed = OpenAndHost(shard);
  if (!installed.ok()) {
    LOG(WARNING) << "shard " << shard << ": the snapshot in " << staging_dir
                 << " does not open: " << installed.status();
    // Back as it was: the snapshot to staging_dir, the old data to dir.
    if (exchanged) {
      ::renameat2(AT_FDCWD, staging_dir.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE);
    } else {
      fs::rename(dir, staging_dir, ec);
      if (!aside.empty()) fs::rename(aside, dir, ec);
    }
    return reopen_old(installed.status());
  }
  if ((*installed)->State().epoch < old_epoch) {
    absl::StatusOr<ReplicaState> fenced = (*installed)->Fence(old_epoch);
    if (!fenced.ok()) {
      LOG(ERROR) << "shard " << shard << ": cannot keep epoch " << old_epoch << ": "
                 << fenced.status();
    }
  }
  if (!aside.empty()) {
    fs::remove_all(aside, ec);
    if (ec) {
      LOG(WARNING) << "shard " << shard << ": cannot delete " << aside << ": " << ec.message();
    }
  }
  LOG(INFO) << "shard " << shard << ": installed a snapshot at lsn "
            << (*installed)->State().last_lsn;
  return installed;
}

void ShardHost::Write(v1::WriteRequest request, ShardReplica::WriteDone done) {
  absl::Status valid = query::ValidateBatch(request, options_.replica.limits);
  if (!valid.ok()) return done(valid);
  absl::StatusOr<uint32_t> shard = query::ShardOfBatch(request, options_.shard_count);
  if (!shard.ok()) return done(shard.status());
  if (request.has_shard() && request.shard() != *shard) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("shard: the batch belongs to shard ", *shard, ", not ", request.shard())));
  }
  std::shared_ptr<ShardReplica> r = replica(*shard);
  if (r == nullptr) return done(NotHosted(*shard));
  // The callback must not own the replica: it runs on the replica's commit
  // thread, and dropping the last reference there would join that thread
  // from itself. A replica answers every write it took before it is gone.
  r->WriteValidated(std::move(request), std::move(done));  // Validated above, once.
}

absl::StatusOr<v1::GetClaimResponse> ShardHost::GetClaim(const v1::GetClaimRequest& request) const {
  DASH_RETURN_IF_ERROR(query::ValidateTenant(request.tenant(), "tenant"));
  DASH_RETURN_IF_ERROR(query::ValidateId(request.claim_id(), "claim_id"));
  if (!v1::ReadPreference_IsValid(request.read_preference())) {
    return absl::InvalidArgumentError("read_preference: is not a known preference");
  }
  const uint32_t shard = ShardOf(request.tenant(), request.claim_id(), options_.shard_count);
  std::shared_ptr<ShardReplica> r = replica(shard);
  if (r == nullptr) return NotHosted(shard);
  DASH_RETURN_IF_ERROR(r->CheckEpoch(request.expected_epoch()));
  if (request.evidence_page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("evidence_page_size: ", request.evidence_page_size(), " exceeds the limit of ",
                     kMaxPageSize));
  }
  const std::string scope = absl::StrCat("evidence of claim ", request.claim_id());
  std::string after;
  if (!request.evidence_page_token().empty()) {
    if (request.evidence_page_size() == 0) {
      return absl::InvalidArgumentError("evidence_page_token: given without evidence_page_size");
    }
    absl::StatusOr<std::string> decoded =
        DecodePageToken(request.evidence_page_token(), request.tenant(), scope);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("evidence_", decoded.status().message()));  // "evidence_page_token: ..."
    }
    after = *std::move(decoded);
  }
  bool more = false;
  DASH_ASSIGN_OR_RETURN(v1::GetClaimResponse response,
                        r->GetClaim(request.tenant(), request.claim_id(),
                                    request.evidence_page_size(), after, &more));
  if (more) {
    const auto& evidence = response.record().evidence();
    response.set_next_evidence_page_token(
        EncodePageToken(request.tenant(), scope, evidence.Get(evidence.size() - 1).evidence_id()));
  }
  return response;
}

absl::StatusOr<v1::ListClaimsResponse> ShardHost::ListClaims(
    const v1::ListClaimsRequest& request) const {
  DASH_RETURN_IF_ERROR(query::ValidateListRequest(request));
  DASH_ASSIGN_OR_RETURN(query::ListPosition position,
                        query::ListPositionOf(request, options_.shard_count));
  const size_t limit = position.limit;
  const std::string& scope = position.scope;
  const std::string& start_after = position.start_after;
  std::map<uint32_t, std::shared_ptr<ShardReplica>> targets = replicas();
  if (request.has_shard()) {
    std::shared_ptr<ShardReplica> r = replica(request.shard());
    if (r == nullptr) return NotHosted(request.shard());
    DASH_RETURN_IF_ERROR(r->CheckEpoch(request.expected_epoch()));
    targets = {{request.shard(), r}};
  }
  std::vector<query::ShardPage> pages;
  for (const auto& [id, r] : targets) {
    DASH_ASSIGN_OR_RETURN(ListPage page, r->ListClaims(request.tenant(), start_after, limit,
                                                       request.include_evidence()));
    pages.push_back({std::move(page.records), page.more, {std::move(page.read_at)}});
  }
  return query::MergeListPages(std::move(pages), limit, request.tenant(), scope);
}

absl::StatusOr<v1::QueryResponse> ShardHost::Query(const v1::QueryRequest& request) const {
  const std::map<uint32_t, std::shared_ptr<ShardReplica>> hosted = replicas();
  std::vector<std::unique_ptr<LocalShardTarget>> locals;
  std::map<uint32_t, query::ShardTarget*> targets;
  for (const auto& [id, r] : hosted) {
    locals.push_back(std::make_unique<LocalShardTarget>(r.get()));
    targets[id] = locals.back().get();
  }
  return query::RunQuery(request, targets, options_.shard_count, &query_pool_);
}

void ShardHost::PublishFollowStatus(std::map<uint32_t, v1::FollowerStatus> status) {
  absl::MutexLock l(&mu_);
  follow_status_ = std::move(status);
}

v1::NodeInfo ShardHost::Info() const {
  std::map<uint32_t, v1::FollowerStatus> follow;
  {
    absl::MutexLock l(&mu_);
    follow = follow_status_;
  }
  v1::NodeInfo info;
  info.set_node_id(options_.node_id);
  info.set_shard_count(options_.shard_count);
  info.set_version(DASH_VERSION);
  for (const auto& [id, r] : replicas()) {
    const ReplicaState s = r->State();
    v1::ReplicaInfo* ri = info.add_replicas();
    ri->set_shard(id);
    ri->set_epoch(s.epoch);
    ri->set_last_epoch(s.last_epoch);
    ri->set_role(s.leader ? "leader" : "follower");
    ri->set_leader_node_id(s.leader_node_id);
    ri->set_last_lsn(s.last_lsn);
    ri->set_log_start_lsn(s.log_start_lsn);
    ri->set_commit_lsn(s.commit_lsn);
    for (const FollowerLag& lag : r->FollowerLags()) *ri->add_followers() = ToProto(lag);
    if (auto it = follow.find(id); !s.leader && it != follow.end())
      *ri->mutable_follow() = it->second;
    const index::PrefilterCacheStats c = r->FilterCacheStats();
    ri->mutable_filter_cache()->set_hits(c.hits);
    ri->mutable_filter_cache()->set_misses(c.misses);
    ri->mutable_filter_cache()->set_evictions(c.evictions);
    ri->mutable_filter_cache()->set_entries(c.entries);
    ri->mutable_filter_cache()->set_ids(c.ids);
    ri->mutable_filter_cache()->set_patches(c.patches);
    const index::LexicalStoreInfo lex = r->LexicalInfo();
    v1::LexicalIndexInfo* li = ri->mutable_lexical();
    li->set_segments(lex.segments);
    li->set_segment_bytes(lex.bytes);
    li->set_memory_segments(lex.memory_segments);
    li->set_buffer_docs(lex.buffer_docs);
    li->set_docs(lex.docs);
    li->set_dead_docs(lex.dead_docs);
    li->set_covered_lsn(lex.covered_lsn);
    li->set_merge_backlog(lex.merge_backlog);
    li->set_status(r->lexical_status());
    li->set_vectors(lex.vectors);
    li->set_vector_graphs(lex.vector_graphs);
    if (absl::StatusOr<storage::StorageUsage> usage = r->StorageUsage(); usage.ok()) {
      for (const storage::FamilyUsage& f : usage->families) {
        v1::StorageUsage::Family* out = ri->mutable_storage()->add_families();
        out->set_name(storage::FamilyName(f.family));
        out->set_table_bytes(f.table_bytes);
        out->set_memtable_bytes(f.memtable_bytes);
      }
      ri->mutable_storage()->set_wal_bytes(usage->wal_bytes);
    } else {
      LOG(WARNING) << "shard " << id << ": storage usage: " << usage.status();
    }
  }
  return info;
}

}  // namespace dash::shard
