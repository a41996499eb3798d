#pragma once
// The GPU inventory in the store kept equal to the driver's: written when the set of GPUs (or
// their memory) changes, and again after Invalidate.
#include <string>
#include <vector>

#include "common/result.h"
#include "gpu/gpu_probe.h"
#include "store/store.h"

namespace taolie::health {

// The inventory's identity: each GPU's uuid and memory, sorted.
std::string InventorySignature(const std::vector<gpu::GpuInfo>& gpus);

class InventorySync {
 public:
  explicit InventorySync(store::Store& store) : store_(store) {}
  // Writes `scanned` to the store when it differs from what was last written. True when it
  // wrote; an error when the store refused (nothing is remembered then: the next call tries
  // again).
  Result<bool> Sync(const std::vector<gpu::GpuInfo>& scanned);
  // The next Sync writes whatever it is given.
  void Invalidate() { written_.clear(); }

 private:
  store::Store& store_;
  std::string written_;  // the signature last written
};

}  // namespace taolie::health
