#include "health/xid_collector.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <chrono>

#include "gpu/xid_catalog.h"

namespace taolie::health {
namespace {

store::XidRecord XidRecordOf(const std::string& uuid, uint64_t xid, const char* source,
                             SystemTime at) {
  store::XidRecord r;
  r.gpu_uuid = uuid;
  r.xid = xid;
  r.source = source;
  r.at = at;
  const gpu::XidClass c = gpu::ClassifyXid(xid);
  r.severity = std::string(gpu::XidSeverityName(c.severity));
  r.action = std::string(gpu::XidActionName(c.action));
  return r;
}

// The same fault seen through NVML's event and the kernel's line: one XID.
constexpr auto kSameXidWindow = std::chrono::seconds(30);

}  // namespace

std::vector<gpu::XidEvent> XidCollector::Collect(SystemTime now,
                                                 const std::map<std::string, gpu::GpuInfo>& infos) {
  if (!xids_loaded_) {
    if (auto past = store_.XidsSince(now - std::chrono::hours(1)); past.ok()) {
      for (const auto& x : *past) {
        if (!x.gpu_uuid.empty()) xids_.push_back({x.gpu_uuid, x.xid, x.at});
      }
      xids_loaded_ = true;
    }
  }
  std::vector<gpu::XidEvent> from_nvml;
  if (auto x = gpus_.DrainXids(); x.ok()) from_nvml = std::move(*x);
  std::vector<store::XidRecord> fresh;
  for (const auto& e : from_nvml) {
    store::XidRecord r = XidRecordOf(e.uuid, e.xid, "nvml", e.at);
    if (auto info = infos.find(e.uuid); info != infos.end()) r.pci_bus_id = info->second.pci_bus_id;
    fresh.push_back(std::move(r));
  }
  std::optional<store::KmsgCursorRow> cursor;
  ReadKernelLog(now, infos, from_nvml, fresh, cursor);
  std::vector<gpu::XidEvent> seen;
  for (const auto& r : fresh) {
    if (r.gpu_uuid.empty()) continue;
    seen.push_back({r.gpu_uuid, r.xid, r.at});
    spdlog::warn("GPU {}: XID {} ({}, {}, needs {}){}", r.gpu_uuid, r.xid, r.source, r.severity,
                 r.action, r.message.empty() ? "" : ": " + r.message);
  }
  xids_.insert(xids_.end(), seen.begin(), seen.end());
  xids_unrecorded_.insert(xids_unrecorded_.end(), fresh.begin(), fresh.end());
  if (xids_unrecorded_.empty() && !cursor) return seen;
  if (Status st = store_.RecordXids(xids_unrecorded_, cursor); !st.ok()) {
    // Kept, with the reader's position in memory: the next round records them.
    spdlog::warn("{} XID(s) not recorded yet: {}", xids_unrecorded_.size(), st.error().ToString());
    return seen;
  }
  xids_unrecorded_.clear();
  return seen;
}

const std::vector<gpu::XidEvent>& XidCollector::LastHour(SystemTime now) {
  std::erase_if(xids_, [&](const gpu::XidEvent& e) { return now - e.at > std::chrono::hours(1); });
  return xids_;
}

void XidCollector::ReadKernelLog(SystemTime now, const std::map<std::string, gpu::GpuInfo>& infos,
                                 const std::vector<gpu::XidEvent>& from_nvml,
                                 std::vector<store::XidRecord>& out,
                                 std::optional<store::KmsgCursorRow>& cursor) {
  if (kmsg_path_.empty()) return;
  if (!kmsg_cursor_loaded_) {
    auto c = store_.KmsgCursor();
    if (!c.ok()) return;  // without the cursor, old lines would count again
    kmsg_cursor_ = *c;
    kmsg_cursor_loaded_ = true;
  }
  if (kmsg_ == nullptr) {
    host::KmsgXidReaderOptions o;
    o.path = kmsg_path_;
    auto r = host::KmsgXidReader::Create(o);
    if (!r.ok()) {
      if (r.error().message != kmsg_error_) {
        spdlog::warn("kernel log not read for XIDs (NVML events only): {}", r.error().message);
      }
      kmsg_error_ = r.error().message;
      return;
    }
    kmsg_ = std::move(*r);
    kmsg_error_.clear();
  }
  host::KmsgCursor from;
  if (kmsg_cursor_) from = {kmsg_cursor_->boot_id, kmsg_cursor_->next_seq};
  auto drained = kmsg_->Drain(from);
  if (!drained.ok()) {
    spdlog::warn("kernel log read failed: {}", drained.error().message);
    return;
  }
  if (drained->records_lost > 0) {
    spdlog::warn("kernel log: {} record(s) overwritten before they were read; XIDs may be lost",
                 drained->records_lost);
  }
  // The kernel stamps records on the monotonic clock: their wall time is now minus their age.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t mono_us =
      static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
  for (const auto& k : drained->xids) {
    std::string uuid;
    for (const auto& [u, info] : infos) {
      if (host::NormalizePciBusId(info.pci_bus_id) == k.pci_bus_id) uuid = u;
    }
    const auto age =
        std::chrono::microseconds(mono_us > k.monotonic_usec ? mono_us - k.monotonic_usec : 0);
    const SystemTime at = now - std::chrono::duration_cast<SystemTime::duration>(age);
    const bool via_nvml = std::any_of(from_nvml.begin(), from_nvml.end(), [&](const auto& e) {
      return e.uuid == uuid && e.xid == k.xid &&
             (e.at > at ? e.at - at : at - e.at) < kSameXidWindow;
    });
    if (via_nvml && !uuid.empty()) continue;
    store::XidRecord r = XidRecordOf(uuid, k.xid, "kmsg", at);
    r.pci_bus_id = k.pci_bus_id;
    r.message = k.message;
    r.pid = k.pid;
    r.process_name = k.process_name.value_or("");
    if (uuid.empty()) {
      spdlog::warn("kernel log: XID {} on {}, a bus no GPU of this agent is on", k.xid,
                   k.pci_bus_id);
    }
    out.push_back(std::move(r));
  }
  if (!(from == drained->cursor)) {
    kmsg_cursor_ = store::KmsgCursorRow{drained->cursor.boot_id, drained->cursor.next_seq};
    cursor = kmsg_cursor_;
  }
}

}  // namespace taolie::health
