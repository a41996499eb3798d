#pragma once
// The one bridge network every rental joins: created by the agent when missing, labelled
// taolie.managed=true, traffic between its containers off, IPv6 off, its subnet from
// `deployment.network_subnet`. The firewall (host/firewall_rules.h) is keyed to its bridge.
#include <string>

#include "common/result.h"
#include "docker/docker_client.h"

namespace taolie::isolation {

inline constexpr char kRentalNetworkName[] = "taolie-rentals";
inline constexpr char kRentalBridgeName[] = "taolie0";

docker::NetworkSpec RentalNetworkSpec(const std::string& subnet);

// Creates the network when there is none of that name (a concurrent creation is accepted);
// an existing one must be the agent's and match `spec` (subnet, bridge name, inter-container
// traffic off, IPv6 off), else FailedPrecondition saying what differs. Docker errors pass
// through (Unavailable when the daemon is down).
Result<docker::NetworkInfo> EnsureRentalNetwork(docker::DockerClient& docker,
                                                const docker::NetworkSpec& spec);

}  // namespace taolie::isolation
