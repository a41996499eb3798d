#pragma once
// Private to src/gpu: the loaded NVML library (NvmlSession) and what NvmlGpuProbe keeps of each
// device, shared by the files the probe is split into by concern:
//   nvml_library.cc    dlopen, the symbol table, nvmlInit and error text;
//   nvml_inventory.cc  device count, handles, identity (static facts) and the driver;
//   nvml_sampling.cc   one reading of one device;
//   nvml_xid.cc        XID events;
//   nvml_gpu_probe.cc  the probe: workers, deadlines, the device table.
// NvmlSession's methods make NVML calls: they run on CallWatchdog workers only.
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "gpu/call_watchdog.h"
#include "gpu/gpu_probe.h"
#include "gpu/nvml_api.h"
#include "gpu/nvml_gpu_probe.h"

namespace taolie::gpu {

namespace nvml {

inline constexpr unsigned kMaxXidsPerDrain = 256;
inline constexpr unsigned kInitialProcessSlots = 32;
inline constexpr unsigned kMaxProcessSlots = 4096;
inline constexpr unsigned kMaxFans = 32;
inline constexpr unsigned kMaxDevices = 64;  // bounds the per-device workers
inline constexpr double kBytesPerMiB = 1024.0 * 1024.0;

// The library's entry points (null: not exported).
struct Functions {
  nvmlInit_fn init = nullptr;
  nvmlShutdown_fn shutdown = nullptr;
  nvmlErrorString_fn error_string = nullptr;
  nvmlSystemGetString_fn driver_version = nullptr;
  nvmlSystemGetString_fn nvml_version = nullptr;
  nvmlSystemGetCudaDriverVersion_fn cuda_driver_version = nullptr;
  nvmlDeviceGetCount_fn device_count = nullptr;
  nvmlDeviceGetHandleByIndex_fn handle_by_index = nullptr;
  nvmlDeviceGetString_fn name = nullptr;
  nvmlDeviceGetString_fn uuid = nullptr;
  nvmlDeviceGetPciInfo_fn pci_info = nullptr;
  nvmlDeviceGetMemoryInfoV2_fn memory_info_v2 = nullptr;
  nvmlDeviceGetMemoryInfo_fn memory_info = nullptr;  // fallback when _v2 is absent
  nvmlDeviceGetUtilizationRates_fn utilization = nullptr;
  nvmlDeviceGetTemperature_fn temperature = nullptr;
  nvmlDeviceGetUInt_fn power_usage = nullptr;
  nvmlDeviceGetUInt_fn power_limit = nullptr;
  nvmlDeviceGetUInt_fn num_fans = nullptr;
  nvmlDeviceGetFanSpeedV2_fn fan_speed_v2 = nullptr;
  nvmlDeviceGetUInt_fn fan_speed = nullptr;  // fallback (fan 0) without the per-fan calls
  nvmlDeviceGetClockInfo_fn clock_info = nullptr;
  nvmlDeviceGetCudaComputeCapability_fn compute_capability = nullptr;
  nvmlDeviceGetMigMode_fn mig_mode = nullptr;
  nvmlDeviceGetTotalEccErrors_fn total_ecc_errors = nullptr;
  nvmlDeviceGetULongLong_fn throttle_reasons = nullptr;
  nvmlDeviceGetString_fn serial = nullptr;
  nvmlDeviceGetString_fn vbios_version = nullptr;
  nvmlDeviceGetString_fn inforom_image_version = nullptr;
  nvmlDeviceGetUIntPair_fn ecc_mode = nullptr;
  nvmlDeviceGetTemperatureThreshold_fn temperature_threshold = nullptr;
  nvmlDeviceGetULongLong_fn total_energy = nullptr;
  nvmlDeviceGetUInt_fn pcie_gen = nullptr;
  nvmlDeviceGetUInt_fn pcie_width = nullptr;
  nvmlDeviceGetUInt_fn pcie_max_gen = nullptr;
  nvmlDeviceGetUInt_fn pcie_max_width = nullptr;
  nvmlDeviceGetUInt_fn pcie_replay = nullptr;
  nvmlDeviceGetRetiredPagesV2_fn retired_pages_v2 = nullptr;
  nvmlDeviceGetRetiredPages_fn retired_pages = nullptr;  // fallback
  nvmlDeviceGetUInt_fn retired_pages_pending = nullptr;
  nvmlDeviceGetRemappedRows_fn remapped_rows = nullptr;
  nvmlDeviceGetViolationStatus_fn violation_status = nullptr;
  nvmlDeviceGetFieldValues_fn field_values = nullptr;
  nvmlDeviceGetUInt_fn persistence_mode = nullptr;
  nvmlDeviceValidateInforom_fn validate_inforom = nullptr;
  nvmlDeviceGetProcesses_fn compute_processes = nullptr;
  nvmlDeviceGetProcesses_fn graphics_processes = nullptr;
  nvmlEventSetCreate_fn event_set_create = nullptr;
  nvmlDeviceRegisterEvents_fn register_events = nullptr;
  nvmlEventSetWait_fn event_set_wait = nullptr;
  nvmlEventSetFree_fn event_set_free = nullptr;
};
// What the probe knows of one device index (kept by the probe, not touched by workers).
struct DeviceEntry {
  unsigned index = 0;
  nvmlDevice_t handle = nullptr;
  std::string uuid;
  bool excluded = false;
  bool events_registered = false;
  nvmlReturn_t handle_error = NVML_SUCCESS;  // why `handle` is null
  nvmlReturn_t uuid_error = NVML_SUCCESS;    // why `uuid` could not be read
  std::optional<GpuInfo> info;               // last identification; kept while it does not answer
};

struct HandleScan {  // one device index as the global scan found it
  unsigned index = 0;
  nvmlDevice_t handle = nullptr;
  nvmlReturn_t error = NVML_SUCCESS;
};

struct Identity {  // what a device's own worker read of it
  nvmlReturn_t uuid_error = NVML_SUCCESS;
  std::string uuid;
  bool events_registered = false;
  nvmlReturn_t register_error = NVML_SUCCESS;
  GpuInfo info;
};

struct RawXid {
  nvmlDevice_t device = nullptr;
  unsigned long long xid = 0;
};

}  // namespace nvml

// The loaded library. Load and Init run on the global worker before anything else; afterwards
// it is only read (NVML is thread-safe), by the global worker and the per-device workers. The
// last task holding it shuts NVML down, so that never happens under a call still running.
struct NvmlSession {
  void* dl = nullptr;
  nvml::Functions fn;
  bool initialized = false;
  nvmlEventSet_t event_set = nullptr;

