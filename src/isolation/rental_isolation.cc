#include "isolation/rental_isolation.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "config/config_loader.h"
#include "host/firewall_rules.h"
#include "isolation/rental_network.h"

namespace taolie::isolation {

std::vector<std::string> EgressAllowHostWarnings(const config::DeploymentConfig& cfg,
                                                 const std::vector<std::string>& host_addresses) {
  std::vector<std::string> out;
  for (const auto& c : host::CidrsCoveringAddresses(cfg.egress_allow, host_addresses)) {
    out.push_back("deployment.egress_allow entry " + c.cidr + " covers this host's address " +
                  c.address +
                  ": it opens other machines only, never the host's own services; "
                  "deployment.host_allow (\"CIDR:PORT\") opens a host service to rentals");
  }
  return out;
}

RentalIsolation::RentalIsolation(const config::DeploymentConfig& cfg, docker::DockerClient& docker,
                                 host::Firewall* firewall, std::string firewall_error,
                                 std::function<std::string(const std::string&)> read_file,
                                 Ipv6Firewall ipv6)
    : cfg_(cfg),
      docker_(docker),
      firewall_(firewall),
      firewall_error_(std::move(firewall_error)),
      read_file_(std::move(read_file)),
      ipv6_(std::move(ipv6)) {
  if (firewall_ != nullptr) status_.backend = firewall_->Backend();
  status_.ipv6_note = ipv6_.firewall == nullptr ? ipv6_.note : "";
  if (ipv6_.firewall == nullptr && !ipv6_.note.empty()) {
    spdlog::log(ipv6_.needed ? spdlog::level::warn : spdlog::level::info,
                "isolation: no IPv6 firewall rules: {}", ipv6_.note);
  }
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
  for (const auto& entry : cfg_.host_allow) {
    // Validated by the config loader; an entry that does not parse reaches BuildFirewallRules
    // as port 0 and is refused there, naming host_allow.
    auto parsed = config::ParseHostAllow(entry);
    fc.host_allow.push_back(parsed.ok() ? host::HostService{parsed->cidr, parsed->port}
                                        : host::HostService{entry, 0});
  }
  fc.allow_smtp = cfg_.allow_smtp;
  fc.rental_allowed_sources = cfg_.rental_allowed_sources;
  return fc;
}

Status RentalIsolation::EnsureFamily(host::Firewall& firewall,
                                     const Result<host::FirewallRules>& rules, bool* reapplied) {
  if (!rules.ok()) return rules.error();
  auto in_place = firewall.Check(*rules);
  if (in_place.ok() && *in_place) return OkStatus();
  TAOLIE_RETURN_IF_ERROR(firewall.Apply(*rules));
  *reapplied = *reapplied || Current().ok;
  return OkStatus();
}

Status RentalIsolation::EnsureRules(bool* reapplied) {
  if (firewall_ == nullptr) return MakeError(ErrorCode::kFailedPrecondition, firewall_error_);
  const host::FirewallConfig fc = FirewallConfigNow();
  TAOLIE_RETURN_IF_ERROR(EnsureFamily(*firewall_, host::BuildFirewallRules(fc), reapplied));
  if (ipv6_.firewall == nullptr) return OkStatus();
  Status v6 = EnsureFamily(*ipv6_.firewall, host::BuildIpv6FirewallRules(fc), reapplied);
  if (!v6.ok()) return MakeError(v6.error().code, "IPv6: " + v6.error().message);
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
  status_.ipv6_rules = rules.ok() && ipv6_.firewall != nullptr;
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
      spdlog::info("isolation: rentals on network {} ({}), firewall rules in place (iptables {}{})",
                   kRentalNetworkName, cfg_.network_subnet, status_.backend,
                   status_.ipv6_rules ? ", ip6tables too" : "");
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

}  // namespace taolie::isolation
