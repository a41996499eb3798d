#include "host/firewall_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <utility>

namespace taolie::host {

const std::vector<std::string> kBlockedDestinations = {
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "0.0.0.0/8",  "192.0.0.0/24",  "198.18.0.0/15",  "240.0.0.0/4",   kDnsOnlyDestination,
};

std::vector<std::string> JumpChains(IpFamily family) {
  return {family == IpFamily::kIpv4 ? "DOCKER-USER" : "FORWARD", "INPUT"};
}

namespace {

bool ValidInterfaceName(std::string_view name) {
  // IFNAMSIZ is 16 with the terminating NUL; '+' is iptables' wildcard, so not allowed.
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

Result<std::vector<std::string>> CanonicalList(const std::vector<std::string>& entries,
                                               const std::string& field) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    auto c = CanonicalIpv4Cidr(e);
    if (!c.ok()) return MakeError(ErrorCode::kInvalidArgument, field + ": " + c.error().message);
    if (std::find(out.begin(), out.end(), *c) == out.end()) out.push_back(*c);
  }
  return out;
}

// Builds rules of one chain; every rule gets the tag just before its target.
class ChainBuilder {
 public:
  explicit ChainBuilder(std::string chain) : chain_(std::move(chain)) {}
  void Add(std::vector<std::string> matches, const std::string& target) {
    FirewallRule r = {"-A", chain_};
    r.insert(r.end(), matches.begin(), matches.end());
    r.insert(r.end(), {"-m", "comment", "--comment", kFirewallTag, "-j", target});
    rules_.push_back(std::move(r));
  }
  std::vector<FirewallRule> Take() { return std::move(rules_); }

 private:
  std::string chain_;
  std::vector<FirewallRule> rules_;
};

const char kEstablished[] = "RELATED,ESTABLISHED";

Result<std::vector<HostService>> CanonicalServices(const std::vector<HostService>& entries) {
  std::vector<HostService> out;
  for (const auto& e : entries) {
    auto c = CanonicalIpv4Cidr(e.cidr);
    if (!c.ok()) return MakeError(ErrorCode::kInvalidArgument, "host_allow: " + c.error().message);
    if (e.port < 1 || e.port > 65535) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "host_allow: port " + std::to_string(e.port) + " is not in 1..65535");
    }
    HostService canonical{*c, e.port};
    auto same = [&](const HostService& o) { return o.cidr == canonical.cidr && o.port == e.port; };
    if (std::none_of(out.begin(), out.end(), same)) out.push_back(std::move(canonical));
  }
  return out;
}

// The DNS exceptions: udp and tcp port 53 to `dest` from the bridge.
void AddDns(ChainBuilder& chain, const std::string& br, const std::string& dest) {
  chain.Add({"-d", dest, "-i", br, "-p", "udp", "-m", "udp", "--dport", "53"}, "RETURN");
  chain.Add({"-d", dest, "-i", br, "-p", "tcp", "-m", "tcp", "--dport", "53"}, "RETURN");
}

// The jumps into both own chains for `family`.
std::vector<FirewallRule> Jumps(IpFamily family, const std::string& br) {
  const auto chains = JumpChains(family);
  ChainBuilder forward(chains[0]);
  forward.Add({}, kForwardChain);
  ChainBuilder input(chains[1]);
  input.Add({"-i", br}, kInputChain);
  std::vector<FirewallRule> out = forward.Take();
  for (auto& j : input.Take()) out.push_back(std::move(j));
  return out;
}

// "a.b.c.d/n" as (network in host order, prefix); nullopt when it does not parse.
std::optional<std::pair<uint32_t, int>> ParseCidr(const std::string& text) {
  auto c = CanonicalIpv4Cidr(text);
  if (!c.ok()) return std::nullopt;
  const size_t slash = c->find('/');
  in_addr a{};
  if (::inet_pton(AF_INET, c->substr(0, slash).c_str(), &a) != 1) return std::nullopt;
  return std::pair{ntohl(a.s_addr), std::stoi(c->substr(slash + 1))};
}

}  // namespace

