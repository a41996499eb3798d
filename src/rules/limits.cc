#include "rules/limits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

namespace taolie::rules {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kNanoPerCpu = 1'000'000'000;
constexpr double kMinCpus = 0.01;

Error Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::string Cores(double cpus) {
  std::string s = std::to_string(cpus);  // "2.500000"
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

int64_t MbToBytes(int64_t mb) {
  if (mb > std::numeric_limits<int64_t>::max() / kMiB) return std::numeric_limits<int64_t>::max();
  return mb * kMiB;
}

int64_t FractionOf(uint64_t bytes, double factor) {
  double v = std::floor(static_cast<double>(bytes) * factor);
  if (v >= static_cast<double>(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return static_cast<int64_t>(v);
}

}  // namespace

Result<ResourceLimits> ComputeLimits(const DeploySpec& spec, const config::DeploymentConfig& cfg,
                                     const HostCapacity& host, int gpus_claimed) {
  double share = static_cast<double>(std::max(gpus_claimed, 1)) /
                 static_cast<double>(std::max(host.total_gpus, 1));
  share = std::min(share, 1.0);
  ResourceLimits out;

  // Memory.
  std::optional<int64_t> mem_cap;  // bytes
  if (cfg.max_memory_mb > 0) {
    mem_cap = MbToBytes(cfg.max_memory_mb);
  } else if (host.ram_bytes > 0) {
    mem_cap = FractionOf(host.ram_bytes, 0.9);
  }
  if (spec.memory_limit_mb) {
    int64_t want = MbToBytes(*spec.memory_limit_mb);
    if (mem_cap && want > *mem_cap) {
      return Invalid("memory_limit_mb: " + std::to_string(*spec.memory_limit_mb) +
                     " exceeds this host's cap of " + std::to_string(*mem_cap / kMiB));
    }
    if (want < kMinMemoryBytes) {
      return Invalid("memory_limit_mb: " + std::to_string(*spec.memory_limit_mb) +
                     " is below the minimum " + std::to_string(kMinMemoryBytes / kMiB));
    }
    out.memory_bytes = want;
  } else {
    int64_t def = 0;  // 0 = no limit (host RAM unknown and nothing configured)
    if (cfg.default_memory_mb > 0) {
      def = MbToBytes(cfg.default_memory_mb);
    } else if (host.ram_bytes > 0) {
      def = FractionOf(host.ram_bytes, 0.85 * share);
    }
    if (def > 0) {
      if (mem_cap) def = std::min(def, *mem_cap);
      def = std::max(def, kMinMemoryBytes);
    }
    out.memory_bytes = def;
  }

  // CPUs.
  std::optional<double> cpu_cap;
  if (cfg.max_cpus > 0) {
    cpu_cap = cfg.max_cpus;
  } else if (host.logical_cpus > 0) {
    cpu_cap = host.logical_cpus;
  }
  double cpus = 0;  // 0 = no limit
  if (spec.cpu_limit) {
    if (cpu_cap && *spec.cpu_limit > *cpu_cap) {
      return Invalid("cpu_limit: " + Cores(*spec.cpu_limit) + " exceeds this host's cap of " +
                     Cores(*cpu_cap));
    }
    if (*spec.cpu_limit < kMinCpus) {
      return Invalid("cpu_limit: " + Cores(*spec.cpu_limit) + " is below the minimum 0.01");
    }
    cpus = *spec.cpu_limit;
  } else {
    if (cfg.default_cpus > 0) {
      cpus = cfg.default_cpus;
    } else if (host.logical_cpus > 0) {
      cpus = std::max(1.0, host.logical_cpus * share);
    }
    if (cpus > 0 && cpu_cap) cpus = std::min(cpus, *cpu_cap);
  }
  out.nano_cpus = static_cast<int64_t>(std::llround(cpus * kNanoPerCpu));

  // Shared memory: charged to the container's memory, so the memory limit caps it by default.
  std::optional<int64_t> shm_cap;
  if (cfg.max_shm_mb > 0) {
    shm_cap = MbToBytes(cfg.max_shm_mb);
  } else if (out.memory_bytes > 0) {
    shm_cap = out.memory_bytes;
  }
  if (spec.shm_size_mb) {
    int64_t want = MbToBytes(*spec.shm_size_mb);
    if (shm_cap && want > *shm_cap) {
      return Invalid("shm_size_mb: " + std::to_string(*spec.shm_size_mb) +
                     " exceeds this host's cap of " + std::to_string(*shm_cap / kMiB));
    }
    out.shm_bytes = want;
  } else {
    int64_t def = cfg.default_shm_mb > 0 ? MbToBytes(cfg.default_shm_mb) : 0;
    if (def > 0 && shm_cap) def = std::min(def, *shm_cap);
    out.shm_bytes = def;
  }

  out.pids_limit = cfg.pids_limit > 0 ? cfg.pids_limit : 0;
  return out;
}

}  // namespace taolie::rules
