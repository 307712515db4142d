#include "node/backup/restore.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "node/storage/file_util.h"

namespace dash::backup {
namespace {

namespace fs = std::filesystem;

absl::Status CopyVerified(const std::string& from, const std::string& to, const FileRef& f,
                          bool link) {
  std::error_code ec;
  if (link) {
    fs::create_hard_link(from, to, ec);
    if (!ec) return absl::OkStatus();  // The source was verified by the caller.
  }
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return storage::IoError("cannot copy", from, ec.value());
  DASH_ASSIGN_OR_RETURN(std::string sha, storage::Sha256OfFile(to));
  if (sha != f.sha256) {
    return absl::DataLossError(
        absl::StrCat(to, ": copied ", f.name, " does not match its SHA-256"));
  }
  return storage::SyncPath(to);
}

}  // namespace

absl::StatusOr<ServerRestore> PlanServerRestore(const std::string& from, const std::string& backup,
                                                const std::string& restore_to,
                                                const std::string& node_map) {
  DASH_ASSIGN_OR_RETURN(Repository repo, Repository::Open(from, /*create=*/false));
  DASH_ASSIGN_OR_RETURN(RestoreTarget target, ServerRestoreTarget(restore_to));
  DASH_ASSIGN_OR_RETURN(RestorePlan plan, PlanRestore(repo, backup, target));
  DASH_ASSIGN_OR_RETURN(plan.node_map, ParseNodeMap(node_map));
  DASH_RETURN_IF_ERROR(CheckNodeMap(plan.backup, plan.node_map));
  return ServerRestore{std::move(repo), std::move(plan)};
}

std::string RestoreLabel(const RestorePlan& plan) {
  std::string label = plan.backup.id;
  for (const ShardPlan& s : plan.shards) {
    if (s.to_lsn != s.cut_lsn) {
      absl::StrAppend(&label, " to ", plan.Tokens());
      break;
    }
  }
  if (!plan.node_map.empty()) {
    absl::StrAppend(&label, " as ", absl::StrJoin(plan.node_map, ",", absl::PairFormatter("=")));
  }
  return label;
}

absl::StatusOr<v1::Placement> RestoredPlacement(const RestorePlan& plan) {
  const Manifest& m = plan.backup;
  v1::Placement p;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(m.placement_json, &p, options).ok()) {
    return absl::DataLossError(absl::StrCat("backup ", m.id, ": its placement does not parse"));
  }
  if (!p.created() || p.shards_size() != static_cast<int>(p.shard_count()) ||
      m.shards.size() != p.shard_count()) {
    return absl::DataLossError(absl::StrCat("backup ", m.id, ": its placement has ",
                                            p.shards_size(), " shards of ", p.shard_count(),
                                            ", its cut ", m.shards.size()));
  }
  p.set_version(p.version() + 1);
  for (v1::NodeEntry& n : *p.mutable_nodes()) {
    // As after a restart of the control plane: each node counts as heard now
    // and has the restart grace to show up.
    n.set_health(v1::NODE_HEALTH_HEALTHY);
    n.clear_last_heartbeat();
    n.set_draining(false);
  }
  for (v1::ShardEntry& s : *p.mutable_shards()) {
    const ShardCut* cut = nullptr;
    for (const ShardCut& c : m.shards) {
      if (c.shard == s.shard()) cut = &c;
    }
    if (cut == nullptr) {
      return absl::DataLossError(absl::StrCat("backup ", m.id, ": no cut of shard ", s.shard()));
    }
    const ShardPlan* replay = nullptr;
    for (const ShardPlan& sp : plan.shards) {
      if (sp.shard == s.shard()) replay = &sp;
    }
    if (replay == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("restore plan: no shard ", s.shard()));
    }
    const uint64_t highest = std::max({s.epoch(), cut->epoch, cut->last_epoch, replay->max_epoch});
    s.set_epoch(highest + 1);
    s.set_leader_node_id(cut->leader);
    s.set_leader_ready_epoch(0);
    s.clear_transfer_to();
    s.clear_moving_from();
    s.clear_moving_to();
    bool leader_is_replica = false;
    for (v1::ReplicaEntry& r : *s.mutable_replicas()) {
      const bool leads = r.node_id() == cut->leader;
      leader_is_replica = leader_is_replica || leads;
      r.set_role(leads ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_FOLLOWER);
      r.set_in_sync(false);
      r.set_last_epoch(replay->to_epoch);
      r.set_last_lsn(replay->to_lsn);
      r.set_health(v1::NODE_HEALTH_HEALTHY);
      r.clear_lag();
      r.clear_follow();
    }
    if (!leader_is_replica) {
      return absl::DataLossError(absl::StrCat("backup ", m.id, ": shard ", s.shard(), "'s leader ",
                                              cut->leader, " is not one of its replicas"));
    }
  }
  // Other node ids: every mention renamed, the lists kept in id order.
  if (!plan.node_map.empty()) {
    DASH_RETURN_IF_ERROR(CheckNodeMap(m, plan.node_map));
    auto renamed = [&plan](const std::string& id) {
      auto it = plan.node_map.find(id);
      return it == plan.node_map.end() ? id : it->second;
    };
    for (v1::NodeEntry& n : *p.mutable_nodes()) n.set_node_id(renamed(n.node_id()));
    std::sort(
        p.mutable_nodes()->begin(), p.mutable_nodes()->end(),
        [](const v1::NodeEntry& a, const v1::NodeEntry& b) { return a.node_id() < b.node_id(); });
    for (v1::ShardEntry& s : *p.mutable_shards()) {
      s.set_leader_node_id(renamed(s.leader_node_id()));
      for (v1::ReplicaEntry& r : *s.mutable_replicas()) r.set_node_id(renamed(r.node_id()));
      std::sort(s.mutable_replicas()->begin(), s.mutable_replicas()->end(),
                [](const v1::ReplicaEntry& a, const v1::ReplicaEntry& b) {
                  return a.node_id() < b.node_id();
                });
    }
  }
  return p;
}

