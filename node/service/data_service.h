// gRPC adapters of a shard node: dash.v1.Data and dash.v1.NodeAdmin over a
// ShardHost. Thin by design: unpack, call the host, pack. Write completes
// asynchronously (callback API) when its group commit is durable, so no gRPC
// thread waits on the disk; reads run on the synchronous server's threads.
#ifndef DASH_NODE_SERVICE_DATA_SERVICE_H_
#define DASH_NODE_SERVICE_DATA_SERVICE_H_

#include "common/security.h"
#include "dash/v1/data.grpc.pb.h"
#include "dash/v1/node.grpc.pb.h"
#include "node/shard/shard_host.h"

namespace dash::service {

class DataService final : public v1::Data::WithCallbackMethod_Write<v1::Data::Service> {
 public:
  // `host` must outlive the service. Every call is authorized by `security`
  // first: reads need the read role on their tenant, writes the write role.
  DataService(shard::ShardHost* host, std::shared_ptr<const Security> security)
      : host_(host), security_(std::move(security)) {}

  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, const v1::WriteRequest* request,
                                  v1::WriteResponse* response) override;
  grpc::Status GetClaim(grpc::ServerContext* ctx, const v1::GetClaimRequest* request,
                        v1::GetClaimResponse* response) override;
  grpc::Status ListClaims(grpc::ServerContext* ctx, const v1::ListClaimsRequest* request,
                          v1::ListClaimsResponse* response) override;
  grpc::Status Query(grpc::ServerContext* ctx, const v1::QueryRequest* request,
                     v1::QueryResponse* response) override;

 private:
  shard::ShardHost* const host_;
  const std::shared_ptr<const Security> security_;
};

class NodeAdminService final : public v1::NodeAdmin::Service {
 public:
  // GetNodeInfo and GetReplicaChecksum need the admin role (or a cluster
  // member); FenceShard is internal: the control plane only.
  NodeAdminService(shard::ShardHost* host, std::shared_ptr<const Security> security)
      : host_(host), security_(std::move(security)) {}
  grpc::Status GetNodeInfo(grpc::ServerContext* ctx, const v1::GetNodeInfoRequest* request,
                           v1::NodeInfo* response) override;
  grpc::Status GetReplicaChecksum(grpc::ServerContext* ctx,
                                  const v1::ReplicaChecksumRequest* request,
                                  v1::ReplicaChecksum* response) override;
  grpc::Status FenceShard(grpc::ServerContext* ctx, const v1::FenceShardRequest* request,
                          v1::FenceShardResponse* response) override;

 private:
  shard::ShardHost* const host_;
  const std::shared_ptr<const Security> security_;
};

}  // namespace dash::service

#endif  // DASH_NODE_SERVICE_DATA_SERVICE_H_
