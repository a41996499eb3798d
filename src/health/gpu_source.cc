#include "health/gpu_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "gpu/nvml_gpu_probe.h"
#include "gpu/smi_gpu_probe.h"

namespace taolie::health {
namespace {

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string FindOnPath(const std::string& name, const std::string& path_env) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return IsExecutableFile(name) ? name : "";
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir.front() != '/') continue;  // a relative entry depends on the cwd
    std::string candidate = dir;
    candidate += '/';
    candidate += name;
    if (IsExecutableFile(candidate)) return candidate;
  }
  return "";
}

GpuSource SelectGpuSource(const config::GpuConfig& cfg) {
  GpuSource src;
  auto nvml = gpu::NvmlGpuProbe::Create(cfg.nvml_library, cfg.exclude_uuids);
  if (nvml->Available()) {
    src.probe = std::move(nvml);
    src.name = "nvml";
    src.detail = "NVML loaded from " + cfg.nvml_library;
    return src;
  }
  const std::string nvml_reason = "NVML unavailable: " + nvml->UnavailableReason();
  const char* path_env = std::getenv("PATH");
  const std::string tool = FindOnPath(
      cfg.nvidia_smi_path, path_env != nullptr
                               ? path_env
                               : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (tool.empty()) {
    src.probe = std::move(nvml);
    src.name = "none";
    src.detail = nvml_reason + "; nvidia-smi: " + cfg.nvidia_smi_path + " not found";
    return src;
  }
  gpu::SmiGpuProbe::Options o;
  o.smi_path = tool;
  o.exclude_uuids = cfg.exclude_uuids;
  auto smi = gpu::SmiGpuProbe::Create(o);
  if (!smi->Available()) {
    src.probe = std::move(nvml);
    src.name = "none";
    src.detail = nvml_reason + "; nvidia-smi: " + smi->UnavailableReason();
    return src;
  }
  src.probe = std::move(smi);
  src.name = "nvidia-smi";
  src.detail = nvml_reason + "; reading GPUs through " + tool +
               " (no XID events, thresholds, energy or PCIe replays: docs/nvidia-smi-fallback.md)";
  return src;
}

}  // namespace taolie::health
