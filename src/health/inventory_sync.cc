#include "health/inventory_sync.h"

#include <algorithm>

namespace taolie::health {

std::string InventorySignature(const std::vector<gpu::GpuInfo>& gpus) {
  std::vector<std::string> ids;
  for (const auto& g : gpus) ids.push_back(g.uuid + "/" + std::to_string(g.memory_total_mb));
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (const auto& i : ids) out += i + ";";
  return out;
}

Result<bool> InventorySync::Sync(const std::vector<gpu::GpuInfo>& scanned) {
  std::string signature = InventorySignature(scanned);
  if (signature == written_) return false;
  std::vector<store::GpuRecord> present;
  for (const auto& g : scanned) {
    store::GpuRecord r;
    r.uuid = g.uuid;
    r.index = g.index;
    r.name = g.name;
    r.memory_total_mb = g.memory_total_mb;
    r.pci_bus_id = g.pci_bus_id;
    present.push_back(r);
  }
  if (Status st = store_.SyncGpus(present); !st.ok()) return st.error();
  written_ = std::move(signature);
  return true;
}

}  // namespace taolie::health
