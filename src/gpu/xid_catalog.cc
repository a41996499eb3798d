#include "gpu/xid_catalog.h"

#include <algorithm>
#include <array>

namespace taolie::gpu {
namespace {

constexpr XidSeverity W = XidSeverity::kWarning;
constexpr XidSeverity F = XidSeverity::kFailure;
constexpr XidAction kNone = XidAction::kNone;
constexpr XidAction kApp = XidAction::kRestartApp;
constexpr XidAction kReset = XidAction::kResetGpu;
constexpr XidAction kReboot = XidAction::kRebootHost;
constexpr bool kAppCause = true;
constexpr bool kHw = true;

// Sorted by XID. Columns: xid, name, severity, action, application, hardware.
constexpr std::array<XidClass, 41> kTable = {{
    {8, "GPU stopped processing (idle timeout)", W, kApp, kAppCause, false},
    {13, "graphics engine exception", W, kApp, kAppCause, false},
    {31, "GPU memory page fault (MMU)", W, kApp, kAppCause, false},
    {32, "invalid or corrupted push buffer stream (PBDMA)", W, kApp, false, false},
    {38, "driver firmware watchdog timeout", W, kNone, false, false},
    {43, "GPU stopped processing (channel reset)", W, kApp, kAppCause, false},
    {44, "fault during a context switch", W, kNone, false, false},
    {45, "preemptive cleanup after other errors", W, kNone, kAppCause, false},
    {46, "GPU stopped processing (timeout)", F, kReset, false, false},
    {48, "double-bit ECC error", F, kReset, false, kHw},
    {54, "auxiliary power not connected", W, kNone, false, kHw},
    {56, "clock change", W, kNone, false, kHw},
    {57, "clock change due to power", W, kNone, false, kHw},
    {58, "clock change due to thermal", W, kNone, false, kHw},
    {60, "clocks event: thermal", W, kNone, false, kHw},
    {61, "internal micro-controller breakpoint (power brake)", W, kNone, false, kHw},
    {62, "internal micro-controller halt (thermal)", F, kReset, false, kHw},
    {63, "ECC page retirement or row remapping recorded", W, kNone, false, kHw},
    {64, "ECC page retirement or row remapping failure", F, kReset, false, kHw},
    {67, "firmware verification violation", W, kNone, kAppCause, false},
    {68, "video processor exception", W, kApp, kAppCause, false},
    {69, "graphics engine class error", W, kApp, kAppCause, false},
    {73, "NVLink flow control error", W, kNone, false, kHw},
    {74, "NVLink error", F, kReset, false, kHw},
    {78, "power state forced change", W, kNone, false, false},
    {79, "GPU has fallen off the bus", F, kReboot, false, kHw},
    {92, "high single-bit ECC error rate", W, kNone, false, kHw},
    {93, "non-fatal InfoROM violation", W, kNone, false, false},
    {94, "contained ECC error", W, kApp, false, kHw},
    {95, "uncontained ECC error", F, kReset, false, kHw},
    {109, "context switch timeout", F, kReset, false, false},
    {110, "security fault", F, kReset, false, kHw},
    {119, "GSP RPC timeout", F, kReset, false, false},
    {120, "GSP error", F, kReset, false, false},
    {121, "C2C link corrected error", W, kNone, false, kHw},
    {136, "link training failed", F, kReset, false, kHw},
    {137, "NVLink FLA privilege error", W, kApp, kAppCause, false},
    {140, "unrecovered ECC error", F, kReset, false, kHw},
    {143, "GPU initialization error", F, kReset, false, kHw},
    {155, "NVLink software-defined error", F, kReset, false, kHw},
    {158, "GPU fatal timeout", F, kReset, false, false},
}};

static_assert(std::is_sorted(kTable.begin(), kTable.end(),
                             [](const XidClass& a, const XidClass& b) { return a.xid < b.xid; }),
              "kTable must be sorted by XID");

}  // namespace

XidClass ClassifyXid(uint64_t xid) {
  const auto* it = std::lower_bound(kTable.begin(), kTable.end(), xid,
                                    [](const XidClass& c, uint64_t x) { return c.xid < x; });
  if (it != kTable.end() && it->xid == xid) return *it;
  XidClass unlisted;
  unlisted.xid = xid;
  unlisted.name = "unlisted XID";
  return unlisted;
}

std::string_view XidSeverityName(XidSeverity s) {
  return s == XidSeverity::kFailure ? "failure" : "warning";
}

std::string_view XidActionName(XidAction a) {
  switch (a) {
    case XidAction::kRestartApp:
      return "restart_app";
    case XidAction::kResetGpu:
      return "reset_gpu";
    case XidAction::kRebootHost:
      return "reboot";
    case XidAction::kNone:
      break;
  }
  return "none";
}

}  // namespace taolie::gpu
