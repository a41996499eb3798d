#pragma once
// Loading and validation of config.yaml into taolie::config::Config.
//
// Typical use (the composition root):
//   auto loaded = LoadConfigFile(path, [](const char* n) { return std::getenv(n); });
//   if (!loaded.ok()) { print loaded.error().message; exit(2); }
//   auto problems = loaded->problems;                      // parse + Validate()
//   auto run = ValidateForRun(loaded->config);             // run-only checks (api key, ...)
//   problems.insert(problems.end(), run.begin(), run.end());
//   for (auto& p : problems) print FormatProblem(p);       // warnings and errors
//   if (HasFatal(problems)) exit(2);
//
// No exception escapes these functions; YAML type errors become fatal problems naming the key.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace taolie::config {

struct ConfigProblem {
  std::string key;     // dotted path, e.g. "network.ports.ssh"; "(root)" for the document
  std::string reason;  // human readable, never contains a secret value
  bool fatal = true;   // false = warning (unknown key, empty public_ip, ...)
};

struct LoadResult {
  Config config;
  std::vector<ConfigProblem> problems;  // parse problems followed by Validate(config)
};

// Looks up an environment variable; returns nullptr when unset. std::getenv fits.
using EnvLookup = std::function<const char*(const char*)>;

// The value the first agent's seed config shipped with; never a real key.
inline constexpr char kApiKeyPlaceholder[] = "your-api-key-here";

// Reads and parses `path`. Fails only when the file cannot be read (NotFound /
// PermissionDenied / Unavailable) or is not YAML (InvalidArgument, message carries the path
// and the 1-based line and column). When `getenv` is given, ApplyEnvironment runs after
// parsing and before validation.
Result<LoadResult> LoadConfigFile(const std::string& path, const EnvLookup& getenv = nullptr);

// Same for YAML text; a syntax error becomes a fatal problem with key "(root)".
LoadResult LoadConfigString(const std::string& yaml, const EnvLookup& getenv = nullptr);

// Every key path the loader reads ("network.ports.ssh", ...): sections are not listed, only the
// keys that hold values. docs/configuration.md is checked against it by a test.
std::set<std::string> KnownConfigKeys();
// Each of those keys with its built-in default as YAML text: 60, 0.9, true, "text", [], {},
// "30000-30999". docs/configuration.md's defaults column is checked against it by a test.
std::map<std::string, std::string> ConfigDefaults();

// Overrides from the environment (non-empty values only):
//   TAOLIE_API_KEY -> agent.api_key, TAOLIE_DB_PASSWORD -> database.password,
//   TAOLIE_SERVER_URL -> server.url, DOCKER_HOST -> docker.host (only when docker.host is "").
void ApplyEnvironment(Config& config, const EnvLookup& getenv);

// Checks every value; pure. Called by the loaders.
std::vector<ConfigProblem> Validate(const Config& config);

// Checks that only matter for running the agent (NOT repeating Validate): agent.api_key set
// and not the placeholder; warning when server.url is still the example URL.
std::vector<ConfigProblem> ValidateForRun(const Config& config);

bool HasFatal(const std::vector<ConfigProblem>& problems);
// "key: reason" (warnings get no extra marker; callers may prefix by `fatal`).
std::string FormatProblem(const ConfigProblem& problem);

// "30000-30999" -> {30000, 30999}; "" -> empty range. Only the syntax is checked here.
Result<PortRange> ParsePortRange(const std::string& text);
// {30000, 30999} -> "30000-30999"; empty -> "".
std::string FormatPortRange(const PortRange& range);

// One deployment.host_allow entry: "CIDR:PORT", the CIDR an IPv4 address or network (an
// address alone means /32), the port TCP 1..65535. "10.213.0.1:8080" -> {"10.213.0.1/32",
// 8080}; the CIDR comes back canonical. InvalidArgument saying what is wrong.
struct HostAllowEntry {
  std::string cidr;
  int port = 0;
};
Result<HostAllowEntry> ParseHostAllow(const std::string& text);

// Accepts trace, debug, info, warn, warning, error, err, critical, fatal, off in any case.
bool IsKnownLogLevel(const std::string& level);

}  // namespace taolie::config
