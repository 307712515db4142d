#include "controlplane/placement/placement_manager.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace dash::controlplane {
namespace {

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* ts) {
  ts->set_seconds(micros / 1000000);
  ts->set_nanos(static_cast<int32_t>((micros % 1000000) * 1000));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PlacementManager>> PlacementManager::Open(
    std::unique_ptr<PlacementStore> store, const ManagerOptions& options) {
  if (options.shard_count == 0) return absl::InvalidArgumentError("shard_count: must be > 0");
  if (options.replication_factor == 0) {
    return absl::InvalidArgumentError("replication_factor: must be > 0");
  }
  DASH_ASSIGN_OR_RETURN(std::optional<v1::Placement> stored, store->Load());
  v1::Placement placement;
  if (!stored.has_value()) {
    placement = NewPlacement(options.shard_count, options.replication_factor);
    DASH_RETURN_IF_ERROR(store->Save(placement));
    LOG(INFO) << "placement v" << placement.version() << ": new cluster, "
              << placement.shard_count() << " shards, replication factor "
              << placement.replication_factor() << "; waiting for nodes";
  } else {
    placement = *std::move(stored);
    if (placement.shard_count() != options.shard_count ||
        placement.replication_factor() != options.replication_factor) {
      LOG(WARNING) << "the stored table has " << placement.shard_count()
                   << " shards and replication factor " << placement.replication_factor()
                   << "; ignoring --shard_count=" << options.shard_count
                   << " --replication_factor=" << options.replication_factor;
    }
    LOG(INFO) << "placement v" << placement.version() << ": loaded ("
              << (placement.created() ? "created" : "not created yet") << ", "
              << placement.nodes_size() << " nodes)";
    // A transfer's caller died with the previous process; the old leader
    // must not stay paused forever.
    for (const v1::ShardEntry& shard :
         std::vector<v1::ShardEntry>(placement.shards().begin(), placement.shards().end())) {
      if (shard.transfer_to().empty()) continue;
      v1::PlacementChange change = PlanTransferAbandon(placement, shard.shard());
      DASH_RETURN_IF_ERROR(store->Save(change.placement()));
      for (const std::string& line : change.summary()) {
        LOG(INFO) << "placement v" << change.placement().version() << ": " << line;
      }
      placement = change.placement();
    }
  }
  auto manager = std::unique_ptr<PlacementManager>(
      new PlacementManager(std::move(store), options, std::move(placement)));
  if (options.run_ticker) {
    manager->ticker_ = std::thread([m = manager.get()] { m->TickerLoop(); });
  }
  return manager;
}

PlacementManager::PlacementManager(std::unique_ptr<PlacementStore> store,
                                   const ManagerOptions& options, v1::Placement placement)
    : options_(options),
      store_(std::move(store)),
      current_(std::move(placement)),
      detector_(options.monotonic_clock, options.failure_timeout) {
  // One failure timeout of grace: a node the table calls healthy counts as
  // heard now. Nodes already unhealthy stay so until they are heard.
  for (const v1::NodeEntry& node : current_.nodes()) {
    if (node.health() == v1::NODE_HEALTH_HEALTHY) detector_.Heard(node.node_id());
  }
}

PlacementManager::~PlacementManager() {
  Shutdown();
  if (ticker_.joinable()) ticker_.join();
}

void PlacementManager::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  shutdown_ = true;
  if (!stop_ticker_.HasBeenNotified()) stop_ticker_.Notify();
  changed_.SignalAll();
}

