#pragma once
// CLI subcommands that talk to the running agent through its local API (api.listen:api.port,
// TLS when network.security.enable_ssl): status, deployments, drain/undrain, healthcheck, and
// logs (the journal or the log file). Each returns the process exit status and prints what an
// owner needs, including what to do when the agent cannot be reached.
#include <string>

#include "config/config.h"

namespace taolie::cli {

// Where the CLI connects: a wildcard listen address means the loopback one.
struct ApiEndpoint {
  std::string host;  // numeric address
  int port = 0;
  bool tls = false;
  std::string ca_file;     // TLS: the agent's own certificate (network.security.ssl_cert)
  std::string token_path;  // <data_dir>/api-token
};
ApiEndpoint EndpointFromConfig(const config::Config& cfg);

// The human-readable view of /v1/status and /v1/deployments (pure: tested without an agent).
std::string FormatStatus(const std::string& status_json);
std::string FormatDeployments(const std::string& deployments_json);

int CmdStatus(const config::Config& cfg, bool json);
// Sends the admin token (<data_dir>/api-token, root only); says so when it cannot read it.
int CmdDeployments(const config::Config& cfg, bool json);
int CmdDrain(const config::Config& cfg, bool drain);
// Exit 0 only when /healthz answers 200 (the container's HEALTHCHECK).
int CmdHealthcheck(const config::Config& cfg);
// Replaces the process with journalctl (under systemd) or tail (the log file).
int CmdLogs(const config::Config& cfg, bool follow, int lines);

}  // namespace taolie::cli
