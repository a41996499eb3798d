#include "host/firewall.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace taolie::host {
namespace {

std::string ToolName(IpFamily family) {
  return family == IpFamily::kIpv4 ? "iptables" : "ip6tables";
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A failed iptables run as an error: PermissionDenied when it lacks privilege (the agent is
// not root or lacks CAP_NET_ADMIN), otherwise Unavailable with what the tool printed.
Error ToolError(const std::string& what, const CommandOutput& out) {
  const bool denied = out.output.find("Permission denied") != std::string::npos ||
                      out.output.find("must be root") != std::string::npos;
  return MakeError(denied ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
                   what + " exited " + std::to_string(out.exit_code) + ": " + Trimmed(out.output));
}

std::vector<std::string> SplitWords(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

// The rule with its leading "-A" replaced by `op` ("-C", "-D").
FirewallRule WithOp(FirewallRule rule, const std::string& op) {
  rule[0] = op;
  return rule;
}

std::vector<std::string> ExpectedListing(const std::string& chain,
                                         const std::vector<FirewallRule>& rules) {
  std::vector<std::string> lines = {"-N " + chain};
  for (const auto& r : rules) lines.push_back(RuleToString(r));
  return lines;
}

}  // namespace

Result<std::unique_ptr<IptablesFirewall>> IptablesFirewall::Create(
    CommandRunner& runner, IpFamily family, std::chrono::milliseconds timeout) {
  const std::string tool = ToolName(family);
  auto out = runner.Run({tool, "--version"}, "", timeout);
  if (!out.ok()) return out.error();
  if (out->exit_code != 0) return ToolError(tool + " --version", *out);
  std::string backend;
  if (out->output.find("nf_tables") != std::string::npos) {
    backend = "nf_tables";
  } else if (out->output.find("legacy") != std::string::npos) {
    backend = "legacy";
  } else {
    return MakeError(ErrorCode::kUnavailable,
                     tool + " --version names no known backend: " + Trimmed(out->output));
  }
  return std::unique_ptr<IptablesFirewall>(new IptablesFirewall(runner, family, timeout, backend));
}

std::string IptablesFirewall::Tool() const { return ToolName(family_); }

Result<CommandOutput> IptablesFirewall::Iptables(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Tool(), "-w", "5"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runner_.Run(argv, "", timeout_);
}

Result<std::vector<std::string>> IptablesFirewall::List(const std::string& chain) {
  auto out = Iptables({"-S", chain});
  if (!out.ok()) return out.error();
  if (out->exit_code == 1 && (out->output.find("No chain") != std::string::npos ||
                              out->output.find("does not exist") != std::string::npos ||
                              out->output.find("incompatible") != std::string::npos)) {
    return MakeError(ErrorCode::kNotFound, "chain " + chain + " does not exist");
  }
  if (out->exit_code != 0) return ToolError(Tool() + " -S " + chain, *out);
  std::vector<std::string> lines;
  // Only stdout is parsed: iptables-nft writes "# Warning: iptables-legacy tables present, ..."
  // to stderr on a host where legacy tables exist too (another tool, a container with the
  // legacy binary), and mixed in with stdout it can cut a rule's line in two.
  std::istringstream in(out->stdout_text);
  std::string line;
  while (std::getline(in, line)) {
    line = Trimmed(line);
    // Remarks, should a version print them to stdout, are not rules either. Counted as a
    // rule, one made every check see changed rules and re-apply them.
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

Status IptablesFirewall::DeleteTaggedExcept(const std::string& chain,
                                            const std::vector<std::string>& keep) {
  auto lines = List(chain);
  if (!lines.ok()) {
    return lines.error().code == ErrorCode::kNotFound ? OkStatus() : Status(lines.error());
  }
  std::vector<std::string> kept;
  for (const auto& line : *lines) {
    if (!IsTaggedRuleLine(line)) continue;
    const bool wanted = std::find(keep.begin(), keep.end(), line) != keep.end();
    if (wanted && std::find(kept.begin(), kept.end(), line) == kept.end()) {
      kept.push_back(line);
      continue;
    }
    auto words = SplitWords(line);
    if (words.size() < 2 || words[0] != "-A") continue;
    auto out = Iptables(WithOp(words, "-D"));
    if (!out.ok()) return out.error();
    if (out->exit_code != 0) return ToolError(Tool() + " -D " + chain, *out);
  }
  return OkStatus();
}

Status IptablesFirewall::CheckFamily(const FirewallRules& rules) const {
  if (rules.family == family_) return OkStatus();
  return MakeError(ErrorCode::kInvalidArgument,
                   "rules of the other address family given to " + Tool());
}

Status IptablesFirewall::Apply(const FirewallRules& rules) {
  TAOLIE_RETURN_IF_ERROR(CheckFamily(rules));
  // Both own chains are declared (created or flushed) and refilled in one transaction, so
  // they are never seen empty while the jumps point at them.
  auto restore = runner_.Run({Tool() + "-restore", "-w", "5", "--noflush"},
                             RenderRestoreInput(rules), timeout_);
  if (!restore.ok()) return restore.error();
  if (restore->exit_code != 0) return ToolError(Tool() + "-restore --noflush", *restore);

  const auto chains = JumpChains(family_);
  std::vector<std::vector<std::string>> keep(chains.size());
  for (const auto& jump : rules.jumps) {
    auto chain = std::find(chains.begin(), chains.end(), jump[1]);
    if (chain != chains.end()) keep[chain - chains.begin()].push_back(RuleToString(jump));
    auto check = Iptables(WithOp(jump, "-C"));
    if (!check.ok()) return check.error();
    if (check->exit_code == 0) continue;
    if (check->exit_code == 4) return ToolError(Tool() + " -C " + jump[1], *check);
    FirewallRule insert = WithOp(jump, "-I");
    insert.insert(insert.begin() + 2, "1");
    auto out = Iptables(insert);
    if (!out.ok()) return out.error();
    if (out->exit_code != 0) return ToolError(Tool() + " -I " + jump[1] + " 1", *out);
  }
  for (size_t i = 0; i < chains.size(); ++i) {
    TAOLIE_RETURN_IF_ERROR(DeleteTaggedExcept(chains[i], keep[i]));
  }
  return OkStatus();
}

Result<bool> IptablesFirewall::Check(const FirewallRules& rules) {
  TAOLIE_RETURN_IF_ERROR(CheckFamily(rules));
  for (const auto& jump : rules.jumps) {
    auto check = Iptables(WithOp(jump, "-C"));
    if (!check.ok()) return check.error();
    if (check->exit_code == 4) return ToolError(Tool() + " -C " + jump[1], *check);
    if (check->exit_code != 0) return false;
  }
  for (const auto& [chain, chain_rules] : {std::pair{std::string(kForwardChain), &rules.forward},
                                           std::pair{std::string(kInputChain), &rules.input}}) {
    auto lines = List(chain);
    if (!lines.ok() && lines.error().code == ErrorCode::kNotFound) return false;
    if (!lines.ok()) return lines.error();
    if (*lines != ExpectedListing(chain, *chain_rules)) return false;
  }
  return true;
}

Status IptablesFirewall::Remove() {
  for (const auto& chain : JumpChains(family_)) {
    TAOLIE_RETURN_IF_ERROR(DeleteTaggedExcept(chain, {}));
  }
  for (const std::string chain : {kForwardChain, kInputChain}) {
    auto lines = List(chain);
    if (!lines.ok() && lines.error().code == ErrorCode::kNotFound) continue;
    if (!lines.ok()) return lines.error();
    for (const char* op : {"-F", "-X"}) {
      auto out = Iptables({op, chain});
      if (!out.ok()) return out.error();
      if (out->exit_code != 0) return ToolError(Tool() + " " + op + " " + chain, *out);
    }
  }
  return OkStatus();
}

bool KernelHasIpv6(const std::string& proc) {
  std::error_code ec;
  return std::filesystem::exists(proc + "/net/if_inet6", ec);
}

Result<std::vector<std::string>> HostIpv4Addresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("getifaddrs: ") + std::strerror(errno));
  }
  std::vector<std::string> out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text) == nullptr) continue;
    if (std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace taolie::host
