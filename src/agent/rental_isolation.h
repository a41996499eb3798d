#pragma once
// Keeps rentals isolated: the agent's bridge network exists (rental_network.h) and the
// firewall rules for it (host/firewall_rules.h) are in place. Run at start and every
// duration-monitor round: a flushed DOCKER-USER or INPUT comes back within one round.
// Fail closed: while `ok()` is false (no privilege, no iptables, Docker refusing the
// network), admission accepts no rental unless deployment.require_isolation is false.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "host/firewall.h"

namespace taolie::agent {

struct IsolationStatus {
  bool ok = false;
  bool network_ready = false;  // rentals can join the agent's network
  std::string error;           // why not ok ("" when ok)
  std::string backend;         // iptables backend, "" when unknown
  uint64_t reapplied = 0;      // rounds that found the rules missing or changed and fixed them
};

class RentalIsolation {
 public:
  // `firewall` may be null: it could not be set up (the reason is `firewall_error`).
  // `read_file` reads the resolv.conf files (a seam for tests); missing files read as "".
  RentalIsolation(const config::DeploymentConfig& cfg, docker::DockerClient& docker,
                  host::Firewall* firewall, std::string firewall_error,
                  std::function<std::string(const std::string&)> read_file);

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

  const config::DeploymentConfig& cfg_;
  docker::DockerClient& docker_;
  host::Firewall* firewall_;
  const std::string firewall_error_;
  std::function<std::string(const std::string&)> read_file_;
  mutable std::mutex mu_;
  IsolationStatus status_;
  std::string last_logged_error_;
};

}  // namespace taolie::agent
