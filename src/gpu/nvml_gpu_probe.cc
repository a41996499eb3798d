#include "gpu/nvml_gpu_probe.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <set>

#include "gpu/call_watchdog.h"
#include "gpu/nvml_api.h"

// Layouts must match the library's ABI (LP64).
static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t layout");
static_assert(sizeof(nvmlEventData_t) == 32, "nvmlEventData_t layout");
static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");
static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t layout");
static_assert(nvmlMemory_v2 == 0x02000028u, "NVML_STRUCT_VERSION(Memory, 2)");
static_assert(sizeof(nvmlViolationTime_t) == 16, "nvmlViolationTime_t layout");
static_assert(sizeof(nvmlValue_t) == 8, "nvmlValue_t layout");
static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t layout");

namespace taolie::gpu {

namespace {

constexpr unsigned kMaxXidsPerDrain = 256;
constexpr unsigned kInitialProcessSlots = 32;
constexpr unsigned kMaxProcessSlots = 4096;
constexpr unsigned kMaxFans = 32;
constexpr unsigned kMaxDevices = 64;  // bounds the per-device workers
constexpr double kBytesPerMiB = 1024.0 * 1024.0;

struct NvmlFunctions {
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

// First of `names` the library exports (newer versioned names first).
template <typename F>
F Resolve(void* dl, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (void* p = dlsym(dl, n)) return reinterpret_cast<F>(p);
  }
  return nullptr;
}

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

}  // namespace

// The loaded library. Load and Init run on the global worker before anything else; afterwards
// it is only read (NVML is thread-safe), by the global worker and the per-device workers. The
// last task holding it shuts NVML down, so that never happens under a call still running.
struct NvmlSession {
  void* dl = nullptr;
  NvmlFunctions fn;
  bool initialized = false;
  nvmlEventSet_t event_set = nullptr;

  ~NvmlSession() {
    if (event_set != nullptr && fn.event_set_free != nullptr) fn.event_set_free(event_set);
    if (initialized && fn.shutdown != nullptr) fn.shutdown();
    if (dl != nullptr) dlclose(dl);
  }

  std::string Describe(const char* call, nvmlReturn_t r) const {
    std::string text;
    if (fn.error_string != nullptr) {
      const char* s = fn.error_string(r);
      text = s != nullptr ? s : "";
    }
    if (text.empty()) text = "NVML error";
    return std::string(call) + ": " + text + " (" + std::to_string(r) + ")";
  }

  Error Fail(const char* call, nvmlReturn_t r) const {
    return MakeError(ErrorCode::kUnavailable, Describe(call, r));
  }

