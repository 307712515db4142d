// The plain types a ShardReplica is configured with and reports: its
// options, its role under the placement, its state and its writes' results.
#ifndef DASH_NODE_SHARD_REPLICA_TYPES_H_
#define DASH_NODE_SHARD_REPLICA_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "dash/v1/data.pb.h"
#include "node/storage/engine.h"
#include "query/batch_validator.h"

namespace dash::shard {

struct ReplicaOptions {
  std::string node_id;  // The hosting node, named in read tokens.
  // Under a control plane: refuse writes until AdoptRole names this replica
  // leader. Otherwise the replica leads from the start.
  bool managed = false;
  uint32_t shard_id = 0;
  uint32_t shard_count = 1;
  std::string dir;  // The replica's RocksDB directory.
  // Keep at least this many most recent log records; 0 keeps the whole log.
  uint64_t log_retention_records = 1000000;
  // A tenant's vectors in a segment get an HNSW graph (written with the
  // segment) from this many rows; fewer are searched exactly.
  size_t vector_graph_min_rows = 2000;
  // Sync each group commit to stable storage before acknowledging. Turning it
  // off risks losing acknowledged writes on a machine crash (not on a
  // process crash); only for tests and benchmarks that say so.
  bool sync = true;
  size_t max_pending_writes = 10000;  // Beyond this, RESOURCE_EXHAUSTED.
  size_t max_group_writes = 512;      // Batches per group commit.
  query::Limits limits;
  // A write not held by a majority within this time is answered UNAVAILABLE
  // (its outcome unknown: retry with the same idempotency key).
  absl::Duration commit_timeout = absl::Seconds(5);
  // The weaker, explicit `leader` ack mode: a leader answers a write once it
  // holds it durably itself, without waiting for a majority. A write so
  // acknowledged is lost if the leader dies before a follower has it. Reads
  // still see only majority-committed state.
  bool ack_leader_only = false;
  // A leader counts a follower in sync while it lacks at most this many
  // records and its oldest missing record is at most this old.
  uint64_t in_sync_max_lag_records = 10000;
  absl::Duration in_sync_max_lag = absl::Seconds(2);
  // An idempotency key is remembered for at least this long after its batch
  // committed; a retry after that applies the batch again. Each new record
  // removes a few expired ones (see LogPayload.idempotency_expire_before_micros).
  // InfiniteDuration (or zero) remembers keys forever.
  absl::Duration idempotency_ttl = absl::Hours(24);
  storage::EngineOptions engine;
  Clock* clock = Clock::Real();
};

struct WriteResult {
  v1::CommitToken token;
  int64_t commit_time_micros = 0;
  bool replayed = false;
};

// Who may write to a replica. A standalone replica leads at the epoch stored
// with it; under a control plane the role follows the placement table.
struct Role {
  bool leader = true;
  uint64_t epoch = 0;  // The shard's routing epoch.
  std::string leader_node_id;
  std::string leader_address;
  // Planned leadership transfer: the leader refuses writes (UNAVAILABLE) so
  // that its log stops growing and the target can catch up.
  bool writes_paused = false;
  // Every replica of the shard (node ids, this one included). A leader
  // acknowledges a write once a majority of them hold it durably; empty or one
  // replica: once this replica holds it.
  std::vector<std::string> replicas;
  std::string self_node_id;
};

struct ReplicaState {
  uint32_t shard_id = 0;
  uint64_t epoch = 0;       // Adopted routing epoch.
  uint64_t last_epoch = 0;  // Epoch of the last log record.
  uint64_t last_lsn = 0;
  uint64_t log_start_lsn = 0;  // 0 when the log is empty.
  uint64_t commit_lsn = 0;     // Known to be held by a majority.
  // Reads see the state as of this LSN: the newest committed one this
  // replica holds. 0 with readable false while it waits to learn it.
  uint64_t read_lsn = 0;
  bool readable = true;
  bool leader = true;
  bool writes_paused = false;
  std::string leader_node_id;
  std::string leader_address;
};

}  // namespace dash::shard

#endif  // DASH_NODE_SHARD_REPLICA_TYPES_H_
