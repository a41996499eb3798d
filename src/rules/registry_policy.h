#pragma once
// Which registries a rental image may come from. An image whose registry host is, or resolves
// to, a loopback, link-local, private (RFC 1918, CGNAT, ULA) or unspecified address, or that
// names one of the agent's own ports on such an address, is refused unless the owner listed
// the registry (host or host:port) in deployment.allowed_registries. Name resolution goes
// through a seam, so the rule itself does no I/O.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace taolie::rules {

// Resolves a host name to address texts ("10.0.0.5", "fe80::1"); an error when it cannot.
using HostResolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;

struct OwnPort {
  int port = 0;
  std::string what;  // "API port", "SSH rental port", ...
};

struct RegistryPolicy {
  std::vector<std::string> allowed_registries;  // "host" or "host:port"
  std::vector<OwnPort> own_ports;               // the agent's API port and named rental ports
  int range_first = 0;                          // rental port range (0 = none)
  int range_last = 0;
};

// An IPv4 address written the way inet_aton reads it: 1 to 4 parts, each decimal, octal
// (leading 0) or hex (0x); the last part fills the remaining bytes ("127.1", "2130706433",
// "0x7f.1", "017700000001"). Host byte order. nullopt when `text` is not such an address.
std::optional<uint32_t> ParseInetAtonIpv4(std::string_view text);

// "loopback", "link-local", "private", "shared (CGNAT)" or "unspecified" for such an address
// (IPv4 in any inet_aton spelling, IPv6, IPv4-mapped IPv6, optional brackets); nullopt for a
// public address or a text that is no address.
std::optional<std::string> LocalAddressKind(std::string_view address);

// OK when `image` may be pulled under `policy`. Docker Hub images (no registry, or docker.io)
// are not checked. A registry name that cannot be resolved is refused. Errors are
// InvalidArgument with a message that starts with "image: registry ...".
Status CheckImageRegistry(std::string_view image, const RegistryPolicy& policy,
                          const HostResolver& resolve);

// True when `image` names the same reference as one in `listed` ("ubuntu" is
// "docker.io/library/ubuntu:latest"); a failed pull may use the local copy only of these.
bool IsListedImage(std::string_view image, const std::vector<std::string>& listed);

}  // namespace taolie::rules
