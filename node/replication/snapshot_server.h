// dash.v1.Snapshots on a leader: a follower too far behind for the log
// (retention dropped what it needs) copies a checkpoint of the leader's
// replica file by file, resumably, with a checksum per chunk and per file
// (snapshot_format.md). Every stream of the node draws from one shared rate
// limiter so that catch-up cannot starve client writes of disk and network.
// The state lives in SnapshotStore; this class only speaks gRPC. While fault
// injection isolates the node (fault_hook.h), every call fails UNAVAILABLE.
// Thread-safe.
#ifndef DASH_NODE_REPLICATION_SNAPSHOT_SERVER_H_
#define DASH_NODE_REPLICATION_SNAPSHOT_SERVER_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/rate_limiter.h"
#include "common/security.h"
#include "dash/v1/node.grpc.pb.h"
#include "node/replication/snapshot_store.h"
#include "node/shard/shard_host.h"

namespace dash::replication {

struct SnapshotServerOptions {
  std::string snapshot_dir;  // E.g. <data_dir>/snapshots; wiped at start.
  // Shared by every snapshot stream of the node; null: unlimited. Not owned;
  // must outlive the server.
  RateLimiter* limiter = nullptr;
  absl::Duration idle_expiry = absl::Minutes(10);
  size_t max_snapshots_per_shard = 2;
  // Data bytes per SnapshotChunk; at most 1 MiB (the proto's limit).
  size_t chunk_bytes = 1 << 20;
  Clock* clock = Clock::Real();  // For the idle expiry.
  // Internal service: only cluster members (followers) may call.
  std::shared_ptr<const Security> security = Security::Insecure();
};

class SnapshotServer final : public v1::Snapshots::Service {
 public:
  // Wipes and creates options.snapshot_dir. `host` must outlive the server.
  static absl::StatusOr<std::unique_ptr<SnapshotServer>> Create(shard::ShardHost* host,
                                                                SnapshotServerOptions options);

  // See node.proto and SnapshotStore for the errors.
  grpc::Status CreateSnapshot(grpc::ServerContext* ctx, const v1::CreateSnapshotRequest* request,
                              v1::SnapshotManifest* response) override;
  // Chunks of at most chunk_bytes from request.offset to the end of the file,
  // each after the rate limiter let it pass. UNAVAILABLE when Stop() ends it.
  grpc::Status FetchSnapshotFile(grpc::ServerContext* ctx,
                                 const v1::FetchSnapshotFileRequest* request,
                                 grpc::ServerWriter<v1::SnapshotChunk>* writer) override;
  grpc::Status ReleaseSnapshot(grpc::ServerContext* ctx, const v1::ReleaseSnapshotRequest* request,
                               v1::ReleaseSnapshotResponse* response) override;

  // Ends every open stream promptly (before the server shuts down) and
  // deletes every snapshot: none is fetchable after a restart anyway.
  void Stop();

 private:
  SnapshotServer(std::unique_ptr<SnapshotStore> store, RateLimiter* limiter, size_t chunk_bytes,
                 std::shared_ptr<const Security> security)
      : store_(std::move(store)),
        limiter_(limiter),
        chunk_bytes_(chunk_bytes),
        security_(std::move(security)) {}

  // Constant after construction.
  const std::unique_ptr<SnapshotStore> store_;
  RateLimiter* const limiter_;
  const size_t chunk_bytes_;
  const std::shared_ptr<const Security> security_;

  std::atomic<bool> stopping_{false};
};

}  // namespace dash::replication

#endif  // DASH_NODE_REPLICATION_SNAPSHOT_SERVER_H_
