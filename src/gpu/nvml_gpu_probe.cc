// NvmlGpuProbe: the device table, the watchdog workers and their deadlines. What each NVML call
// does lies in NvmlSession (nvml_session.h): library, inventory, sampling and XID halves.
#include "gpu/nvml_gpu_probe.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <set>

#include "common/real_time.h"
#include "gpu/call_watchdog.h"
#include "gpu/nvml_session.h"

namespace taolie::gpu {

namespace {

// A sample for a device whose worker did not answer in time: not lost, not read.
GpuSample Unresponsive(const nvml::DeviceEntry& d, const Error& why) {
  GpuSample s;
  s.index = static_cast<int>(d.index);
  s.uuid = d.uuid;
  s.unresponsive = true;
  s.error = "unresponsive: " + why.message;
  return s;
}

// The entries of a new scan: each index's handle, with what was known of that index before
// (identity, and the XID registration while the handle is the same).
std::vector<nvml::DeviceEntry> CarryOver(const std::vector<nvml::DeviceEntry>& old,
                                         const std::vector<nvml::HandleScan>& handles) {
  std::vector<nvml::DeviceEntry> fresh;
  fresh.reserve(handles.size());
  for (const nvml::HandleScan& h : handles) {
    nvml::DeviceEntry e;
    e.index = h.index;
    e.handle = h.handle;
    e.handle_error = h.error;
    if (h.index < old.size()) {
      const nvml::DeviceEntry& before = old[h.index];
      e.uuid = before.uuid;
      e.uuid_error = before.uuid_error;
      e.info = before.info;
      e.events_registered = before.events_registered && before.handle == e.handle;
    }
    fresh.push_back(std::move(e));
  }
  return fresh;
}

// Known devices keep their identity quietly; a new one that did not answer is worth a warning.
void LogNotIdentified(const nvml::DeviceEntry& e, const Error& why) {
  if (e.info.has_value()) {
    spdlog::debug("NVML: GPU {} not identified: {}", e.index, why.message);
  } else {
    spdlog::warn("NVML: GPU {} not identified: {}", e.index, why.message);
  }
}

// What a device's worker read of it, into its entry. A failing UUID read keeps the known UUID.
void ApplyIdentity(const NvmlSession& s, nvml::Identity id, nvml::DeviceEntry& e) {
  e.uuid_error = id.uuid_error;
  if (!id.uuid.empty()) e.uuid = id.uuid;
  const bool first = !e.info.has_value();
  if (!e.uuid.empty()) {
    e.info = std::move(id.info);
    e.info->uuid = e.uuid;
  }
  e.events_registered = id.events_registered;
  if (id.register_error != NVML_SUCCESS && id.register_error != NVML_ERROR_NOT_SUPPORTED && first) {
    spdlog::warn("NVML: GPU {} XID events: {}", e.index,
                 s.Describe("nvmlDeviceRegisterEvents", id.register_error));
  }
}

}  // namespace

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
  const auto deadline = SteadyNow() + probe->options_.call_timeout;
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
  const auto deadline = SteadyNow() + std::chrono::seconds(2);
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
  auto scan = global_->Start<std::vector<nvml::HandleScan>>("device scan", deadline,
                                                            [s]() { return s->Handles(); });
  if (!scan.ok()) return scan.error();
  auto handles = global_->Await(*scan, deadline);
  if (!handles.ok()) return handles.error();
  std::vector<nvml::DeviceEntry> fresh;
  {
    std::lock_guard lock(devices_->mu);
    fresh = CarryOver(devices_->entries, *handles);
  }
  std::vector<std::optional<CallWatchdog::Pending<nvml::Identity>>> pending(fresh.size());
  const std::set<std::string>& exclude = devices_->exclude;
  for (size_t i = 0; i < fresh.size(); ++i) {
    const nvml::DeviceEntry& e = fresh[i];
    if (e.handle == nullptr) continue;
    auto started = Worker(e.index).Start<nvml::Identity>(
        "identification", deadline,
        [s, h = e.handle, index = e.index, registered = e.events_registered, exclude]() {
          return Result<nvml::Identity>(s->Identify(h, index, registered, exclude));
        });
    if (started.ok()) {
      pending[i] = std::move(*started);
    } else {
      LogNotIdentified(e, started.error());  // Sample reports it unresponsive
    }
  }
  for (size_t i = 0; i < fresh.size(); ++i) {
    nvml::DeviceEntry& e = fresh[i];
    if (pending[i]) {
      auto id = Worker(e.index).Await(*pending[i], deadline);
      if (id.ok()) {
        ApplyIdentity(*s, std::move(*id), e);
      } else {
        LogNotIdentified(e, id.error());
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
  TAOLIE_RETURN_IF_ERROR(Rescan(SteadyNow() + options_.call_timeout));
  std::vector<GpuInfo> out;
  std::lock_guard lock(devices_->mu);
  for (const nvml::DeviceEntry& d : devices_->entries) {
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
  const auto deadline = SteadyNow() + options_.call_timeout;
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
  std::vector<nvml::DeviceEntry> devices;
  {
    std::lock_guard lock(devices_->mu);
    devices = devices_->entries;
  }
  std::erase_if(devices, [](const nvml::DeviceEntry& d) { return d.excluded; });
  std::vector<GpuSample> out(devices.size());
  std::vector<std::optional<CallWatchdog::Pending<GpuSample>>> pending(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    const nvml::DeviceEntry& d = devices[i];
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

}  // namespace taolie::gpu
