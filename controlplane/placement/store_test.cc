#include "controlplane/placement/store.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace dash::controlplane {
namespace {

std::string FreshDir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "/cp_store_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(PlacementStoreTest, EmptyStoreLoadsNothing) {
  const std::string dir = FreshDir("empty");
  auto store = OpenRocksPlacementStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->has_value());
  std::filesystem::remove_all(dir);
}

TEST(PlacementStoreTest, RoundTripAcrossReopen) {
  const std::string dir = FreshDir("roundtrip");
  v1::Placement placement;
  placement.set_version(7);
  placement.set_shard_count(4);
  placement.set_replication_factor(3);
  placement.set_created(true);
  v1::NodeEntry* node = placement.add_nodes();
  node->set_node_id("n1");
  node->set_address("127.0.0.1:7101");
  node->set_health(v1::NODE_HEALTH_HEALTHY);
  v1::ShardEntry* shard = placement.add_shards();
  shard->set_shard(0);
  shard->set_epoch(3);
  shard->set_leader_node_id("n1");
  v1::ReplicaEntry* replica = shard->add_replicas();
  replica->set_node_id("n1");
  replica->set_role(v1::REPLICA_ROLE_LEADER);
  replica->set_in_sync(true);
  replica->set_last_lsn(42);
  {
    auto store = OpenRocksPlacementStore(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Placement older = placement;
    older.set_version(6);
    ASSERT_TRUE((*store)->Save(older).ok());
    ASSERT_TRUE((*store)->Save(placement).ok());
  }
  auto store = OpenRocksPlacementStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->SerializeAsString(), placement.SerializeAsString());
  std::filesystem::remove_all(dir);
}

TEST(PlacementStoreTest, SecondOpenOfTheSameDirectoryFails) {
  const std::string dir = FreshDir("locked");
  auto first = OpenRocksPlacementStore(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = OpenRocksPlacementStore(dir);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  first->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dash::controlplane
