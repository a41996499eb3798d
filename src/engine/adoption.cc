#include "engine/adoption.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "common/time_format.h"
#include "engine/container_spec.h"
#include "rules/deploy_spec.h"

namespace taolie::engine {
namespace {

std::string Label(const docker::ContainerInfo& c, const char* key) {
  auto it = c.labels.find(key);
  return it == c.labels.end() ? "" : it->second;
}

std::string Env(const docker::ContainerInfo& c, const std::string& key) {
  const std::string prefix = key + "=";
  for (const auto& e : c.env) {
    if (e.rfind(prefix, 0) == 0) return e.substr(prefix.size());
  }
  return "";
}

Error Refuse(const std::string& why) { return Error{ErrorCode::kInvalidArgument, why}; }

}  // namespace

std::optional<double> PriceFromLabel(const std::string& label) {
  if (label.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(label.data(), label.data() + label.size(), v);
  if (ec != std::errc() || end != label.data() + label.size()) return std::nullopt;
  if (!std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

Result<domain::Deployment> DeploymentFromContainer(const docker::ContainerInfo& c,
                                                   const config::PortsConfig& ports) {
  domain::Deployment d;
  d.id = Label(c, kLabelDeployment);
  if (!rules::IsValidDeploymentId(d.id)) return Refuse("no valid deployment id label");
  if (c.name != ContainerName(d.id))
    return Refuse("name " + c.name + " is not " + ContainerName(d.id));
  if (!c.running && c.state != "restarting") return Refuse("container is " + c.state);
  d.command_id = Label(c, kLabelCommand);
  if (d.command_id.empty()) return Refuse("no command id label");

  const std::string duration = Label(c, kLabelDuration);
  auto [end, ec] =
      std::from_chars(duration.data(), duration.data() + duration.size(), d.duration_minutes);
  if (ec != std::errc() || end != duration.data() + duration.size() || d.duration_minutes <= 0) {
    return Refuse("no valid duration label");
  }
  d.expires_at = ParseTimestamp(Label(c, kLabelExpires));
  if (!d.expires_at) return Refuse("no valid expires_at label");

  const std::string gpus = Label(c, kLabelGpus);
  if (c.labels.count(kLabelGpus) == 0) return Refuse("no gpus label");
  for (size_t start = 0; start < gpus.size();) {
    size_t comma = gpus.find(',', start);
    if (comma == std::string::npos) comma = gpus.size();
    if (comma > start) d.gpu_uuids.push_back(gpus.substr(start, comma - start));
    start = comma + 1;
  }
  // What the agent wrote agrees with what Docker gave the container: the GPUs claimed are the
  // ones it really holds, and a container the agent could not have made is not taken for one.
  std::vector<std::string> held = c.device_request_ids, labelled = d.gpu_uuids;
  std::sort(held.begin(), held.end());
  std::sort(labelled.begin(), labelled.end());
  if (held != labelled) {
    return Refuse("gpus label '" + gpus + "' is not the GPUs the container holds");
  }
  if (c.privileged) return Refuse("container is privileged (the agent never makes one)");
  if (Env(c, "DEPLOYMENT_ID") != d.id) return Refuse("env DEPLOYMENT_ID is not its deployment");
  d.price_per_hour = PriceFromLabel(Label(c, kLabelPrice));

  d.state = domain::DeploymentState::kRunning;
  d.container_id = c.id;
  d.container_name = c.name;
  d.image = c.image;
  d.ssh_username = Env(c, "SSH_USERNAME");
  // The password and the Jupyter token went to the renter long ago: the agent keeps neither.
  d.ssh_password.reset();
  d.jupyter_token.clear();
  // Usage counts from the container's start (expires_at - duration): readiness followed it by
  // seconds. The rental clock is adopted from the wall times by the monitor's first round.
  d.started_at = *d.expires_at - std::chrono::minutes(d.duration_minutes);
  d.created_at = *d.started_at;
  d.ready_elapsed_ms = 0;

  std::set<int> seen;
  for (const auto& p : c.ports) {
    if (p.protocol != "tcp" || p.host_port <= 0 || !seen.insert(p.host_port).second) continue;
    domain::PortAllocation a;
    a.host_port = p.host_port;
    a.container_port = p.container_port;
    a.role = p.host_port == ports.ssh             ? "ssh"
             : p.host_port == ports.rental_port_1 ? "rental_port_1"
             : p.host_port == ports.rental_port_2 ? "rental_port_2"
                                                  : "range";
    d.ports.push_back(a);
  }
  std::sort(d.ports.begin(), d.ports.end(),
            [](const auto& a, const auto& b) { return a.host_port < b.host_port; });
  return d;
}

}  // namespace taolie::engine
