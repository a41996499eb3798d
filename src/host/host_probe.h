#pragma once
// HostProbe seam: facts about the host read from /proc, /sys, statvfs, uname, os-release.
#include <cstdint>
#include <string>

#include "common/result.h"

namespace taolie::host {

// Strings carry `{}` so that designated initializers may leave them out (GCC 12 warns
// -Wmissing-field-initializers otherwise).
struct HostFacts {  // mostly static, re-read at registration
  std::string hostname{};
  std::string os{};  // PRETTY_NAME, e.g. "Debian GNU/Linux 12 (bookworm)"
  std::string kernel{};
  std::string cpu_model{};
  int cpu_sockets = 1;
  int cpu_cores = 1;  // physical cores (logical if unknown)
  int cpu_logical = 1;
  uint64_t ram_total_bytes = 0;
  uint64_t storage_total_bytes = 0;  // filesystem holding `storage_path`
  uint64_t storage_available_bytes = 0;
  std::string storage_type{};  // "SSD" | "HDD" | "Unknown"
  double uptime_seconds = 0;
  int64_t boot_time_unix = 0;
};

struct HostSample {                    // one periodic reading
  double cpu_utilization_percent = 0;  // since the previous Sample() call
  uint64_t ram_used_bytes = 0;
  uint64_t ram_total_bytes = 0;
  uint64_t storage_used_bytes = 0;
  uint64_t storage_total_bytes = 0;
  uint64_t storage_available_bytes = 0;
  double upload_mbps = 0;  // from interface byte counters since previous call
  double download_mbps = 0;
  double network_utilization_percent = 0;  // of link speed when known, else 0
  double uptime_seconds = 0;
};

class HostProbe {
 public:
  virtual ~HostProbe() = default;
  virtual Result<HostFacts> Facts() = 0;
  virtual Result<HostSample> Sample() = 0;
  // True when a TCP listener (any address) already holds `port` on this host.
  virtual bool PortInUse(int port) = 0;
  // True when host process `pid` runs in the container (its cgroup names the container id).
  virtual bool ProcessInContainer(uint32_t pid, const std::string& container_id) = 0;
  // The kernel's boot_id: changes at every boot ("" when unreadable).
  virtual std::string BootId() = 0;
  // Bytes available to unprivileged writers on the filesystem holding `path` (statvfs).
  virtual Result<uint64_t> FreeBytes(const std::string& path) = 0;
  // Disk space used by the files under `path` (allocated blocks), walking at most
  // `max_entries` entries without following symlinks or leaving its filesystem.
  struct TreeUsage {
    uint64_t bytes = 0;
    bool truncated = false;  // more than max_entries: `bytes` counts what was walked
  };
  virtual Result<TreeUsage> TreeBytes(const std::string& path, size_t max_entries) = 0;
};

}  // namespace taolie::host