bool PlacementManager::stopped() {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

absl::Status PlacementManager::CheckRunning() {
  if (shutdown_) return absl::UnavailableError("the control plane is shutting down");
  return absl::OkStatus();
}

absl::Status PlacementManager::Commit(v1::PlacementChange* change) {
  if (change->placement().version() == current_.version()) {
    *change->mutable_placement() = current_;
    return absl::OkStatus();
  }
  DASH_RETURN_IF_ERROR(store_->Save(change->placement()));
  current_ = change->placement();
  for (const std::string& line : change->summary()) {
    LOG(INFO) << "placement v" << current_.version() << ": " << line;
  }
  changed_.SignalAll();
  return absl::OkStatus();
}

absl::StatusOr<v1::PlacementChange> PlacementManager::CommitPlan(
    absl::StatusOr<v1::PlacementChange> plan) {
  DASH_RETURN_IF_ERROR(plan.status());
  DASH_RETURN_IF_ERROR(Commit(&*plan));
  return plan;
}

absl::StatusOr<v1::RegisterNodeResponse> PlacementManager::RegisterNode(
    const v1::RegisterNodeRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  bool known = false;
  for (const v1::NodeEntry& node : current_.nodes())
    known = known || node.node_id() == request.node_id();
  DASH_ASSIGN_OR_RETURN(v1::PlacementChange change, PlanRegister(current_, request));
  // Heard before the table says healthy, so the next tick agrees.
  detector_.Heard(request.node_id());
  DASH_RETURN_IF_ERROR(Commit(&change));
  // A node registers when its process starts: reports from an earlier
  // process (whose disk may since have been replaced) describe nothing that
  // exists now. Until its first heartbeat its replicas have no report, so they
  // are out of sync and cannot be promoted.
  for (auto it = reports_.begin(); it != reports_.end();) {
    if (it->first.second == request.node_id()) {
      report_seq_.erase(it->first);
      it = reports_.erase(it);
    } else {
      ++it;
    }
  }
  // A leader that registers again is a new process, possibly on an empty
  // disk, that came back before it was noticed missing: it must not go on
  // leading on the strength of the old process's log. Its shards fail over as
  // if it had died (when the other replicas can elect safely); it then
  // follows and catches up. Decided before the answer, so the node's first
  // placement already shows it.
  if (known && current_.created()) {
    const v1::Placement snapshot = current_;  // CommitPlan replaces current_.
    for (const v1::ShardEntry& shard : snapshot.shards()) {
      if (shard.leader_node_id() != request.node_id()) continue;
      v1::FailoverRequest failover;
      failover.set_shard(shard.shard());
      absl::StatusOr<v1::PlacementChange> moved =
          CommitPlan(PlanFailover(current_, reports_, failover));
      if (!moved.ok()) {
        LOG(WARNING) << "shard " << shard.shard() << ": leader " << request.node_id()
                     << " restarted; it keeps leading: " << moved.status().message();
      }
    }
  }
  for (v1::NodeEntry& node : *current_.mutable_nodes()) {
    if (node.node_id() == request.node_id()) {
      SetTimestamp(options_.wall_clock->NowMicros(), node.mutable_last_heartbeat());
    }
  }
  v1::RegisterNodeResponse response;
  response.set_shard_count(current_.shard_count());
  *response.mutable_placement() = current_;
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> PlacementManager::Heartbeat(
    const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  const std::string& node_id = request.node_id();
  v1::NodeEntry* node = nullptr;
  for (v1::NodeEntry& entry : *current_.mutable_nodes()) {
    if (entry.node_id() == node_id) node = &entry;
  }
  if (node == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("node_id: \"", node_id, "\" is not registered; register again"));
  }
  detector_.Heard(node_id);
  heard_.insert(node_id);
  SetTimestamp(options_.wall_clock->NowMicros(), node->mutable_last_heartbeat());
  const uint64_t seq = ++heartbeat_seq_;
  // The latest heartbeat replaces the node's previous reports: a shard it no
  // longer reports has no report.
  for (auto it = reports_.begin(); it != reports_.end();) {
    if (it->first.second == node_id) {
      report_seq_.erase(it->first);
      it = reports_.erase(it);
    } else {
      ++it;
    }
  }
  for (const v1::ReplicaReport& report : request.replicas()) {
    if (report.shard() >= current_.shard_count()) continue;
    const auto key = std::make_pair(report.shard(), node_id);
    reports_[key] = report;
    report_seq_[key] = seq;
    // Informational: no new version for reported positions.
    for (v1::ShardEntry& shard : *current_.mutable_shards()) {
      if (shard.shard() != report.shard()) continue;
      for (v1::ReplicaEntry& replica : *shard.mutable_replicas()) {
        if (replica.node_id() != node_id) continue;
        replica.set_last_epoch(report.last_epoch());
        replica.set_last_lsn(report.last_lsn());
      }
    }
  }
  changed_.SignalAll();  // Transfers wait for reports.
  v1::HeartbeatResponse response;
  response.set_placement_version(current_.version());
  return response;
}

v1::Placement PlacementManager::GetPlacement() {
  absl::MutexLock lock(&mu_);
  return current_;
}

v1::ListNodesResponse PlacementManager::ListNodes() {
  absl::MutexLock lock(&mu_);
  v1::ListNodesResponse response;
  *response.mutable_nodes() = current_.nodes();
  response.set_placement_version(current_.version());
  return response;
}

std::optional<v1::Placement> PlacementManager::WaitForNewer(uint64_t after_version,
                                                            absl::Duration max_wait) {
  const absl::Time deadline = absl::Now() + max_wait;
  absl::MutexLock lock(&mu_);
  while (!shutdown_ && current_.version() <= after_version) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (shutdown_ || current_.version() <= after_version) return std::nullopt;
  return current_;
}

absl::StatusOr<v1::PlacementChange> PlacementManager::Failover(const v1::FailoverRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return CommitPlan(PlanFailover(current_, reports_, request));
}

absl::StatusOr<v1::PlacementChange> PlacementManager::Promote(const v1::PromoteRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return CommitPlan(PlanPromote(current_, request));
}

absl::StatusOr<v1::PlacementChange> PlacementManager::AddReplica(
    const v1::AddReplicaRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return CommitPlan(PlanAddReplica(current_, request));
}

absl::StatusOr<v1::PlacementChange> PlacementManager::RemoveReplica(
    const v1::RemoveReplicaRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return CommitPlan(PlanRemoveReplica(current_, request));
}

absl::StatusOr<v1::PlacementChange> PlacementManager::MoveReplica(
    const v1::MoveReplicaRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return CommitPlan(PlanMoveReplica(current_, request));
}

absl::StatusOr<v1::PlacementChange> PlacementManager::TransferLeader(
    const v1::TransferLeaderRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return TransferLocked(request);
}

const v1::ReplicaReport* PlacementManager::FreshReport(uint32_t shard, const std::string& node_id,
                                                       uint64_t after_seq) {
  const auto key = std::make_pair(shard, node_id);
  auto seq = report_seq_.find(key);
  if (seq == report_seq_.end() || seq->second <= after_seq) return nullptr;
  return &reports_.at(key);
}

absl::Status PlacementManager::AbandonTransfer(uint32_t shard, absl::Status error) {
  v1::PlacementChange change = PlanTransferAbandon(current_, shard);
  absl::Status status = Commit(&change);
  if (!status.ok()) {
    LOG(ERROR) << "shard " << shard << ": cannot persist the abandoned transfer: " << status;
  }
  return error;
}

absl::StatusOr<v1::PlacementChange> PlacementManager::TransferLocked(
    const v1::TransferLeaderRequest& request) {
  DASH_ASSIGN_OR_RETURN(v1::PlacementChange start, PlanTransferStart(current_, request));
  if (start.placement().version() == current_.version()) return start;  // Already leader.
  DASH_RETURN_IF_ERROR(Commit(&start));

  // Only reports sent after the nodes could have seen transfer_to count.
  const uint64_t start_seq = heartbeat_seq_;
  const uint32_t shard_id = request.shard();
  const std::string target = request.node_id();
  const v1::ShardEntry* shard = FindShard(current_, shard_id);
  const uint64_t epoch = shard->epoch();
  const std::string leader = shard->leader_node_id();
  const absl::Duration timeout = request.timeout_ms() == 0
                                     ? options_.default_transfer_timeout
                                     : absl::Milliseconds(request.timeout_ms());
  const Clock* clock = options_.monotonic_clock;
  const int64_t deadline_micros = clock->NowMicros() + absl::ToInt64Microseconds(timeout);
  const std::string what = absl::StrCat("shard ", shard_id, ": transfer ", leader, " -> ", target);

  while (true) {
    if (shutdown_) {
      return AbandonTransfer(shard_id, absl::UnavailableError(absl::StrCat(
                                           what, " abandoned: the control plane is stopping")));
    }
    shard = FindShard(current_, shard_id);
    if (shard->epoch() != epoch || shard->transfer_to() != target) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " abandoned: the shard changed meanwhile (leader ",
                       shard->leader_node_id(), ", epoch ", shard->epoch(), ")"));
    }
    for (const std::string& node_id : {leader, target}) {
      const v1::NodeEntry* node = FindNode(current_, node_id);
      if (node == nullptr || node->health() != v1::NODE_HEALTH_HEALTHY) {
        return AbandonTransfer(shard_id, absl::FailedPreconditionError(absl::StrCat(
                                             what, " abandoned: ", node_id, " became unhealthy")));
      }
    }
    const v1::ReplicaReport* leader_report = FreshReport(shard_id, leader, start_seq);
    const v1::ReplicaReport* target_report = FreshReport(shard_id, target, start_seq);
    const bool paused = leader_report != nullptr && leader_report->writes_paused() &&
                        leader_report->epoch() == epoch;
    if (paused && target_report != nullptr &&
        target_report->last_lsn() >= leader_report->last_lsn()) {
      absl::StatusOr<v1::PlacementChange> finish = PlanTransferFinish(current_, shard_id, target);
      if (finish.ok()) {
        absl::Status status = Commit(&*finish);
        if (status.ok()) return finish;
        return AbandonTransfer(shard_id, status);
      }
      return AbandonTransfer(shard_id, finish.status());
    }
    const int64_t now = clock->NowMicros();
    if (now >= deadline_micros) {
      std::string state;
      if (!paused) {
        state = absl::StrCat("leader ", leader, " has not reported paused writes at epoch ", epoch);
      } else if (target_report == nullptr) {
        state = absl::StrCat(target, " has not reported since the transfer began");
      } else {
        state = absl::StrCat(target, " is at LSN ", target_report->last_lsn(), ", leader ", leader,
                             " at LSN ", leader_report->last_lsn(), " (lag ",
                             leader_report->last_lsn() - target_report->last_lsn(), ")");
      }
      return AbandonTransfer(
          shard_id, absl::FailedPreconditionError(absl::StrCat(
                        what, " abandoned after ", absl::FormatDuration(timeout), ": ", state)));
    }
    // Woken by heartbeats and table changes; the cap keeps the deadline honest
    // even if the wall clock jumps.
    changed_.WaitWithTimeout(&mu_,
                             std::min(absl::Microseconds(deadline_micros - now), options_.tick));
  }
}

