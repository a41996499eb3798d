#pragma once
// Host port allocation for a deployment's container ports (platform-api.md "Port policy").
// Pure: the caller says which host ports are taken (persisted allocations and what is bound).
#include <functional>
#include <vector>

#include "common/result.h"
#include "domain/deployment.h"

namespace taolie::rules {

struct NamedPorts {  // network.ports.*; 0 = not offered
  int ssh = 0;
  int rental_port_1 = 0;
  int rental_port_2 = 0;
};

struct PortRangeSpec {  // network.port_range; 0,0 = none
  int first = 0;
  int last = 0;
  bool empty() const { return first == 0 && last == 0; }
};

// Container port 22 gets the named ssh port (role "ssh"); the first other container port gets
// rental_port_1 ("rental_port_1"), the second other rental_port_2 ("rental_port_2"), each when
// that host port is not taken. Every other port, and any whose named port is taken or not
// offered, gets the lowest free port of the range (role "range"). No host port is given twice.
// Named ports are placed before range ports, so a range that overlaps the named ports never
// steals one this deployment is about to use.
// Output is in container_ports order. Errors: InvalidArgument for a container port outside
// 1-65535, a duplicate container port or a malformed range/named port; FailedPrecondition
// "no free host port for container port N: ..." when a port cannot be placed.
Result<std::vector<domain::PortAllocation>> AllocatePorts(
    const std::vector<int>& container_ports, const NamedPorts& named, const PortRangeSpec& range,
    const std::function<bool(int host_port)>& taken);

}  // namespace taolie::rules
