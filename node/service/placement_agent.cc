#include "node/service/placement_agent.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "glog/logging.h"
#include "grpcpp/create_channel.h"
#include "node/replication/fault_hook.h"
#include "query/query_codec.h"

namespace dash::service {
namespace {

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

v1::FollowerStatus ToProto(const replication::FollowStatus& s) {
  v1::FollowerStatus out;
  out.set_state(s.state);
  out.set_last_error(s.last_error);
  out.set_leader_silent_ms(
      static_cast<uint64_t>(std::max<int64_t>(absl::ToInt64Milliseconds(s.leader_silent), 0)));
  out.set_retries(s.retries);
  return out;
}

}  // namespace

PlacementAgent::PlacementAgent(shard::ShardHost* host, AgentOptions options)
    : host_(host), options_(std::move(options)) {
  // After the control plane restarts, heartbeats must reach it within its
  // failure timeout, not after gRPC's default reconnect backoff (which grows
  // to minutes): retry the connection at least every 250 ms.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  stub_ = v1::ControlPlane::NewStub(options_.security->PeerChannel(options_.controlplane, args));
}

PlacementAgent::~PlacementAgent() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  absl::MutexLock l(&apply_mu_);
  {
    absl::MutexLock m(&mu_);
    reported_followers_.clear();
  }
  followers_.clear();
}

absl::StatusOr<uint32_t> PlacementAgent::FetchShardCount(const std::string& controlplane,
                                                         const Security& security,
                                                         absl::Duration timeout) {
  auto stub = v1::ControlPlane::NewStub(security.PeerChannel(controlplane));
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(1)));
    ctx.set_wait_for_ready(true);
    v1::Placement placement;
    last = FromGrpcStatus(stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement));
    if (last.ok()) return placement.shard_count();
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < deadline);
  return absl::UnavailableError(
      absl::StrCat("control plane at ", controlplane, " did not answer: ", last.message()));
}

void PlacementAgent::Start() {
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
}

bool PlacementAgent::Sleep(absl::Duration d) {
  absl::MutexLock l(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_), d);
  return !stop_;
}

bool PlacementAgent::SleepUntilBeat(absl::Duration d) {
  absl::MutexLock l(&mu_);
  auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || beat_now_; };
  mu_.AwaitWithTimeout(absl::Condition(&wake), d);
  beat_now_ = false;
  return !stop_;
}

void PlacementAgent::HeartbeatLoop() {
  bool registered = false;
  bool warned = false;
  while (SleepUntilBeat(registered ? options_.heartbeat_interval : absl::Milliseconds(100))) {
    if (replication::FaultHook::Isolated()) continue;  // Cut off from the control plane.
    if (!registered) {
      v1::RegisterNodeRequest req;
      req.set_node_id(options_.node_id);
      req.set_address(options_.advertise_address);
      v1::RegisterNodeResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(1)));
      absl::Status st = FromGrpcStatus(stub_->RegisterNode(&ctx, req, &resp));
      if (!st.ok()) {
        if (!warned) LOG(WARNING) << "registering with " << options_.controlplane << ": " << st;
        warned = true;
        continue;
      }
      if (resp.shard_count() != host_->shard_count()) {
        LOG(ERROR) << "the cluster has " << resp.shard_count() << " shards, this node was opened "
                   << "with " << host_->shard_count() << "; not registering";
        continue;
      }
      LOG(INFO) << "registered with the control plane at " << options_.controlplane << " as "
                << options_.node_id << " (" << options_.advertise_address << ")";
      Apply(resp.placement());
      {
        absl::MutexLock l(&mu_);
        registered_ = true;
      }
      registered = true;
      warned = false;
      continue;
    }
    v1::HeartbeatRequest req;
    req.set_node_id(options_.node_id);
    std::map<uint32_t, bool> diverged;
    std::map<uint32_t, v1::FollowerStatus> follow;
    {
      absl::MutexLock l(&mu_);
      for (const auto& [shard, f] : reported_followers_) {
        diverged[shard] = f->diverged();
        follow[shard] = ToProto(f->status());
      }
    }
    for (const auto& [shard, r] : host_->replicas()) {
      const shard::ReplicaState s = r->State();
      v1::ReplicaReport* rep = req.add_replicas();
      rep->set_shard(shard);
      rep->set_epoch(s.epoch);
      rep->set_role(s.leader ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
      rep->set_last_epoch(s.last_epoch);
      rep->set_last_lsn(s.last_lsn);
      rep->set_diverged(diverged[shard]);
      rep->set_writes_paused(s.leader && s.writes_paused);
      rep->set_commit_lsn(s.commit_lsn);
      if (auto it = follow.find(shard); !s.leader && it != follow.end()) {
        *rep->mutable_follow() = it->second;
      }
      for (const shard::FollowerLag& lag : r->FollowerLags()) {
        *rep->add_followers() = shard::ToProto(lag);
      }
    }
    host_->PublishFollowStatus(std::move(follow));
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(1)));
    // While the channel reconnects (the control plane restarting), wait for
    // it within the deadline rather than fail at once and skip a beat.
    ctx.set_wait_for_ready(true);
    // The lease runs from when the heartbeat was sent: the control plane
    // counts its failure timeout from when it arrived, which is later.
    const absl::Time sent = absl::Now();
    absl::Status st = FromGrpcStatus(stub_->Heartbeat(&ctx, req, &resp));
    if (st.ok() && resp.lease_ms() > 0) {
      const absl::Time until = sent + absl::Milliseconds(resp.lease_ms());
      for (const auto& [shard, r] : host_->replicas()) r->SetLeaseUntil(until);
    }
    if (absl::IsNotFound(st)) {
      registered = false;  // The control plane lost us (e.g. a new table): register again.
    } else if (!st.ok() && !warned) {
      LOG(WARNING) << "heartbeat to " << options_.controlplane << ": " << st
                   << " (serving on with the last placement)";
      warned = true;
    } else if (st.ok()) {
      warned = false;
    }
  }
}

