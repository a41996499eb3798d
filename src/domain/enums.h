#pragma once
// Closed vocabularies of the domain, as enums with their one spelling (database, wire, logs).
#include <optional>
#include <string>
#include <string_view>

namespace taolie::domain {

// What the outbox carries: a deployment event (platform-api.md) or a command ack.
enum class EventKind { kSuccess, kFailed, kExpiring, kTerminated, kAck, kGpuFailed };
const char* EventKindName(EventKind k);
std::optional<EventKind> ParseEventKind(std::string_view s);

// A GPU's standing for rentals: healthy and warning GPUs may be rented, the others not.
enum class GpuHealthState { kHealthy, kWarning, kUnhealthy, kLost };
const char* GpuHealthStateName(GpuHealthState h);
std::optional<GpuHealthState> ParseGpuHealthState(std::string_view s);
inline bool Rentable(GpuHealthState h) {
  return h == GpuHealthState::kHealthy || h == GpuHealthState::kWarning;
}

}  // namespace taolie::domain
