// The create spec is pure: every env, label, port, GPU and bound comes from the deployment.
#include "engine/container_spec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace taolie::engine {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// A rental `id` of agent-1 with default spec and config, for tests that set only a few fields.
struct Rental {
  explicit Rental(const std::string& id) {
    d.id = id;
    d.container_name = ContainerName(id);
    in.deployment = &d;
    in.spec = &spec;
    in.agent_id = "agent-1";
    in.deployment_cfg = &dc;
  }
  Rental(const Rental&) = delete;
  Rental& operator=(const Rental&) = delete;
  domain::Deployment d;
  rules::DeploySpec spec;
  config::DeploymentConfig dc;
  ContainerSpecInput in;
};

TEST(ContainerSpec, EnvLabelsPortsGpusAndBounds) {
  domain::Deployment d;
  d.id = "d1";
  d.command_id = "cmd-1";
  d.image = "registry.local/sshd:1";
  d.container_name = ContainerName("d1");
  d.gpu_uuids = {"GPU-a", "GPU-b"};
  d.ports = {{22022, 22, "ssh"}, {28888, 8888, "rental_port_1"}};
  d.duration_minutes = 90;
  d.ssh_username = "gpu-user";
  d.ssh_password = "pw";
  d.jupyter_token = "tok";
  d.expires_at = SystemTime(std::chrono::seconds(1'700'000'000));
  rules::DeploySpec spec;
  spec.env = {{"FOO", "bar"}};
  spec.volumes = {{"/data/x", "/workspace"}};
  spec.restart_policy = "no";
  spec.command = "sleep 1";
  config::DeploymentConfig dc;
  dc.log_max_size_mb = 10;
  dc.log_max_files = 2;
  ContainerSpecInput in;
  in.deployment = &d;
  in.spec = &spec;
  in.limits = rules::ResourceLimits{1 << 30, 2'000'000'000, 1 << 26, 512};
  in.agent_id = "agent-1";
  in.deployment_cfg = &dc;
  in.bind_ip = "0.0.0.0";

  docker::ContainerSpec c = BuildContainerSpec(in);
  EXPECT_EQ(c.name, "deployment-d1");
  EXPECT_EQ(c.image, "registry.local/sshd:1");
  EXPECT_TRUE(Has(c.env, "FOO=bar"));
  EXPECT_TRUE(Has(c.env, "DEPLOYMENT_ID=d1"));
  EXPECT_TRUE(Has(c.env, "SSH_PASSWORD=pw"));
  EXPECT_TRUE(Has(c.env, "JUPYTER_TOKEN=tok"));
  EXPECT_TRUE(Has(c.env, "DEPLOYMENT_EXPIRES_AT=2023-11-14T22:13:20.000000Z"));
  EXPECT_EQ(c.labels.at(kLabelAgent), "agent-1");
  EXPECT_EQ(c.labels.at(kLabelDeployment), "d1");
  EXPECT_EQ(c.labels.at(kLabelCommand), "cmd-1");
  EXPECT_EQ(c.labels.at(kLabelGpus), "GPU-a,GPU-b");
  EXPECT_EQ(c.labels.at(kLabelDuration), "90");
  EXPECT_EQ(c.labels.at(kLabelExpires), "2023-11-14T22:13:20.000000Z");
  ASSERT_EQ(c.ports.size(), 2u);
  // 0.0.0.0 explicitly: an empty HostIp makes Docker publish on [::] too, where the IPv4
  // firewall (rental_allowed_sources) does not apply.
  EXPECT_EQ(c.ports[0].host_ip, "0.0.0.0");
  EXPECT_EQ(c.ports[0].host_port, 22022);
  EXPECT_EQ(c.gpu_uuids, d.gpu_uuids);
  EXPECT_TRUE(c.binds.empty());  // Binds would create a missing host path
  ASSERT_EQ(c.mounts.size(), 1u);
  EXPECT_EQ(c.mounts[0].source, "/data/x");
  EXPECT_EQ(c.mounts[0].target, "/workspace");
  EXPECT_FALSE(c.mounts[0].read_only);
  EXPECT_EQ(*c.cmd, (std::vector<std::string>{"sh", "-c", "sleep 1"}));
  EXPECT_EQ(c.restart_policy, "no");
  EXPECT_EQ(c.memory_bytes, 1 << 30);
  EXPECT_EQ(c.pids_limit, 512);
  EXPECT_EQ(c.log_max_size, "10m");
  EXPECT_EQ(c.log_max_file, "2");

  in.bind_ip = "127.0.0.1";
  EXPECT_EQ(BuildContainerSpec(in).ports[0].host_ip, "127.0.0.1");

  // The disk quota bounds the writable layer only where the driver has StorageOpt.
  EXPECT_EQ(c.storage_size_bytes, 0);
  spec.admitted_disk_mb = 4096;
  EXPECT_EQ(BuildContainerSpec(in).storage_size_bytes, 0);
  in.storage_opt = true;
  EXPECT_EQ(BuildContainerSpec(in).storage_size_bytes, int64_t{4096} << 20);

  // The GPUs the rental claimed, and what the driver exposes; NET_RAW and MKNOD dropped.
  EXPECT_TRUE(Has(c.env, "NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b"));
  EXPECT_TRUE(Has(c.env, "NVIDIA_DRIVER_CAPABILITIES=compute,utility"));
  EXPECT_EQ(c.cap_drop, (std::vector<std::string>{"NET_RAW", "MKNOD"}));
  EXPECT_TRUE(c.cap_add.empty());
  EXPECT_EQ(c.labels.at(kLabelPrice), "");  // no price: written empty, so no image's survives
}

// Issue 17 item 3: every taolie.* label is written on every container, "" for none, so that
// an image's LABEL never survives (Docker puts the container's labels over the image's).
TEST(ContainerSpec, EveryAgentLabelIsWrittenEmptyWhenNone) {
  Rental r("d3");  // no GPUs, no deadline yet, no price, no command id
  r.d.duration_minutes = 5;
  docker::ContainerSpec c = BuildContainerSpec(r.in);
  const std::map<std::string, std::string> want = {
      {kLabelManaged, "true"}, {kLabelAgent, "agent-1"}, {kLabelDeployment, "d3"},
      {kLabelCommand, ""},     {kLabelGpus, ""},         {kLabelDuration, "5"},
      {kLabelExpires, ""},     {kLabelPrice, ""}};
  EXPECT_EQ(c.labels, want);
  for (const char* label : kAgentLabels) EXPECT_EQ(c.labels.count(label), 1u) << label;
  // By name, as the README documents them.
  for (const char* name :
       {"taolie.managed", "taolie.agent_id", "taolie.deployment_id", "taolie.command_id",
        "taolie.gpus", "taolie.duration_minutes", "taolie.expires_at", "taolie.price_per_hour"}) {
    EXPECT_EQ(c.labels.count(name), 1u) << name;
  }
}

// Issue 17 item 2: the NVIDIA container toolkit's device switches are turned off on every
// rental, whatever the image's ENV (a container's env overrides its image's), and a stored spec
// from before the payload rule cannot bring one back.
TEST(ContainerSpec, ToolkitDeviceSwitchesAreAlwaysNeutralised) {
  Rental r("d4");
  r.d.gpu_uuids = {"GPU-a"};
  r.spec.env = {{"NVIDIA_GDS", "enabled"},
                {"NVIDIA_MOFED", "enabled"},
                {"NVIDIA_REQUIRE_CUDA", "cuda>=12.0"},
                {"NVIDIA_VISIBLE_DEVICES", "all"}};
  docker::ContainerSpec c = BuildContainerSpec(r.in);
  for (const char* want :
       {"NVIDIA_MOFED=disabled", "NVIDIA_NVSWITCH=disabled", "NVIDIA_GDS=disabled",
        "NVIDIA_GDRCOPY=disabled", "NVIDIA_IMEX_CHANNELS=", "NVIDIA_VISIBLE_DEVICES=GPU-a",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.0"}) {
    EXPECT_TRUE(Has(c.env, want)) << want;
  }
  for (const char* gone :
       {"NVIDIA_GDS=enabled", "NVIDIA_MOFED=enabled", "NVIDIA_VISIBLE_DEVICES=all"}) {
    EXPECT_FALSE(Has(c.env, gone)) << gone;
  }
  // Each NVIDIA_* name once: nothing for Docker to pick between.
  std::map<std::string, int> count;
  for (const auto& e : c.env) count[e.substr(0, e.find('='))]++;
  for (const auto& [name, n] : count) EXPECT_EQ(n, 1) << name;
}

TEST(ContainerSpec, CpuOnlyRentalsSeeNoGpuAndTheOwnerMayGiveBackCapabilities) {
  Rental r("d2");
  r.d.price_per_hour = 1.25;
  r.dc.cap_add = {"NET_RAW", "SYS_NICE"};
  r.dc.nvidia_driver_capabilities = "compute,utility,video";
  docker::ContainerSpec c = BuildContainerSpec(r.in);
  EXPECT_TRUE(Has(c.env, "NVIDIA_VISIBLE_DEVICES=void"));
  EXPECT_TRUE(Has(c.env, "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"));
  EXPECT_TRUE(c.gpu_uuids.empty());
  EXPECT_EQ(c.cap_drop, std::vector<std::string>{"MKNOD"});
  EXPECT_EQ(c.cap_add, std::vector<std::string>{"SYS_NICE"});
  EXPECT_EQ(c.labels.at(kLabelPrice), "1.25");
  EXPECT_FALSE(c.network_mode.has_value());  // no network given: Docker's default

  r.in.network = "taolie-rentals";
  EXPECT_EQ(BuildContainerSpec(r.in).network_mode, "taolie-rentals");
}

}  // namespace
}  // namespace taolie::engine
