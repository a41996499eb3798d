#include "rules/port_policy.h"

#include <optional>
#include <set>
#include <string>

namespace taolie::rules {
namespace {

bool InPortRange(int p) { return p >= 1 && p <= 65535; }

std::string RangeText(const PortRangeSpec& r) {
  return std::to_string(r.first) + "-" + std::to_string(r.last);
}

}  // namespace

Result<std::vector<domain::PortAllocation>> AllocatePorts(
    const std::vector<int>& container_ports, const NamedPorts& named, const PortRangeSpec& range,
    const std::function<bool(int host_port)>& taken) {
  for (int p : {named.ssh, named.rental_port_1, named.rental_port_2}) {
    if (p != 0 && !InPortRange(p)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "network.ports: " + std::to_string(p) + " is out of range 1-65535");
    }
  }
  if (!range.empty() &&
      (!InPortRange(range.first) || !InPortRange(range.last) || range.first > range.last)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "network.port_range: " + RangeText(range) + " is not a valid range");
  }
  std::set<int> seen;
  for (int p : container_ports) {
    if (!InPortRange(p)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ports: container port " + std::to_string(p) + " is out of range 1-65535");
    }
    if (!seen.insert(p).second) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ports: container port " + std::to_string(p) + " is listed more than once");
    }
  }

  // Which named port each container port may use (0 = none).
  std::vector<int> wanted(container_ports.size(), 0);
  std::vector<std::string> role(container_ports.size());
  int others = 0;
  for (size_t i = 0; i < container_ports.size(); ++i) {
    if (container_ports[i] == 22) {
      wanted[i] = named.ssh;
      role[i] = "ssh";
    } else if (others == 0) {
      wanted[i] = named.rental_port_1;
      role[i] = "rental_port_1";
      ++others;
    } else if (others == 1) {
      wanted[i] = named.rental_port_2;
      role[i] = "rental_port_2";
      ++others;
    }
  }

  std::vector<domain::PortAllocation> out(container_ports.size());
  std::set<int> given;
  auto free = [&](int host) { return given.count(host) == 0 && !taken(host); };

  // Pass 1: named ports.
  std::vector<bool> placed(container_ports.size(), false);
  for (size_t i = 0; i < container_ports.size(); ++i) {
    if (wanted[i] != 0 && free(wanted[i])) {
      out[i] = {wanted[i], container_ports[i], role[i]};
      given.insert(wanted[i]);
      placed[i] = true;
    }
  }
  // Pass 2: the range, lowest free port first, in container_ports order.
  int next = range.first;
  for (size_t i = 0; i < container_ports.size(); ++i) {
    if (placed[i]) continue;
    std::optional<int> host;
    if (!range.empty()) {
      for (; next <= range.last; ++next) {
        if (free(next)) {
          host = next++;
          break;
        }
      }
    }
    if (!host) {
      std::string why = wanted[i] != 0 ? "named port " + std::to_string(wanted[i]) + " is in use"
                                       : std::string("no named port applies");
      std::string range_why = range.empty()
                                  ? "no network.port_range is configured"
                                  : "network.port_range " + RangeText(range) + " is exhausted";
      return MakeError(ErrorCode::kFailedPrecondition, "no free host port for container port " +
                                                           std::to_string(container_ports[i]) +
                                                           ": " + why + " and " + range_why);
    }
    out[i] = {*host, container_ports[i], "range"};
    given.insert(*host);
  }
  return out;
}

}  // namespace taolie::rules
