#pragma once
// Installs, checks and removes the rental network's firewall rules (firewall_rules.h) with
// the distribution's iptables (nf_tables or legacy backend, whichever `iptables` is).
#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "host/command_runner.h"
#include "host/firewall_rules.h"

namespace taolie::host {

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Idempotent: refills both own chains in one transaction, inserts a missing jump at the top
  // of DOCKER-USER / INPUT and deletes tagged rules there that are not the current jumps
  // (duplicates, or jumps for an interface no longer used).
  virtual Status Apply(const FirewallRules& rules) = 0;
  // True when both jumps are in place and both own chains hold exactly `rules`.
  virtual Result<bool> Check(const FirewallRules& rules) = 0;
  // Deletes every tagged rule in DOCKER-USER and INPUT, then flushes and deletes both own
  // chains. Nothing else is touched; removing what is not there is not an error.
  virtual Status Remove() = 0;
  // "nf_tables" or "legacy".
  virtual std::string Backend() const = 0;
};

class IptablesFirewall : public Firewall {
 public:
  // Runs `iptables --version` to find the backend. NotFound when iptables is not installed,
  // Unavailable when it does not run.
  static Result<std::unique_ptr<IptablesFirewall>> Create(
      CommandRunner& runner, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  Status Apply(const FirewallRules& rules) override;
  Result<bool> Check(const FirewallRules& rules) override;
  Status Remove() override;
  std::string Backend() const override { return backend_; }

 private:
  IptablesFirewall(CommandRunner& runner, std::chrono::milliseconds timeout, std::string backend)
      : runner_(runner), timeout_(timeout), backend_(std::move(backend)) {}
  // `iptables -w 5 <args>`; non-zero exits come back in the output, not as errors.
  Result<CommandOutput> Iptables(const std::vector<std::string>& args);
  // The lines of `iptables -S <chain>`; NotFound when the chain does not exist.
  Result<std::vector<std::string>> List(const std::string& chain);
  Status DeleteTaggedExcept(const std::string& chain, const std::vector<std::string>& keep);

  CommandRunner& runner_;
  std::chrono::milliseconds timeout_;
  std::string backend_;
};

}  // namespace taolie::host
