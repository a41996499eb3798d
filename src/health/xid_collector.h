#pragma once
// XIDs, the driver's error codes, collected for the health checks: from NVML's events and from
// the kernel log (gpu.kmsg_path), one XID when both saw the same fault; each recorded in the
// store with the kernel log's cursor (kept in memory and recorded next round while the store is
// down), and the last hour's read back once after a start.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gpu/gpu_probe.h"
#include "host/kmsg_xid_reader.h"
#include "store/store.h"

namespace taolie::health {

class XidCollector {
 public:
  // `kmsg_path` empty: NVML's events only.
  XidCollector(store::Store& store, gpu::GpuProbe& gpus, std::string kmsg_path)
      : store_(store), gpus_(gpus), kmsg_path_(std::move(kmsg_path)) {}

  // Reads this round's new XIDs (`infos`: the GPUs by uuid, to name a kernel line's bus) and
  // records them; returns those that name a GPU of this agent.
  std::vector<gpu::XidEvent> Collect(SystemTime now,
                                     const std::map<std::string, gpu::GpuInfo>& infos);
  // The XIDs of the last hour before `now` (older ones are forgotten).
  const std::vector<gpu::XidEvent>& LastHour(SystemTime now);

 private:
  // The kernel log's new XID lines not already seen through NVML; sets the cursor to record.
  void ReadKernelLog(SystemTime now, const std::map<std::string, gpu::GpuInfo>& infos,
                     const std::vector<gpu::XidEvent>& from_nvml,
                     std::vector<store::XidRecord>& out,
                     std::optional<store::KmsgCursorRow>& cursor);

  store::Store& store_;
  gpu::GpuProbe& gpus_;
  const std::string kmsg_path_;
  std::vector<gpu::XidEvent> xids_;                // last hour
  bool xids_loaded_ = false;                       // the store's last hour read back
  std::vector<store::XidRecord> xids_unrecorded_;  // the store was down: next round
  std::unique_ptr<host::KmsgXidReader> kmsg_;
  std::string kmsg_error_;  // why the kernel log cannot be read (logged when it changes)
  std::optional<store::KmsgCursorRow> kmsg_cursor_;  // read from the store, then kept here
  bool kmsg_cursor_loaded_ = false;
};

}  // namespace taolie::health
