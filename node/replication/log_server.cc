#include "node/replication/log_server.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "node/replication/fault_hook.h"
#include "node/storage/log_record.h"

namespace dash::replication {
namespace {

// Followers pull with their member certificate; the log archiver (`dashctl
// backup archive`) with an admin token on every tenant, since the log holds
// every tenant's writes. Sets `*archiver` for the latter: it is no replica,
// so its position counts toward no commit.
grpc::Status AuthorizeLogReader(const Security& security, const grpc::ServerContext& ctx,
                                bool* archiver) {
  *archiver = false;
  if (grpc::Status peer = security.AuthorizePeer(ctx); peer.ok()) return peer;
  *archiver = true;
  return security.AuthorizeRole(ctx, jwt::Role::kAdmin);
}

constexpr size_t kMaxRecordsPerMessage = 256;
constexpr size_t kMaxBytesPerMessage = 4 << 20;
// An idle stream still speaks this often (PullLogResponse).
constexpr absl::Duration kKeepAlive = absl::Milliseconds(250);
}  // namespace

absl::StatusOr<std::shared_ptr<shard::ShardReplica>> LogServer::LeaderAt(uint32_t shard,
                                                                         uint64_t epoch) const {
  DASH_RETURN_IF_ERROR(FaultHook::CheckReplicationTraffic());
  return host_->ReplicaAt(shard, epoch, /*must_lead=*/true);
}

grpc::Status LogServer::PullLog(grpc::ServerContext* ctx, const v1::PullLogRequest* request,
                                grpc::ServerWriter<v1::PullLogResponse>* writer) {
  bool archiver = false;
  if (grpc::Status auth = AuthorizeLogReader(*security_, *ctx, &archiver); !auth.ok()) {
    return auth;
  }
  const uint32_t shard = request->shard();
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> leader = LeaderAt(shard, request->epoch());
  if (!leader.ok()) return ToGrpcStatus(leader.status(), ctx);
  const std::shared_ptr<shard::ShardReplica> r = *std::move(leader);
  shard::ReplicaState state = r->State();

  // Log matching: the follower's last record must be the leader's record at
  // the same LSN (same epoch); otherwise their logs diverged.
  const uint64_t prev = request->from_lsn() == 0 ? 0 : request->from_lsn() - 1;
  if (prev > state.last_lsn) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, ": diverged: the follower holds lsn ", prev,
                     ", beyond the leader's last lsn ", state.last_lsn)));
  }
  if (prev > 0) {
    absl::StatusOr<std::string> raw = r->ReadLogRecord(prev);
    if (!raw.ok()) {
      return ToGrpcStatus(absl::OutOfRangeError(absl::StrCat(
          "shard ", shard, ": lsn ", prev, " is no longer in the leader's log (it starts at ",
          state.log_start_lsn, "); the follower needs a snapshot")));
    }
    absl::StatusOr<storage::LogRecord> rec = storage::DecodeLogRecord(*raw);
    if (!rec.ok()) return ToGrpcStatus(rec.status());
    if (rec->epoch != request->prev_epoch()) {
      return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
          "shard ", shard, ": diverged at lsn ", prev, ": the follower's record is of epoch ",
          request->prev_epoch(), ", the leader's of epoch ", rec->epoch)));
    }
  }

  // The follower holds everything up to `prev` durably.
  if (!archiver) r->OnFollowerAck(request->follower_node_id(), prev);
  uint64_t next = prev + 1;
  uint64_t sent_commit = UINT64_MAX;
  absl::Time last_sent = absl::Now();
  while (!ctx->IsCancelled() && !stopping_) {
    if (absl::Status cut = FaultHook::CheckReplicationTraffic(); !cut.ok())
      return ToGrpcStatus(cut);
    state = r->State();
    if (!state.leader || state.epoch != request->epoch() || host_->replica(shard) != r) {
      return ToGrpcStatus(absl::FailedPreconditionError(
          absl::StrCat("shard ", shard, ": node ", host_->node_id(),
                       " no longer leads it at epoch ", request->epoch())));
    }
    if (next > state.last_lsn) {
      if (state.commit_lsn != sent_commit || absl::Now() - last_sent >= kKeepAlive) {
        // Nothing new to ship, but followers learn what became readable, and
        // that this leader is alive.
        v1::PullLogResponse response;
        response.set_leader_last_lsn(state.last_lsn);
        response.set_commit_lsn(state.commit_lsn);
        sent_commit = state.commit_lsn;
        if (!writer->Write(response)) break;
        last_sent = absl::Now();
        continue;
      }
      r->WaitForLsn(next, absl::Milliseconds(100), sent_commit);
      continue;
    }
    v1::PullLogResponse response;
    size_t bytes = 0;
    while (next <= state.last_lsn &&
           static_cast<size_t>(response.records_size()) < kMaxRecordsPerMessage &&
           bytes < kMaxBytesPerMessage) {
      absl::StatusOr<std::string> raw = r->ReadLogRecord(next);
      if (!raw.ok()) {
        return ToGrpcStatus(absl::OutOfRangeError(
            absl::StrCat("shard ", shard, ": lsn ", next, " is no longer in the leader's log")));
      }
      bytes += raw->size();
      response.add_records(std::move(*raw));
      ++next;
    }
    response.set_leader_last_lsn(state.last_lsn);
    response.set_commit_lsn(state.commit_lsn);
    sent_commit = state.commit_lsn;
    if (limiter_ != nullptr && next + kCatchUpRecords <= state.last_lsn &&
        !limiter_->Acquire(bytes, [&] { return ctx->IsCancelled() || stopping_.load(); })) {
      break;
    }
    // Write blocks while the follower's window is full: gRPC flow control is
    // what keeps a slow follower from growing the leader's memory.
    if (!writer->Write(response)) break;
    last_sent = absl::Now();
  }
  return grpc::Status::OK;
}

grpc::Status LogServer::AckLog(grpc::ServerContext* ctx, const v1::AckLogRequest* request,
                               v1::AckLogResponse* response) {
  if (grpc::Status auth = security_->AuthorizePeer(*ctx); !auth.ok()) return auth;
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> r =
      LeaderAt(request->shard(), request->epoch());
  if (!r.ok()) return ToGrpcStatus(r.status(), ctx);
  (*r)->OnFollowerAck(request->follower_node_id(), request->durable_lsn());
  response->set_commit_lsn((*r)->State().commit_lsn);
  return grpc::Status::OK;
}

grpc::Status LogServer::EpochEndOffset(grpc::ServerContext* ctx,
                                       const v1::EpochEndOffsetRequest* request,
                                       v1::EpochEndOffsetResponse* response) {
  bool archiver = false;
  if (grpc::Status auth = AuthorizeLogReader(*security_, *ctx, &archiver); !auth.ok()) {
    return auth;
  }
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> r =
      LeaderAt(request->shard(), request->epoch());
  if (!r.ok()) return ToGrpcStatus(r.status(), ctx);
  const auto [epoch, end_lsn] = (*r)->EpochEndOffset(request->requested_epoch());
  response->set_epoch(epoch);
  response->set_end_lsn(end_lsn);
  return grpc::Status::OK;
}

}  // namespace dash::replication
