#pragma once
// NvmlGpuProbe: GpuProbe over NVIDIA's NVML, loaded at run time with dlopen (no build-time
// dependency on the driver). Every NVML call runs on a watchdog worker thread with a deadline,
// because drivers can hang: device queries on one worker per GPU, everything else (init, the
// device count, the driver, XIDs) on one global worker; at most one call per worker is
// outstanding, and a worker's thread exists only while one of its calls is in flight (an idle
// probe holds no thread). A GPU whose call misses its deadline is sampled as unresponsive
// (GpuSample::error) while the others are read, until its stuck call returns; a global call
// that misses its deadline fails the public call (DeadlineExceeded, then Unavailable until it
// returns). Thread-safe.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gpu/gpu_probe.h"

namespace taolie::gpu {

class CallWatchdog;
struct NvmlSession;

// Where NVML is looked for: the configured library; when that is the bare default name, also
// the path NVIDIA's CUDA-on-WSL driver uses (/usr/lib/wsl/lib), which the dynamic loader does
// not search on every distribution. Tried in order; the first that loads is used.
std::vector<std::string> NvmlLibraryCandidates(const std::string& configured);

class NvmlGpuProbe final : public GpuProbe {
 public:
  struct Options {
    std::string library_path = "libnvidia-ml.so.1";
    std::vector<std::string> exclude_uuids;  // GPUs hidden from the agent (kept by the owner)
    // Per public call; Sample waits at most this long for all GPUs together.
    std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
  };

  // Never fails: when the library cannot be loaded or nvmlInit fails, Available() is false,
  // UnavailableReason() says why, and the other methods return FailedPrecondition.
  static std::unique_ptr<NvmlGpuProbe> Create(const std::string& library_path = "libnvidia-ml.so.1",
                                              std::vector<std::string> exclude_uuids = {});
  static std::unique_ptr<NvmlGpuProbe> Create(Options options);

  ~NvmlGpuProbe() override;
  NvmlGpuProbe(const NvmlGpuProbe&) = delete;
  NvmlGpuProbe& operator=(const NvmlGpuProbe&) = delete;

  bool Available() const override;
  std::string UnavailableReason() const override;
  Result<DriverInfo> Driver() override;
  // Re-scans the devices (new handles are registered for XID events).
  Result<std::vector<GpuInfo>> ListGpus() override;
  Result<std::vector<GpuSample>> Sample() override;
  Result<std::vector<XidEvent>> DrainXids() override;

 private:
  struct Devices;

  explicit NvmlGpuProbe(Options options);
  Status CheckAvailable() const;
  CallWatchdog& Worker(unsigned index);  // the device's worker, created on first use
  Status Rescan(std::chrono::steady_clock::time_point deadline);

  Options options_;
  std::unique_ptr<CallWatchdog> global_;
  std::unique_ptr<Devices> devices_;
  std::shared_ptr<NvmlSession> session_;  // set once by Create; NVML calls only on workers
  std::string unavailable_reason_;        // fixed after Create
};

// "12.4" from the integer NVML reports (12040). Exposed for tests.
std::string CudaVersionString(int version);

}  // namespace taolie::gpu
