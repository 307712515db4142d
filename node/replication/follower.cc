#include "node/replication/follower.h"

#include "absl/strings/match.h"
#include "common/grpc_status.h"
#include "dash/v1/node.grpc.pb.h"
#include "glog/logging.h"
#include "grpcpp/create_channel.h"

namespace dash::replication {

LogFollower::LogFollower(std::shared_ptr<shard::ShardReplica> replica, std::string leader_address,
                         uint64_t epoch, std::string node_id)
    : replica_(std::move(replica)),
      leader_address_(std::move(leader_address)),
      epoch_(epoch),
      node_id_(std::move(node_id)) {
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

void LogFollower::Run() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel =
      grpc::CreateCustomChannel(leader_address_, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Replication::NewStub(channel);
  absl::Duration backoff = absl::Milliseconds(20);
  const uint32_t shard = replica_->shard_id();
  for (;;) {
    const shard::ReplicaState state = replica_->State();
    v1::PullLogRequest request;
    request.set_shard(shard);
    request.set_epoch(epoch_);
    request.set_from_lsn(state.last_lsn + 1);
    request.set_prev_epoch(state.last_lsn == 0 ? 0 : state.last_epoch);
    request.set_follower_node_id(node_id_);
    grpc::ClientContext ctx;
    {
      absl::MutexLock l(&mu_);
      if (stop_) return;
      call_ = &ctx;
    }
    auto reader = stub->PullLog(&ctx, request);
    v1::PullLogResponse response;
    absl::Status applied = absl::OkStatus();
    while (reader->Read(&response)) {
      std::vector<std::string> records(response.records().begin(), response.records().end());
      applied = replica_->ApplyEncodedRecords(records);
      if (!applied.ok()) {
        ctx.TryCancel();
        break;
      }
      // Durable here: tell the leader, which answers its clients once a
      // majority holds a write.
      v1::AckLogRequest ack;
      ack.set_shard(shard);
      ack.set_epoch(epoch_);
      ack.set_follower_node_id(node_id_);
      ack.set_durable_lsn(replica_->State().last_lsn);
      v1::AckLogResponse ack_response;
      grpc::ClientContext ack_ctx;
      ack_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      stub->AckLog(&ack_ctx, ack, &ack_response);
      backoff = absl::Milliseconds(20);
    }
    const absl::Status finished = FromGrpcStatus(reader->Finish());
    {
      absl::MutexLock l(&mu_);
      call_ = nullptr;
      if (stop_) return;
    }
    if (!applied.ok()) {
      LOG(WARNING) << "shard " << shard << ": applying the leader's log failed: " << applied;
    } else if (absl::IsFailedPrecondition(finished) &&
               absl::StrContains(finished.message(), "diverged")) {
      if (!diverged_.exchange(true)) {
        LOG(ERROR) << "shard " << shard << ": cannot follow " << leader_address_ << ": "
                   << finished.message();
      }
      backoff = absl::Seconds(1);
    } else if (!finished.ok() && !absl::IsCancelled(finished)) {
      VLOG(1) << "shard " << shard << ": pulling from " << leader_address_ << ": " << finished;
    }
    // Wait before reconnecting, waking early on Stop.
    absl::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    if (stop_) return;
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

}  // namespace dash::replication
