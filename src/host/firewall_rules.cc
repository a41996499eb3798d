#include "host/firewall_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <sstream>

namespace taolie::host {

const std::vector<std::string> kBlockedDestinations = {
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
};

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

  FirewallRules out;

  // Forwarded traffic. Replies first, so published ports and the rentals' own outbound
  // connections keep flowing; then the drops for new connections from the rentals. A
  // RETURN hands the packet back to Docker's own FORWARD rules.
  ChainBuilder fwd(kForwardChain);
  fwd.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"-o", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  fwd.Add({"!", "-s", *subnet, "-i", br}, "DROP");  // spoofed source
  fwd.Add({"-i", br, "-o", br}, "DROP");            // one rental to another
  for (const auto& c : *egress) fwd.Add({"-d", c, "-i", br}, "RETURN");
  for (const auto& r : *resolvers) {
    fwd.Add({"-d", r, "-i", br, "-p", "udp", "-m", "udp", "--dport", "53"}, "RETURN");
    fwd.Add({"-d", r, "-i", br, "-p", "tcp", "-m", "tcp", "--dport", "53"}, "RETURN");
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
  // nothing new, except DNS to a resolver the host runs and what egress_allow opens.
  ChainBuilder in(kInputChain);
  in.Add({"-i", br, "-m", "conntrack", "--ctstate", kEstablished}, "ACCEPT");
  in.Add({"!", "-s", *subnet, "-i", br}, "DROP");
  for (const auto& c : *egress) in.Add({"-d", c, "-i", br}, "RETURN");
  for (const auto& r : *resolvers) {
    in.Add({"-d", r, "-i", br, "-p", "udp", "-m", "udp", "--dport", "53"}, "RETURN");
    in.Add({"-d", r, "-i", br, "-p", "tcp", "-m", "tcp", "--dport", "53"}, "RETURN");
  }
  in.Add({"-i", br}, "DROP");
  out.input = in.Take();

  ChainBuilder docker_user("DOCKER-USER");
  docker_user.Add({}, kForwardChain);
  ChainBuilder input("INPUT");
  input.Add({"-i", br}, kInputChain);
  out.jumps = docker_user.Take();
  for (auto& j : input.Take()) out.jumps.push_back(std::move(j));
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
