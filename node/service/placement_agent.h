// A node's link to the control plane: registers the node, heartbeats the state
// of every hosted replica, watches the placement table and makes the node
// match it: opens the replicas assigned to it and moves aside those no longer
// assigned, gives each its role and epoch, and runs a log follower for every
// replica it follows. Placement is applied in version order; an older version
// is ignored. While the control plane is unreachable the node keeps its last
// placement and serves on.
#ifndef DASH_NODE_SERVICE_PLACEMENT_AGENT_H_
#define DASH_NODE_SERVICE_PLACEMENT_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/security.h"
#include "dash/v1/placement.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "node/replication/follower.h"
#include "node/shard/shard_host.h"

namespace dash::service {

struct AgentOptions {
  std::string controlplane;  // host:port of dash-controlplane.
  std::string node_id;
  std::string advertise_address;  // How other processes reach this node.
  absl::Duration heartbeat_interval = absl::Milliseconds(150);
  // The node's TLS identity for its calls to the control plane and to the
  // leaders it follows.
  std::shared_ptr<const Security> security = Security::Insecure();
  // Told after each placement table is applied whether the node is ready for
  // data calls: registered, every replica assigned to it open, not draining
  // (the node's health status; common/serving.h).
  std::function<void(bool ready)> on_ready;
};

class PlacementAgent {
 public:
  // `host` must outlive the agent.
  PlacementAgent(shard::ShardHost* host, AgentOptions options);
  // Stops the threads and every follower.
  ~PlacementAgent();

  void Start();
  // The shard count the control plane fixed at cluster creation; waits (up to
  // `timeout`) for the control plane to answer.
  static absl::StatusOr<uint32_t> FetchShardCount(const std::string& controlplane,
                                                  const Security& security, absl::Duration timeout);

 private:
  void HeartbeatLoop();
  void WatchLoop();
  void Apply(const v1::Placement& placement);
  bool Sleep(absl::Duration d);  // False once stopping.
  // Sleep, cut short when Apply adopted a leadership the control plane does
  // not yet know is ready (so that routers learn it within a tick).
  bool SleepUntilBeat(absl::Duration d);

  shard::ShardHost* const host_;
  const AgentOptions options_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Placement is applied only once registered: a node that restarted must see
  // the table the control plane decided on its registration (which may have
  // taken leadership away from it), never an older one.
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool beat_now_ ABSL_GUARDED_BY(mu_) = false;

  // Serializes Apply (which may take long: opening replicas) and guards what
  // it maintains. Heartbeats never wait for it.
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t applied_version_ ABSL_GUARDED_BY(apply_mu_) = 0;
  std::map<uint32_t, std::shared_ptr<replication::LogFollower>> followers_
      ABSL_GUARDED_BY(apply_mu_);
  // What heartbeats read: the followers' divergence flags.
  std::map<uint32_t, std::shared_ptr<replication::LogFollower>> reported_followers_
      ABSL_GUARDED_BY(mu_);

  std::thread heartbeat_thread_;
  std::thread watch_thread_;
};

}  // namespace dash::service

#endif  // DASH_NODE_SERVICE_PLACEMENT_AGENT_H_
