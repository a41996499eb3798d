#pragma once
// Keeps rentals isolated: the agent's bridge network exists (rental_network.h) and the
// firewall rules for it (host/firewall_rules.h), IPv4 and IPv6, are in place. Run at start and
// every duration-monitor round: a flushed DOCKER-USER or INPUT comes back within one round. Fail
// closed: while `ok()` is false (no privilege, no iptables, Docker refusing the network), admission
// accepts no rental unless deployment.require_isolation is false.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "host/firewall.h"

namespace taolie::isolation {

struct IsolationStatus {
  bool ok = false;
  bool network_ready = false;  // rentals can join the agent's network
  std::string error;           // why not ok ("" when ok)
  std::string backend;         // iptables backend, "" when unknown
  uint64_t reapplied = 0;      // rounds that found the rules missing or changed and fixed them
  bool ipv6_rules = false;     // the ip6tables rules are in place
  std::string ipv6_note;       // why there are none ("" when there are, or not tried yet)
};

// The IPv6 side. `firewall` null: no ip6tables rules, for the reason in `note` (the kernel has
// no IPv6, so none are needed; or ip6tables is not installed: a warning, not a failure, since
// the rental network itself has IPv6 off). With a firewall, failing to apply its rules fails
// isolation like the IPv4 ones.
struct Ipv6Firewall {
  host::Firewall* firewall = nullptr;
  std::string note;
  bool needed = true;  // false: the kernel has no IPv6 (the note is logged as info, not a warning)
};

// One warning per deployment.egress_allow entry covering one of `host_addresses`: egress_allow
// opens forwarded traffic only, so such an entry suggests a host service was meant to be
// opened (deployment.host_allow does that). Pure.
std::vector<std::string> EgressAllowHostWarnings(const config::DeploymentConfig& cfg,
                                                 const std::vector<std::string>& host_addresses);

class RentalIsolation {
 public:
  // `firewall` may be null: it could not be set up (the reason is `firewall_error`).
  // `read_file` reads the resolv.conf files (a seam for tests); missing files read as "".
  RentalIsolation(const config::DeploymentConfig& cfg, docker::DockerClient& docker,
                  host::Firewall* firewall, std::string firewall_error,
                  std::function<std::string(const std::string&)> read_file, Ipv6Firewall ipv6 = {});

  // Ensures the network and the rules; the outcome is also kept for Current().
  Status Ensure();
  IsolationStatus Current() const;
  // What admission needs: isolation in place, or the owner waived it.
  bool AdmitsRentals() const;

 private:
  host::FirewallConfig FirewallConfigNow() const;
  // Applies the rules unless they are already exactly in place; sets *reapplied when a
  // previous round had them and they had gone or changed.
  Status EnsureRules(bool* reapplied);
  // The same for one family's firewall and rules.
  Status EnsureFamily(host::Firewall& firewall, const Result<host::FirewallRules>& rules,
                      bool* reapplied);

  const config::DeploymentConfig& cfg_;
  docker::DockerClient& docker_;
  host::Firewall* firewall_;
  const std::string firewall_error_;
  std::function<std::string(const std::string&)> read_file_;
  const Ipv6Firewall ipv6_;
  mutable std::mutex mu_;
  IsolationStatus status_;
  std::string last_logged_error_;
};

}  // namespace taolie::isolation
