#pragma once
// Pure parsers of /proc and /sys text, apart from I/O so they can be tested with fixture text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace taolie::host {

struct CpuInfo {
  std::string model;  // first "model name" (or "Processor"/"cpu model" on other arches)
  int sockets = 0;    // distinct "physical id"; 1 when the field is missing but CPUs exist
  int cores = 0;      // distinct (physical id, core id); = logical when unknown
  int logical = 0;    // "processor" entries
};
CpuInfo ParseCpuInfo(std::string_view text);

struct MemInfo {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;  // MemAvailable, else MemFree + Buffers + Cached
};
Result<MemInfo> ParseMemInfo(std::string_view text);

struct CpuTimes {
  uint64_t idle = 0;   // idle + iowait (jiffies)
  uint64_t total = 0;  // user..steal (guest time is already inside user/nice)
};
struct ProcStat {
  CpuTimes cpu;           // the aggregate "cpu" line
  int64_t boot_time = 0;  // "btime", seconds since the epoch
};
Result<ProcStat> ParseProcStat(std::string_view text);
// Busy share of the CPU time between two readings, 0..100; 0 when no time passed.
double CpuUtilizationPercent(const CpuTimes& before, const CpuTimes& after);

struct NetDevCounters {
  std::string name;
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
};
Result<std::vector<NetDevCounters>> ParseNetDev(std::string_view text);

// Interface of the default route (destination 0.0.0.0, lowest metric) in /proc/net/route.
std::optional<std::string> ParseDefaultRouteInterface(std::string_view text);

struct MountInfo {
  unsigned major = 0;
  unsigned minor = 0;
  std::string root;
  std::string mount_point;  // octal escapes (\040) decoded
  std::string fs_type;
  std::string source;
};
std::vector<MountInfo> ParseMountInfo(std::string_view text);
// The mount holding `path` (an absolute, canonical path): the longest mount point that is a
// prefix on a path-component boundary; the last such line wins (later mounts hide earlier ones).
std::optional<MountInfo> FindMountFor(const std::vector<MountInfo>& mounts, std::string_view path);

std::string ParseOsReleasePrettyName(std::string_view text);  // "" when absent
Result<double> ParseUptimeSeconds(std::string_view text);     // first field of /proc/uptime

// Bytes per second -> megabits per second.
double BytesPerSecondToMbps(double bytes_per_second);

}  // namespace taolie::host
