#include "controlplane/fencing/grpc_fencer.h"

#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "dash/v1/node.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace dash::controlplane {
namespace {

// Reconnect backoff of the channels: gRPC's default grows to two minutes,
// which would keep a node that came back unfenceable long after it answers.
constexpr int kMinReconnectBackoffMs = 100;
constexpr int kMaxReconnectBackoffMs = 1000;

class GrpcFencer final : public Fencer {
 public:
  explicit GrpcFencer(std::shared_ptr<const Security> security) : security_(std::move(security)) {}

  std::vector<absl::StatusOr<v1::FenceShardResponse>> Fence(const std::vector<FenceCall>& calls,
                                                            absl::Duration timeout) override {
    struct Pending {
      std::unique_ptr<v1::NodeAdmin::Stub> stub;
      grpc::ClientContext ctx;
      v1::FenceShardResponse response;
      grpc::Status status;
      std::unique_ptr<grpc::ClientAsyncResponseReader<v1::FenceShardResponse>> rpc;
    };
    std::vector<absl::StatusOr<v1::FenceShardResponse>> results(calls.size(),
                                                                absl::UnavailableError("not sent"));
    std::vector<std::unique_ptr<Pending>> pending(calls.size());
    grpc::CompletionQueue cq;
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::microseconds(absl::ToInt64Microseconds(timeout));
    size_t started = 0;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].address.empty()) {
        results[i] =
            absl::UnavailableError(absl::StrCat("node ", calls[i].node_id, " has no address"));
        continue;
      }
      auto p = std::make_unique<Pending>();
      p->ctx.set_deadline(deadline);
      v1::FenceShardRequest request;
      request.set_shard(calls[i].shard);
      request.set_epoch(calls[i].epoch);
      p->stub = v1::NodeAdmin::NewStub(Channel(calls[i].address));
      p->rpc = p->stub->AsyncFenceShard(&p->ctx, request, &cq);
      p->rpc->Finish(&p->response, &p->status, reinterpret_cast<void*>(i));
      pending[i] = std::move(p);
      ++started;
    }
    // Every started call completes by its deadline, answered or not.
    for (size_t done = 0; done < started; ++done) {
      void* tag = nullptr;
      bool ok = false;
      if (!cq.Next(&tag, &ok)) break;
      const size_t i = reinterpret_cast<size_t>(tag);
      Pending& p = *pending[i];
      if (p.status.ok()) {
        results[i] = std::move(p.response);
      } else {
        results[i] = FromGrpcStatus(p.status, &p.ctx);
      }
    }
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    return results;
  }

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
    absl::MutexLock lock(&mu_);
    auto it = channels_.find(address);
    if (it != channels_.end()) return it->second;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kMinReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kMinReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
    std::shared_ptr<grpc::Channel> channel = security_->PeerChannel(address, args);
    channels_.emplace(address, channel);
    return channel;
  }

  const std::shared_ptr<const Security> security_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Fencer> NewGrpcFencer(std::shared_ptr<const Security> security) {
  return std::make_unique<GrpcFencer>(std::move(security));
}

}  // namespace dash::controlplane
