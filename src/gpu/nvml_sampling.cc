// NvmlSession's sampling half: one reading of one device, on the device's own worker. The
// reading is a fixed sequence of groups (memory, load, thermals, power, fans, clocks, PCIe,
// ECC, retired pages, remapped rows, violations, recovery action, device state, processes);
// a lost GPU stops the sequence.
#include <algorithm>
#include <optional>
#include <vector>

#include "gpu/nvml_session.h"

namespace taolie::gpu {

namespace {

// A field value as an unsigned integer, whatever integer type the driver chose.
std::optional<uint32_t> FieldAsUInt(const nvmlFieldValue_t& f) {
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

// Reads the groups of one sample of device `h` into `s`. Each group is called only while the
// GPU is not lost, and checks that again between its own calls.
class SampleReader {
 public:
  SampleReader(const NvmlSession& session, nvmlDevice_t h, GpuSample& s)
      : session_(session), fn_(session.fn), h_(h), s_(s) {}

  void ReadAll() {
    using Group = void (SampleReader::*)();
    static constexpr Group kGroups[] = {
        &SampleReader::Memory,       &SampleReader::Utilization, &SampleReader::Thermals,
        &SampleReader::Power,        &SampleReader::Fans,        &SampleReader::Clocks,
        &SampleReader::Pcie,         &SampleReader::Ecc,         &SampleReader::RetiredPages,
        &SampleReader::RemappedRows, &SampleReader::Violations,  &SampleReader::RecoveryAction,
        &SampleReader::DeviceState,  &SampleReader::Processes,
    };
    for (Group group : kGroups) {
      if (s_.lost) return;
      (this->*group)();
    }
  }

 private:
  // True when the call answered. A missing feature is false without an error; GPU_IS_LOST
  // marks the GPU lost; any other error is recorded (the first one) and false.
  bool Ok(nvmlReturn_t r, const char* call) {
    if (r == NVML_SUCCESS) return true;
    if (r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_NO_PERMISSION ||
        r == NVML_ERROR_FUNCTION_NOT_FOUND) {
      return false;
    }
    if (r == NVML_ERROR_GPU_IS_LOST) s_.lost = true;
    if (s_.error.empty()) s_.error = session_.Describe(call, r);
    return false;
  }

  // Reads one unsigned value with `f` into `out` (converted), unless the GPU is lost.
  template <typename T>
  void ReadUInt(nvmlDeviceGetUInt_fn f, const char* call, T& out) {
    if (s_.lost || f == nullptr) return;
    unsigned v = 0;
    if (Ok(f(h_, &v), call)) out = v;
  }

  void Memory() {
    unsigned long long total = 0, free = 0, used = 0;
    const char* call = "nvmlDeviceGetMemoryInfo";
    nvmlReturn_t r = session_.ReadMemory(h_, total, free, used, call);
    if (Ok(r, call)) {
      s_.memory_total_mb = static_cast<uint64_t>(total / nvml::kBytesPerMiB);
      s_.memory_used_mb = static_cast<uint64_t>(used / nvml::kBytesPerMiB);
      s_.memory_free_mb = static_cast<uint64_t>(free / nvml::kBytesPerMiB);
    }
  }

  void Utilization() {
    if (fn_.utilization == nullptr) return;
    nvmlUtilization_t u{};
    if (Ok(fn_.utilization(h_, &u), "nvmlDeviceGetUtilizationRates")) {
      s_.utilization_percent = u.gpu;
      s_.memory_utilization_percent = u.memory;
    }
  }

  void Thermals() {
    if (fn_.temperature != nullptr) {
      unsigned t = 0;
      if (Ok(fn_.temperature(h_, NVML_TEMPERATURE_GPU, &t), "nvmlDeviceGetTemperature")) {
        s_.temperature_c = t;
      }
    }
    if (!s_.lost && fn_.temperature_threshold != nullptr) {
      unsigned t = 0;
      if (Ok(fn_.temperature_threshold(h_, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &t),
             "nvmlDeviceGetTemperatureThreshold")) {
        s_.temperature_slowdown_c = t;
      }
      if (!s_.lost && Ok(fn_.temperature_threshold(h_, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, &t),
                         "nvmlDeviceGetTemperatureThreshold")) {
        s_.temperature_shutdown_c = t;
      }
    }
  }

  void Power() {
    if (fn_.power_usage != nullptr) {
      unsigned mw = 0;
      if (Ok(fn_.power_usage(h_, &mw), "nvmlDeviceGetPowerUsage")) {
        s_.power_draw_watts = mw / 1000.0;
      }
    }
    if (!s_.lost && fn_.power_limit != nullptr) {
      unsigned mw = 0;
      if (Ok(fn_.power_limit(h_, &mw), "nvmlDeviceGetEnforcedPowerLimit")) {
        s_.power_limit_watts = mw / 1000.0;
      }
    }
    if (!s_.lost && fn_.total_energy != nullptr) {
      unsigned long long mj = 0;
      if (Ok(fn_.total_energy(h_, &mj), "nvmlDeviceGetTotalEnergyConsumption")) {
        s_.energy_joules = static_cast<double>(mj) / 1000.0;
      }
    }
  }

  // Fan speed: the mean over the card's fans (nvmlDeviceGetNumFans + nvmlDeviceGetFanSpeed_v2);
  // absent on a card with no fan. Without the per-fan calls, nvmlDeviceGetFanSpeed (fan 0).
  void Fans() {
    if (fn_.num_fans != nullptr && fn_.fan_speed_v2 != nullptr) {
      unsigned fans = 0;
      nvmlReturn_t r = fn_.num_fans(h_, &fans);
      if (r == NVML_SUCCESS) {
        double sum = 0;
        unsigned read = 0;
        for (unsigned i = 0; i < fans && i < nvml::kMaxFans && !s_.lost; ++i) {
          unsigned pct = 0;
          if (Ok(fn_.fan_speed_v2(h_, i, &pct), "nvmlDeviceGetFanSpeed_v2")) {
            sum += pct;
            ++read;
          }
        }
        if (read > 0) s_.fan_speed_percent = sum / read;
        return;
      }
      if (r != NVML_ERROR_NOT_SUPPORTED && r != NVML_ERROR_FUNCTION_NOT_FOUND) {
        Ok(r, "nvmlDeviceGetNumFans");  // a failure (or a lost GPU), not a missing feature
        return;
      }
    }
    if (fn_.fan_speed != nullptr) {
      unsigned pct = 0;
      if (Ok(fn_.fan_speed(h_, &pct), "nvmlDeviceGetFanSpeed")) s_.fan_speed_percent = pct;
    }
  }

  void Clocks() {
    if (fn_.clock_info == nullptr) return;
    unsigned mhz = 0;
    if (Ok(fn_.clock_info(h_, NVML_CLOCK_SM, &mhz), "nvmlDeviceGetClockInfo")) {
      s_.sm_clock_mhz = mhz;
    }
    if (!s_.lost && Ok(fn_.clock_info(h_, NVML_CLOCK_MEM, &mhz), "nvmlDeviceGetClockInfo")) {
      s_.mem_clock_mhz = mhz;
    }
  }

  void Pcie() {
    ReadUInt(fn_.pcie_gen, "nvmlDeviceGetCurrPcieLinkGeneration", s_.pcie_gen);
    ReadUInt(fn_.pcie_width, "nvmlDeviceGetCurrPcieLinkWidth", s_.pcie_width);
    ReadUInt(fn_.pcie_max_gen, "nvmlDeviceGetMaxPcieLinkGeneration", s_.pcie_max_gen);
    ReadUInt(fn_.pcie_max_width, "nvmlDeviceGetMaxPcieLinkWidth", s_.pcie_max_width);
    ReadUInt(fn_.pcie_replay, "nvmlDeviceGetPcieReplayCounter", s_.pcie_replay_count);
  }

  void Ecc() {
    if (fn_.ecc_mode != nullptr) {
      unsigned current = 0, pending = 0;
      if (Ok(fn_.ecc_mode(h_, &current, &pending), "nvmlDeviceGetEccMode")) {
        s_.ecc_enabled = current == NVML_FEATURE_ENABLED;
      }
    }
    if (s_.lost || fn_.total_ecc_errors == nullptr) return;
    const struct {
      int error_type, counter;
      std::optional<uint64_t>& out;
    } counters[] = {
        {NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, s_.ecc_volatile_uncorrected},
        {NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, s_.ecc_volatile_corrected},
        {NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC, s_.ecc_aggregate_uncorrected},
        {NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC, s_.ecc_aggregate_corrected},
    };
    for (const auto& c : counters) {
      if (s_.lost) break;
      unsigned long long n = 0;
      if (Ok(fn_.total_ecc_errors(h_, c.error_type, c.counter, &n),
             "nvmlDeviceGetTotalEccErrors")) {
        c.out = n;
      }
    }
  }

  // Pages retired for multiple single-bit and for double-bit ECC errors: only the counts (a
  // size query with no buffer; NVML answers INSUFFICIENT_SIZE with the count when there are
  // any). nvmlDeviceGetRetiredPages_v2 when exported, else nvmlDeviceGetRetiredPages. Then
  // whether a retirement is pending.
  void RetiredPages() {
    if (fn_.retired_pages_v2 != nullptr || fn_.retired_pages != nullptr) {
      const struct {
        int cause;
        std::optional<uint64_t>& out;
      } causes[] = {
          {NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, s_.retired_pages_sbe},
          {NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR, s_.retired_pages_dbe},
      };
      for (const auto& c : causes) {
        if (s_.lost) return;
        unsigned count = 0;
        nvmlReturn_t r;
        const char* call;
        if (fn_.retired_pages_v2 != nullptr) {
          call = "nvmlDeviceGetRetiredPages_v2";
          r = fn_.retired_pages_v2(h_, c.cause, &count, nullptr, nullptr);
        } else {
          call = "nvmlDeviceGetRetiredPages";
          r = fn_.retired_pages(h_, c.cause, &count, nullptr);
        }
        if (r == NVML_ERROR_INSUFFICIENT_SIZE || Ok(r, call)) c.out = count;
      }
    }
    if (!s_.lost && fn_.retired_pages_pending != nullptr) {
      unsigned pending = 0;
      if (Ok(fn_.retired_pages_pending(h_, &pending), "nvmlDeviceGetRetiredPagesPendingStatus")) {
        s_.retired_pages_pending = pending == NVML_FEATURE_ENABLED;
      }
    }
  }

  void RemappedRows() {
    if (fn_.remapped_rows == nullptr) return;
    unsigned corr = 0, unc = 0, pending = 0, failure = 0;
    if (Ok(fn_.remapped_rows(h_, &corr, &unc, &pending, &failure), "nvmlDeviceGetRemappedRows")) {
      s_.remapped_rows_correctable = corr;
      s_.remapped_rows_uncorrectable = unc;
      s_.remapped_rows_pending = pending != 0;
      s_.remapped_rows_failure = failure != 0;
    }
  }

  void Violations() {
    if (fn_.violation_status == nullptr) return;
    nvmlViolationTime_t v{};
    if (Ok(fn_.violation_status(h_, NVML_PERF_POLICY_POWER, &v), "nvmlDeviceGetViolationStatus")) {
      s_.power_violation_ns = v.violationTime;
    }
    v = {};
    if (!s_.lost && Ok(fn_.violation_status(h_, NVML_PERF_POLICY_THERMAL, &v),
                       "nvmlDeviceGetViolationStatus")) {
      s_.thermal_violation_ns = v.violationTime;
    }
  }

  void RecoveryAction() {
    if (fn_.field_values == nullptr) return;
    nvmlFieldValue_t f{};
    f.fieldId = NVML_FI_DEV_GET_GPU_RECOVERY_ACTION;
    if (Ok(fn_.field_values(h_, 1, &f), "nvmlDeviceGetFieldValues") &&
        Ok(f.nvmlReturn, "nvmlDeviceGetFieldValues(NVML_FI_DEV_GET_GPU_RECOVERY_ACTION)")) {
      if (auto v = FieldAsUInt(f)) s_.recovery_action = *v;
    }
  }

  // Persistence mode, the InfoROM's checksum and the throttle reasons.
  void DeviceState() {
    if (fn_.persistence_mode != nullptr) {
      unsigned mode = 0;
      if (Ok(fn_.persistence_mode(h_, &mode), "nvmlDeviceGetPersistenceMode")) {
        s_.persistence_mode = mode == NVML_FEATURE_ENABLED;
      }
    }
    if (!s_.lost && fn_.validate_inforom != nullptr) {
      nvmlReturn_t r = fn_.validate_inforom(h_);
      if (r == NVML_ERROR_CORRUPTED_INFOROM) {
        s_.inforom_valid = false;
      } else if (Ok(r, "nvmlDeviceValidateInforom")) {
        s_.inforom_valid = true;
      }
    }
    if (!s_.lost && fn_.throttle_reasons != nullptr) {
      unsigned long long bits = 0;
      if (Ok(fn_.throttle_reasons(h_, &bits), "nvmlDeviceGetCurrentClocksEventReasons")) {
        s_.throttle_reasons = static_cast<uint32_t>(bits);
      }
    }
  }

  // Compute and graphics processes, sorted and without duplicates.
  void Processes() {
    if (fn_.compute_processes != nullptr) {
      ReadPids(fn_.compute_processes, "nvmlDeviceGetComputeRunningProcesses_v3");
    }
    if (!s_.lost && fn_.graphics_processes != nullptr) {
      ReadPids(fn_.graphics_processes, "nvmlDeviceGetGraphicsRunningProcesses_v3");
    }
  }

  void ReadPids(nvmlDeviceGetProcesses_fn f, const char* call) {
    std::vector<uint32_t>& out = s_.process_pids;
    nvmlProcessInfo_t small[nvml::kInitialProcessSlots];
    unsigned count = nvml::kInitialProcessSlots;
    nvmlReturn_t r = f(h_, &count, small);
    if (r == NVML_SUCCESS) {
      for (unsigned i = 0; i < count && i < nvml::kInitialProcessSlots; ++i) {
        out.push_back(small[i].pid);
      }
      return;
    }
    if (r != NVML_ERROR_INSUFFICIENT_SIZE) {
      Ok(r, call);
      return;
    }
    // More processes than the small buffer: one retry with room for the reported count.
    unsigned slots = std::min(count + 8, nvml::kMaxProcessSlots);
    std::vector<nvmlProcessInfo_t> big(slots);
    count = slots;
    r = f(h_, &count, big.data());
    if (!Ok(r, call)) return;
    for (unsigned i = 0; i < count && i < slots; ++i) out.push_back(big[i].pid);
  }

  const NvmlSession& session_;
  const nvml::Functions& fn_;
  nvmlDevice_t h_;
  GpuSample& s_;
};

}  // namespace

GpuSample NvmlSession::SampleOne(const nvml::DeviceEntry& d) const {
  GpuSample s;
  s.index = static_cast<int>(d.index);
  s.uuid = d.uuid;
  if (d.handle == nullptr) {
    s.lost = d.handle_error == NVML_ERROR_GPU_IS_LOST;
    s.error = Describe("nvmlDeviceGetHandleByIndex_v2", d.handle_error);
    return s;
  }
  SampleReader(*this, d.handle, s).ReadAll();
  std::sort(s.process_pids.begin(), s.process_pids.end());
  s.process_pids.erase(std::unique(s.process_pids.begin(), s.process_pids.end()),
                       s.process_pids.end());
  return s;
}

}  // namespace taolie::gpu
