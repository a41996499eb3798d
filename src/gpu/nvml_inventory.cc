// NvmlSession's inventory half: the device count and handles (global worker), each device's
// identity and static facts (its own worker), and the driver.
#include <algorithm>
#include <cstring>

#include "gpu/nvml_session.h"

namespace taolie::gpu {

namespace {

// A string the device reports, "" when it does not (or the library lacks the call).
std::string ReadString(nvmlDeviceGetString_fn f, nvmlDevice_t h, unsigned size) {
  if (f == nullptr) return "";
  std::string buf(size, '\0');
  if (f(h, buf.data(), size) != NVML_SUCCESS) return "";
  buf.resize(std::min<size_t>(strnlen(buf.data(), size), size));
  return buf;
}

}  // namespace

std::string CudaVersionString(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

Result<unsigned> NvmlSession::Count() const {
  unsigned count = 0;
  nvmlReturn_t r = fn.device_count(&count);
  if (r != NVML_SUCCESS) return Fail("nvmlDeviceGetCount_v2", r);
  return std::min(count, nvml::kMaxDevices);
}

Result<std::vector<nvml::HandleScan>> NvmlSession::Handles() const {
  auto count = Count();
  if (!count.ok()) return count.error();
  std::vector<nvml::HandleScan> out(*count);
  for (unsigned i = 0; i < *count; ++i) {
    out[i].index = i;
    out[i].error = fn.handle_by_index(i, &out[i].handle);
    if (out[i].error != NVML_SUCCESS) out[i].handle = nullptr;
  }
  return out;
}

nvml::Identity NvmlSession::Identify(nvmlDevice_t h, unsigned index, bool registered,
                                     const std::set<std::string>& exclude) const {
  nvml::Identity id;
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

Result<DriverInfo> NvmlSession::Driver() const {
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

nvmlReturn_t NvmlSession::ReadMemory(nvmlDevice_t h, unsigned long long& total,
                                     unsigned long long& free, unsigned long long& used,
                                     const char*& call) const {
  // Both structs name the three amounts alike; they are copied only from a call that answered.
  auto read = [&](const auto& mem, nvmlReturn_t r) {
    if (r == NVML_SUCCESS) {
      total = mem.total;
      free = mem.free;
      used = mem.used;
    }
    return r;
  };
  if (fn.memory_info_v2 != nullptr) {
    nvmlMemory_v2_t mem{};
    mem.version = nvmlMemory_v2;
    call = "nvmlDeviceGetMemoryInfo_v2";
    nvmlReturn_t r = read(mem, fn.memory_info_v2(h, &mem));
    if (r != NVML_ERROR_FUNCTION_NOT_FOUND || fn.memory_info == nullptr) return r;
  }
  if (fn.memory_info == nullptr) return NVML_ERROR_FUNCTION_NOT_FOUND;
  nvmlMemory_t mem{};
  call = "nvmlDeviceGetMemoryInfo";
  return read(mem, fn.memory_info(h, &mem));
}

GpuInfo NvmlSession::Info(nvmlDevice_t h, unsigned index) const {
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
    info.memory_total_mb = static_cast<uint64_t>(total / nvml::kBytesPerMiB);
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

}  // namespace taolie::gpu
