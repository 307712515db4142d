#include "controlplane/placement/placement_manager.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/sync_point.h"
#include "glog/logging.h"

namespace dash::controlplane {
namespace {

// How often an operator's leader change fences again when the shard keeps
// changing under it.
constexpr int kMaxFenceAttempts = 3;

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* ts) {
  ts->set_seconds(micros / 1000000);
  ts->set_nanos(static_cast<int32_t>((micros % 1000000) * 1000));
}

// "n1 ok (1, 100), n2 DEADLINE_EXCEEDED" for the log.
std::string DescribeFence(const ShardFence& fence) {
  std::vector<std::string> parts;
  for (const auto& [node_id, answer] : fence.replicas) {
    if (answer.status.ok()) {
      parts.push_back(
          absl::StrCat(node_id, " ok (", answer.last_epoch, ", ", answer.last_lsn, ")"));
    } else {
      parts.push_back(absl::StrCat(node_id, " ", answer.status.ToString()));
    }
  }
  return absl::StrJoin(parts, ", ");
}

bool Fenced(const ShardFence& fence, const std::string& node_id) {
  auto it = fence.replicas.find(node_id);
  return it != fence.replicas.end() && it->second.status.ok();
}

}  // namespace

absl::Duration DefaultLease(absl::Duration failure_timeout) { return failure_timeout * 2 / 3; }