void PlacementAgent::WatchLoop() {
  {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](PlacementAgent* a)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->mu_) { return a->registered_ || a->stop_; },
        this));
  }
  for (;;) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock l(&mu_);
      if (stop_) return;
      watch_call_ = &ctx;
    }
    v1::WatchPlacementRequest req;
    {
      absl::MutexLock l(&apply_mu_);
      req.set_after_version(applied_version_);
    }
    auto reader = stub_->WatchPlacement(&ctx, req);
    v1::Placement placement;
    while (reader->Read(&placement)) {
      if (replication::FaultHook::Isolated()) {
        ctx.TryCancel();
        break;
      }
      Apply(placement);
    }
    reader->Finish();
    {
      absl::MutexLock l(&mu_);
      watch_call_ = nullptr;
    }
    if (!Sleep(absl::Milliseconds(100))) return;
  }
}

void PlacementAgent::Apply(const v1::Placement& placement) {
  absl::MutexLock l(&apply_mu_);
  if (placement.version() <= applied_version_) return;
  if (!placement.created()) {
    applied_version_ = placement.version();
    return;
  }
  std::map<std::string, std::string> address;
  for (const auto& n : placement.nodes()) address[n.node_id()] = n.address();
  // Stops (joins) a follower: after this no record arrives for the shard.
  auto stop_follower = [&](uint32_t shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) {
    {
      absl::MutexLock m(&mu_);
      reported_followers_.erase(shard);
    }
    followers_.erase(shard);
  };
  std::set<uint32_t> mine;
  for (const v1::ShardEntry& entry : placement.shards()) {
    for (const auto& rep : entry.replicas()) {
      if (rep.node_id() == options_.node_id) mine.insert(entry.shard());
    }
  }
  host_->SetAssigned(mine);  // Calls for them meanwhile: "opening; retry".
  bool opened_all = true;
  for (const v1::ShardEntry& entry : placement.shards()) {
    if (mine.count(entry.shard()) == 0) continue;
    shard::Role role;
    role.epoch = entry.epoch();
    role.leader = entry.leader_node_id() == options_.node_id;
    role.leader_node_id = entry.leader_node_id();
    role.leader_address = address[entry.leader_node_id()];
    role.writes_paused = role.leader && !entry.transfer_to().empty();
    role.self_node_id = options_.node_id;
    for (const auto& rep : entry.replicas()) role.replicas.push_back(rep.node_id());
    // Stop a follower that no longer fits before taking a reference to the
    // replica: pulling must end before the role changes (no record may
    // arrive after it), and a follower installing a snapshot waits until it
    // holds the replica's last reference.
    auto follower = followers_.find(entry.shard());
    if (follower != followers_.end() &&
        (role.leader || role.leader_node_id.empty() || follower->second->epoch() != role.epoch ||
         follower->second->leader_address() != role.leader_address)) {
      stop_follower(entry.shard());
    }
    absl::StatusOr<std::shared_ptr<shard::ShardReplica>> r = host_->AddReplica(entry.shard());
    if (!r.ok()) {
      LOG(ERROR) << "shard " << entry.shard() << ": cannot open the replica: " << r.status();
      opened_all = false;
      continue;
    }
    absl::Status adopted = (*r)->AdoptRole(role);
    if (!adopted.ok()) {
      LOG(WARNING) << "shard " << entry.shard() << ": " << adopted;
      continue;
    }
    if (role.leader && entry.leader_ready_epoch() != entry.epoch()) {
      absl::MutexLock m(&mu_);
      beat_now_ = true;  // Tell the control plane this leader is ready.
    }
    r->reset();  // Before a new follower may install a snapshot in its place.
    if (!role.leader && !role.leader_node_id.empty() &&
        followers_.find(entry.shard()) == followers_.end()) {
      followers_[entry.shard()] =
          std::make_shared<replication::LogFollower>(host_, entry.shard(), role, options_.security);
    }
  }
  std::vector<uint32_t> hosted;  // Ids only: RemoveReplica waits for the last reference.
  for (const auto& [shard, r] : host_->replicas()) hosted.push_back(shard);
  for (uint32_t shard : hosted) {
    if (mine.count(shard) > 0) continue;
    stop_follower(shard);
    LOG(INFO) << "shard " << shard << ": no longer assigned to this node (placement version "
              << placement.version() << "); moving its replica aside";
    absl::Status st = host_->RemoveReplica(shard, absl::StrCat("v", placement.version()));
    if (!st.ok()) LOG(ERROR) << "shard " << shard << ": " << st;
  }
  applied_version_ = placement.version();
  {
    absl::MutexLock m(&mu_);
    reported_followers_ = followers_;
  }
  if (options_.on_ready) {
    bool draining = false;
    for (const auto& n : placement.nodes()) {
      if (n.node_id() == options_.node_id) draining = n.draining();
    }
    options_.on_ready(opened_all && !draining);
  }
}

}  // namespace dash::service
