#include "domain/deployment.h"

#include <array>

namespace taolie::domain {
namespace {

constexpr std::array<const char*, 8> kStateNames = {"accepted",  "pulling", "creating", "starting",
                                                    "readiness", "running", "stopping", "ended"};

}  // namespace

const char* DeploymentStateName(DeploymentState s) {
  auto i = static_cast<size_t>(s);
  return i < kStateNames.size() ? kStateNames[i] : "unknown";
}

std::optional<DeploymentState> ParseDeploymentState(const std::string& s) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (s == kStateNames[i]) return static_cast<DeploymentState>(i);
  }
  return std::nullopt;
}

}  // namespace taolie::domain