absl::Status ValidateLease(absl::Duration lease, absl::Duration failure_timeout) {
  if (lease < absl::ZeroDuration()) return absl::InvalidArgumentError("lease_ms: must be >= 0");
  if (lease >= failure_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease_ms: ", absl::ToInt64Milliseconds(lease), " must be below failure_timeout_ms (",
        absl::ToInt64Milliseconds(failure_timeout),
        "): a deposed leader could still serve reads on its lease after another replica is "
        "promoted"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PlacementManager>> PlacementManager::Open(
    std::unique_ptr<PlacementStore> store, const ManagerOptions& options) {
  if (options.shard_count == 0) return absl::InvalidArgumentError("shard_count: must be > 0");
  if (options.replication_factor == 0) {
    return absl::InvalidArgumentError("replication_factor: must be > 0");
  }
  DASH_RETURN_IF_ERROR(ValidateLease(options.lease, options.failure_timeout));
  if (options.fencer == nullptr) return absl::InvalidArgumentError("fencer: required");
  if (options.fence_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("fence_timeout_ms: must be > 0");
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
      detector_(options.monotonic_clock, options.failure_timeout),
      started_micros_(options.monotonic_clock->NowMicros()) {
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
  //
  // The leases of the earlier process died with it. The failover is fenced
  // like any other (the lock is released meanwhile).
  lease_granted_.erase(request.node_id());
  if (known && current_.created()) {
    const v1::Placement snapshot = current_;  // CommitPlan replaces current_.
    for (const v1::ShardEntry& shard : snapshot.shards()) {
      if (shard.leader_node_id() != request.node_id()) continue;
      v1::FailoverRequest failover;
      failover.set_shard(shard.shard());
      failover.set_expected_epoch(shard.epoch());
      absl::StatusOr<v1::PlacementChange> moved =
          FencedChangeLocked(shard.shard(), [&](const ShardFence* fence) {
            return PlanFailover(current_, reports_, failover, fence);
          });
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
  // The lease. The node is healthy as of this heartbeat (it was just heard;
  // the table follows at the next tick). What must not get one: a node still
  // acting as leader of a shard the table has given another node (failed over
  // while it was away, and it has not seen that yet), and the leader of a
  // shard being fenced (its leadership may be moving away).
  bool lease = options_.lease > absl::ZeroDuration();
  for (const v1::ReplicaReport& report : request.replicas()) {
    if (report.role() != v1::REPLICA_ROLE_LEADER) continue;
    const v1::ShardEntry* shard = FindShard(current_, report.shard());
    if (shard == nullptr || shard->leader_node_id() != node_id) lease = false;
  }
  for (const auto& [shard, old_leader] : fencing_) {
    if (old_leader == node_id) lease = false;
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
    // Informational: no new version for reported positions, nor for the lag
    // the shard's leader sees of each follower (its in-sync verdicts are
    // applied by the ticker, which does publish flips).
    for (v1::ShardEntry& shard : *current_.mutable_shards()) {
      if (shard.shard() != report.shard()) continue;
      const bool leads =
          shard.leader_node_id() == node_id && report.role() == v1::REPLICA_ROLE_LEADER;
      for (v1::ReplicaEntry& replica : *shard.mutable_replicas()) {
        if (replica.node_id() == node_id) {
          replica.set_last_epoch(report.last_epoch());
          replica.set_last_lsn(report.last_lsn());
          if (report.has_follow() && !leads) {
            *replica.mutable_follow() = report.follow();
          } else {
            replica.clear_follow();
          }
          continue;
        }
        if (!leads) continue;
        const v1::FollowerLag* lag = nullptr;
        for (const v1::FollowerLag& f : report.followers()) {
          if (f.node_id() == replica.node_id()) lag = &f;
        }
        if (lag != nullptr) {
          *replica.mutable_lag() = *lag;
        } else {
          replica.clear_lag();
        }
      }
    }
  }
  changed_.SignalAll();  // Transfers wait for reports.
  v1::HeartbeatResponse response;
  response.set_placement_version(current_.version());
  if (lease) {
    lease_granted_[node_id] = options_.monotonic_clock->NowMicros();
    response.set_lease_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.lease)));
  }
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
  return FencedChangeLocked(request.shard(), [&](const ShardFence* fence) {
    return PlanFailover(current_, reports_, request, fence);
  });
}

absl::StatusOr<v1::PlacementChange> PlacementManager::Promote(const v1::PromoteRequest& request) {
  absl::MutexLock lock(&mu_);
  DASH_RETURN_IF_ERROR(CheckRunning());
  return FencedChangeLocked(request.shard(), [&](const ShardFence* fence) {
    return PlanPromote(current_, request, fence);
  });
}

absl::StatusOr<v1::PlacementChange> PlacementManager::FencedChangeLocked(uint32_t shard_id,
                                                                         const FencedPlan& plan) {
  for (int attempt = 1;; ++attempt) {
    // One fencing per shard at a time: a second caller waits for the first
    // to finish, then checks again on the table it left.
    while (!shutdown_ && fencing_.count(shard_id) > 0) changed_.Wait(&mu_);
    DASH_RETURN_IF_ERROR(CheckRunning());
    // The checks that need no fencing (range, expected_epoch, the reported
    // electorate, data loss by the reports); no change: done.
    DASH_ASSIGN_OR_RETURN(v1::PlacementChange check, plan(nullptr));
    if (check.placement().version() == current_.version()) return CommitPlan(std::move(check));
    const std::string old_leader = FindShard(current_, shard_id)->leader_node_id();
    fencing_[shard_id] = old_leader;
    FenceMap fences = FenceLocked({shard_id});
    const ShardFence& fence = fences[shard_id];
    // A deposed leader that was not fenced may serve reads on its lease until
    // it runs out (it gets no new one while fencing_ names it).
    if (!Fenced(fence, old_leader)) AwaitLeaseExpiry(old_leader);
    // Planned again on the table as it is now: the answers count only if the
    // shard is still at the epoch they were given for (every leader or
    // replica-set change bumps it), else ABORTED and fence again.
    absl::StatusOr<v1::PlacementChange> change = plan(&fence);
    absl::Status status = CheckRunning();
    if (status.ok() && change.ok()) status = Commit(&*change);
    fencing_.erase(shard_id);
    changed_.SignalAll();
    DASH_RETURN_IF_ERROR(status);
    if (absl::IsAborted(change.status()) && attempt < kMaxFenceAttempts) continue;
    if (!change.ok()) {
      LOG(WARNING) << "shard " << shard_id << ": not changing the leader after fencing at epoch "
                   << fence.epoch << " (" << DescribeFence(fence)
                   << "): " << change.status().message();
    }
    return change;
  }
}

FenceMap PlacementManager::FenceLocked(const std::vector<uint32_t>& shards) {
  std::vector<FenceCall> calls;
  FenceMap fences;
  for (uint32_t shard_id : shards) {
    const v1::ShardEntry* shard = FindShard(current_, shard_id);
    if (shard == nullptr) continue;
    fences[shard_id].epoch = shard->epoch() + 1;
    for (const v1::ReplicaEntry& replica : shard->replicas()) {
      const v1::NodeEntry* node = FindNode(current_, replica.node_id());
      calls.push_back(FenceCall{shard_id, shard->epoch() + 1, replica.node_id(),
                                node != nullptr ? node->address() : std::string()});
    }
  }
  Fencer* fencer = options_.fencer;
  mu_.Unlock();
  std::vector<absl::StatusOr<v1::FenceShardResponse>> answers =
      fencer->Fence(calls, options_.fence_timeout);
  mu_.Lock();
  for (size_t i = 0; i < calls.size(); ++i) {
    FenceOutcome& outcome = fences[calls[i].shard].replicas[calls[i].node_id];
    if (i >= answers.size()) {
      outcome.status = absl::InternalError("the fencer gave no answer");
    } else if (!answers[i].ok()) {
      outcome.status = answers[i].status();
    } else if (answers[i]->epoch() != 0 && answers[i]->epoch() != calls[i].epoch) {
      outcome.status = absl::FailedPreconditionError(
          absl::StrCat("adopted epoch ", answers[i]->epoch(), ", not ", calls[i].epoch));
    } else {
      outcome.last_epoch = answers[i]->last_epoch();
      outcome.last_lsn = answers[i]->last_lsn();
    }
  }
  for (const auto& [shard_id, fence] : fences) {
    VLOG(1) << "shard " << shard_id << ": fenced at epoch " << fence.epoch << ": "
            << DescribeFence(fence);
  }
  return fences;
}

bool PlacementManager::LeaseExpired(const std::string& node_id) {
  auto it = lease_granted_.find(node_id);
  if (it == lease_granted_.end()) return true;
  return options_.monotonic_clock->NowMicros() >=
         it->second + absl::ToInt64Microseconds(options_.lease);
}

void PlacementManager::AwaitLeaseExpiry(const std::string& node_id) {
  // A lease never outlasts options_.lease of real time either, whatever the
  // injected clock says.
  const absl::Time cap = absl::Now() + options_.lease;
  while (!shutdown_ && !LeaseExpired(node_id)) {
    if (changed_.WaitWithDeadline(&mu_, cap)) break;
  }
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
    // even if the wall clock jumps. (Tests learn what the transfer waits with.)
    [[maybe_unused]] bool leader_paused = paused;
    DASH_SYNC_POINT_ARG("PlacementManager::TransferLocked:Waiting", &leader_paused);
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

TickInput PlacementManager::TickInputLocked() {
  TickInput input;
  const absl::Duration limit = options_.restart_grace_limit > absl::ZeroDuration()
                                   ? options_.restart_grace_limit
                                   : 5 * options_.failure_timeout;
  const bool in_restart_grace =
      options_.monotonic_clock->NowMicros() - started_micros_ < absl::ToInt64Microseconds(limit);
  for (const v1::NodeEntry& node : current_.nodes()) {
    bool alive = detector_.Alive(node.node_id());
    // Not heard since this process started, but healthy when it stopped:
    // healthy until shown gone (see Open).
    if (!alive && in_restart_grace && heard_.count(node.node_id()) == 0 &&
        node.health() == v1::NODE_HEALTH_HEALTHY &&
        !LeaderSilenceReported(current_, reports_, node.node_id(),
                               absl::ToInt64Milliseconds(options_.failure_timeout))) {
      alive = true;
    }
    input.alive[node.node_id()] = alive;
  }
  input.reports = &reports_;
  input.report_order = &report_seq_;
  input.heard = heard_;
  input.in_sync_max_lag_records = options_.in_sync_max_lag_records;
  for (const auto& [shard, old_leader] : fencing_) input.fencing.insert(shard);
  return input;
}

void PlacementManager::Tick() {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  TickInput input = TickInputLocked();
  v1::PlacementChange change = PlanTick(current_, input);
  // Shards whose leader this step finds unhealthy and whose reports allow a
  // failover: fence them, then plan the step again with the answers.
  std::vector<uint32_t> to_fence;
  for (uint32_t shard : ShardsToFailOver(change.placement(), reports_)) {
    if (fencing_.count(shard) == 0) to_fence.push_back(shard);
  }
  FenceMap fences;
  if (!to_fence.empty()) {
    for (uint32_t shard : to_fence) {
      const v1::ShardEntry* entry = FindShard(current_, shard);
      fencing_[shard] = entry != nullptr ? entry->leader_node_id() : std::string();
    }
    fences = FenceLocked(to_fence);
    for (uint32_t shard : to_fence) fencing_.erase(shard);
    changed_.SignalAll();
    if (shutdown_) return;
    // The leader is silent for longer than the failure timeout and got no
    // lease while it was being fenced away, so its lease has run out; an
    // unfenced leader still on a lease would make this unsafe, so check.
    for (auto it = fences.begin(); it != fences.end();) {
      const v1::ShardEntry* shard = FindShard(current_, it->first);
      const std::string leader = shard != nullptr ? shard->leader_node_id() : std::string();
      if (!Fenced(it->second, leader) && !LeaseExpired(leader)) {
        it = fences.erase(it);
      } else {
        ++it;
      }
    }
    input = TickInputLocked();
    input.fences = &fences;
    change = PlanTick(current_, input);
  }
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
      auto fence = fences.find(shard.shard());
      if (choice.ok() && fence != fences.end()) {
        choice = ChooseFencedLeader(current_, shard, reports_, fence->second);
      }
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
