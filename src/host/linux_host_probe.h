#pragma once
// LinuxHostProbe: HostProbe reading /proc, /sys, statvfs, uname and os-release. Roots are
// configurable so that an agent in a container can read the host's mounts, and tests fixtures.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "host/host_probe.h"
#include "host/proc_parsers.h"

namespace taolie::host {

// True for a WSL kernel: /proc/sys/kernel/osrelease ("5.15.153.1-microsoft-standard-WSL2") or
// /proc/version names Microsoft.
bool IsWslKernel(const std::string& osrelease, const std::string& version);

class LinuxHostProbe final : public HostProbe {
 public:
  struct Options {
    std::string proc_root = "/proc";
    std::string sys_root = "/sys";
    std::string storage_path = "/var/lib/docker";  // falls back to "/" when missing
    std::string interface;  // "" = the default route's interface, else all non-lo summed
    std::string os_release = "/etc/os-release";
    std::string hostname_file;  // e.g. /host/etc/hostname in a container; "" = gethostname()
    // Monotonic time source for rates; empty = std::chrono::steady_clock (tests inject one).
    std::function<std::chrono::steady_clock::time_point()> steady_now;
  };

  static std::unique_ptr<LinuxHostProbe> Create(Options options);

  Result<HostFacts> Facts() override;
  Result<HostSample> Sample() override;
  bool PortInUse(int port) override;
  bool ProcessInContainer(uint32_t pid, const std::string& container_id) override;
  std::string BootId() override;
  Result<uint64_t> FreeBytes(const std::string& path) override;
  Result<TreeUsage> TreeBytes(const std::string& path, size_t max_entries) override;

  // Interfaces whose counters Sample() adds up (resolved on each call when auto).
  std::vector<std::string> CountedInterfaces();
  // The filesystem path actually measured (storage_path or "/").
  std::string StoragePath() const;

 private:
  explicit LinuxHostProbe(Options options);
  Result<std::string> Read(const std::string& path) const;
  std::string Proc(const std::string& rel) const { return options_.proc_root + "/" + rel; }
  std::string Sys(const std::string& rel) const { return options_.sys_root + "/" + rel; }
  std::string StorageType(const std::string& path) const;
  std::vector<std::string> InterfacesLocked(const std::vector<NetDevCounters>& counters) const;
  std::optional<double> LinkSpeedMbps(const std::vector<std::string>& interfaces) const;

  Options options_;
  std::mutex mu_;
  std::optional<CpuTimes> prev_cpu_;
  std::optional<uint64_t> prev_rx_, prev_tx_;
  std::chrono::steady_clock::time_point prev_net_at_;
  std::vector<std::string> prev_interfaces_;
};

// `base` for an agent that sees the host's / at `host_root` (agent.host_root, e.g. "/host" in a
// container): /proc, /sys, /etc/os-release and the storage path (Docker's data root) are read
// under it, and the host name from <host_root>/etc/hostname when that file exists (else
// gethostname(), which is the host's under Docker's host network). "" returns `base` unchanged.
LinuxHostProbe::Options WithHostRoot(LinuxHostProbe::Options base, const std::string& host_root);

// Storage device type from the sysfs "rotational" flag: "1" HDD, "0" SSD, else "Unknown".
std::string StorageTypeFromRotational(std::string_view rotational);

}  // namespace taolie::host
