#pragma once
// What an XID means for renting a GPU out (issue 8, item 2). Pure.
//
// The severity follows DCGM's health watches (4.6): a "failure" there makes the GPU unhealthy
// here, a "warning" a warning. One rule is our own: an XID whose remedy in NVIDIA's XID
// catalog is a GPU reset or a host reboot is a failure too (46, 62, 109, 143, ... which DCGM's
// health watch does not list), because a GPU that needs a reset must not be rented before it
// had one. An XID that a renter's own program can cause and that needs no more than restarting
// that program (13, 31, 43, ...) is "application": it is recorded against the rental that
// held the GPU and does not count against the GPU. Every other XID is a warning. A contained
// ECC error (94) needs only the program restarted but still counts against the GPU: it is its
// memory.
#include <cstdint>
#include <string_view>

namespace taolie::gpu {

enum class XidSeverity { kWarning, kFailure };

// The least that clears it (NVIDIA's catalog "immediate action").
enum class XidAction {
  kNone,        // informational, or the program that caused it just ends
  kRestartApp,  // the program (the renter's) is restarted; the GPU is fine
  kResetGpu,    // the GPU needs a reset (nvidia-smi -r) before it is used again
  kRebootHost,  // only a reboot (or a reseat) brings the GPU back
};

struct XidClass {
  uint64_t xid = 0;
  std::string_view name;  // short description
  XidSeverity severity = XidSeverity::kWarning;
  XidAction action = XidAction::kNone;
  bool application = false;  // a renter's program can cause it: attributed to the rental only
  bool hardware = false;     // a possible hardware fault (memory, bus, power, thermal)
};

// The class of any XID; one not in the table is a warning with action kNone and name
// "unlisted XID".
XidClass ClassifyXid(uint64_t xid);

std::string_view XidSeverityName(XidSeverity s);  // "warning" | "failure"
std::string_view XidActionName(XidAction a);      // "none" | "restart_app" | "reset_gpu" | "reboot"

}  // namespace taolie::gpu
