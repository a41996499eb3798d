// NvmlSession's library half: dlopen, the table of entry points (newest names first), the
// required ones, nvmlInit with the XID event set, and NVML's error text.
#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <initializer_list>
#include <utility>

#include "gpu/nvml_session.h"

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

// First of `names` the library exports (newer versioned names first).
template <typename F>
F Resolve(void* dl, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (void* p = dlsym(dl, n)) return reinterpret_cast<F>(p);
  }
  return nullptr;
}

// Initialisation, errors, system queries and the device table.
void ResolveSystem(void* dl, nvml::Functions& fn) {
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
}

// What identifies a device and its static facts.
void ResolveIdentity(void* dl, nvml::Functions& fn) {
  fn.name = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetName"});
  fn.uuid = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetUUID"});
  // _v2 and _v3 share the struct layout we declare.
  fn.pci_info =
      Resolve<nvmlDeviceGetPciInfo_fn>(dl, {"nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"});
  fn.compute_capability =
      Resolve<nvmlDeviceGetCudaComputeCapability_fn>(dl, {"nvmlDeviceGetCudaComputeCapability"});
  fn.mig_mode = Resolve<nvmlDeviceGetMigMode_fn>(dl, {"nvmlDeviceGetMigMode"});
  fn.serial = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetSerial"});
  fn.vbios_version = Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetVbiosVersion"});
  fn.inforom_image_version =
      Resolve<nvmlDeviceGetString_fn>(dl, {"nvmlDeviceGetInforomImageVersion"});
}

// Readings: memory, load, thermals, power, fans, clocks and the PCIe link.
void ResolveReadings(void* dl, nvml::Functions& fn) {
  fn.memory_info_v2 = Resolve<nvmlDeviceGetMemoryInfoV2_fn>(dl, {"nvmlDeviceGetMemoryInfo_v2"});
  fn.memory_info = Resolve<nvmlDeviceGetMemoryInfo_fn>(dl, {"nvmlDeviceGetMemoryInfo"});
  fn.utilization = Resolve<nvmlDeviceGetUtilizationRates_fn>(dl, {"nvmlDeviceGetUtilizationRates"});
  fn.temperature = Resolve<nvmlDeviceGetTemperature_fn>(dl, {"nvmlDeviceGetTemperature"});
  fn.temperature_threshold =
      Resolve<nvmlDeviceGetTemperatureThreshold_fn>(dl, {"nvmlDeviceGetTemperatureThreshold"});
  fn.power_usage = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPowerUsage"});
  fn.power_limit = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetEnforcedPowerLimit"});
  fn.total_energy = Resolve<nvmlDeviceGetULongLong_fn>(dl, {"nvmlDeviceGetTotalEnergyConsumption"});
  fn.num_fans = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetNumFans"});
  fn.fan_speed_v2 = Resolve<nvmlDeviceGetFanSpeedV2_fn>(dl, {"nvmlDeviceGetFanSpeed_v2"});
  fn.fan_speed = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetFanSpeed"});
  fn.clock_info = Resolve<nvmlDeviceGetClockInfo_fn>(dl, {"nvmlDeviceGetClockInfo"});
  fn.throttle_reasons = Resolve<nvmlDeviceGetULongLong_fn>(
      dl, {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"});
  fn.pcie_gen = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetCurrPcieLinkGeneration"});
  fn.pcie_width = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetCurrPcieLinkWidth"});
  // The link's maximum (GPU and system together) first; the GPU's own maximum without it.
  fn.pcie_max_gen = Resolve<nvmlDeviceGetUInt_fn>(
      dl, {"nvmlDeviceGetMaxPcieLinkGeneration", "nvmlDeviceGetGpuMaxPcieLinkGeneration"});
  fn.pcie_max_width = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetMaxPcieLinkWidth"});
  fn.pcie_replay = Resolve<nvmlDeviceGetUInt_fn>(dl, {"nvmlDeviceGetPcieReplayCounter"});
}

// Health: ECC, retired pages, remapped rows, violations, field values, the InfoROM, processes.
void ResolveHealth(void* dl, nvml::Functions& fn) {
  fn.total_ecc_errors =
      Resolve<nvmlDeviceGetTotalEccErrors_fn>(dl, {"nvmlDeviceGetTotalEccErrors"});
  fn.ecc_mode = Resolve<nvmlDeviceGetUIntPair_fn>(dl, {"nvmlDeviceGetEccMode"});
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
      dl, {"nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v2"});
}

// XID events.
void ResolveEvents(void* dl, nvml::Functions& fn) {
  fn.event_set_create = Resolve<nvmlEventSetCreate_fn>(dl, {"nvmlEventSetCreate"});
  fn.register_events = Resolve<nvmlDeviceRegisterEvents_fn>(dl, {"nvmlDeviceRegisterEvents"});
  fn.event_set_wait = Resolve<nvmlEventSetWait_fn>(dl, {"nvmlEventSetWait_v2"});
  fn.event_set_free = Resolve<nvmlEventSetFree_fn>(dl, {"nvmlEventSetFree"});
}

// The entry points without which the probe cannot work at all.
Status CheckRequired(const std::string& path, const nvml::Functions& fn) {
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

}  // namespace

NvmlSession::~NvmlSession() {
  if (event_set != nullptr && fn.event_set_free != nullptr) fn.event_set_free(event_set);
  if (initialized && fn.shutdown != nullptr) fn.shutdown();
  if (dl != nullptr) dlclose(dl);
}

std::string NvmlSession::Describe(const char* call, nvmlReturn_t r) const {
  std::string text;
  if (fn.error_string != nullptr) {
    const char* s = fn.error_string(r);
    text = s != nullptr ? s : "";
  }
  if (text.empty()) text = "NVML error";
  return std::string(call) + ": " + text + " (" + std::to_string(r) + ")";
}

Error NvmlSession::Fail(const char* call, nvmlReturn_t r) const {
  return MakeError(ErrorCode::kUnavailable, Describe(call, r));
}

Status NvmlSession::Load(const std::string& path) {
  dlerror();
  dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl == nullptr) {
    const char* why = dlerror();
    return MakeError(ErrorCode::kNotFound,
                     path + " could not be loaded (no NVIDIA driver?): " + (why ? why : "?"));
  }
  ResolveSystem(dl, fn);
  ResolveIdentity(dl, fn);
  ResolveReadings(dl, fn);
  ResolveHealth(dl, fn);
  ResolveEvents(dl, fn);
  return CheckRequired(path, fn);
}

Status NvmlSession::Init() {
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

}  // namespace taolie::gpu
