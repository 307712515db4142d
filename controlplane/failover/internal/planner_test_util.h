// Placement tables, reports and fencings for the planner's tests
// (planner_*_test.cc): not for the planner itself.
#ifndef DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_TEST_UTIL_H_
#define DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_TEST_UTIL_H_

#include <cstdint>
#include <string>

#include "controlplane/failover/planner.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"

namespace dash::controlplane::planner_testing {

inline std::string Deterministic(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// A created cluster of nodes n1..n<nodes>.
inline v1::Placement Cluster(int nodes, uint32_t shards = 4, uint32_t rf = 3) {
  v1::Placement placement = NewPlacement(shards, rf);
  for (int i = 1; i <= nodes; ++i) {
    v1::RegisterNodeRequest request;
    request.set_node_id("n" + std::to_string(i));
    request.set_address("127.0.0.1:" + std::to_string(7100 + i));
    auto change = PlanRegister(placement, request);
    EXPECT_TRUE(change.ok()) << change.status();
    placement = change->placement();
  }
  return placement;
}

inline v1::ShardEntry* Shard(v1::Placement* p, uint32_t shard) {
  for (auto& s : *p->mutable_shards()) {
    if (s.shard() == shard) return &s;
  }
  return nullptr;
}

inline v1::ReplicaEntry* Replica(v1::Placement* p, uint32_t shard, const std::string& node) {
  for (auto& r : *Shard(p, shard)->mutable_replicas()) {
    if (r.node_id() == node) return &r;
  }
  return nullptr;
}

inline void SetPosition(v1::Placement* p, uint32_t shard, const std::string& node, uint64_t epoch,
                        uint64_t lsn) {
  Replica(p, shard, node)->set_last_epoch(epoch);
  Replica(p, shard, node)->set_last_lsn(lsn);
}

inline void SetHealth(v1::Placement* p, const std::string& node, v1::NodeHealth health) {
  for (auto& n : *p->mutable_nodes()) {
    if (n.node_id() == node) n.set_health(health);
  }
  for (auto& s : *p->mutable_shards()) {
    for (auto& r : *s.mutable_replicas()) {
      if (r.node_id() == node) r.set_health(health);
    }
  }
}

inline TickInput AllAlive(const v1::Placement& p, const ReportMap* reports) {
  TickInput input;
  for (const auto& n : p.nodes()) input.alive[n.node_id()] = true;
  input.reports = reports;
  return input;
}

inline v1::ReplicaReport Report(uint32_t shard, uint64_t epoch, uint64_t lsn) {
  v1::ReplicaReport report;
  report.set_shard(shard);
  report.set_epoch(epoch);
  report.set_last_epoch(epoch);
  report.set_last_lsn(lsn);
  return report;
}

// What every replica of every shard would report: the shard's epoch adopted
// and the position the table shows.
inline ReportMap ReportsFromTable(const v1::Placement& p) {
  ReportMap reports;
  for (const auto& shard : p.shards()) {
    for (const auto& r : shard.replicas()) {
      v1::ReplicaReport report;
      report.set_shard(shard.shard());
      report.set_epoch(shard.epoch());
      report.set_role(r.role());
      report.set_last_epoch(r.last_epoch());
      report.set_last_lsn(r.last_lsn());
      reports[{shard.shard(), r.node_id()}] = report;
    }
  }
  return reports;
}

// A fencing of every shard at its epoch + 1 that every replica answered with
// the position `reports` show (the table's when it has no report).
inline FenceMap FenceAll(const v1::Placement& p, const ReportMap& reports) {
  FenceMap fences;
  for (const auto& shard : p.shards()) {
    ShardFence& fence = fences[shard.shard()];
    fence.epoch = shard.epoch() + 1;
    for (const auto& r : shard.replicas()) {
      FenceOutcome& answer = fence.replicas[r.node_id()];
      auto it = reports.find({shard.shard(), r.node_id()});
      answer.last_epoch = it != reports.end() ? it->second.last_epoch() : r.last_epoch();
      answer.last_lsn = it != reports.end() ? it->second.last_lsn() : r.last_lsn();
    }
  }
  return fences;
}

inline void SetDraining(v1::Placement* p, const std::string& node) {
  for (auto& n : *p->mutable_nodes()) {
    if (n.node_id() == node) n.set_draining(true);
  }
}

inline constexpr char kDataLossAdvice[] =
    "; promoting could lose acknowledged writes: use `dashctl promote --accept-data-loss`";

inline v1::FollowerLag Lag(const std::string& node, uint64_t records, bool in_sync) {
  v1::FollowerLag lag;
  lag.set_node_id(node);
  lag.set_lag_records(records);
  lag.set_lag_bytes(records * 100);
  lag.set_lag_seconds(records / 10.0);
  lag.set_in_sync(in_sync);
  return lag;
}

}  // namespace dash::controlplane::planner_testing

#endif  // DASH_CONTROLPLANE_FAILOVER_INTERNAL_PLANNER_TEST_UTIL_H_
