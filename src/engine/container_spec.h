#pragma once
// The Docker create spec of a rental. Pure: the deployment, its validated spec and limits, and
// the operator's config in; the container's env, labels, ports, GPUs and bounds out.
#include <string>
#include <utility>

#include "config/config.h"
#include "docker/docker_client.h"
#include "domain/deployment.h"
#include "rules/deploy_spec.h"
#include "rules/limits.h"

namespace taolie::engine {

// Labels on every rental container. They carry what enforcement needs without the database
// (which deployment, which agent identity, which GPUs, until when), and what reconciliation
// uses to tell ours from anyone else's. The agent writes every one of them on every container,
// "" meaning none: Docker merges the image's labels under the container's, so a label the
// agent left out would be the image's (an image's `LABEL taolie.price_per_hour=1000000`).
inline constexpr char kLabelManaged[] = "taolie.managed";
inline constexpr char kLabelAgent[] = "taolie.agent_id";
inline constexpr char kLabelDeployment[] = "taolie.deployment_id";
inline constexpr char kLabelCommand[] = "taolie.command_id";
inline constexpr char kLabelGpus[] = "taolie.gpus";
inline constexpr char kLabelDuration[] = "taolie.duration_minutes";
inline constexpr char kLabelExpires[] = "taolie.expires_at";    // RFC 3339, informative wall time
inline constexpr char kLabelPrice[] = "taolie.price_per_hour";  // "": no price
// Every label above, in the order written.
inline constexpr const char* kAgentLabels[] = {kLabelManaged, kLabelAgent, kLabelDeployment,
                                               kLabelCommand, kLabelGpus,  kLabelDuration,
                                               kLabelExpires, kLabelPrice};

// NVIDIA container toolkit switches set on every rental, whatever the image says (a container's
// env overrides its image's ENV): MOFED (InfiniBand devices, which bypass the host's
// iptables), NVSwitch, GPUDirect Storage and GDRCopy devices stay out, and no IMEX channel is
// requested. A payload cannot set them (IsRefusedNvidiaEnv).
inline constexpr std::pair<const char*, const char*> kNeutralNvidiaEnv[] = {
    {"NVIDIA_MOFED", "disabled"},   {"NVIDIA_NVSWITCH", "disabled"}, {"NVIDIA_GDS", "disabled"},
    {"NVIDIA_GDRCOPY", "disabled"}, {"NVIDIA_IMEX_CHANNELS", ""},
};

std::string ContainerName(const std::string& deployment_id);

struct ContainerSpecInput {
  const domain::Deployment* deployment = nullptr;
  const rules::DeploySpec* spec = nullptr;
  rules::ResourceLimits limits;
  std::string agent_id;
  const config::DeploymentConfig* deployment_cfg = nullptr;
  std::string bind_ip;  // network.bind_ip
  std::string network;  // the network the rental joins; "" = Docker's default bridge
  // Bound the writable layer with StorageOpt at the rental's disk quota (spec
  // admitted_disk_mb); false where the storage driver has none (the quota is then measured).
  bool storage_opt = false;
};

docker::ContainerSpec BuildContainerSpec(const ContainerSpecInput& in);

}  // namespace taolie::engine
