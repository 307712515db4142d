// Restoring a cluster from a backup (node/backup/repository.h) into new data
// directories: the control plane and each node are started once with
// --restore_from=DIR --restore_backup=ID.
//
// - The control plane's table becomes the backup's placement with every
//   shard's epoch raised above any epoch in the backup (RestoredPlacement):
//   the restored replicas then start as after a restart of the whole cluster,
//   each adopting its role at the new epoch, and no record of the backup's
//   epochs can be mistaken for a newer one.
// - Each node puts, for every shard its id held a replica of in the backup,
//   the leader's checkpoint of that shard in place (RestoreNode): every
//   replica starts equal to the others, at the backup's LSN for the shard.
//
// Both refuse to write over data that is not from the same restore: a data
// directory records the backup it is being restored from before anything
// else (RESTORE_OF), so a restore cut short by a crash is completed by
// starting again with the same flags, and a later start with the flags still
// given changes nothing.
#ifndef DASH_NODE_BACKUP_RESTORE_H_
#define DASH_NODE_BACKUP_RESTORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dash/v1/placement.pb.h"
#include "node/backup/pitr.h"
#include "node/backup/repository.h"

namespace dash::backup {

// The name of the marker file in a restored data directory.
inline constexpr char kRestoreMarker[] = "RESTORE_OF";

// What a server started with --restore_from=DIR --restore_backup=ID
// --restore_to=TOKENS --restore_node_map=OLD=NEW,... restores: the
// repository, and the plan (ServerRestoreTarget, PlanRestore, ParseNodeMap).
struct ServerRestore {
  Repository repo;
  RestorePlan plan;
};
absl::StatusOr<ServerRestore> PlanServerRestore(const std::string& from, const std::string& backup,
                                                const std::string& restore_to,
                                                const std::string& node_map);

// What a restored data directory's marker says: the backup's id, and the
// tokens restored to when the plan replays archived records.
std::string RestoreLabel(const RestorePlan& plan);

// The backup's placement as the restored cluster's first table: created, the
// same shard count, replication factor, nodes (renamed by the plan's
// node_map) and replica sets; each shard
// led by the node whose checkpoint the backup holds, at an epoch above every
// epoch the backup and the plan's replayed records know of for it (not ready
// until that leader reports); the version above the backup's.
absl::StatusOr<v1::Placement> RestoredPlacement(const RestorePlan& plan);

struct NodeRestoreResult {
  std::vector<uint32_t> restored;  // Shards put in place by this call.
  std::vector<uint32_t> kept;      // Already in place from this restore.
  uint64_t bytes = 0;              // Copied or linked.
  uint64_t replayed_records = 0;   // Archived records applied after the cuts.
};

// Puts in `data_dir` the replicas node `node_id` held in the plan's backup
// (read from `repo`), each file checked against its SHA-256 on the way. SST
// files are hard-linked from the repository where it is on the same file
// system (they are immutable), everything else is copied. A shard whose plan
// goes beyond the cut is handed to `replay` (the replica's directory, its
// plan) before it is moved into place. Errors: NOT_FOUND when the
// node is not in the backup's placement; FAILED_PRECONDITION when `data_dir`
// holds replicas or another restore's marker (nothing is written); DATA_LOSS
// naming a file that is missing or damaged in the repository; UNAVAILABLE on
// a local I/O error.
using ReplayFn = std::function<absl::Status(const std::string& dir, const ShardPlan& plan)>;
absl::StatusOr<NodeRestoreResult> RestoreNode(const Repository& repo, const RestorePlan& plan,
                                              const std::string& node_id,
                                              const std::string& data_dir, const ReplayFn& replay);

// Makes `data_dir` (created if missing) the target of the restore `label`
// (RestoreLabel): FAILED_PRECONDITION, writing nothing, when it holds
// anything but a marker with that label; otherwise writes that marker
// (synced). RestoreNode calls it; the control plane calls it before opening
// its store.
absl::Status ClaimDataDir(const std::string& label, const std::string& data_dir);

}  // namespace dash::backup

#endif  // DASH_NODE_BACKUP_RESTORE_H_