  NvmlSession() = default;
  ~NvmlSession();
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  // nvml_library.cc
  std::string Describe(const char* call, nvmlReturn_t r) const;
  Error Fail(const char* call, nvmlReturn_t r) const;
  // dlopen `path` and resolve the entry points; fails when a required one is missing.
  Status Load(const std::string& path);
  // nvmlInit and the XID event set (events are optional: a failure is logged).
  Status Init();

  // nvml_inventory.cc
  Result<unsigned> Count() const;
  // The global half of a scan: the device count and a handle per index (no device queries).
  Result<std::vector<nvml::HandleScan>> Handles() const;
  // The device half, on the device's own worker: UUID, XID registration (unless `exclude`
  // holds the UUID or it is registered already) and the static facts.
  nvml::Identity Identify(nvmlDevice_t h, unsigned index, bool registered,
                          const std::set<std::string>& exclude) const;
  Result<DriverInfo> Driver() const;
  // Memory in bytes: nvmlDeviceGetMemoryInfo_v2 (versioned struct) when exported, else the
  // original call. `call` names the function that answered.
  nvmlReturn_t ReadMemory(nvmlDevice_t h, unsigned long long& total, unsigned long long& free,
                          unsigned long long& used, const char*& call) const;
  GpuInfo Info(nvmlDevice_t h, unsigned index) const;

  // nvml_sampling.cc: one reading of one device. Every value is optional: a call the library
  // does not export, or that answers NOT_SUPPORTED / NO_PERMISSION / FUNCTION_NOT_FOUND, leaves
  // it absent. GPU_IS_LOST marks the GPU lost and stops further reads; other errors are
  // recorded in `error` (the first one) and the reading goes on.
  GpuSample SampleOne(const nvml::DeviceEntry& d) const;

  // nvml_xid.cc: XID events waiting in the event set (non-blocking), with the handle they came
  // from.
  Result<std::vector<nvml::RawXid>> WaitXids() const;
};

// The probe's view of the devices, and one watchdog per device index.
struct NvmlGpuProbe::Devices {
  std::mutex mu;
  std::vector<nvml::DeviceEntry> entries;
  // By index; each created on first use and kept (a hung one is never replaced: its device
  // answers Unavailable until the call returns). A watchdog holds a thread only while one of
  // its calls is in flight.
  std::vector<std::unique_ptr<CallWatchdog>> workers;
  std::set<std::string> exclude;  // fixed after Create
};

}  // namespace taolie::gpu
