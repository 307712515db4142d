#include "node/replication/follower.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/create_channel.h"
#include "node/replication/fault_hook.h"
#include "node/replication/snapshot_fetcher.h"

namespace dash::replication {
namespace {

// Consecutive truncations without a successful pull before the follower
// gives up repairing by truncation and copies a snapshot instead.
constexpr int kMaxRepairs = 16;

std::chrono::system_clock::time_point In(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

}  // namespace

LogFollower::LogFollower(shard::ShardHost* host, uint32_t shard, shard::Role role,
                         std::shared_ptr<const Security> security)
    : host_(host), shard_(shard), security_(std::move(security)), role_(std::move(role)) {
  thread_ = std::thread([this] { Run(); });
}

LogFollower::~LogFollower() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  thread_.join();
}

FollowerStats LogFollower::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

bool LogFollower::Stopped() {
  absl::MutexLock l(&mu_);
  return stop_;
}

FollowStatus LogFollower::status() const {
  absl::MutexLock l(&mu_);
  FollowStatus s;
  s.state = state_;
  s.last_error = last_error_;
  s.retries = retries_;
  s.leader_silent = absl::Now() - last_heard_;
  return s;
}

void LogFollower::SetState(const char* state) {
  absl::MutexLock l(&mu_);
  state_ = state;
}

void LogFollower::Failed(const absl::Status& status) {
  absl::MutexLock l(&mu_);
  last_error_ = status.ToString();
  ++retries_;
}

void LogFollower::Heard() {
  absl::MutexLock l(&mu_);
  last_heard_ = absl::Now();
  if (state_ != "pulling") {
    state_ = "pulling";
    last_error_.clear();
    retries_ = 0;
  }
}

absl::Status LogFollower::Repair(v1::Replication::Stub& stub) {
  std::shared_ptr<shard::ShardReplica> replica = host_->replica(shard_);
  if (replica == nullptr) return absl::FailedPreconditionError("replica is gone");
  const shard::ReplicaState state = replica->State();
  v1::EpochEndOffsetRequest request;
  request.set_shard(shard_);
  request.set_epoch(role_.epoch);
  request.set_requested_epoch(state.last_epoch);
  v1::EpochEndOffsetResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(2)));
  DASH_RETURN_IF_ERROR(FromGrpcStatus(stub.EpochEndOffset(&ctx, request, &response)));
  const uint64_t target = replica->DivergencePoint(response.epoch(), response.end_lsn());
  if (target >= state.last_lsn) {
    return absl::FailedPreconditionError(
        absl::StrCat("the leader's epoch ", response.epoch(), " ends at lsn ", response.end_lsn(),
                     ", which does not explain the divergence at lsn ", state.last_lsn));
  }
  LOG(WARNING) << "shard " << shard_ << ": log diverged from the leader's at epoch "
               << state.last_epoch << " (leader's epoch " << response.epoch() << " ends at lsn "
               << response.end_lsn() << "); truncating after lsn " << target;
  DASH_RETURN_IF_ERROR(replica->TruncateLogAfter(target));
  absl::MutexLock l(&mu_);
  ++stats_.truncations;
  return absl::OkStatus();
}

absl::Status LogFollower::CatchUpFromSnapshot(v1::Snapshots::Stub& stub) {
  {
    std::shared_ptr<shard::ShardReplica> replica = host_->replica(shard_);
    if (replica == nullptr || replica->State().epoch != role_.epoch) {
      return absl::FailedPreconditionError("the replica left this epoch (fenced)");
    }
  }
  SnapshotFetchProgress progress;
  SnapshotFetchOptions options;
  options.shard = shard_;
  options.epoch = role_.epoch;
  options.follower_node_id = role_.self_node_id;
  options.staging_dir = host_->SnapshotStagingDir(shard_);
  options.cancelled = [this] { return Stopped(); };
  options.progress = &progress;
  LOG(INFO) << "shard " << shard_ << ": copying a snapshot of the leader's replica from "
            << role_.leader_address;
  DASH_ASSIGN_OR_RETURN(v1::SnapshotManifest manifest, FetchSnapshot(&stub, options));
  // The old replica closes inside InstallSnapshot; this thread holds no
  // reference to it here.
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<shard::ShardReplica> replica,
                        host_->InstallSnapshot(shard_, options.staging_dir));
  DASH_RETURN_IF_ERROR(replica->AdoptRole(role_));
  LOG(INFO) << "shard " << shard_ << ": installed a snapshot at lsn " << manifest.last_lsn() << " ("
            << progress.bytes_received.load() << " bytes received)";
  static prometheus::Counter& installs = metrics::Counter(
      "dash_snapshot_installs_total", "Snapshots of a leader's replica this node installed");
  static prometheus::Counter& installed_bytes =
      metrics::Counter("dash_snapshot_bytes_total", "Bytes of the snapshots this node installed");
  installs.Increment();
  installed_bytes.Increment(static_cast<double>(progress.bytes_received.load()));
  absl::MutexLock l(&mu_);
  ++stats_.snapshots;
  stats_.snapshot_bytes += progress.bytes_received.load();
  return absl::OkStatus();
}

