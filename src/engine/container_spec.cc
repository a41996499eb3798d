#include "engine/container_spec.h"

#include <algorithm>
#include <charconv>

#include "common/time_format.h"

namespace taolie::engine {
namespace {

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

}  // namespace

std::string ContainerName(const std::string& deployment_id) {
  return "deployment-" + deployment_id;
}

docker::ContainerSpec BuildContainerSpec(const ContainerSpecInput& in) {
  const domain::Deployment& d = *in.deployment;
  const rules::DeploySpec& spec = *in.spec;
  const config::DeploymentConfig& dc = *in.deployment_cfg;
  docker::ContainerSpec c;
  c.name = d.container_name;
  c.image = d.image;
  for (const auto& [k, v] : spec.env) {
    // Validation refuses these; a row stored before that rule must not bring them back.
    if (rules::IsRefusedNvidiaEnv(k)) continue;
    c.env.push_back(k);
    c.env.back().append("=").append(v);
  }
  c.env.push_back("DEPLOYMENT_ID=" + d.id);
  c.env.push_back("SSH_USERNAME=" + d.ssh_username);
  c.env.push_back("SSH_PASSWORD=" + d.ssh_password.value_or(""));
  c.env.push_back("JUPYTER_TOKEN=" + d.jupyter_token);
  if (d.expires_at) c.env.push_back("DEPLOYMENT_EXPIRES_AT=" + FormatRfc3339(*d.expires_at));
  if (spec.ssh_public_key) c.env.push_back("AUTHORIZED_KEYS=" + *spec.ssh_public_key);
  // Always set, so an image's own NVIDIA_VISIBLE_DEVICES=all (every CUDA base image has it)
  // never shows a CPU-only rental every GPU on a host whose default runtime is nvidia.
  c.env.push_back("NVIDIA_VISIBLE_DEVICES=" +
                  (d.gpu_uuids.empty() ? std::string("void") : Join(d.gpu_uuids, ",")));
  c.env.push_back("NVIDIA_DRIVER_CAPABILITIES=" + dc.nvidia_driver_capabilities);
  for (const auto& [name, value] : kNeutralNvidiaEnv) {
    c.env.push_back(std::string(name) + "=" + value);
  }
  std::string price;
  if (d.price_per_hour) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d.price_per_hour);
    if (ec == std::errc()) price.assign(buf, end);
  }
  // All of kAgentLabels, "" for none, so that no label of the image survives.
  c.labels = {{kLabelManaged, "true"},
              {kLabelAgent, in.agent_id},
              {kLabelDeployment, d.id},
              {kLabelCommand, d.command_id},
              {kLabelGpus, Join(d.gpu_uuids, ",")},
              {kLabelDuration, std::to_string(d.duration_minutes)},
              {kLabelExpires, d.expires_at ? FormatRfc3339(*d.expires_at) : ""},
              {kLabelPrice, price}};
  if (spec.command) c.cmd = std::vector<std::string>{"sh", "-c", *spec.command};
  c.restart_policy = spec.restart_policy;
  std::string bind_ip = in.bind_ip.empty() ? "0.0.0.0" : in.bind_ip;  // never "": also [::]
  for (const auto& p : d.ports) c.ports.push_back({p.container_port, "tcp", bind_ip, p.host_port});
  c.gpu_uuids = d.gpu_uuids;
  // Mounts, not Binds: a missing host path fails the create instead of being made by dockerd.
  for (const auto& [host_path, container_path] : spec.volumes) {
    c.mounts.push_back({host_path, container_path, false});
  }
  c.memory_bytes = in.limits.memory_bytes;
  c.nano_cpus = in.limits.nano_cpus;
  c.shm_size_bytes = in.limits.shm_bytes;
  c.pids_limit = in.limits.pids_limit;
  if (in.storage_opt && in.spec->admitted_disk_mb > 0) {
    c.storage_size_bytes = in.spec->admitted_disk_mb << 20;
  }
  c.log_max_size = std::to_string(dc.log_max_size_mb) + "m";
  c.log_max_file = std::to_string(dc.log_max_files);
  c.no_new_privileges = dc.no_new_privileges;
  for (const auto& cap : config::RentalDroppedCapabilities()) {
    if (std::find(dc.cap_add.begin(), dc.cap_add.end(), cap) == dc.cap_add.end()) {
      c.cap_drop.push_back(cap);
    }
  }
  for (const auto& cap : dc.cap_add) {
    const auto& dropped = config::RentalDroppedCapabilities();
    if (std::find(dropped.begin(), dropped.end(), cap) == dropped.end()) c.cap_add.push_back(cap);
  }
  c.runtime = dc.runtime;
  if (!in.network.empty()) c.network_mode = in.network;
  return c;
}

}  // namespace taolie::engine
