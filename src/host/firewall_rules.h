#pragma once
// Pure generation of the rental network's firewall rules (filter table), for iptables and
// ip6tables. No I/O here; firewall.h applies the result.
//
// Layout, per address family: two chains the agent owns, each flushed and refilled as a whole
// by one `iptables-restore --noflush` (`ip6tables-restore` for IPv6), so a re-apply never
// leaves a window without rules, and one tagged jump into each:
//   IPv4: DOCKER-USER -> TAOLIE-RENTALS   (forwarded traffic from and to the rentals' bridge)
//   IPv6: FORWARD -> TAOLIE-RENTALS       (ip6tables has DOCKER-USER only when dockerd runs
//                                          with "ip6tables": true; FORWARD always exists)
//   both: INPUT -i <bridge> -> TAOLIE-RENTALS-IN   (rentals -> the host itself)
// The rental network has no IPv6 subnet (Docker's IPv6 is off on it), so the IPv6 rules are
// the IPv4 policy with an empty subnet: every IPv6 source on the bridge is foreign, and every
// new IPv6 connection from or to the rentals is dropped (the host's link-local address on the
// bridge included). Should the network ever get an IPv6 subnet, this file needs the IPv6
// counterparts of the drops.
// Every rule carries `-m comment --comment taolie-host-agent`, so whatever the agent added
// can be found and removed. Arguments are written in the order `iptables -S` prints them, so
// a listing can be compared with the generated rules line by line.
//
// Docker's embedded DNS resolver (127.0.0.11) lives inside each container's network
// namespace and never crosses these chains; the upstream servers it forwards to (the host's
// resolv.conf, read by the caller) are given as `resolvers` and stay reachable on port 53.
#include <string>
#include <string_view>
#include <vector>

#include "common/net_address.h"
#include "common/result.h"

namespace taolie::host {

inline constexpr char kFirewallTag[] = "taolie-host-agent";
inline constexpr char kForwardChain[] = "TAOLIE-RENTALS";
inline constexpr char kInputChain[] = "TAOLIE-RENTALS-IN";

enum class IpFamily { kIpv4, kIpv6 };

// A host service opened to the rentals: TCP `port` on the host's addresses within `cidr`.
struct HostService {
  std::string cidr;  // IPv4 address or CIDR
  int port = 0;      // 1..65535
};

struct FirewallConfig {
  std::string bridge_interface;             // the rentals' bridge, e.g. "taolie0"
  std::string subnet;                       // its IPv4 subnet, e.g. "10.213.0.0/24"
  std::vector<std::string> host_addresses;  // the host's own IPv4 addresses
  std::vector<std::string> resolvers;       // upstream DNS servers (IPv4), port 53
  // IPv4 CIDRs opened despite the drops, for forwarded traffic only (other machines): the
  // host's own services are opened by host_allow alone.
  std::vector<std::string> egress_allow;
  std::vector<HostService> host_allow;              // host services rentals may reach
  bool allow_smtp = false;                          // outbound TCP 25
  std::vector<std::string> rental_allowed_sources;  // who may open connections to rentals;
                                                    // empty = anyone
};

// One rule as the arguments after `iptables`, e.g. {"-A", "TAOLIE-RENTALS", "-i", ...}.
using FirewallRule = std::vector<std::string>;

struct FirewallRules {
  IpFamily family = IpFamily::kIpv4;
  std::vector<FirewallRule> forward;  // contents of kForwardChain, in order ("-A" rules)
  std::vector<FirewallRule> input;    // contents of kInputChain, in order ("-A" rules)
  // The jumps into the two chains, as "-A" rules of DOCKER-USER (FORWARD for IPv6) and INPUT.
  // The applier inserts each at the top of its chain when `iptables -C` does not find it.
  std::vector<FirewallRule> jumps;
};

// The destinations a rental may never open a connection to (besides the host's addresses):
// RFC 1918, shared address space (RFC 6598), link-local (cloud metadata), "this network"
// (0.0.0.0/8), IETF protocol assignments (192.0.0.0/24), benchmarking (198.18.0.0/15),
// reserved (240.0.0.0/4) and Azure's fabric endpoint (kDnsOnlyDestination).
extern const std::vector<std::string> kBlockedDestinations;
// Azure's WireServer (goal state, extension secrets): blocked, except DNS (udp/tcp 53), since
// Azure VMs use it as their resolver.
inline constexpr char kDnsOnlyDestination[] = "168.63.129.16/32";

// The chains holding the agent's jumps for `family`: {DOCKER-USER, INPUT} or {FORWARD, INPUT}.
std::vector<std::string> JumpChains(IpFamily family);

// IPv4 rules. InvalidArgument naming the field for a bad interface name, address or port.
// Addresses and CIDRs come back in the canonical form iptables prints ("10.1.2.3/8" ->
// "10.0.0.0/8", an address without a prefix -> "/32").
Result<FirewallRules> BuildFirewallRules(const FirewallConfig& config);

// IPv6 rules for the same bridge (see the top of this file). Only the bridge name is used;
// the rest of `config` is validated as for IPv4, so both families accept or refuse alike.
Result<FirewallRules> BuildIpv6FirewallRules(const FirewallConfig& config);

// Input for `iptables-restore --noflush`: declares (and so flushes) both own chains, appends
// their rules, COMMIT. Jumps are not part of it.
std::string RenderRestoreInput(const FirewallRules& rules);

// The rule as `iptables -S` prints it (arguments joined by single spaces).
std::string RuleToString(const FirewallRule& rule);

// IPv4 `nameserver` entries of a resolv.conf as "/32" CIDRs, loopback ones left out (Docker
// does not forward to those), in order, without duplicates.
std::vector<std::string> ParseResolvConfNameservers(std::string_view text);

// Which of `cidrs` (IPv4 CIDRs, e.g. deployment.egress_allow) contain which of `addresses`
// (IPv4 addresses, e.g. the host's own): one pair {cidr as given, address} per match, in the
// order of `cidrs` then `addresses`. Entries that do not parse are left out.
struct CoveredAddress {
  std::string cidr;
  std::string address;
  bool operator==(const CoveredAddress&) const = default;
};
std::vector<CoveredAddress> CidrsCoveringAddresses(const std::vector<std::string>& cidrs,
                                                   const std::vector<std::string>& addresses);

// True when `line` (one line of `iptables -S`) carries the agent's tag.
bool IsTaggedRuleLine(std::string_view line);

}  // namespace taolie::host
