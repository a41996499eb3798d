#include "isolation/rental_network.h"

#include <spdlog/spdlog.h>

namespace taolie::isolation {
namespace {

const char kManagedLabel[] = "taolie.managed";
const char kBridgeOption[] = "com.docker.network.bridge.name";
const char kIccOption[] = "com.docker.network.bridge.enable_icc";

std::string ValueOr(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "<unset>" : it->second;
}

// "" when `info` is what `spec` asks for, else what differs.
std::string Mismatch(const docker::NetworkInfo& info, const docker::NetworkSpec& spec) {
  if (ValueOr(info.labels, kManagedLabel) != "true") {
    return "it is not labelled " + std::string(kManagedLabel) + "=true (not the agent's)";
  }
  if (info.driver != "bridge") return "its driver is " + info.driver + ", not bridge";
  if (info.subnets != std::vector<std::string>{spec.subnet}) {
    std::string have;
    for (const auto& s : info.subnets) have += (have.empty() ? "" : ",") + s;
    return "its subnet is " + (have.empty() ? "<none>" : have) + ", not " + spec.subnet +
           " (deployment.network_subnet)";
  }
  if (ValueOr(info.options, kBridgeOption) != spec.bridge_name) {
    return "its bridge is " + ValueOr(info.options, kBridgeOption) + ", not " + spec.bridge_name;
  }
  if (ValueOr(info.options, kIccOption) != (spec.enable_icc ? "true" : "false")) {
    return "inter-container traffic is " + ValueOr(info.options, kIccOption);
  }
  if (info.enable_ipv6) return "IPv6 is on";
  return "";
}

}  // namespace

docker::NetworkSpec RentalNetworkSpec(const std::string& subnet) {
  docker::NetworkSpec spec;
  spec.name = kRentalNetworkName;
  spec.bridge_name = kRentalBridgeName;
  spec.subnet = subnet;
  spec.enable_icc = false;
  spec.labels = {{kManagedLabel, "true"}};
  return spec;
}

Result<docker::NetworkInfo> EnsureRentalNetwork(docker::DockerClient& docker,
                                                const docker::NetworkSpec& spec) {
  auto info = docker.InspectNetwork(spec.name);
  if (!info.ok() && info.error().code == ErrorCode::kNotFound) {
    auto id = docker.CreateNetwork(spec);
    if (!id.ok() && id.error().code != ErrorCode::kAlreadyExists) return id.error();
    info = docker.InspectNetwork(spec.name);
  }
  if (!info.ok()) return info.error();
  if (std::string why = Mismatch(*info, spec); !why.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "docker network " + spec.name + " exists but " + why +
                         "; remove it (no rental may be attached) and restart the agent");
  }
  return info;
}

}  // namespace taolie::isolation
