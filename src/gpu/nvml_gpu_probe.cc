#include "gpu/nvml_gpu_probe.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <initializer_list>
#include <set>

#include "gpu/call_watchdog.h"
#include "gpu/nvml_api.h"

// Layouts must match the library's ABI (LP64).
static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t layout");
static_assert(sizeof(nvmlEventData_t) == 32, "nvmlEventData_t layout");
static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");

namespace taolie::gpu {

namespace {

constexpr unsigned kMaxXidsPerDrain = 256;
constexpr unsigned kInitialProcessSlots = 32;
constexpr unsigned kMaxProcessSlots = 4096;
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
  nvmlDeviceGetMemoryInfo_fn memory_info = nullptr;
  nvmlDeviceGetUtilizationRates_fn utilization = nullptr;
  nvmlDeviceGetTemperature_fn temperature = nullptr;
  nvmlDeviceGetUInt_fn power_usage = nullptr;
  nvmlDeviceGetUInt_fn power_limit = nullptr;
  nvmlDeviceGetUInt_fn fan_speed = nullptr;
  nvmlDeviceGetClockInfo_fn clock_info = nullptr;
  nvmlDeviceGetCudaComputeCapability_fn compute_capability = nullptr;
  nvmlDeviceGetMigMode_fn mig_mode = nullptr;
  nvmlDeviceGetTotalEccErrors_fn total_ecc_errors = nullptr;
  nvmlDeviceGetULongLong_fn throttle_reasons = nullptr;
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

struct DeviceEntry {
  unsigned index = 0;
  nvmlDevice_t handle = nullptr;
  std::string uuid;
  bool excluded = false;
  bool events_registered = false;
  nvmlReturn_t handle_error = NVML_SUCCESS;  // why `handle` is null
  nvmlReturn_t uuid_error = NVML_SUCCESS;    // why `uuid` could not be read
};

}  // namespace

// Everything that talks to NVML; lives on (and is only touched by) the watchdog worker.
struct NvmlSession {
  void* dl = nullptr;
  NvmlFunctions fn;
  bool initialized = false;
  nvmlEventSet_t event_set = nullptr;
  std::vector<DeviceEntry> devices;
  std::set<std::string> exclude;

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
    fn.memory_info = Resolve<nvmlDeviceGetMemoryInfo_fn>(dl, {"nvmlDeviceGetMemoryInfo"});
    fn.utilization =
        Resolve<nvmlDeviceGetUtilizationRates_fn>(dl, {"nvmlDeviceGetUtilizationRates"});
    fn.temperature = Resolve<nvmlDeviceGetTemperature_fn>(dl, {"nvmlDeviceGetTemperature"});
    fn.power_usage = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPowerUsage"});
    fn.power_limit = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetEnforcedPowerLimit"});
    fn.fan_speed = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetFanSpeed"});
    fn.clock_info = Resolve<nvmlDeviceGetClockInfo_fn>(dl, {"nvmlDeviceGetClockInfo"});
    fn.compute_capability =
        Resolve<nvmlDeviceGetCudaComputeCapability_fn>(dl, {"nvmlDeviceGetCudaComputeCapability"});
    fn.mig_mode = Resolve<nvmlDeviceGetMigMode_fn>(dl, {"nvmlDeviceGetMigMode"});
    fn.total_ecc_errors =
        Resolve<nvmlDeviceGetTotalEccErrors_fn>(dl, {"nvmlDeviceGetTotalEccErrors"});
    fn.throttle_reasons = Resolve<nvmlDeviceGetULongLong_fn>(
        dl,
        {"nvmlDeviceGetCurrentClocksThrottleReasons", "nvmlDeviceGetCurrentClocksEventReasons"});
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
    return Scan();
  }

