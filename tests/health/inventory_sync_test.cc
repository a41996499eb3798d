// The GPU inventory in the store: written once per change, again after Invalidate, and not
// remembered when the store refuses it.
#include "health/inventory_sync.h"

#include <gtest/gtest.h>

#include <vector>

#include "fakes/fake_store.h"

namespace taolie::health {
namespace {

class InventoryStore final : public testing::FakeStore {
 public:
  Status SyncGpus(const std::vector<store::GpuRecord>& present) override {
    writes.push_back(present);
    if (fail) return MakeError(ErrorCode::kUnavailable, "database away");
    return OkStatus();
  }
  std::vector<std::vector<store::GpuRecord>> writes;
  bool fail = false;
};

gpu::GpuInfo Info(int index, const std::string& uuid, uint64_t memory_mb) {
  gpu::GpuInfo g;
  g.index = index;
  g.uuid = uuid;
  g.name = "NVIDIA Test";
  g.pci_bus_id = "00000000:0" + std::to_string(index + 1) + ":00.0";
  g.memory_total_mb = memory_mb;
  return g;
}

TEST(InventorySignatureTest, OrderDoesNotMatterMemoryDoes) {
  auto a = Info(0, "GPU-a", 81920), b = Info(1, "GPU-b", 81920);
  EXPECT_EQ(InventorySignature({a, b}), InventorySignature({b, a}));
  auto b_smaller = b;
  b_smaller.memory_total_mb = 40960;
  EXPECT_NE(InventorySignature({a, b}), InventorySignature({a, b_smaller}));
  EXPECT_NE(InventorySignature({a, b}), InventorySignature({a}));
}

TEST(InventorySyncTest, WritesOncePerChangeAndAgainAfterInvalidate) {
  InventoryStore store;
  InventorySync sync(store);
  const std::vector<gpu::GpuInfo> two = {Info(0, "GPU-a", 81920), Info(1, "GPU-b", 81920)};
  ASSERT_TRUE(*sync.Sync(two));
  ASSERT_EQ(store.writes.size(), 1u);
  ASSERT_EQ(store.writes[0].size(), 2u);
  EXPECT_EQ(store.writes[0][1].uuid, "GPU-b");
  EXPECT_EQ(store.writes[0][1].index, 1);
  EXPECT_EQ(store.writes[0][1].pci_bus_id, "00000000:02:00.0");
  EXPECT_EQ(store.writes[0][1].memory_total_mb, 81920u);
  EXPECT_FALSE(*sync.Sync(two));  // unchanged: nothing written
  EXPECT_EQ(store.writes.size(), 1u);
  ASSERT_TRUE(*sync.Sync({two[0]}));  // a GPU gone
  EXPECT_EQ(store.writes.size(), 2u);
  sync.Invalidate();
  ASSERT_TRUE(*sync.Sync({two[0]}));
  EXPECT_EQ(store.writes.size(), 3u);
}

TEST(InventorySyncTest, ARefusedWriteIsTriedAgain) {
  InventoryStore store;
  InventorySync sync(store);
  const std::vector<gpu::GpuInfo> one = {Info(0, "GPU-a", 81920)};
  store.fail = true;
  auto first = sync.Sync(one);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, ErrorCode::kUnavailable);
  store.fail = false;
  ASSERT_TRUE(sync.Sync(one).ok());
  EXPECT_EQ(store.writes.size(), 2u);
}

}  // namespace
}  // namespace taolie::health
