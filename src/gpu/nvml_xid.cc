// XID events: NVML's event set drained (non-blocking) on the global worker, and the raw events
// mapped to the devices the probe knows (excluded GPUs dropped).
#include <algorithm>
#include <chrono>
#include <mutex>

#include "common/real_time.h"
#include "gpu/nvml_session.h"

namespace taolie::gpu {

Result<std::vector<nvml::RawXid>> NvmlSession::WaitXids() const {
  std::vector<nvml::RawXid> events;
  if (event_set == nullptr) return events;
  for (unsigned i = 0; i < nvml::kMaxXidsPerDrain; ++i) {
    nvmlEventData_t data{};
    nvmlReturn_t r = fn.event_set_wait(event_set, &data, 0);
    if (r == NVML_ERROR_TIMEOUT) break;
    if (r != NVML_SUCCESS) {
      if (!events.empty()) break;  // deliver what we have; the error will repeat next time
      return Fail("nvmlEventSetWait_v2", r);
    }
    if ((data.eventType & nvmlEventTypeXidCriticalError) == 0) continue;
    events.push_back(nvml::RawXid{data.device, data.eventData});
  }
  return events;
}

Result<std::vector<XidEvent>> NvmlGpuProbe::DrainXids() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  auto raw = global_->Run<std::vector<nvml::RawXid>>("XID drain", options_.call_timeout,
                                                     [s = session_]() { return s->WaitXids(); });
  if (!raw.ok()) return raw.error();
  std::vector<XidEvent> events;
  const auto now = WallNow();
  std::lock_guard lock(devices_->mu);
  for (const nvml::RawXid& x : *raw) {
    const auto& entries = devices_->entries;
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const nvml::DeviceEntry& d) { return d.handle == x.device; });
    if (it != entries.end() && it->excluded) continue;
    XidEvent e;
    e.uuid = it != entries.end() ? it->uuid : "";
    e.xid = x.xid;
    e.at = now;
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace taolie::gpu
