#pragma once
// DockerClient seam: the Docker Engine API operations the agent uses. EngineDockerClient
// implements it over the unix socket with libcurl.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "common/result.h"

namespace taolie::docker {

struct PortBinding {
  int container_port = 0;
  std::string protocol = "tcp";
  std::string host_ip;  // "" = all interfaces
  int host_port = 0;
};

// A bind mount through HostConfig.Mounts: unlike Binds, a missing source is an error, never
// created (BindOptions.CreateMountpoint false).
struct BindMount {
  std::string source;  // host path, canonical
  std::string target;  // container path
  bool read_only = false;
};

struct ContainerSpec {
  std::string name;  // "deployment-<id>"
  std::string image;
  std::vector<std::string> env;  // "KEY=value"
  std::map<std::string, std::string> labels;
  std::optional<std::vector<std::string>> cmd;    // overrides the image's CMD when set
  std::string restart_policy = "unless-stopped";  // no | on-failure | unless-stopped | always
  std::vector<PortBinding> ports;
  std::vector<std::string> gpu_uuids;  // DeviceRequests driver "nvidia", DeviceIDs = these
  std::vector<std::string> binds;      // "host:container[:ro]"
  std::vector<BindMount> mounts;       // HostConfig.Mounts, Type "bind"
  int64_t memory_bytes = 0;            // 0 = unlimited
  int64_t nano_cpus = 0;
  int64_t shm_size_bytes = 0;
  int64_t pids_limit = 0;
  // HostConfig.StorageOpt "size": a hard bound on the writable layer, where the storage driver
  // supports it (overlay2 on xfs with pquota, btrfs, zfs); 0 = none. A driver without it makes
  // the create fail (IsStorageOptUnsupported).
  int64_t storage_size_bytes = 0;
  std::string log_max_size;  // json-file log-opts, e.g. "50m"
  std::string log_max_file;  // e.g. "3"
  bool no_new_privileges = false;
  std::vector<std::string> cap_drop;
  std::vector<std::string> cap_add;
  std::string runtime;                      // "" = default
  std::optional<std::string> network_mode;  // "" = default bridge
  std::vector<std::string> extra_hosts;
};

struct ContainerInfo {
  std::string id;
  std::string name;  // without leading '/'
  std::string image;
  std::string image_id;  // "sha256:..." (ImageID), only from List
  std::string state;     // created | running | paused | restarting | removing | exited | dead
  bool running = false;
  int exit_code = 0;
  bool oom_killed = false;
  std::string started_at;  // as the engine reports it (RFC 3339)
  std::string finished_at;
  std::map<std::string, std::string> labels;
  std::vector<PortBinding> ports;               // what the engine actually bound
  std::vector<std::string> env;                 // only from Inspect
  bool privileged = false;                      // only from Inspect
  std::vector<std::string> device_request_ids;  // GPU UUIDs requested, only from Inspect
};

// Credentials for one pull of a private image (X-Registry-Auth). Secret: never logged, never
// stored.
struct RegistryAuth {
  std::string username;
  std::string password;
  std::string identity_token;  // instead of username/password (OAuth refresh token)
  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

// One local image (GET /images/json).
struct ImageInfo {
  std::string id;                      // "sha256:..."
  std::vector<std::string> repo_tags;  // "repo:tag"; empty for a dangling image
  int64_t created = 0;                 // unix seconds
  int64_t size = 0;                    // bytes
};

// One line of the engine's pull stream. Per layer (id = the layer's short digest): "Pulling fs
// layer", "Waiting", "Downloading" (current/total bytes), "Verifying Checksum", "Download
// complete", "Extracting" (current/total), "Pull complete", "Already exists". Lines about the
// whole image ("Pulling from repo" with the tag as id, "Digest: ...", "Status: ...") too.
struct PullProgress {
  std::string id;      // the layer's id ("" for a line with none)
  std::string status;  // engine's status, e.g. "Downloading"
  int64_t current = 0;
  int64_t total = 0;
};

struct ExecResult {
  int exit_code = 0;
  std::string output;  // combined stdout+stderr, truncated to a few KiB
};

struct VersionInfo {
  std::string version;      // "20.10.24"
  std::string api_version;  // "1.41"
  std::string os;
  std::string root_dir;        // DockerRootDir from /info ("" if unknown)
  std::string cgroup_driver;   // CgroupDriver from /info: "systemd" | "cgroupfs" ("" if unknown)
  std::string cgroup_version;  // CgroupVersion from /info: "1" | "2" ("" if unknown)
};

// A user-defined bridge network (POST /networks/create).
struct NetworkSpec {
  std::string name;
  std::string bridge_name;  // the host interface (com.docker.network.bridge.name), <= 15 chars
  std::string subnet;       // IPv4 CIDR for IPAM
  bool enable_icc = false;  // traffic between the network's containers
  std::map<std::string, std::string> labels;
};

struct NetworkInfo {
  std::string id;
  std::string name;
  std::string driver;
  bool enable_ipv6 = false;
  bool internal = false;
  std::vector<std::string> subnets;   // IPAM.Config[].Subnet
  std::vector<std::string> gateways;  // IPAM.Config[].Gateway ("" when the engine chose none)
  std::map<std::string, std::string> options;
  std::map<std::string, std::string> labels;
};

class DockerClient {
 public:
  virtual ~DockerClient() = default;
  virtual Result<VersionInfo> Version() = 0;
  virtual Result<bool> ImageExists(const std::string& image) = 0;
  // Pulls `image` (with tag/digest); `progress` may be empty; honours `stop`. `auth`, when
  // not empty, is sent for this pull only.
  virtual Status Pull(const std::string& image,
                      const std::function<void(const PullProgress&)>& progress,
                      std::stop_token stop, const RegistryAuth& auth = {}) = 0;
  virtual Result<std::string> Create(const ContainerSpec& spec) = 0;  // returns container id
  virtual Status Start(const std::string& id) = 0;
  // SIGTERM, wait up to `grace`, then SIGKILL. Not running = OK.
  virtual Status Stop(const std::string& id, std::chrono::seconds grace) = 0;
  virtual Status Kill(const std::string& id, const std::string& signal) = 0;
  // force = kill if running; volumes = remove anonymous volumes. NotFound when absent.
  virtual Status Remove(const std::string& id, bool force) = 0;
  virtual Result<ContainerInfo> Inspect(const std::string& id_or_name) = 0;  // NotFound when absent
  // Containers (all states) carrying every label in `labels` ("key" or "key=value" match).
  virtual Result<std::vector<ContainerInfo>> List(
      const std::map<std::string, std::string>& labels) = 0;
  // The writable layer size (bytes) of each container carrying `labels`, by id: one
  // GET /containers/json?size=true for all (the engine walks every layer: seconds, not ms).
  virtual Result<std::map<std::string, int64_t>> WritableLayerSizes(
      const std::map<std::string, std::string>& labels) = 0;
  // Runs `cmd` in the container as root and waits (bounded by `timeout`).
  virtual Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                                  std::chrono::seconds timeout) = 0;
  // Every local image (top-level, not intermediate layers).
  virtual Result<std::vector<ImageInfo>> ListImages() = 0;
  // Removes image `id_or_ref` (never forced; a reference untags, its last tag deletes):
  // FailedPrecondition while a container uses it or (by id) it has several tags (409),
  // NotFound when absent.
  virtual Status RemoveImage(const std::string& id_or_ref) = 0;
  // NotFound when no network has this name or id.
  virtual Result<NetworkInfo> InspectNetwork(const std::string& name) = 0;
  // A bridge network without IPv6; returns its id. AlreadyExists when the name is taken.
  virtual Result<std::string> CreateNetwork(const NetworkSpec& spec) = 0;
  // NotFound when absent; FailedPrecondition while containers are attached.
  virtual Status RemoveNetwork(const std::string& name) = 0;
};

}  // namespace taolie::docker
