// The fixtures and helpers that the ShardReplica tests (shard_replica_*_test.cc)
// share: a standalone replica in a fresh directory (ShardReplicaTest), more
// managed replicas beside it (ManagedReplicaTest), roles and log records.
#ifndef DASH_NODE_SHARD_SHARD_REPLICA_TEST_UTIL_H_
#define DASH_NODE_SHARD_SHARD_REPLICA_TEST_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "node/shard/shard_replica.h"
#include "node/storage/log_record.h"
#include "node/storage/records.pb.h"

namespace dash::shard::shard_replica_testing {

class ShardReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        ("replica-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    options_.dir = dir_.string();
    Reopen();
  }
  void TearDown() override {
    replica_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    replica_.reset();
    auto r = ShardReplica::Open(options_);
    ASSERT_TRUE(r.ok()) << r.status();
    replica_ = std::move(*r);
  }
  WriteResult MustWrite(const v1::WriteRequest& req) {
    auto r = replica_->WriteAndWait(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : WriteResult{};
  }
  // Everything a tenant holds, as one comparable string.
  std::string Dump(const std::string& tenant, ShardReplica* r = nullptr) {
    auto page = (r ? r : replica_.get())->ListClaims(tenant, "", 1000, true);
    EXPECT_TRUE(page.ok());
    std::string out;
    for (auto& rec : page->records) out += rec.ShortDebugString() + "\n";
    return out;
  }

  // Declared before the replicas that may be given it, so it outlives them.
  ManualClock clock_{1'700'000'000'000'000};
  std::filesystem::path dir_;
  ReplicaOptions options_;
  std::unique_ptr<ShardReplica> replica_;
};

inline Role LeaderOf3(uint64_t epoch) {
  Role role;
  role.leader = true;
  role.epoch = epoch;
  role.leader_node_id = "a";
  role.self_node_id = "a";
  role.replicas = {"a", "b", "c"};
  return role;
}

// An encoded log record; `epoch_start` records change no state.
inline std::string Record(uint64_t epoch, uint64_t lsn, const v1::WriteRequest* batch = nullptr) {
  storage::LogPayload p;
  if (batch == nullptr) {
    p.set_epoch_start(true);
  } else {
    p.set_tenant(batch->tenant());
    *p.mutable_ops() = batch->ops();
  }
  storage::LogRecord r;
  r.epoch = epoch;
  r.lsn = lsn;
  r.commit_time_micros = 1000 + lsn;
  r.payload = p.SerializeAsString();
  return storage::EncodeLogRecord(r);
}

class ManagedReplicaTest : public ShardReplicaTest {
 protected:
  // A second, managed replica in its own directory.
  std::unique_ptr<ShardReplica> OpenManaged(const std::string& name,
                                            ReplicaOptions o = ReplicaOptions()) {
    o.dir = dir_.string() + "-" + name;
    o.managed = true;
    extra_dirs_.push_back(o.dir);
    auto r = ShardReplica::Open(o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : nullptr;
  }
  void TearDown() override {
    ShardReplicaTest::TearDown();
    for (const auto& d : extra_dirs_) std::filesystem::remove_all(d);
  }
  std::vector<std::string> extra_dirs_;
};

// Replica "a" following "b" among a, b, c.
inline Role FollowerOf(uint64_t epoch) {
  Role role = LeaderOf3(epoch);
  role.leader = false;
  role.leader_node_id = "b";
  return role;
}

}  // namespace dash::shard::shard_replica_testing

#endif  // DASH_NODE_SHARD_SHARD_REPLICA_TEST_UTIL_H_
