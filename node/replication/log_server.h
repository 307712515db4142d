// dash.v1.Replication on a leader: streams a shard's log to a follower that
// pulls it (node.proto). Asynchronous shipping: a write is acknowledged when
// the leader has it durably; followers trail by the stream's delay.
#ifndef DASH_NODE_REPLICATION_LOG_SERVER_H_
#define DASH_NODE_REPLICATION_LOG_SERVER_H_

#include <atomic>

#include "dash/v1/node.grpc.pb.h"
#include "node/shard/shard_host.h"

namespace dash::replication {

class LogServer final : public v1::Replication::Service {
 public:
  explicit LogServer(shard::ShardHost* host) : host_(host) {}

  grpc::Status PullLog(grpc::ServerContext* ctx, const v1::PullLogRequest* request,
                       grpc::ServerWriter<v1::PullLogResponse>* writer) override;
  grpc::Status AckLog(grpc::ServerContext* ctx, const v1::AckLogRequest* request,
                      v1::AckLogResponse* response) override;

  // Ends every open stream promptly (before the server shuts down).
  void Stop() { stopping_ = true; }

 private:
  shard::ShardHost* const host_;
  std::atomic<bool> stopping_{false};
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_LOG_SERVER_H_