Result<FirewallRules> BuildFirewallRules(const FirewallConfig& config) {
  const std::string& br = config.bridge_interface;
  if (!ValidInterfaceName(br)) {
    return MakeError(ErrorCode::kInvalidArgument, "bridge_interface: '" + br +
                                                      "' is not a valid interface name (1-15 of "
                                                      "[A-Za-z0-9_.-])");
  }
  auto subnet = CanonicalIpv4Cidr(config.subnet);
  if (!subnet.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "subnet: " + subnet.error().message);
  }
  auto hosts = CanonicalList(config.host_addresses, "host_addresses");
  if (!hosts.ok()) return hosts.error();
  auto resolvers = CanonicalList(config.resolvers, "resolvers");
  if (!resolvers.ok()) return resolvers.error();
  auto egress = CanonicalList(config.egress_allow, "egress_allow");
  if (!egress.ok()) return egress.error();
  auto sources = CanonicalList(config.rental_allowed_sources, "rental_allowed_sources");
  if (!sources.ok()) return sources.error();
  auto services = CanonicalServices(config.host_allow);
  if (!services.ok()) return services.error();

  FirewallRules out;
  out.family = IpFamily::kIpv4;

  // Forwarded traffic. Replies first, so published ports and the rentals' own outbound
  // connections keep flowing; then the drops for new connections from the rentals. A
  // RETURN hands the packet back to Docker's own FORWARD rules.
  ChainBuilder fwd(kForwardChain);
  fwd.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"-o", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"!", "-s", *subnet, "-i", br}, "DROP");  // spoofed source
  fwd.Add({"-i", br, "-o", br}, "DROP");            // one rental to another
  for (const auto& c : *egress) fwd.Add({"-d", c, "-i", br}, "RETURN");
  for (const auto& r : *resolvers) AddDns(fwd, br, r);
  if (std::find(resolvers->begin(), resolvers->end(), kDnsOnlyDestination) == resolvers->end()) {
    AddDns(fwd, br, kDnsOnlyDestination);
  }
  for (const auto& h : *hosts) fwd.Add({"-d", h, "-i", br}, "DROP");
  for (const auto& b : kBlockedDestinations) fwd.Add({"-d", b, "-i", br}, "DROP");
  if (!config.allow_smtp) fwd.Add({"-i", br, "-p", "tcp", "-m", "tcp", "--dport", "25"}, "DROP");
  // New connections into the rentals can only be to their published ports (Docker forwards
  // nothing else); with an allow-list, only its sources may open them.
  if (!sources->empty()) {
    for (const auto& s : *sources) {
      fwd.Add({"-s", s, "-o", br, "-m", "conntrack", "--ctstate", "NEW"}, "RETURN");
    }
    fwd.Add({"-o", br, "-m", "conntrack", "--ctstate", "NEW"}, "DROP");
  }
  out.forward = fwd.Take();

  // Rentals to the host itself (every address of the host, the bridge gateway included):
  // nothing new, except DNS to a resolver the host runs and the services host_allow opens.
  // egress_allow is not here: a subnet opened to rentals must not open the host's services.
  ChainBuilder in(kInputChain);
  in.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  in.Add({"!", "-s", *subnet, "-i", br}, "DROP");
  for (const auto& r : *resolvers) AddDns(in, br, r);
  for (const auto& s : *services) {
    in.Add({"-d", s.cidr, "-i", br, "-p", "tcp", "-m", "tcp", "--dport", std::to_string(s.port)},
           "RETURN");
  }
  in.Add({"-i", br}, "DROP");
  out.input = in.Take();
  out.jumps = Jumps(IpFamily::kIpv4, br);
  return out;
}

Result<FirewallRules> BuildIpv6FirewallRules(const FirewallConfig& config) {
  auto v4 = BuildFirewallRules(config);  // the same validation for both families
  if (!v4.ok()) return v4.error();
  const std::string& br = config.bridge_interface;
  FirewallRules out;
  out.family = IpFamily::kIpv6;
  // The IPv4 policy with an empty subnet: replies to what the host itself opened pass; every
  // other packet from the bridge has a source outside the (empty) subnet and is dropped, and
  // nothing new is forwarded to the rentals (they publish no IPv6 port).
  ChainBuilder fwd(kForwardChain);
  fwd.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"-o", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"-i", br}, "DROP");
  fwd.Add({"-o", br}, "DROP");
  out.forward = fwd.Take();
  ChainBuilder in(kInputChain);
  in.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  in.Add({"-i", br}, "DROP");
  out.input = in.Take();
  out.jumps = Jumps(IpFamily::kIpv6, br);
  return out;
}

std::vector<CoveredAddress> CidrsCoveringAddresses(const std::vector<std::string>& cidrs,
                                                   const std::vector<std::string>& addresses) {
  std::vector<CoveredAddress> out;
  for (const auto& cidr : cidrs) {
    auto net = ParseCidr(cidr);
    if (!net) continue;
    const uint32_t mask = net->second == 0 ? 0 : ~uint32_t{0} << (32 - net->second);
    for (const auto& address : addresses) {
      auto a = ParseCidr(address);
      if (!a || a->second != 32) continue;  // an address, not a network
      if ((a->first & mask) == net->first) out.push_back({cidr, address});
    }
  }
  return out;
}

std::string RuleToString(const FirewallRule& rule) {
  std::string s;
  for (const auto& a : rule) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

std::string RenderRestoreInput(const FirewallRules& rules) {
  std::string s = "*filter\n";
  s += std::string(":") + kForwardChain + " - [0:0]\n";
  s += std::string(":") + kInputChain + " - [0:0]\n";
  for (const auto& r : rules.forward) s += RuleToString(r) + "\n";
  for (const auto& r : rules.input) s += RuleToString(r) + "\n";
  s += "COMMIT\n";
  return s;
}

std::vector<std::string> ParseResolvConfNameservers(std::string_view text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    in_addr a{};
    if (::inet_pton(AF_INET, value.c_str(), &a) != 1) continue;  // IPv6: off on rentals
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    std::string c = value + "/32";
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

bool IsTaggedRuleLine(std::string_view line) {
  const std::string needle = std::string("--comment ") + kFirewallTag;
  auto pos = line.find(needle);
  if (pos == std::string_view::npos) return false;
  size_t end = pos + needle.size();
  return end == line.size() || line[end] == ' ';
}

}  // namespace taolie::host
