// A whole local cluster for multi-process tests and benchmarks: one
// dash-controlplane, N dash-nodes (ids n1..nN) joined to it, and a dash-router,
// each a real process on a free loopback port with its own directory.
// Not thread-safe: drive it from one thread (the router channel may be used
// from any).
#ifndef DASH_TESTS_HARNESS_CLUSTER_H_
#define DASH_TESTS_HARNESS_CLUSTER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dash/v1/placement.grpc.pb.h"
#include "tests/harness/process.h"

namespace dash::testing {

struct ClusterOptions {
  int nodes = 3;
  uint32_t shard_count = 4;
  uint32_t replication_factor = 3;
  // Tests run beside other tests on a shared machine: a generous timeout keeps
  // a starved heartbeat from failing a healthy node over (failover_bench sets
  // the production default, 750).
  int failure_timeout_ms = 1500;
  int heartbeat_ms = 150;
  std::vector<std::string> controlplane_args;  // Extra flags.
  std::vector<std::string> node_args;
  std::vector<std::string> router_args;
  // Every process also serves HTTP (HttpArgs; ServerProcess::http_port).
  bool http = false;
  // Start() waits until the cluster is created, every shard led and fully
  // replicated, and every node acts in its role; false: it returns once the
  // processes listen.
  bool settle = true;
};

class LocalCluster {
 public:
  LocalCluster(std::string dir, ClusterOptions options);

  // Starts everything and waits until the cluster is created and every shard
  // has a healthy leader.
  absl::Status Start();

  ControlPlaneProcess& controlplane() { return *controlplane_; }
  RouterProcess& router() { return *router_; }
  NodeProcess& node(const std::string& id) { return *nodes_.at(id); }
  std::vector<std::string> node_ids() const;

  // The control plane's current table.
  absl::StatusOr<v1::Placement> Placement();
  // Polls the table until `condition` holds.
  absl::Status WaitForPlacement(const std::function<bool(const v1::Placement&)>& condition,
                                absl::Duration timeout, const std::string& what);
  // Every shard has a leader whose node is healthy.
  static bool AllShardsLed(const v1::Placement& p);
  // Every shard's leader has reported taking writes at the shard's epoch.
  static bool AllLeadersReady(const v1::Placement& p);
  // Every follower of every shard is in sync and reports the leader's LSN.
  static bool FullyReplicated(const v1::Placement& p);
  // Every follower is healthy, in sync and at most `max_lag` records behind
  // its leader (as last reported): what "caught up" means under load.
  static bool CaughtUp(const v1::Placement& p, uint64_t max_lag);
  static std::string LeaderOf(const v1::Placement& p, uint32_t shard);

  // Waits until every running node acts in the role and epoch the table gives
  // it, and the router routes by the same epochs.
  absl::Status WaitUntilAdopted(absl::Duration timeout);
  // Waits until the router routes by the control plane's current table (or a
  // newer one): a change the table records (health, in-sync flags) is then
  // what the router acts on.
  absl::Status WaitForRouterToCatchUp(absl::Duration timeout);
  // Restarts a killed node; with `wipe`, its data directory is emptied first
  // (a replacement machine with the same name).
  absl::Status RestartNode(const std::string& id, bool wipe);

 private:
  const std::string dir_;
  const ClusterOptions options_;
  std::unique_ptr<ControlPlaneProcess> controlplane_;
  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
  std::unique_ptr<RouterProcess> router_;
};

}  // namespace dash::testing

#endif  // DASH_TESTS_HARNESS_CLUSTER_H_
