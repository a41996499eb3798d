#pragma once
// The deploy and terminate command payloads (platform-api.md §3.1, §3.2), validated into plain
// data. Pure functions, no I/O: everything the renter sends is checked here before the
// deployment workflow records or creates anything.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace taolie::rules {

// ext `registry_auth`: credentials for the pull of a private image. Secret: used for that
// pull only, never logged, never in SpecToJson, scrubbed from the stored command after it.
struct RegistryCredentials {
  std::string username;
  std::string password;
  std::string identity_token;  // payload `identitytoken`, instead of username + password
};

struct DeploySpec {
  std::string deployment_id;  // payload deployment_id, else the command_id
  std::string command_id;
  std::string template_id = "custom";  // from template_id or template_type
  std::string user_id = "unknown";
  std::string image = "ubuntu:22.04";
  std::string container_name_hint;  // informational; the container is deployment-<id>
  std::string restart_policy = "unless-stopped";
  int duration_minutes = 60;
  struct Port {
    int advertised_host_port = 0;  // the payload's key; advisory only
    int container_port = 0;
  };
  std::vector<Port> ports;  // payload order (object key order as received)
  std::vector<std::pair<std::string, std::string>> env;      // sorted by name, reserved dropped
  std::vector<std::pair<std::string, std::string>> volumes;  // host path, container path
  std::optional<std::string> command;                        // run as sh -c <command>
  int gpu_count = 1;
  std::vector<std::string> gpu_uuids;  // when given, gpu_count == gpu_uuids.size()
  std::optional<int64_t> memory_limit_mb;
  std::optional<double> cpu_limit;
  std::optional<int64_t> shm_size_mb;
  std::optional<std::string> ssh_public_key;
  std::optional<double> price_per_hour;
  std::string ssh_username = "gpu-user";             // environment.SSH_USERNAME when valid
  std::optional<RegistryCredentials> registry_auth;  // never persisted
  std::optional<int64_t> disk_mb;  // ext: writable layer + volumes, within the host's quota
  // What admission granted (not from the payload; 0 = not recorded, rows from before): the
  // memory and CPU limits the rental counts against the host's totals, and its disk quota.
  int64_t admitted_memory_bytes = 0;
  int64_t admitted_nano_cpus = 0;
  int64_t admitted_disk_mb = 0;
};

struct ValidationLimits {
  int max_duration_minutes = 10080;
  int max_ports = 8;
  std::vector<std::string> allowed_volume_roots;  // empty = host volumes disabled
  size_t max_env_vars = 128;
  size_t max_env_value_bytes = 32768;
  size_t max_command_bytes = 16384;
  int max_gpus = 8;
  int64_t max_disk_mb = 0;  // the host's disk quota per rental; 0 = not bounded here
};

// Limits from the operator's `deployment:` config; max_gpus is the host's GPU count (or a
// smaller number the caller chooses). Free-GPU checks happen when GPUs are claimed.
ValidationLimits ValidationLimitsFromConfig(const config::DeploymentConfig& cfg, int max_gpus);

// Env names the agent always sets itself; a payload's values for them are dropped.
const std::vector<std::string>& ReservedEnvNames();

// Parses and validates a deploy payload. Unknown keys are ignored; JSON null counts as absent.
// Errors are InvalidArgument with a reason naming the field, e.g.
// "image: must not start with '-'".
Result<DeploySpec> ParseDeployPayload(const std::string& command_id,
                                      const std::string& payload_json,
                                      const ValidationLimits& limits);

// Persisted form of a validated spec (JSON text, round-trips exactly). Holds no secrets
// (the SSH public key is public).
std::string SpecToJson(const DeploySpec& spec);
Result<DeploySpec> SpecFromJson(const std::string& json_text);

struct TerminateSpec {
  std::string deployment_id;  // a deployment id or the deploy's command_id
  std::string reason = "user_requested";
};
// deployment_id: required, non-empty string (an integer is accepted and converted), at most
// 256 bytes, no control characters. reason: optional; scalars are converted to text, control
// characters become spaces, it is cut to 1024 bytes, and an array/object or empty reason
// leaves the default (a terminate is never refused for its reason).
Result<TerminateSpec> ParseTerminatePayload(const std::string& payload_json);

// [A-Za-z_][A-Za-z0-9_]*
bool IsValidEnvName(std::string_view name);
// Every NVIDIA_* name except NVIDIA_DISABLE_REQUIRE and NVIDIA_REQUIRE_*: these switch the NVIDIA
// container toolkit (which GPUs, MIG, IMEX channels, MOFED/InfiniBand, GDS, NVSwitch, GDRCopy
// devices it injects) or are set by the agent for every rental; a payload that sets one is
// refused. The allowed two only tighten or skip the toolkit's driver-version requirement check.
bool IsRefusedNvidiaEnv(std::string_view name);
// A container path under which the NVIDIA container toolkit reads device requests from mounts
// ("visible devices as volume mounts": /var/run/nvidia-container-devices/<device>), or the same
// under /run (/var/run is a link to it in most images). The path is normalised lexically first
// ("//", ".", "..", a trailing '/'), and compared as a string prefix, as the toolkit does, so
// "/run/nvidia-container-devicesX" counts too.
bool IsNvidiaDeviceMountTarget(std::string_view container_path);
// ^[a-z_][a-z0-9_-]{0,31}$ and not "root".
bool IsValidUserName(std::string_view name);
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ (the id becomes part of the container name).
bool IsValidDeploymentId(std::string_view id);

}  // namespace taolie::rules