absl::Status ClaimDataDir(const std::string& label, const std::string& data_dir) {
  std::error_code ec;
  const fs::path marker = fs::path(data_dir) / kRestoreMarker;
  if (fs::exists(marker, ec)) {
    DASH_ASSIGN_OR_RETURN(std::string claimed, storage::ReadFile(marker.string()));
    if (claimed == label) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(data_dir, " is being restored from backup ",
                                                      claimed, ", not ", label,
                                                      ": refusing to mix"));
  }
  if (fs::exists(data_dir, ec) && !fs::is_empty(data_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(data_dir,
                     " is not empty: a restore writes only into an empty data "
                     "directory (move this one aside to restore)"));
  }
  fs::create_directories(data_dir, ec);
  if (ec) return storage::IoError("cannot create", data_dir, ec.value());
  return storage::WriteFileAtomically(marker.string(), marker.string() + ".tmp", label);
}

absl::StatusOr<NodeRestoreResult> RestoreNode(const Repository& repo, const RestorePlan& plan,
                                              const std::string& node_id,
                                              const std::string& data_dir, const ReplayFn& replay) {
  const Manifest& m = plan.backup;
  DASH_ASSIGN_OR_RETURN(v1::Placement placement, RestoredPlacement(plan));
  std::set<uint32_t> shards;
  std::vector<std::string> nodes;
  for (const v1::NodeEntry& n : placement.nodes()) nodes.push_back(n.node_id());
  for (const v1::ShardEntry& s : placement.shards()) {
    for (const v1::ReplicaEntry& r : s.replicas()) {
      if (r.node_id() == node_id) shards.insert(s.shard());
    }
  }
  if (std::find(nodes.begin(), nodes.end(), node_id) == nodes.end()) {
    return absl::NotFoundError(absl::StrCat("node ", node_id, " is not in backup ", m.id,
                                            " (its nodes: ", absl::StrJoin(nodes, ", "),
                                            "): start it with one of those ids"));
  }
  // Every file first: a damaged backup leaves the data directory untouched.
  for (const ShardCut& cut : m.shards) {
    if (shards.count(cut.shard) == 0) continue;
    for (const FileRef& f : cut.files) {
      const std::string path = repo.StoredPath(f.sha256);
      absl::StatusOr<std::string> sha = storage::Sha256OfFile(path);
      if (!sha.ok() || *sha != f.sha256) {
        return absl::DataLossError(absl::StrCat(
            "backup ", m.id, " shard ", cut.shard, ": ", f.name, " (", path, ") is ",
            sha.ok() ? "damaged (SHA-256 differs)" : "missing or unreadable", ": not restoring"));
      }
    }
  }
  DASH_RETURN_IF_ERROR(ClaimDataDir(RestoreLabel(plan), data_dir));
  NodeRestoreResult result;
  std::error_code ec;
  for (const ShardCut& cut : m.shards) {
    if (shards.count(cut.shard) == 0) continue;
    const fs::path dir = fs::path(data_dir) / absl::StrCat("shard-", cut.shard);
    if (fs::exists(dir, ec)) {  // Put in place by this restore before a crash.
      result.kept.push_back(cut.shard);
      continue;
    }
    const fs::path staging =
        fs::path(data_dir) / "restore-staging" / absl::StrCat("shard-", cut.shard);
    fs::remove_all(staging, ec);
    fs::create_directories(staging, ec);
    if (ec) return storage::IoError("cannot create", staging.string(), ec.value());
    for (const FileRef& f : cut.files) {
      const bool immutable = f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst";
      DASH_RETURN_IF_ERROR(
          CopyVerified(repo.StoredPath(f.sha256), (staging / f.name).string(), f, immutable));
      result.bytes += f.size;
    }
    DASH_RETURN_IF_ERROR(storage::SyncPath(staging.string()));
    for (const ShardPlan& sp : plan.shards) {
      if (sp.shard == cut.shard && sp.to_lsn > sp.cut_lsn) {
        if (!replay) {
          return absl::InvalidArgumentError("restore plan replays records: no replay given");
        }
        DASH_RETURN_IF_ERROR(replay(staging.string(), sp));
        result.replayed_records += sp.to_lsn - sp.cut_lsn;
      }
    }
    fs::rename(staging, dir, ec);
    if (ec) return storage::IoError("cannot move into place", staging.string(), ec.value());
    DASH_RETURN_IF_ERROR(storage::SyncPath(data_dir));
    result.restored.push_back(cut.shard);
  }
  fs::remove_all(fs::path(data_dir) / "restore-staging", ec);
  return result;
}

}  // namespace dash::backup
