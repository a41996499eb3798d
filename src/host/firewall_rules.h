#pragma once
// Pure generation of the rental network's iptables rules (filter table, IPv4 only: IPv6 is off
// on the rental network). No I/O here; firewall.h applies the result.
//
// Layout: two chains the agent owns, each flushed and refilled as a whole by one
// `iptables-restore --noflush` (so a re-apply never leaves a window without rules), and one
// tagged jump into each:
//   DOCKER-USER -> TAOLIE-RENTALS     (forwarded traffic from and to the rentals' bridge)
//   INPUT -i <bridge> -> TAOLIE-RENTALS-IN   (rentals -> the host itself)
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

struct FirewallConfig {
  std::string bridge_interface;                     // the rentals' bridge, e.g. "taolie0"
  std::string subnet;                               // its IPv4 subnet, e.g. "10.213.0.0/24"
  std::vector<std::string> host_addresses;          // the host's own IPv4 addresses
  std::vector<std::string> resolvers;               // upstream DNS servers (IPv4), port 53
  std::vector<std::string> egress_allow;            // IPv4 CIDRs opened despite the drops
  bool allow_smtp = false;                          // outbound TCP 25
  std::vector<std::string> rental_allowed_sources;  // who may open connections to rentals;
                                                    // empty = anyone
};

// One rule as the arguments after `iptables`, e.g. {"-A", "TAOLIE-RENTALS", "-i", ...}.
using FirewallRule = std::vector<std::string>;

struct FirewallRules {
  std::vector<FirewallRule> forward;  // contents of kForwardChain, in order ("-A" rules)
  std::vector<FirewallRule> input;    // contents of kInputChain, in order ("-A" rules)
  // The jumps into the two chains, as "-A" rules of DOCKER-USER and INPUT. The applier
  // inserts each at the top of its chain when `iptables -C` does not find it.
  std::vector<FirewallRule> jumps;
};

// The destinations a rental may never open a connection to (besides the host's addresses):
// RFC 1918, shared address space (RFC 6598) and link-local (cloud metadata).
extern const std::vector<std::string> kBlockedDestinations;

// InvalidArgument naming the field for a bad interface name or address. Addresses and CIDRs
// come back in the canonical form iptables prints ("10.1.2.3/8" -> "10.0.0.0/8", an address
// without a prefix -> "/32").
Result<FirewallRules> BuildFirewallRules(const FirewallConfig& config);

// Input for `iptables-restore --noflush`: declares (and so flushes) both own chains, appends
// their rules, COMMIT. Jumps are not part of it.
std::string RenderRestoreInput(const FirewallRules& rules);

// The rule as `iptables -S` prints it (arguments joined by single spaces).
std::string RuleToString(const FirewallRule& rule);

// IPv4 `nameserver` entries of a resolv.conf as "/32" CIDRs, loopback ones left out (Docker
// does not forward to those), in order, without duplicates.
std::vector<std::string> ParseResolvConfNameservers(std::string_view text);

// True when `line` (one line of `iptables -S`) carries the agent's tag.
bool IsTaggedRuleLine(std::string_view line);

}  // namespace taolie::host