  Status Load(const std::string& path) {
    dlerror();
    dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl == nullptr) {
      const char* why = dlerror();
      return MakeError(ErrorCode::kNotFound,
                       path + " could not be loaded (no NVIDIA driver?): " + (why ? why : "?"));
    }
    fn.init = Resolve<nvmlInit_fn>(dl, {"nvmlInit_v2", "nvmlInit"});
    fn.shutdown = Resolve<nvmlShutdown_fn>(dl, {"nvmlShutdown"});
    fn.error_string = Resolve<nvmlErrorString_fn>(dl, {"nvmlErrorString"});
    fn.driver_version = Resolve<nvmlSystemGetString_fn>(dl, {"nvmlSystemGetDriverVersion"});
    fn.nvml_version = Resolve<nvmlSystemGetString_fn>(dl, {"nvmlSystemGetNVMLVersion"});
    fn.cuda_driver_version = Resolve<nvmlSystemGetCudaDriverVersion_fn>(
        dl, {"nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"});
    fn.device_count =
        Resolve<nvmlDeviceGetCount_fn>(dl, {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"});
    fn.handle_by_index = Resolve<nvmlDeviceGetHandleByIndex_fn>(
        dl, {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"});
    fn.name = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetName"});
    fn.uuid = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetUUID"});
    // _v2 and _v3 share the struct layout we declare.
    fn.pci_info = Resolve<nvmlDeviceGetPciInfo_fn>(
        dl, {"nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"});
    fn.memory_info_v2 = Resolve<nvmlDeviceGetMemoryInfoV2_fn>(dl, {"nvmlDeviceGetMemoryInfo_v2"});
    fn.memory_info = Resolve<nvmlDeviceGetMemoryInfo_fn>(dl, {"nvmlDeviceGetMemoryInfo"});
    fn.utilization =
        Resolve<nvmlDeviceGetUtilizationRates_fn>(dl, {"nvmlDeviceGetUtilizationRates"});
    fn.temperature = Resolve<nvmlDeviceGetTemperature_fn>(dl, {"nvmlDeviceGetTemperature"});
    fn.power_usage = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPowerUsage"});
    fn.power_limit = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetEnforcedPowerLimit"});
    fn.num_fans = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetNumFans"});
    fn.fan_speed_v2 = Resolve<nvmlDeviceGetFanSpeedV2_fn>(dl, {"nvmlDeviceGetFanSpeed_v2"});
    fn.fan_speed = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetFanSpeed"});
    fn.clock_info = Resolve<nvmlDeviceGetClockInfo_fn>(dl, {"nvmlDeviceGetClockInfo"});
    fn.compute_capability =
        Resolve<nvmlDeviceGetCudaComputeCapability_fn>(dl, {"nvmlDeviceGetCudaComputeCapability"});
    fn.mig_mode = Resolve<nvmlDeviceGetMigMode_fn>(dl, {"nvmlDeviceGetMigMode"});
    fn.total_ecc_errors =
        Resolve<nvmlDeviceGetTotalEccErrors_fn>(dl, {"nvmlDeviceGetTotalEccErrors"});
    fn.throttle_reasons = Resolve<nvmlDeviceGetULongLong_fn>(
        dl,
        {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"});
    fn.serial = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetSerial"});
    fn.vbios_version = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetVbiosVersion"});
    fn.inforom_image_version =
        Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetInforomImageVersion"});
    fn.ecc_mode = Resolve<nvmlDeviceGetUIntPair_fn>(dl, {"nvmlDeviceGetEccMode"});
    fn.temperature_threshold =
        Resolve<nvmlDeviceGetTemperatureThreshold_fn>(dl, {"nvmlDeviceGetTemperatureThreshold"});
    fn.total_energy =
        Resolve<nvmlDeviceGetULongLong_fn>(dl, {"nvmlDeviceGetTotalEnergyConsumption"});
    fn.pcie_gen = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetCurrPcieLinkGeneration"});
    fn.pcie_width = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetCurrPcieLinkWidth"});
    // The link's maximum (GPU and system together) first; the GPU's own maximum without it.
    fn.pcie_max_gen = Resolve<nvmlDeviceGetUInt_fn>(
        dl, {"nvmlDeviceGetMaxPcieLinkGeneration", "nvmlDeviceGetGpuMaxPcieLinkGeneration"});
    fn.pcie_max_width = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetMaxPcieLinkWidth"});
    fn.pcie_replay = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPcieReplayCounter"});
    fn.retired_pages_v2 =
        Resolve<nvmlDeviceGetRetiredPagesV2_fn>(dl, {"nvmlDeviceGetRetiredPages_v2"});
    fn.retired_pages = Resolve<nvmlDeviceGetRetiredPages_fn>(dl, {"nvmlDeviceGetRetiredPages"});
    fn.retired_pages_pending =
        Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetRetiredPagesPendingStatus"});
    fn.remapped_rows = Resolve<nvmlDeviceGetRemappedRows_fn>(dl, {"nvmlDeviceGetRemappedRows"});
    fn.violation_status =
        Resolve<nvmlDeviceGetViolationStatus_fn>(dl, {"nvmlDeviceGetViolationStatus"});
    fn.field_values = Resolve<nvmlDeviceGetFieldValues_fn>(dl, {"nvmlDeviceGetFieldValues"});
    fn.persistence_mode = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPersistenceMode"});
    fn.validate_inforom = Resolve<nvmlDeviceValidateInforom_fn>(dl, {"nvmlDeviceValidateInforom"});
    fn.compute_processes = Resolve<nvmlDeviceGetProcesses_fn>(
        dl, {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"});
    fn.graphics_processes = Resolve<nvmlDeviceGetProcesses_fn>(
        dl,
        {"nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v2"});
    fn.event_set_create = Resolve<nvmlEventSetCreate_fn>(dl, {"nvmlEventSetCreate"});
    fn.register_events = Resolve<nvmlDeviceRegisterEvents_fn>(dl, {"nvmlDeviceRegisterEvents"});
    fn.event_set_wait = Resolve<nvmlEventSetWait_fn>(dl, {"nvmlEventSetWait_v2"});
    fn.event_set_free = Resolve<nvmlEventSetFree_fn>(dl, {"nvmlEventSetFree"});

    const std::pair<const void*, const char*> required[] = {
        {reinterpret_cast<const void*>(fn.init), "nvmlInit_v2"},
        {reinterpret_cast<const void*>(fn.shutdown), "nvmlShutdown"},
        {reinterpret_cast<const void*>(fn.device_count), "nvmlDeviceGetCount_v2"},
        {reinterpret_cast<const void*>(fn.handle_by_index), "nvmlDeviceGetHandleByIndex_v2"},
        {reinterpret_cast<const void*>(fn.uuid), "nvmlDeviceGetUUID"},
    };
    for (const auto& [ptr, name] : required) {
      if (ptr == nullptr) {
        return MakeError(ErrorCode::kFailedPrecondition, path + " does not export " + name);
      }
    }
    return OkStatus();
  }

  Status Init() {
    nvmlReturn_t r = fn.init();
    if (r != NVML_SUCCESS) return Fail("nvmlInit_v2", r);
    initialized = true;
    if (fn.event_set_create != nullptr && fn.register_events != nullptr &&
        fn.event_set_wait != nullptr) {
      r = fn.event_set_create(&event_set);
      if (r != NVML_SUCCESS) {
        event_set = nullptr;
        spdlog::warn("NVML: XID events unavailable: {}", Describe("nvmlEventSetCreate", r));
      }
    } else {
      spdlog::warn("NVML: XID events unavailable: event functions not exported");
    }
    return OkStatus();
  }

  Result<unsigned> Count() const {
    unsigned count = 0;
    nvmlReturn_t r = fn.device_count(&count);
    if (r != NVML_SUCCESS) return Fail("nvmlDeviceGetCount_v2", r);
    return std::min(count, kMaxDevices);
  }

  // The global half of a scan: the device count and a handle per index (no device queries).
  Result<std::vector<HandleScan>> Handles() const {
    auto count = Count();
    if (!count.ok()) return count.error();
    std::vector<HandleScan> out(*count);
    for (unsigned i = 0; i < *count; ++i) {
      out[i].index = i;
      out[i].error = fn.handle_by_index(i, &out[i].handle);
      if (out[i].error != NVML_SUCCESS) out[i].handle = nullptr;
    }
    return out;
  }

  // The device half, on the device's own worker: UUID, XID registration (unless `exclude`
  // holds the UUID or it is registered already) and the static facts.
  Identity Identify(nvmlDevice_t h, unsigned index, bool registered,
                    const std::set<std::string>& exclude) const {
    Identity id;
    char buf[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
    id.uuid_error = fn.uuid(h, buf, sizeof(buf));
    if (id.uuid_error == NVML_SUCCESS) id.uuid = buf;
    id.events_registered = registered;
    if (event_set != nullptr && !registered && !id.uuid.empty() && exclude.count(id.uuid) == 0) {
      id.register_error = fn.register_events(h, nvmlEventTypeXidCriticalError, event_set);
      id.events_registered = id.register_error == NVML_SUCCESS;
    }
    id.info = Info(h, index);
    return id;
  }

  Result<DriverInfo> Driver() const {
    DriverInfo info;
    if (fn.driver_version != nullptr) {
      char buf[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
      nvmlReturn_t r = fn.driver_version(buf, sizeof(buf));
      if (r != NVML_SUCCESS) return Fail("nvmlSystemGetDriverVersion", r);
      info.driver_version = buf;
    }
    if (fn.nvml_version != nullptr) {
      char buf[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE] = {};
      if (fn.nvml_version(buf, sizeof(buf)) == NVML_SUCCESS) info.nvml_version = buf;
    }
    if (fn.cuda_driver_version != nullptr) {
      int v = 0;
      if (fn.cuda_driver_version(&v) == NVML_SUCCESS) info.cuda_version = CudaVersionString(v);
    }
    return info;
  }

  // Memory in bytes: nvmlDeviceGetMemoryInfo_v2 (versioned struct) when exported, else the
  // original call. `call` names the function that answered.
  nvmlReturn_t ReadMemory(nvmlDevice_t h, unsigned long long& total, unsigned long long& free,
                          unsigned long long& used, const char*& call) const {
    if (fn.memory_info_v2 != nullptr) {
      nvmlMemory_v2_t mem{};
      mem.version = nvmlMemory_v2;
      call = "nvmlDeviceGetMemoryInfo_v2";
      nvmlReturn_t r = fn.memory_info_v2(h, &mem);
      if (r == NVML_SUCCESS) {
        total = mem.total;
        free = mem.free;
        used = mem.used;
      }
      if (r != NVML_ERROR_FUNCTION_NOT_FOUND || fn.memory_info == nullptr) return r;
    }
    if (fn.memory_info == nullptr) return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlMemory_t mem{};
    call = "nvmlDeviceGetMemoryInfo";
    nvmlReturn_t r = fn.memory_info(h, &mem);
    if (r == NVML_SUCCESS) {
      total = mem.total;
      free = mem.free;
      used = mem.used;
    }
    return r;
  }

  // A string the device reports, "" when it does not (or the library lacks the call).
  static std::string ReadString(nvmlDeviceGetString_fn f, nvmlDevice_t h, unsigned size) {
    if (f == nullptr) return "";
    std::string buf(size, '\0');
    if (f(h, buf.data(), size) != NVML_SUCCESS) return "";
    buf.resize(std::min<size_t>(strnlen(buf.data(), size), size));
    return buf;
  }

  GpuInfo Info(nvmlDevice_t h, unsigned index) const {
    GpuInfo info;
    info.index = static_cast<int>(index);
    info.mig_mode = "unsupported";
    info.name = ReadString(fn.name, h, NVML_DEVICE_NAME_BUFFER_SIZE);
    if (fn.pci_info != nullptr) {
      nvmlPciInfo_t pci{};
      if (fn.pci_info(h, &pci) == NVML_SUCCESS) {
        pci.busId[sizeof(pci.busId) - 1] = '\0';
        info.pci_bus_id = pci.busId;
      }
    }
    unsigned long long total = 0, free = 0, used = 0;
    const char* call = "";
    if (ReadMemory(h, total, free, used, call) == NVML_SUCCESS) {
      info.memory_total_mb = static_cast<uint64_t>(total / kBytesPerMiB);
    }
    if (fn.compute_capability != nullptr) {
      int major = 0, minor = 0;
      if (fn.compute_capability(h, &major, &minor) == NVML_SUCCESS) {
        info.compute_capability = std::to_string(major) + "." + std::to_string(minor);
      }
    }
    if (fn.power_limit != nullptr) {
      unsigned mw = 0;
      if (fn.power_limit(h, &mw) == NVML_SUCCESS) info.power_limit_watts = mw / 1000.0;
    }
    if (fn.mig_mode != nullptr) {
      unsigned current = 0, pending = 0;
      if (fn.mig_mode(h, &current, &pending) == NVML_SUCCESS) {
        info.mig_mode = current == NVML_DEVICE_MIG_ENABLE ? "enabled" : "disabled";
      }
    }
    info.serial = ReadString(fn.serial, h, NVML_DEVICE_SERIAL_BUFFER_SIZE);
    info.vbios_version = ReadString(fn.vbios_version, h, NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE);
    info.inforom_image_version =
        ReadString(fn.inforom_image_version, h, NVML_DEVICE_INFOROM_VERSION_BUFFER_SIZE);
    if (fn.num_fans != nullptr) {
      unsigned fans = 0;
      if (fn.num_fans(h, &fans) == NVML_SUCCESS) info.fan_count = static_cast<int>(fans);
    }
    return info;
  }

  // One reading of one device. Every value is optional: a call the library does not export,
  // or that answers NOT_SUPPORTED / NO_PERMISSION / FUNCTION_NOT_FOUND, leaves it absent.
  // GPU_IS_LOST marks the GPU lost and stops further reads; other errors are recorded in
  // `error` (the first one) and the reading goes on.
  GpuSample SampleOne(const DeviceEntry& d) const {
    GpuSample s;
    s.index = static_cast<int>(d.index);
    s.uuid = d.uuid;
    if (d.handle == nullptr) {
      s.lost = d.handle_error == NVML_ERROR_GPU_IS_LOST;
      s.error = Describe("nvmlDeviceGetHandleByIndex_v2", d.handle_error);
      return s;
    }
    nvmlDevice_t h = d.handle;
    auto ok = [&](nvmlReturn_t r, const char* call) {
      if (r == NVML_SUCCESS) return true;
      if (r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_NO_PERMISSION ||
          r == NVML_ERROR_FUNCTION_NOT_FOUND) {
        return false;
      }
      if (r == NVML_ERROR_GPU_IS_LOST) s.lost = true;
      if (s.error.empty()) s.error = Describe(call, r);
      return false;
    };
    // Reads one unsigned value with `f` into `out` (converted), unless the GPU is lost.
    auto read_uint = [&](nvmlDeviceGetUInt_fn f, const char* call, auto& out) {
      if (s.lost || f == nullptr) return;
      unsigned v = 0;
      if (ok(f(h, &v), call)) out = v;
    };
    {
      unsigned long long total = 0, free = 0, used = 0;
      const char* call = "nvmlDeviceGetMemoryInfo";
      nvmlReturn_t r = ReadMemory(h, total, free, used, call);
      if (ok(r, call)) {
        s.memory_total_mb = static_cast<uint64_t>(total / kBytesPerMiB);
        s.memory_used_mb = static_cast<uint64_t>(used / kBytesPerMiB);
        s.memory_free_mb = static_cast<uint64_t>(free / kBytesPerMiB);
      }
    }
    if (!s.lost && fn.utilization != nullptr) {
      nvmlUtilization_t u{};
      if (ok(fn.utilization(h, &u), "nvmlDeviceGetUtilizationRates")) {
        s.utilization_percent = u.gpu;
        s.memory_utilization_percent = u.memory;
      }
    }
    if (!s.lost && fn.temperature != nullptr) {
      unsigned t = 0;
      if (ok(fn.temperature(h, NVML_TEMPERATURE_GPU, &t), "nvmlDeviceGetTemperature")) {
        s.temperature_c = t;
      }
    }
    if (!s.lost && fn.temperature_threshold != nullptr) {
      unsigned t = 0;
      if (ok(fn.temperature_threshold(h, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &t),
             "nvmlDeviceGetTemperatureThreshold")) {
        s.temperature_slowdown_c = t;
      }
      if (!s.lost && ok(fn.temperature_threshold(h, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, &t),
                        "nvmlDeviceGetTemperatureThreshold")) {
        s.temperature_shutdown_c = t;
      }
    }
    if (!s.lost && fn.power_usage != nullptr) {
      unsigned mw = 0;
      if (ok(fn.power_usage(h, &mw), "nvmlDeviceGetPowerUsage")) s.power_draw_watts = mw / 1000.0;
    }
    if (!s.lost && fn.power_limit != nullptr) {
      unsigned mw = 0;
      if (ok(fn.power_limit(h, &mw), "nvmlDeviceGetEnforcedPowerLimit")) {
        s.power_limit_watts = mw / 1000.0;
      }
    }
    if (!s.lost && fn.total_energy != nullptr) {
      unsigned long long mj = 0;
      if (ok(fn.total_energy(h, &mj), "nvmlDeviceGetTotalEnergyConsumption")) {
        s.energy_joules = static_cast<double>(mj) / 1000.0;
      }
    }
    if (!s.lost) ReadFans(h, ok, s);
    if (!s.lost && fn.clock_info != nullptr) {
      unsigned mhz = 0;
      if (ok(fn.clock_info(h, NVML_CLOCK_SM, &mhz), "nvmlDeviceGetClockInfo")) s.sm_clock_mhz = mhz;
      if (!s.lost && ok(fn.clock_info(h, NVML_CLOCK_MEM, &mhz), "nvmlDeviceGetClockInfo")) {
        s.mem_clock_mhz = mhz;
      }
    }
    read_uint(fn.pcie_gen, "nvmlDeviceGetCurrPcieLinkGeneration", s.pcie_gen);
    read_uint(fn.pcie_width, "nvmlDeviceGetCurrPcieLinkWidth", s.pcie_width);
    read_uint(fn.pcie_max_gen, "nvmlDeviceGetMaxPcieLinkGeneration", s.pcie_max_gen);
    read_uint(fn.pcie_max_width, "nvmlDeviceGetMaxPcieLinkWidth", s.pcie_max_width);
    read_uint(fn.pcie_replay, "nvmlDeviceGetPcieReplayCounter", s.pcie_replay_count);
    if (!s.lost && fn.ecc_mode != nullptr) {
      unsigned current = 0, pending = 0;
      if (ok(fn.ecc_mode(h, &current, &pending), "nvmlDeviceGetEccMode")) {
        s.ecc_enabled = current == NVML_FEATURE_ENABLED;
      }
    }
    if (!s.lost && fn.total_ecc_errors != nullptr) {
      const struct {
        int error_type, counter;
        std::optional<uint64_t>& out;
      } counters[] = {
          {NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, s.ecc_volatile_uncorrected},
          {NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, s.ecc_volatile_corrected},
          {NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC, s.ecc_aggregate_uncorrected},
          {NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC, s.ecc_aggregate_corrected},
      };
      for (const auto& c : counters) {
        if (s.lost) break;
        unsigned long long n = 0;
        if (ok(fn.total_ecc_errors(h, c.error_type, c.counter, &n),
               "nvmlDeviceGetTotalEccErrors")) {
          c.out = n;
        }
      }
    }
    if (!s.lost) ReadRetiredPages(h, ok, s);
    if (!s.lost && fn.retired_pages_pending != nullptr) {
      unsigned pending = 0;
      if (ok(fn.retired_pages_pending(h, &pending), "nvmlDeviceGetRetiredPagesPendingStatus")) {
        s.retired_pages_pending = pending == NVML_FEATURE_ENABLED;
      }
    }
    if (!s.lost && fn.remapped_rows != nullptr) {
      unsigned corr = 0, unc = 0, pending = 0, failure = 0;
      if (ok(fn.remapped_rows(h, &corr, &unc, &pending, &failure), "nvmlDeviceGetRemappedRows")) {
        s.remapped_rows_correctable = corr;
        s.remapped_rows_uncorrectable = unc;
        s.remapped_rows_pending = pending != 0;
        s.remapped_rows_failure = failure != 0;
      }
    }
    if (!s.lost && fn.violation_status != nullptr) {
      nvmlViolationTime_t v{};
      if (ok(fn.violation_status(h, NVML_PERF_POLICY_POWER, &v), "nvmlDeviceGetViolationStatus")) {
        s.power_violation_ns = v.violationTime;
      }
      v = {};
      if (!s.lost && ok(fn.violation_status(h, NVML_PERF_POLICY_THERMAL, &v),
                        "nvmlDeviceGetViolationStatus")) {
        s.thermal_violation_ns = v.violationTime;
      }
    }
    if (!s.lost && fn.field_values != nullptr) {
      nvmlFieldValue_t f{};
      f.fieldId = NVML_FI_DEV_GET_GPU_RECOVERY_ACTION;
      if (ok(fn.field_values(h, 1, &f), "nvmlDeviceGetFieldValues") &&
          ok(f.nvmlReturn, "nvmlDeviceGetFieldValues(NVML_FI_DEV_GET_GPU_RECOVERY_ACTION)")) {
        if (auto v = FieldAsUInt(f)) s.recovery_action = *v;
      }
    }
    if (!s.lost && fn.persistence_mode != nullptr) {
      unsigned mode = 0;
      if (ok(fn.persistence_mode(h, &mode), "nvmlDeviceGetPersistenceMode")) {
        s.persistence_mode = mode == NVML_FEATURE_ENABLED;
      }
    }
    if (!s.lost && fn.validate_inforom != nullptr) {
      nvmlReturn_t r = fn.validate_inforom(h);
      if (r == NVML_ERROR_CORRUPTED_INFOROM) {
        s.inforom_valid = false;
      } else if (ok(r, "nvmlDeviceValidateInforom")) {
        s.inforom_valid = true;
      }
    }
    if (!s.lost && fn.throttle_reasons != nullptr) {
      unsigned long long bits = 0;
      if (ok(fn.throttle_reasons(h, &bits), "nvmlDeviceGetCurrentClocksEventReasons")) {
        s.throttle_reasons = static_cast<uint32_t>(bits);
      }
    }
    if (!s.lost && fn.compute_processes != nullptr) {
      ReadPids(fn.compute_processes, h, "nvmlDeviceGetComputeRunningProcesses_v3", ok,
               s.process_pids);
    }
    if (!s.lost && fn.graphics_processes != nullptr) {
      ReadPids(fn.graphics_processes, h, "nvmlDeviceGetGraphicsRunningProcesses_v3", ok,
               s.process_pids);
    }
    std::sort(s.process_pids.begin(), s.process_pids.end());
    s.process_pids.erase(std::unique(s.process_pids.begin(), s.process_pids.end()),
                         s.process_pids.end());
    return s;
  }

  // A field value as an unsigned integer, whatever integer type the driver chose.
  static std::optional<uint32_t> FieldAsUInt(const nvmlFieldValue_t& f) {
    switch (f.valueType) {
      case NVML_VALUE_TYPE_UNSIGNED_INT:
        return f.value.uiVal;
      case NVML_VALUE_TYPE_UNSIGNED_LONG:
        return static_cast<uint32_t>(f.value.ulVal);
      case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
        return static_cast<uint32_t>(f.value.ullVal);
      case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        if (f.value.sllVal < 0) return std::nullopt;
        return static_cast<uint32_t>(f.value.sllVal);
      case NVML_VALUE_TYPE_SIGNED_INT:
        if (f.value.siVal < 0) return std::nullopt;
        return static_cast<uint32_t>(f.value.siVal);
      case NVML_VALUE_TYPE_UNSIGNED_SHORT:
        return f.value.usVal;
      default:
        return std::nullopt;
    }
  }

  // Fan speed: the mean over the card's fans (nvmlDeviceGetNumFans + nvmlDeviceGetFanSpeed_v2);
  // absent on a card with no fan. Without the per-fan calls, nvmlDeviceGetFanSpeed (fan 0).
  template <typename Ok>
  void ReadFans(nvmlDevice_t h, Ok& ok, GpuSample& s) const {
    if (fn.num_fans != nullptr && fn.fan_speed_v2 != nullptr) {
      unsigned fans = 0;
      nvmlReturn_t r = fn.num_fans(h, &fans);
      if (r == NVML_SUCCESS) {
        double sum = 0;
        unsigned read = 0;
        for (unsigned i = 0; i < fans && i < kMaxFans && !s.lost; ++i) {
          unsigned pct = 0;
          if (ok(fn.fan_speed_v2(h, i, &pct), "nvmlDeviceGetFanSpeed_v2")) {
            sum += pct;
            ++read;
          }
        }
        if (read > 0) s.fan_speed_percent = sum / read;
        return;
      }
      if (r != NVML_ERROR_NOT_SUPPORTED && r != NVML_ERROR_FUNCTION_NOT_FOUND) {
        ok(r, "nvmlDeviceGetNumFans");  // a failure (or a lost GPU), not a missing feature
        return;
      }
    }
    if (fn.fan_speed != nullptr) {
      unsigned pct = 0;
      if (ok(fn.fan_speed(h, &pct), "nvmlDeviceGetFanSpeed")) s.fan_speed_percent = pct;
    }
  }

  // Pages retired for multiple single-bit and for double-bit ECC errors: only the counts (a
  // size query with no buffer; NVML answers INSUFFICIENT_SIZE with the count when there are
  // any). nvmlDeviceGetRetiredPages_v2 when exported, else nvmlDeviceGetRetiredPages.
  template <typename Ok>
  void ReadRetiredPages(nvmlDevice_t h, Ok& ok, GpuSample& s) const {
    if (fn.retired_pages_v2 == nullptr && fn.retired_pages == nullptr) return;
    const struct {
      int cause;
      std::optional<uint64_t>& out;
    } causes[] = {
        {NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, s.retired_pages_sbe},
        {NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR, s.retired_pages_dbe},
    };
    for (const auto& c : causes) {
      if (s.lost) return;
      unsigned count = 0;
      nvmlReturn_t r;
      const char* call;
      if (fn.retired_pages_v2 != nullptr) {
        call = "nvmlDeviceGetRetiredPages_v2";
        r = fn.retired_pages_v2(h, c.cause, &count, nullptr, nullptr);
      } else {
        call = "nvmlDeviceGetRetiredPages";
        r = fn.retired_pages(h, c.cause, &count, nullptr);
      }
      if (r == NVML_ERROR_INSUFFICIENT_SIZE || ok(r, call)) c.out = count;
    }
  }

  template <typename Ok>
  static void ReadPids(nvmlDeviceGetProcesses_fn f, nvmlDevice_t h, const char* call, Ok& ok,
                       std::vector<uint32_t>& out) {
    nvmlProcessInfo_t small[kInitialProcessSlots];
    unsigned count = kInitialProcessSlots;
    nvmlReturn_t r = f(h, &count, small);
    if (r == NVML_SUCCESS) {
      for (unsigned i = 0; i < count && i < kInitialProcessSlots; ++i) out.push_back(small[i].pid);
      return;
    }
    if (r != NVML_ERROR_INSUFFICIENT_SIZE) {
      ok(r, call);
      return;
    }
    // More processes than the small buffer: one retry with room for the reported count.
    unsigned slots = std::min(count + 8, kMaxProcessSlots);
    std::vector<nvmlProcessInfo_t> big(slots);
    count = slots;
    r = f(h, &count, big.data());
    if (!ok(r, call)) return;
    for (unsigned i = 0; i < count && i < slots; ++i) out.push_back(big[i].pid);
  }

  // XID events waiting in the event set (non-blocking), with the handle they came from.
  Result<std::vector<RawXid>> WaitXids() const {
    std::vector<RawXid> events;
    if (event_set == nullptr) return events;
    for (unsigned i = 0; i < kMaxXidsPerDrain; ++i) {
      nvmlEventData_t data{};
      nvmlReturn_t r = fn.event_set_wait(event_set, &data, 0);
      if (r == NVML_ERROR_TIMEOUT) break;
      if (r != NVML_SUCCESS) {
        if (!events.empty()) break;  // deliver what we have; the error will repeat next time
        return Fail("nvmlEventSetWait_v2", r);
      }
      if ((data.eventType & nvmlEventTypeXidCriticalError) == 0) continue;
      events.push_back(RawXid{data.device, data.eventData});
    }
    return events;
  }
};

// The probe's view of the devices, and one watchdog worker per device index.
struct NvmlGpuProbe::Devices {
  std::mutex mu;
  std::vector<DeviceEntry> entries;
  // By index; each created on first use and kept (a hung one is never replaced: its device
  // answers Unavailable until the call returns).
  std::vector<std::unique_ptr<CallWatchdog>> workers;
  std::set<std::string> exclude;  // fixed after Create
};

namespace {

// A sample for a device whose worker did not answer in time: not lost, not read.
GpuSample Unresponsive(const DeviceEntry& d, const Error& why) {
  GpuSample s;
  s.index = static_cast<int>(d.index);
  s.uuid = d.uuid;
  s.unresponsive = true;
  s.error = "unresponsive: " + why.message;
  return s;
}

}  // namespace

std::string CudaVersionString(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

NvmlGpuProbe::NvmlGpuProbe(Options options)
    : options_(std::move(options)),
      global_(std::make_unique<CallWatchdog>("NVML")),
      devices_(std::make_unique<Devices>()) {
  devices_->exclude.insert(options_.exclude_uuids.begin(), options_.exclude_uuids.end());
}

std::unique_ptr<NvmlGpuProbe> NvmlGpuProbe::Create(const std::string& library_path,
                                                   std::vector<std::string> exclude_uuids) {
  Options options;
  options.library_path = library_path;
  options.exclude_uuids = std::move(exclude_uuids);
  return Create(std::move(options));
}

std::vector<std::string> NvmlLibraryCandidates(const std::string& configured) {
  std::vector<std::string> out{configured};
  if (configured == "libnvidia-ml.so.1") out.emplace_back("/usr/lib/wsl/lib/libnvidia-ml.so.1");
  return out;
}

std::unique_ptr<NvmlGpuProbe> NvmlGpuProbe::Create(Options options) {
  std::unique_ptr<NvmlGpuProbe> probe(new NvmlGpuProbe(std::move(options)));
  auto session = std::make_shared<NvmlSession>();
  auto loaded = std::make_shared<std::string>(probe->options_.library_path);
  const auto deadline = CallWatchdog::Clock::now() + probe->options_.call_timeout;
  const std::vector<std::string> candidates = NvmlLibraryCandidates(probe->options_.library_path);
  Status started = probe->global_->Run<void>("initialisation", probe->options_.call_timeout,
                                             [session, candidates, loaded]() -> Status {
                                               // The configured library's reason is the one that
                                               // tells the owner most.
                                               Status first = OkStatus();
                                               for (size_t i = 0; i < candidates.size(); ++i) {
                                                 Status load = session->Load(candidates[i]);
                                                 if (load.ok()) {
                                                   *loaded = candidates[i];
                                                   return session->Init();
                                                 }
                                                 if (i == 0) first = load;
                                               }
                                               return first;
                                             });
  // Read only once the call returned (a timed-out worker may still write it).
  const std::string path = started.ok() ? *loaded : probe->options_.library_path;
  if (started.ok()) {
    probe->session_ = std::move(session);
    // A device that does not answer here stays unidentified until a later scan; a driver
    // that cannot even count its devices is unavailable.
    started = probe->Rescan(deadline);
    if (!started.ok()) probe->session_.reset();
  }
  if (started.ok()) {
    spdlog::info("NVML: loaded {}", path);
  } else {
    probe->unavailable_reason_ = started.error().message;
    spdlog::info("NVML unavailable: {}", probe->unavailable_reason_);
    // `session` is released here or, if a call is still stuck, by its worker when it returns.
  }
  return probe;
}

NvmlGpuProbe::~NvmlGpuProbe() {
  // Every worker is told first, so that they wind down together within one grace period.
  global_->RequestStop();
  for (auto& w : devices_->workers) {
    if (w != nullptr) w->RequestStop();
  }
  const auto deadline = CallWatchdog::Clock::now() + std::chrono::seconds(2);
  global_->Stop(deadline);
  for (auto& w : devices_->workers) {
    if (w != nullptr) w->Stop(deadline);
  }
  // NVML is shut down by whoever drops the session last: here, or a worker whose stuck call
  // returns later.
  session_.reset();
}

bool NvmlGpuProbe::Available() const { return unavailable_reason_.empty(); }

std::string NvmlGpuProbe::UnavailableReason() const { return unavailable_reason_; }

Status NvmlGpuProbe::CheckAvailable() const {
  if (Available()) return OkStatus();
  return MakeError(ErrorCode::kFailedPrecondition, "NVML unavailable: " + unavailable_reason_);
}

CallWatchdog& NvmlGpuProbe::Worker(unsigned index) {
  std::lock_guard lock(devices_->mu);
  auto& workers = devices_->workers;
  if (index >= workers.size()) workers.resize(index + 1);
  if (workers[index] == nullptr) {
    workers[index] = std::make_unique<CallWatchdog>("NVML GPU " + std::to_string(index));
  }
  return *workers[index];
}

// (Re)enumerates the devices: the count and handles on the global worker, then each device's
// identity on its own worker, all within `deadline`. A device that does not answer keeps what
// was known of it (a lost or hung GPU keeps its identity). Fails only when the global part
// fails.
Status NvmlGpuProbe::Rescan(CallWatchdog::Clock::time_point deadline) {
  auto s = session_;
  auto scan = global_->Start<std::vector<HandleScan>>("device scan", deadline,
                                                      [s]() { return s->Handles(); });
  if (!scan.ok()) return scan.error();
  auto handles = global_->Await(*scan, deadline);
  if (!handles.ok()) return handles.error();

  std::vector<DeviceEntry> fresh;
  fresh.reserve(handles->size());
  {
    std::lock_guard lock(devices_->mu);
    for (const HandleScan& h : *handles) {
      DeviceEntry e;
      e.index = h.index;
      e.handle = h.handle;
      e.handle_error = h.error;
      if (h.index < devices_->entries.size()) {
        const DeviceEntry& old = devices_->entries[h.index];
        e.uuid = old.uuid;
        e.uuid_error = old.uuid_error;
        e.info = old.info;
        e.events_registered = old.events_registered && old.handle == e.handle;
      }
      fresh.push_back(std::move(e));
    }
  }
  std::vector<std::optional<CallWatchdog::Pending<Identity>>> pending(fresh.size());
  const std::set<std::string>& exclude = devices_->exclude;
  for (size_t i = 0; i < fresh.size(); ++i) {
    const DeviceEntry& e = fresh[i];
    if (e.handle == nullptr) continue;
    auto started = Worker(e.index).Start<Identity>(
        "identification", deadline,
        [s, h = e.handle, index = e.index, registered = e.events_registered, exclude]() {
          return Result<Identity>(s->Identify(h, index, registered, exclude));
        });
    if (started.ok()) {
      pending[i] = std::move(*started);
    } else {
      // Known devices keep their identity; Sample reports them unresponsive.
      if (e.info.has_value()) {
        spdlog::debug("NVML: GPU {} not identified: {}", e.index, started.error().message);
      } else {
        spdlog::warn("NVML: GPU {} not identified: {}", e.index, started.error().message);
      }
    }
  }
  for (size_t i = 0; i < fresh.size(); ++i) {
    DeviceEntry& e = fresh[i];
    if (pending[i]) {
      auto id = Worker(e.index).Await(*pending[i], deadline);
      if (id.ok()) {
        e.uuid_error = id->uuid_error;
        if (!id->uuid.empty()) e.uuid = id->uuid;  // a failing read keeps the known UUID
        const bool first = !e.info.has_value();
        if (!e.uuid.empty()) {
          e.info = std::move(id->info);
          e.info->uuid = e.uuid;
        }
        e.events_registered = id->events_registered;
        if (id->register_error != NVML_SUCCESS && id->register_error != NVML_ERROR_NOT_SUPPORTED &&
            first) {
          spdlog::warn("NVML: GPU {} XID events: {}", e.index,
                       s->Describe("nvmlDeviceRegisterEvents", id->register_error));
        }
      } else {
        if (e.info.has_value()) {
          spdlog::debug("NVML: GPU {} not identified: {}", e.index, id.error().message);
        } else {
          spdlog::warn("NVML: GPU {} not identified: {}", e.index, id.error().message);
        }
      }
    }
    e.excluded = !e.uuid.empty() && exclude.count(e.uuid) > 0;
  }
  std::lock_guard lock(devices_->mu);
  devices_->entries = std::move(fresh);
  return OkStatus();
}

Result<DriverInfo> NvmlGpuProbe::Driver() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return global_->Run<DriverInfo>("driver query", options_.call_timeout,
                                  [s = session_]() { return s->Driver(); });
}

Result<std::vector<GpuInfo>> NvmlGpuProbe::ListGpus() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  TAOLIE_RETURN_IF_ERROR(Rescan(CallWatchdog::Clock::now() + options_.call_timeout));
  std::vector<GpuInfo> out;
  std::lock_guard lock(devices_->mu);
  for (const DeviceEntry& d : devices_->entries) {
    if (d.excluded) continue;
    if (d.handle == nullptr) {
      spdlog::warn("NVML: GPU {} skipped: {}", d.index,
                   session_->Describe("nvmlDeviceGetHandleByIndex_v2", d.handle_error));
      continue;
    }
    if (d.uuid.empty() || !d.info.has_value()) {
      spdlog::warn("NVML: GPU {} skipped: {}", d.index,
                   d.uuid_error != NVML_SUCCESS
                       ? session_->Describe("nvmlDeviceGetUUID", d.uuid_error)
                       : std::string("not identified yet (it did not answer)"));
      continue;
    }
    out.push_back(*d.info);
  }
  return out;
}

// One sample of every device, each read on its own worker in parallel within one deadline. A
// device whose worker is stuck or that misses the deadline is reported unresponsive (not lost)
// while the others are read; only a global call that fails (the device count) fails it all.
Result<std::vector<GpuSample>> NvmlGpuProbe::Sample() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  const auto deadline = CallWatchdog::Clock::now() + options_.call_timeout;
  auto s = session_;
  auto counting = global_->Start<unsigned>("device count", deadline, [s]() { return s->Count(); });
  if (!counting.ok()) return counting.error();
  auto count = global_->Await(*counting, deadline);
  if (!count.ok()) return count.error();
  bool changed;
  {
    std::lock_guard lock(devices_->mu);
    changed = *count != devices_->entries.size();
  }
  if (changed) {
    Status rescanned = Rescan(deadline);
    if (!rescanned.ok()) spdlog::warn("NVML: re-scan failed: {}", rescanned.error().message);
  }
  std::vector<DeviceEntry> devices;
  {
    std::lock_guard lock(devices_->mu);
    devices = devices_->entries;
  }
  std::erase_if(devices, [](const DeviceEntry& d) { return d.excluded; });
  std::vector<GpuSample> out(devices.size());
  std::vector<std::optional<CallWatchdog::Pending<GpuSample>>> pending(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    const DeviceEntry& d = devices[i];
    if (d.handle == nullptr) {  // no device call to make: the entry says what is wrong
      out[i] = s->SampleOne(d);
      continue;
    }
    auto started = Worker(d.index).Start<GpuSample>(
        "sample", deadline, [s, d]() { return Result<GpuSample>(s->SampleOne(d)); });
    if (started.ok()) {
      pending[i] = std::move(*started);
    } else {
      out[i] = Unresponsive(d, started.error());
    }
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    if (!pending[i]) continue;
    auto sample = Worker(devices[i].index).Await(*pending[i], deadline);
    out[i] = sample.ok() ? std::move(*sample) : Unresponsive(devices[i], sample.error());
  }
  return out;
}

Result<std::vector<XidEvent>> NvmlGpuProbe::DrainXids() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  auto raw = global_->Run<std::vector<RawXid>>("XID drain", options_.call_timeout,
                                               [s = session_]() { return s->WaitXids(); });
  if (!raw.ok()) return raw.error();
  std::vector<XidEvent> events;
  const auto now = std::chrono::system_clock::now();
  std::lock_guard lock(devices_->mu);
  for (const RawXid& x : *raw) {
    const auto& entries = devices_->entries;
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const DeviceEntry& d) { return d.handle == x.device; });
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
