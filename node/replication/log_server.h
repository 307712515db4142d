// dash.v1.Replication on a leader: streams a shard's log to a follower that
// pulls it, with the commit LSN, takes the followers' acknowledgements (the
// leader answers a write once a majority holds it) and answers the epoch end
// offsets followers repair a diverged log with (node.proto).
#ifndef DASH_NODE_REPLICATION_LOG_SERVER_H_
#define DASH_NODE_REPLICATION_LOG_SERVER_H_

#include <atomic>

#include "common/rate_limiter.h"
#include "common/security.h"
#include "dash/v1/node.grpc.pb.h"
#include "node/shard/shard_host.h"

namespace dash::replication {

class LogServer final : public v1::Replication::Service {
 public:
  // `catch_up_limiter` (optional, not owned) paces the stream of a follower
  // more than kCatchUpRecords behind, so that catch-up traffic leaves
  // bandwidth for client writes; followers keeping up are never paced.
  // Internal: only cluster members (followers) may call, by `security`.
  explicit LogServer(shard::ShardHost* host, RateLimiter* catch_up_limiter = nullptr,
                     std::shared_ptr<const Security> security = Security::Insecure())
      : host_(host), limiter_(catch_up_limiter), security_(std::move(security)) {}

  static constexpr uint64_t kCatchUpRecords = 1024;

  grpc::Status PullLog(grpc::ServerContext* ctx, const v1::PullLogRequest* request,
                       grpc::ServerWriter<v1::PullLogResponse>* writer) override;
  grpc::Status AckLog(grpc::ServerContext* ctx, const v1::AckLogRequest* request,
                      v1::AckLogResponse* response) override;
  grpc::Status EpochEndOffset(grpc::ServerContext* ctx, const v1::EpochEndOffsetRequest* request,
                              v1::EpochEndOffsetResponse* response) override;

  // Ends every open stream promptly (before the server shuts down).
  void Stop() { stopping_ = true; }

 private:
  // The hosted replica of `shard` if it leads at the caller's `epoch` (and
  // replication traffic is not cut); FAILED_PRECONDITION otherwise.
  absl::StatusOr<std::shared_ptr<shard::ShardReplica>> LeaderAt(uint32_t shard,
                                                                uint64_t epoch) const;

  shard::ShardHost* const host_;
  RateLimiter* const limiter_;
  const std::shared_ptr<const Security> security_;
  std::atomic<bool> stopping_{false};
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_LOG_SERVER_H_
