#include "domain/enums.h"

#include <array>

namespace taolie::domain {
namespace {

constexpr std::array<const char*, 6> kEventKinds = {"success",    "failed", "expiring",
                                                    "terminated", "ack",    "gpu_failed"};
constexpr std::array<const char*, 4> kGpuHealth = {"healthy", "warning", "unhealthy", "lost"};

template <typename E, size_t N>
std::optional<E> ParseName(const std::array<const char*, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i) {
    if (s == names[i]) return static_cast<E>(i);
  }
  return std::nullopt;
}

template <typename E, size_t N>
const char* NameOf(const std::array<const char*, N>& names, E e) {
  auto i = static_cast<size_t>(e);
  return i < N ? names[i] : "unknown";
}

}  // namespace

const char* EventKindName(EventKind k) { return NameOf(kEventKinds, k); }
std::optional<EventKind> ParseEventKind(std::string_view s) {
  return ParseName<EventKind>(kEventKinds, s);
}
const char* GpuHealthStateName(GpuHealthState h) { return NameOf(kGpuHealth, h); }
std::optional<GpuHealthState> ParseGpuHealthState(std::string_view s) {
  return ParseName<GpuHealthState>(kGpuHealth, s);
}

}  // namespace taolie::domain
