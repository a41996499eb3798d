#pragma once
// Installs, checks and removes the rental network's firewall rules (firewall_rules.h) with
// the distribution's iptables or ip6tables (nf_tables or legacy backend, whichever the binary
// is). One instance per address family; both use the same chain names.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "host/command_runner.h"
#include "host/firewall_rules.h"

namespace taolie::host {

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Idempotent: refills both own chains in one transaction, inserts a missing jump at the top
  // of DOCKER-USER (FORWARD for IPv6) / INPUT and deletes tagged rules there that are not the
  // current jumps (duplicates, or jumps for an interface no longer used). InvalidArgument for
  // rules of the other family.
  virtual Status Apply(const FirewallRules& rules) = 0;
  // True when both jumps are in place and both own chains hold exactly `rules`.
  virtual Result<bool> Check(const FirewallRules& rules) = 0;
  // Deletes every tagged rule in the jump chains (firewall_rules.h JumpChains), then flushes and
  // deletes both own chains. Nothing else is touched; removing what is not there is not an error.
  virtual Status Remove() = 0;
  // "nf_tables" or "legacy".
  virtual std::string Backend() const = 0;
};

class IptablesFirewall : public Firewall {
 public:
  // Runs `iptables --version` (`ip6tables --version`) to find the backend. NotFound when the
  // tool is not installed, Unavailable when it does not run.
  static Result<std::unique_ptr<IptablesFirewall>> Create(
      CommandRunner& runner, IpFamily family = IpFamily::kIpv4,
      std::chrono::milliseconds timeout = std::chrono::seconds(10));

  Status Apply(const FirewallRules& rules) override;
  Result<bool> Check(const FirewallRules& rules) override;
  Status Remove() override;
  std::string Backend() const override { return backend_; }
  IpFamily family() const { return family_; }

 private:
  IptablesFirewall(CommandRunner& runner, IpFamily family, std::chrono::milliseconds timeout,
                   std::string backend)
      : runner_(runner), family_(family), timeout_(timeout), backend_(std::move(backend)) {}
  // "iptables" or "ip6tables".
  std::string Tool() const;
  // InvalidArgument when `rules` are for the other family.
  Status CheckFamily(const FirewallRules& rules) const;
  // `iptables -w 5 <args>`; non-zero exits come back in the output, not as errors.
  Result<CommandOutput> Iptables(const std::vector<std::string>& args);
  // The lines of `iptables -S <chain>`; NotFound when the chain does not exist.
  Result<std::vector<std::string>> List(const std::string& chain);
  Status DeleteTaggedExcept(const std::string& chain, const std::vector<std::string>& keep);

  CommandRunner& runner_;
  IpFamily family_;
  std::chrono::milliseconds timeout_;
  std::string backend_;
};

// True when the kernel has IPv6 (`<proc>/net/if_inet6` exists; booted with ipv6.disable=1 it
// does not, and no ip6tables rule is needed).
bool KernelHasIpv6(const std::string& proc = "/proc");

// The IPv4 addresses of the host's interfaces (getifaddrs), loopback included, in order,
// without duplicates. Unavailable when getifaddrs fails.
Result<std::vector<std::string>> HostIpv4Addresses();

}  // namespace taolie::host