void LogFollower::Run() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = security_->PeerChannel(role_.leader_address, args);
  auto stub = v1::Replication::NewStub(channel);
  auto snapshots = v1::Snapshots::NewStub(channel);
  absl::Duration backoff = absl::Milliseconds(20);
  int repairs = 0;
  for (;;) {
    std::shared_ptr<shard::ShardReplica> replica = host_->replica(shard_);
    absl::Status applied = absl::OkStatus();
    absl::Status finished = absl::OkStatus();
    if (FaultHook::ReplicationCut()) {
      finished = FaultHook::CheckReplicationTraffic();
      SetState("cut");
      backoff = absl::Milliseconds(50);
    } else if (replica == nullptr || replica->State().epoch != role_.epoch) {
      // Gone, or fenced at a newer epoch: nothing to pull until the
      // placement agent replaces this follower.
      finished = absl::FailedPreconditionError("not following at this epoch");
      SetState("fenced");
      backoff = absl::Milliseconds(200);
    } else {
      SetState("connecting");
      const shard::ReplicaState state = replica->State();
      v1::PullLogRequest request;
      request.set_shard(shard_);
      request.set_epoch(role_.epoch);
      request.set_from_lsn(state.last_lsn + 1);
      request.set_prev_epoch(state.last_lsn == 0 ? 0 : state.last_epoch);
      request.set_follower_node_id(role_.self_node_id);
      grpc::ClientContext ctx;
      {
        absl::MutexLock l(&mu_);
        if (stop_) return;
        call_ = &ctx;
      }
      auto reader = stub->PullLog(&ctx, request);
      v1::PullLogResponse response;
      // The stream's start told the leader we hold state.last_lsn.
      uint64_t acked = state.last_lsn;
      while (reader->Read(&response)) {
        if (FaultHook::ReplicationCut()) {
          ctx.TryCancel();
          break;
        }
        Heard();
        if (response.records_size() > 0) {
          std::vector<std::string> records(response.records().begin(), response.records().end());
          applied = replica->ApplyEncodedRecords(records, role_.epoch);
          if (!applied.ok()) {
            ctx.TryCancel();
            break;
          }
          repairs = 0;
          diverged_ = false;
        }
        // Durable here: tell the leader, which answers its clients once a
        // majority holds a write. An acknowledgement that failed is sent
        // again with the next message (at most 250 ms later): otherwise an
        // idle leader would take this follower for behind until its next
        // write.
        const uint64_t durable = replica->State().last_lsn;
        if (durable > acked) {
          v1::AckLogRequest ack;
          ack.set_shard(shard_);
          ack.set_epoch(role_.epoch);
          ack.set_follower_node_id(role_.self_node_id);
          ack.set_durable_lsn(durable);
          v1::AckLogResponse ack_response;
          grpc::ClientContext ack_ctx;
          ack_ctx.set_deadline(In(absl::Seconds(1)));
          if (stub->AckLog(&ack_ctx, ack, &ack_response).ok()) {
            acked = durable;
            replica->OnLeaderCommit(ack_response.commit_lsn());
          }
        }
        replica->OnLeaderCommit(response.commit_lsn());
        backoff = absl::Milliseconds(20);
      }
      finished = FromGrpcStatus(reader->Finish());
      absl::MutexLock l(&mu_);
      call_ = nullptr;
      if (stop_) return;
    }
    replica.reset();  // Never held across a snapshot install.

    bool need_snapshot = false;
    if (!applied.ok()) {
      Failed(applied);
      LOG(WARNING) << "shard " << shard_ << ": applying the leader's log failed: " << applied;
    } else if (absl::IsFailedPrecondition(finished) &&
               absl::StrContains(finished.message(), "diverged")) {
      SetState("repairing");
      absl::Status repaired = ++repairs > kMaxRepairs
                                  ? absl::FailedPreconditionError("too many repairs")
                                  : Repair(*stub);
      if (repaired.ok()) {
        backoff = absl::ZeroDuration();
      } else {
        LOG(WARNING) << "shard " << shard_ << ": cannot repair the diverged log by truncation ("
                     << repaired.message() << "); copying a snapshot";
        diverged_ = true;
        need_snapshot = true;
      }
    } else if (absl::IsOutOfRange(finished)) {
      need_snapshot = true;
    } else if (!finished.ok() && !absl::IsCancelled(finished)) {
      Failed(finished);
      VLOG(1) << "shard " << shard_ << ": pulling from " << role_.leader_address << ": "
              << finished;
    }
    if (need_snapshot) {
      SetState("snapshot");
      absl::Status installed = CatchUpFromSnapshot(*snapshots);
      if (installed.ok()) {
        diverged_ = false;
        repairs = 0;
        backoff = absl::ZeroDuration();
      } else if (!Stopped()) {
        LOG(WARNING) << "shard " << shard_ << ": snapshot catch-up failed: " << installed;
        Failed(installed);
        backoff = absl::Seconds(1);
      }
    }
    // Wait before reconnecting, waking early on Stop.
    absl::MutexLock l(&mu_);
    if (state_ == "pulling" || state_ == "connecting") state_ = "backoff";
    if (backoff > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    if (stop_) return;
    backoff = std::min(std::max(backoff * 2, absl::Milliseconds(20)), absl::Seconds(1));
  }
}

}  // namespace dash::replication
