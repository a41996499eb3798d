#include "agent/rental_isolation.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/rental_network.h"
#include "host/firewall_rules.h"

namespace taolie::agent {

RentalIsolation::RentalIsolation(const config::DeploymentConfig& cfg, docker::DockerClient& docker,
                                 host::Firewall* firewall, std::string firewall_error,
                                 std::function<std::string(const std::string&)> read_file)
    : cfg_(cfg),
      docker_(docker),
      firewall_(firewall),
      firewall_error_(std::move(firewall_error)),
      read_file_(std::move(read_file)) {
  if (firewall_ != nullptr) status_.backend = firewall_->Backend();
}

host::FirewallConfig RentalIsolation::FirewallConfigNow() const {
  host::FirewallConfig fc;
  fc.bridge_interface = kRentalBridgeName;
  fc.subnet = cfg_.network_subnet;
  // Every address of the host is covered by the INPUT chain (all new connections from the
  // bridge to the host are dropped), so host_addresses stays empty.
  // Docker's embedded resolver forwards to the host's upstream servers (from the rental's
  // namespace on Docker 20.10): those stay reachable on port 53.
  for (const char* path : {"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}) {
    for (auto& r : host::ParseResolvConfNameservers(read_file_(path))) {
      if (std::find(fc.resolvers.begin(), fc.resolvers.end(), r) == fc.resolvers.end()) {
        fc.resolvers.push_back(std::move(r));
      }
    }
  }
  fc.egress_allow = cfg_.egress_allow;
  fc.allow_smtp = cfg_.allow_smtp;
  fc.rental_allowed_sources = cfg_.rental_allowed_sources;
  return fc;
}

Status RentalIsolation::EnsureRules(bool* reapplied) {
  if (firewall_ == nullptr) return MakeError(ErrorCode::kFailedPrecondition, firewall_error_);
  auto rules = host::BuildFirewallRules(FirewallConfigNow());
  if (!rules.ok()) return rules.error();
  auto in_place = firewall_->Check(*rules);
  if (in_place.ok() && *in_place) return OkStatus();
  TAOLIE_RETURN_IF_ERROR(firewall_->Apply(*rules));
  *reapplied = Current().ok;
  return OkStatus();
}

Status RentalIsolation::Ensure() {
  std::string error;
  auto net = EnsureRentalNetwork(docker_, RentalNetworkSpec(cfg_.network_subnet));
  if (!net.ok()) error = "rental network: " + net.error().message;
  bool reapplied = false;
  Status rules = EnsureRules(&reapplied);
  if (!rules.ok()) {
    error += (error.empty() ? "" : "; ") + std::string("firewall: ") + rules.error().message;
  }
  std::lock_guard l(mu_);
  status_.network_ready = net.ok();
  status_.ok = error.empty();
  status_.error = error;
  if (reapplied) {
    ++status_.reapplied;
    spdlog::warn("isolation: firewall rules for {} were missing or changed; re-applied",
                 kRentalBridgeName);
  }
  if (error != last_logged_error_) {
    if (error.empty()) {
      spdlog::info("isolation: rentals on network {} ({}), firewall rules in place (iptables {})",
                   kRentalNetworkName, cfg_.network_subnet, status_.backend);
    } else if (cfg_.require_isolation) {
      spdlog::error("isolation: {}; no rental is accepted until this is fixed", error);
    } else {
      spdlog::warn("isolation: {}; rentals accepted anyway (deployment.require_isolation: false)",
                   error);
    }
    last_logged_error_ = error;
  }
  if (error.empty()) return OkStatus();
  return MakeError(ErrorCode::kFailedPrecondition, error);
}

IsolationStatus RentalIsolation::Current() const {
  std::lock_guard l(mu_);
  return status_;
}

bool RentalIsolation::AdmitsRentals() const { return !cfg_.require_isolation || Current().ok; }

}  // namespace taolie::agent