absl::StatusOr<v1::PlacementChange> PlacementManager::DrainNode(
    const v1::DrainNodeRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  DASH_ASSIGN_OR_RETURN(v1::PlacementChange result, CommitPlan(PlanDrainMark(current_, request)));
  if (request.undrain()) return result;

  std::vector<uint32_t> led;
  for (const v1::ShardEntry& shard : current_.shards()) {
    if (shard.leader_node_id() == request.node_id()) led.push_back(shard.shard());
  }
  std::vector<std::string> failures;
  for (uint32_t shard_id : led) {
    const v1::ShardEntry* shard = FindShard(current_, shard_id);
    if (shard == nullptr || shard->leader_node_id() != request.node_id()) continue;
    std::optional<std::string> target = ChooseTransferTarget(current_, *shard, reports_);
    if (!target.has_value()) {
      failures.push_back(
          absl::StrCat("shard ", shard_id, ": no healthy in-sync follower to take over"));
      continue;
    }
    v1::TransferLeaderRequest transfer;
    transfer.set_shard(shard_id);
    transfer.set_node_id(*target);
    absl::StatusOr<v1::PlacementChange> done = TransferLocked(transfer);
    if (!done.ok()) {
      failures.push_back(std::string(done.status().message()));
      if (shutdown_) break;
      continue;
    }
    for (uint32_t s : done->shards_changed()) result.add_shards_changed(s);
    for (const std::string& line : done->summary()) result.add_summary(line);
  }
  *result.mutable_placement() = current_;
  if (!failures.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", request.node_id(), " is marked draining but leadership of ",
                     failures.size(), " shard(s) could not move: ", absl::StrJoin(failures, "; ")));
  }
  return result;
}

