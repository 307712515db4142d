#include "node/service/node_metrics.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace dash::service {
namespace {

using metrics::FamilyBuilder;
using prometheus::MetricType;

}  // namespace

std::vector<prometheus::MetricFamily> NodeFamilies(const v1::NodeInfo& info) {
  FamilyBuilder last_lsn("dash_replica_last_lsn", "LSN of the replica's last durable log record",
                         MetricType::Gauge);
  FamilyBuilder commit_lsn("dash_replica_commit_lsn",
                           "LSN up to which the replica knows the log committed (applied)",
                           MetricType::Gauge);
  FamilyBuilder epoch("dash_replica_epoch", "Epoch the replica has adopted", MetricType::Gauge);
  FamilyBuilder leader("dash_replica_leader", "1 when this node leads the shard",
                       MetricType::Gauge);
  FamilyBuilder in_sync("dash_replica_in_sync_followers",
                        "Followers of a led shard in sync with it (the leader not counted)",
                        MetricType::Gauge);
  FamilyBuilder lag_records("dash_replication_lag_records",
                            "Log records a follower has yet to acknowledge", MetricType::Gauge);
  FamilyBuilder lag_bytes("dash_replication_lag_bytes",
                          "Encoded size of the records a follower has yet to acknowledge",
                          MetricType::Gauge);
  FamilyBuilder lag_seconds("dash_replication_lag_seconds",
                            "Age of the oldest record a follower has yet to acknowledge",
                            MetricType::Gauge);
  FamilyBuilder follower_retries("dash_follower_retries_total",
                                 "Times this node's follower of a shard retried its leader",
                                 MetricType::Counter);
  FamilyBuilder cache_hits("dash_filter_cache_hits_total", "Prefilter cache hits",
                           MetricType::Counter);
  FamilyBuilder cache_misses("dash_filter_cache_misses_total", "Prefilter cache misses",
                             MetricType::Counter);
  FamilyBuilder cache_evictions("dash_filter_cache_evictions_total", "Prefilter cache evictions",
                                MetricType::Counter);
  FamilyBuilder cache_entries("dash_filter_cache_entries", "Prefilter cache entries",
                              MetricType::Gauge);
  FamilyBuilder segments("dash_index_segments", "Persisted index segments", MetricType::Gauge);
  FamilyBuilder segment_bytes("dash_index_segment_bytes", "Bytes of persisted index segments",
                              MetricType::Gauge);
  FamilyBuilder buffer_docs("dash_index_buffer_docs", "Documents not yet flushed to a segment",
                            MetricType::Gauge);
  FamilyBuilder dead_docs("dash_index_dead_docs", "Replaced or deleted documents not yet merged",
                          MetricType::Gauge);
  FamilyBuilder merge_backlog("dash_index_merge_backlog", "Merges the policy would run now",
                              MetricType::Gauge);
  FamilyBuilder table_bytes("dash_storage_table_bytes", "RocksDB table files by column family",
                            MetricType::Gauge);
  FamilyBuilder wal_bytes("dash_storage_wal_bytes", "RocksDB write-ahead log files",
                          MetricType::Gauge);
  FamilyBuilder replicas("dash_replicas", "Replicas this node hosts", MetricType::Gauge);
  replicas.Add(info.replicas_size());
  FamilyBuilder placement("dash_placement_version", "Placement table version the node applied",
                          MetricType::Gauge);
  placement.Add(static_cast<double>(info.placement_version()));

  for (const v1::ReplicaInfo& r : info.replicas()) {
    const std::string shard = absl::StrCat(r.shard());
    last_lsn.Add(static_cast<double>(r.last_lsn()), {{"shard", shard}});
    commit_lsn.Add(static_cast<double>(r.commit_lsn()), {{"shard", shard}});
    epoch.Add(static_cast<double>(r.epoch()), {{"shard", shard}});
    const bool leads = r.role() == "leader";
    leader.Add(leads ? 1 : 0, {{"shard", shard}});
    if (leads) {
      int synced = 0;
      for (const v1::FollowerLag& f : r.followers()) {
        synced += f.in_sync();
        lag_records.Add(static_cast<double>(f.lag_records()),
                        {{"shard", shard}, {"follower", f.node_id()}});
        lag_bytes.Add(static_cast<double>(f.lag_bytes()),
                      {{"shard", shard}, {"follower", f.node_id()}});
        lag_seconds.Add(f.lag_seconds(), {{"shard", shard}, {"follower", f.node_id()}});
      }
      in_sync.Add(synced, {{"shard", shard}});
    }
    if (r.has_follow()) {
      follower_retries.Add(static_cast<double>(r.follow().retries()), {{"shard", shard}});
    }
    cache_hits.Add(static_cast<double>(r.filter_cache().hits()), {{"shard", shard}});
    cache_misses.Add(static_cast<double>(r.filter_cache().misses()), {{"shard", shard}});
    cache_evictions.Add(static_cast<double>(r.filter_cache().evictions()), {{"shard", shard}});
    cache_entries.Add(static_cast<double>(r.filter_cache().entries()), {{"shard", shard}});
    segments.Add(r.lexical().segments(), {{"shard", shard}});
    segment_bytes.Add(static_cast<double>(r.lexical().segment_bytes()), {{"shard", shard}});
    buffer_docs.Add(static_cast<double>(r.lexical().buffer_docs()), {{"shard", shard}});
    dead_docs.Add(static_cast<double>(r.lexical().dead_docs()), {{"shard", shard}});
    merge_backlog.Add(r.lexical().merge_backlog(), {{"shard", shard}});
    for (const auto& f : r.storage().families()) {
      table_bytes.Add(static_cast<double>(f.table_bytes()),
                      {{"shard", shard}, {"family", f.name()}});
    }
    wal_bytes.Add(static_cast<double>(r.storage().wal_bytes()), {{"shard", shard}});
  }
  std::vector<prometheus::MetricFamily> out;
  for (FamilyBuilder* b :
       {&last_lsn,     &commit_lsn,      &epoch,         &leader,           &in_sync,
        &lag_records,  &lag_bytes,       &lag_seconds,   &follower_retries, &cache_hits,
        &cache_misses, &cache_evictions, &cache_entries, &segments,         &segment_bytes,
        &buffer_docs,  &dead_docs,       &merge_backlog, &table_bytes,      &wal_bytes,
        &replicas,     &placement}) {
    out.push_back(b->Build());
  }
  return out;
}

}  // namespace dash::service