  // (Re)enumerates devices. Known UUIDs survive a failing read (a lost GPU keeps its identity).
  Status Scan() {
    unsigned count = 0;
    nvmlReturn_t r = fn.device_count(&count);
    if (r != NVML_SUCCESS) return Fail("nvmlDeviceGetCount_v2", r);
    std::vector<DeviceEntry> fresh;
    fresh.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
      const DeviceEntry* old = i < devices.size() ? &devices[i] : nullptr;
      DeviceEntry e;
      e.index = i;
      r = fn.handle_by_index(i, &e.handle);
      if (r != NVML_SUCCESS) {
        e.handle = nullptr;
        e.handle_error = r;
      } else {
        char buf[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
        e.uuid_error = fn.uuid(e.handle, buf, sizeof(buf));
        if (e.uuid_error == NVML_SUCCESS) e.uuid = buf;
      }
      if (e.uuid.empty() && old != nullptr) e.uuid = old->uuid;
      e.excluded = !e.uuid.empty() && exclude.count(e.uuid) > 0;
      if (old != nullptr && old->handle == e.handle && old->uuid == e.uuid) {
        e.events_registered = old->events_registered;
      }
      if (event_set != nullptr && e.handle != nullptr && !e.excluded && !e.events_registered) {
        r = fn.register_events(e.handle, nvmlEventTypeXidCriticalError, event_set);
        e.events_registered = r == NVML_SUCCESS;
        if (r != NVML_SUCCESS && r != NVML_ERROR_NOT_SUPPORTED && old == nullptr) {
          spdlog::warn("NVML: GPU {} XID events: {}", i, Describe("nvmlDeviceRegisterEvents", r));
        }
      }
      fresh.push_back(std::move(e));
    }
    devices = std::move(fresh);
    return OkStatus();
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

  GpuInfo Info(const DeviceEntry& d) const {
    GpuInfo info;
    info.index = static_cast<int>(d.index);
    info.uuid = d.uuid;
    info.mig_mode = "unsupported";
    nvmlDevice_t h = d.handle;
    if (fn.name != nullptr) {
      char buf[NVML_DEVICE_NAME_BUFFER_SIZE] = {};
      if (fn.name(h, buf, sizeof(buf)) == NVML_SUCCESS) info.name = buf;
    }
    if (fn.pci_info != nullptr) {
      nvmlPciInfo_t pci{};
      if (fn.pci_info(h, &pci) == NVML_SUCCESS) {
        pci.busId[sizeof(pci.busId) - 1] = '\0';
        info.pci_bus_id = pci.busId;
      }
    }
    if (fn.memory_info != nullptr) {
      nvmlMemory_t mem{};
      if (fn.memory_info(h, &mem) == NVML_SUCCESS) {
        info.memory_total_mb = static_cast<uint64_t>(mem.total / kBytesPerMiB);
      }
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
    return info;
  }

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
    // True when the value is usable. NOT_SUPPORTED / NO_PERMISSION leave the metric absent;
    // GPU_IS_LOST marks the GPU lost and stops further reads; other errors are recorded.
    auto ok = [&](nvmlReturn_t r, const char* call) {
      if (r == NVML_SUCCESS) return true;
      if (r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_NO_PERMISSION) return false;
      if (r == NVML_ERROR_GPU_IS_LOST) s.lost = true;
      if (s.error.empty()) s.error = Describe(call, r);
      return false;
    };
    if (fn.memory_info != nullptr) {
      nvmlMemory_t mem{};
      if (ok(fn.memory_info(h, &mem), "nvmlDeviceGetMemoryInfo")) {
        s.memory_total_mb = static_cast<uint64_t>(mem.total / kBytesPerMiB);
        s.memory_used_mb = static_cast<uint64_t>(mem.used / kBytesPerMiB);
      }
    }
    if (!s.lost && fn.utilization != nullptr) {
      nvmlUtilization_t u{};
      if (ok(fn.utilization(h, &u), "nvmlDeviceGetUtilizationRates")) {
        s.utilization_percent = u.gpu;
      }
    }
    if (!s.lost && fn.temperature != nullptr) {
      unsigned t = 0;
      if (ok(fn.temperature(h, NVML_TEMPERATURE_GPU, &t), "nvmlDeviceGetTemperature")) {
        s.temperature_c = t;
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
    if (!s.lost && fn.fan_speed != nullptr) {
      unsigned pct = 0;
      if (ok(fn.fan_speed(h, &pct), "nvmlDeviceGetFanSpeed")) s.fan_speed_percent = pct;
    }
    if (!s.lost && fn.clock_info != nullptr) {
      unsigned mhz = 0;
      if (ok(fn.clock_info(h, NVML_CLOCK_SM, &mhz), "nvmlDeviceGetClockInfo")) s.sm_clock_mhz = mhz;
      if (!s.lost && ok(fn.clock_info(h, NVML_CLOCK_MEM, &mhz), "nvmlDeviceGetClockInfo")) {
        s.mem_clock_mhz = mhz;
      }
    }
    if (!s.lost && fn.total_ecc_errors != nullptr) {
      unsigned long long n = 0;
      if (ok(fn.total_ecc_errors(h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &n),
             "nvmlDeviceGetTotalEccErrors")) {
        s.ecc_volatile_uncorrected = n;
      }
      if (!s.lost &&
          ok(fn.total_ecc_errors(h, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, &n),
             "nvmlDeviceGetTotalEccErrors")) {
        s.ecc_volatile_corrected = n;
      }
    }
    if (!s.lost && fn.throttle_reasons != nullptr) {
      unsigned long long bits = 0;
      if (ok(fn.throttle_reasons(h, &bits), "nvmlDeviceGetCurrentClocksThrottleReasons")) {
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

  Result<std::vector<GpuSample>> SampleAll() {
    unsigned count = 0;
    if (fn.device_count(&count) == NVML_SUCCESS && count != devices.size()) {
      Status rescanned = Scan();
      if (!rescanned.ok()) spdlog::warn("NVML: re-scan failed: {}", rescanned.error().message);
    }
    std::vector<GpuSample> out;
    out.reserve(devices.size());
    for (const DeviceEntry& d : devices) {
      if (!d.excluded) out.push_back(SampleOne(d));
    }
    return out;
  }

  Result<std::vector<XidEvent>> DrainXids() {
    std::vector<XidEvent> events;
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
      auto it = std::find_if(devices.begin(), devices.end(),
                             [&](const DeviceEntry& d) { return d.handle == data.device; });
      if (it != devices.end() && it->excluded) continue;
      XidEvent e;
      e.uuid = it != devices.end() ? it->uuid : "";
      e.xid = data.eventData;
      e.at = std::chrono::system_clock::now();
      events.push_back(std::move(e));
    }
    return events;
  }
};

std::string CudaVersionString(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

NvmlGpuProbe::NvmlGpuProbe(Options options)
    : options_(std::move(options)), watchdog_(std::make_unique<CallWatchdog>("NVML")) {}

std::unique_ptr<NvmlGpuProbe> NvmlGpuProbe::Create(const std::string& library_path,
                                                   std::vector<std::string> exclude_uuids) {
  Options options;
  options.library_path = library_path;
  options.exclude_uuids = std::move(exclude_uuids);
  return Create(std::move(options));
}

std::unique_ptr<NvmlGpuProbe> NvmlGpuProbe::Create(Options options) {
  std::unique_ptr<NvmlGpuProbe> probe(new NvmlGpuProbe(std::move(options)));
  auto session = std::make_shared<NvmlSession>();
  session->exclude.insert(probe->options_.exclude_uuids.begin(),
                          probe->options_.exclude_uuids.end());
  const std::string path = probe->options_.library_path;
  Status started = probe->watchdog_->Run<void>("initialisation", probe->options_.call_timeout,
                                               [session, path]() -> Status {
                                                 TAOLIE_RETURN_IF_ERROR(session->Load(path));
                                                 return session->Init();
                                               });
  if (started.ok()) {
    probe->session_ = std::move(session);
    spdlog::info("NVML: loaded {}", path);
  } else {
    probe->unavailable_reason_ = started.error().message;
    spdlog::info("NVML unavailable: {}", probe->unavailable_reason_);
    // `session` is released here or, if the call is still stuck, by the worker when it returns.
  }
  return probe;
}

NvmlGpuProbe::~NvmlGpuProbe() {
  if (session_ != nullptr) {
    // nvmlShutdown must run on the worker, after any call still in flight.
    watchdog_->Post([s = std::move(session_)]() mutable { s.reset(); });
  }
  watchdog_.reset();
}

bool NvmlGpuProbe::Available() const { return unavailable_reason_.empty(); }

std::string NvmlGpuProbe::UnavailableReason() const { return unavailable_reason_; }

Status NvmlGpuProbe::CheckAvailable() const {
  if (Available()) return OkStatus();
  return MakeError(ErrorCode::kFailedPrecondition, "NVML unavailable: " + unavailable_reason_);
}

Result<DriverInfo> NvmlGpuProbe::Driver() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return watchdog_->Run<DriverInfo>("driver query", options_.call_timeout,
                                    [s = session_]() { return s->Driver(); });
}

Result<std::vector<GpuInfo>> NvmlGpuProbe::ListGpus() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return watchdog_->Run<std::vector<GpuInfo>>(
      "device scan", options_.call_timeout, [s = session_]() -> Result<std::vector<GpuInfo>> {
        TAOLIE_RETURN_IF_ERROR(s->Scan());
        std::vector<GpuInfo> out;
        for (const DeviceEntry& d : s->devices) {
          if (d.excluded) continue;
          if (d.handle == nullptr) {
            spdlog::warn("NVML: GPU {} skipped: {}", d.index,
                         s->Describe("nvmlDeviceGetHandleByIndex_v2", d.handle_error));
            continue;
          }
          if (d.uuid.empty()) {
            spdlog::warn("NVML: GPU {} skipped: {}", d.index,
                         s->Describe("nvmlDeviceGetUUID", d.uuid_error));
            continue;
          }
          out.push_back(s->Info(d));
        }
        return out;
      });
}

Result<std::vector<GpuSample>> NvmlGpuProbe::Sample() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return watchdog_->Run<std::vector<GpuSample>>("sample", options_.call_timeout,
                                                [s = session_]() { return s->SampleAll(); });
}

Result<std::vector<XidEvent>> NvmlGpuProbe::DrainXids() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return watchdog_->Run<std::vector<XidEvent>>("XID drain", options_.call_timeout,
                                               [s = session_]() { return s->DrainXids(); });
}

}  // namespace taolie::gpu
