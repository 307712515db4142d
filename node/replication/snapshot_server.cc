#include "node/replication/snapshot_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "node/replication/fault_hook.h"
#include "node/replication/internal/snapshot_files.h"

namespace dash::replication {
namespace {

// Followers fetch snapshots with their member certificate; operators take
// backups (dashctl backup) with an admin token on every tenant, since a
// snapshot holds every tenant's data of the shard.
grpc::Status AuthorizeSnapshot(const Security& security, const grpc::ServerContext& ctx) {
  if (grpc::Status peer = security.AuthorizePeer(ctx); peer.ok()) return peer;
  return security.AuthorizeRole(ctx, jwt::Role::kAdmin);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SnapshotServer>> SnapshotServer::Create(
    shard::ShardHost* host, SnapshotServerOptions options) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > internal::kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk_bytes: ", options.chunk_bytes, " is not in [1, ", internal::kMaxChunkBytes, "]"));
  }
  SnapshotStoreOptions store_options;
  store_options.dir = options.snapshot_dir;
  store_options.idle_expiry = options.idle_expiry;
  store_options.max_per_shard = options.max_snapshots_per_shard;
  store_options.clock = options.clock;
  DASH_ASSIGN_OR_RETURN(std::unique_ptr<SnapshotStore> store,
                        SnapshotStore::Open(host, std::move(store_options)));
  return std::unique_ptr<SnapshotServer>(new SnapshotServer(
      std::move(store), options.limiter, options.chunk_bytes, std::move(options.security)));
}

grpc::Status SnapshotServer::CreateSnapshot(grpc::ServerContext* ctx,
                                            const v1::CreateSnapshotRequest* request,
                                            v1::SnapshotManifest* response) {
  if (grpc::Status auth = AuthorizeSnapshot(*security_, *ctx); !auth.ok()) return auth;
  if (absl::Status cut = FaultHook::CheckReplicationTraffic(); !cut.ok()) return ToGrpcStatus(cut);
  absl::StatusOr<v1::SnapshotManifest> manifest =
      store_->Create(request->shard(), request->epoch(), request->follower_node_id());
  if (!manifest.ok()) return ToGrpcStatus(manifest.status(), ctx);
  *response = std::move(*manifest);
  return grpc::Status::OK;
}

grpc::Status SnapshotServer::FetchSnapshotFile(grpc::ServerContext* ctx,
                                               const v1::FetchSnapshotFileRequest* request,
                                               grpc::ServerWriter<v1::SnapshotChunk>* writer) {
  if (grpc::Status auth = AuthorizeSnapshot(*security_, *ctx); !auth.ok()) return auth;
  if (absl::Status cut = FaultHook::CheckReplicationTraffic(); !cut.ok()) return ToGrpcStatus(cut);
  absl::StatusOr<std::unique_ptr<SnapshotStore::FileReader>> reader = store_->OpenFile(
      request->snapshot_id(), request->shard(), request->name(), request->offset());
  if (!reader.ok()) return ToGrpcStatus(reader.status(), ctx);
  const std::function<bool()> ended = [&] { return stopping_.load() || ctx->IsCancelled(); };
  uint64_t offset = request->offset();
  while (offset < (*reader)->size()) {
    const size_t n = std::min<uint64_t>(chunk_bytes_, (*reader)->size() - offset);
    if (ended() || (limiter_ != nullptr && !limiter_->Acquire(n, ended))) {
      return ToGrpcStatus(stopping_ ? absl::UnavailableError("the node is shutting down")
                                    : absl::CancelledError("the follower cancelled"));
    }
    if (absl::Status cut = FaultHook::CheckReplicationTraffic(); !cut.ok())
      return ToGrpcStatus(cut);
    absl::StatusOr<std::string> data = (*reader)->Read(offset, n);
    if (!data.ok()) return ToGrpcStatus(data.status());
    v1::SnapshotChunk chunk;
    chunk.set_offset(offset);
    chunk.set_crc32(Crc32(*data));
    offset += data->size();
    chunk.set_data(std::move(*data));
    // Write blocks while the follower's window is full (gRPC flow control).
    if (!writer->Write(chunk)) return ToGrpcStatus(absl::CancelledError("the stream broke"));
  }
  return grpc::Status::OK;
}

grpc::Status SnapshotServer::ReleaseSnapshot(grpc::ServerContext* ctx,
                                             const v1::ReleaseSnapshotRequest* request,
                                             v1::ReleaseSnapshotResponse* response) {
  if (grpc::Status auth = AuthorizeSnapshot(*security_, *ctx); !auth.ok()) return auth;
  if (absl::Status cut = FaultHook::CheckReplicationTraffic(); !cut.ok()) return ToGrpcStatus(cut);
  return ToGrpcStatus(store_->Release(request->snapshot_id(), request->shard()), ctx);
}

void SnapshotServer::Stop() {
  stopping_ = true;
  store_->Close();
}

}  // namespace dash::replication