void PlacementManager::Tick() {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  TickInput input;
  for (const v1::NodeEntry& node : current_.nodes()) {
    input.alive[node.node_id()] = detector_.Alive(node.node_id());
  }
  input.reports = &reports_;
  input.report_order = &report_seq_;
  input.heard = heard_;
  input.in_sync_max_lag_records = options_.in_sync_max_lag_records;
  v1::PlacementChange change = PlanTick(current_, input);
  absl::Status status = Commit(&change);
  if (!status.ok()) {
    LOG(ERROR) << "tick: cannot persist placement v" << change.placement().version() << ": "
               << status << "; retrying next tick";
    return;
  }
  // An unhealthy leader nobody may safely replace: say why, once per episode
  // (and again only if the reason changes).
  for (const v1::ShardEntry& shard : current_.shards()) {
    const v1::NodeEntry* leader = FindNode(current_, shard.leader_node_id());
    const bool stuck = leader != nullptr && leader->health() != v1::NODE_HEALTH_HEALTHY;
    if (stuck) {
      absl::StatusOr<std::string> choice = ChooseFailoverLeader(current_, shard, reports_);
      const std::string reason = choice.ok() ? std::string("no failover possible")
                                             : std::string(choice.status().message());
      auto [it, inserted] = stuck_shards_.emplace(shard.shard(), reason);
      if (inserted || it->second != reason) {
        it->second = reason;
        LOG(WARNING) << reason << " (keeping unhealthy leader " << shard.leader_node_id()
                     << "; writes fail closed until it returns)";
      }
    } else if (stuck_shards_.erase(shard.shard()) > 0) {
      LOG(INFO) << "shard " << shard.shard() << ": leader " << shard.leader_node_id()
                << " is healthy again";
    }
  }
}

void PlacementManager::TickerLoop() {
  while (!stop_ticker_.WaitForNotificationWithTimeout(options_.tick)) Tick();
}

}  // namespace dash::controlplane
