// Table-driven tests of the pure rental rules: deploy payload validation, port policy,
// billing and resource limits.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "rules/billing.h"
#include "rules/deploy_spec.h"
#include "rules/limits.h"
#include "rules/port_policy.h"

namespace taolie::rules {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

ValidationLimits TestLimits() {
  ValidationLimits l;
  l.allowed_volume_roots = {"/data", "/srv/shared/"};
  l.max_env_vars = 4;
  l.max_env_value_bytes = 64;
  l.max_command_bytes = 32;
  l.max_gpus = 4;
  return l;
}

Result<DeploySpec> Parse(const std::string& payload, const ValidationLimits& l = TestLimits()) {
  return ParseDeployPayload("cmd-1", payload, l);
}

// ---- deploy payload: accepted -----------------------------------------------------------

TEST(DeployPayload, DefaultsForEmptyObject) {
  auto s = Parse("{}");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->deployment_id, "cmd-1");
  EXPECT_EQ(s->command_id, "cmd-1");
  EXPECT_EQ(s->template_id, "custom");
  EXPECT_EQ(s->user_id, "unknown");
  EXPECT_EQ(s->image, "ubuntu:22.04");
  EXPECT_EQ(s->restart_policy, "unless-stopped");
  EXPECT_EQ(s->duration_minutes, 60);
  EXPECT_TRUE(s->ports.empty());
  EXPECT_TRUE(s->env.empty());
  EXPECT_TRUE(s->volumes.empty());
  EXPECT_FALSE(s->command.has_value());
  EXPECT_EQ(s->gpu_count, 1);
  EXPECT_EQ(s->ssh_username, "gpu-user");
  EXPECT_FALSE(s->price_per_hour.has_value());
}

TEST(DeployPayload, FullPayload) {
  ValidationLimits limits = TestLimits();
  limits.max_env_vars = 16;
  auto s = Parse(R"({
    "deployment_id": "dep-42", "template_type": "pytorch", "user_id": 7,
    "image": "registry.example.com:5000/team/py_torch:2.1-cuda@sha256:)" +
                     std::string(64, 'a') + R"(",
    "container_name": "my-box", "restart_policy": "no", "duration_minutes": "120",
    "ports": {"2222": 22, "8888": "8888", "9999": 6006},
    "environment": {"ZED": "z", "ALPHA": 1, "FLAG": true, "SSH_USERNAME": "alice",
                    "NVIDIA_REQUIRE_CUDA": "cuda>=12.0",
                    "SSH_PASSWORD": "mine", "DEPLOYMENT_ID": "x", "AUTHORIZED_KEYS": "k"},
    "volumes": {"/data/user7": "/workspace", "/srv/shared": "/mnt/shared"},
    "command": "sleep infinity",
    "gpu_uuids": ["GPU-1234abcd-0000-1111", "MIG-abc-1"],
    "memory_limit_mb": 4096, "cpu_limit": 2.5, "shm_size_mb": "512",
    "ssh_public_key": "ssh-ed25519 AAAAC3Nz alice@laptop\n# comment\r\necdsa-sha2-nistp256 AAAA b\n",
    "price_per_hour": 1.5, "something_new": {"ignored": true}
  })",
                 limits);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->deployment_id, "dep-42");
  EXPECT_EQ(s->command_id, "cmd-1");
  EXPECT_EQ(s->template_id, "pytorch");
  EXPECT_EQ(s->user_id, "7");
  EXPECT_EQ(s->container_name_hint, "my-box");
  EXPECT_EQ(s->restart_policy, "no");
  EXPECT_EQ(s->duration_minutes, 120);
  ASSERT_EQ(s->ports.size(), 3u);  // payload order, not sorted
  EXPECT_EQ(s->ports[0].advertised_host_port, 2222);
  EXPECT_EQ(s->ports[0].container_port, 22);
  EXPECT_EQ(s->ports[1].container_port, 8888);
  EXPECT_EQ(s->ports[2].advertised_host_port, 9999);
  EXPECT_EQ(s->ports[2].container_port, 6006);
  std::vector<std::pair<std::string, std::string>> env = {
      {"ALPHA", "1"}, {"FLAG", "true"}, {"NVIDIA_REQUIRE_CUDA", "cuda>=12.0"}, {"ZED", "z"}};
  EXPECT_EQ(s->env, env);  // sorted, reserved names dropped
  EXPECT_EQ(s->ssh_username, "alice");
  ASSERT_EQ(s->volumes.size(), 2u);
  EXPECT_EQ(s->volumes[0], (std::pair<std::string, std::string>{"/data/user7", "/workspace"}));
  EXPECT_EQ(s->command, "sleep infinity");
  EXPECT_EQ(s->gpu_count, 2);
  EXPECT_EQ(s->gpu_uuids.size(), 2u);
  EXPECT_EQ(s->memory_limit_mb, 4096);
  EXPECT_EQ(s->cpu_limit, 2.5);
  EXPECT_EQ(s->shm_size_mb, 512);
  EXPECT_TRUE(s->ssh_public_key.has_value());
  EXPECT_EQ(s->price_per_hour, 1.5);
}

TEST(DeployPayload, RegistryAuthIsParsedButNeverPersisted) {
  auto s = Parse(R"({"registry_auth": {"username": "u", "password": "p4ss-secret"}})");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_TRUE(s->registry_auth.has_value());
  EXPECT_EQ(s->registry_auth->username, "u");
  EXPECT_EQ(s->registry_auth->password, "p4ss-secret");
  EXPECT_EQ(SpecToJson(*s).find("p4ss-secret"), std::string::npos);
  EXPECT_EQ(SpecToJson(*s).find("registry_auth"), std::string::npos);
  auto t = Parse(R"({"registry_auth": {"identitytoken": "tok-123"}})");
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  EXPECT_EQ(t->registry_auth->identity_token, "tok-123");
}

TEST(DeployPayload, BadRegistryAuthIsRefusedWithoutEchoingTheSecret) {
  for (const char* bad :
       {R"({"registry_auth": "user:secret-xyz"})", R"({"registry_auth": {"username": "u"}})",
        R"({"registry_auth": {"password": "secret-xyz"}})",
        R"({"registry_auth": {"username": "u", "password": "secret-xyz", "identitytoken": "t"}})",
        R"({"registry_auth": {"username": "u", "password": 5}})",
        R"({"registry_auth": {"username": "u", "password": "secret-xyz\u0007"}})",
        R"({"registry_auth": {"username": "u", "password": "secret-xyz", "email": "e"}})",
        R"({"registry_auth": {}})"}) {
    auto s = Parse(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message.rfind("registry_auth", 0), 0u) << bad << ": " << s.error().message;
    EXPECT_EQ(s.error().message.find("secret-xyz"), std::string::npos) << s.error().message;
  }
}

TEST(DeployPayload, TemplateIdWinsOverTemplateType) {
  auto s = Parse(R"({"template_id": "a", "template_type": "b"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->template_id, "a");
}

TEST(DeployPayload, NullMeansAbsentAndBlankCommandMeansImageDefault) {
  auto s = Parse(R"({"image": null, "ports": null, "duration_minutes": null, "command": ""})");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->image, "ubuntu:22.04");
  EXPECT_EQ(s->duration_minutes, 60);
  EXPECT_FALSE(s->command.has_value());
}

TEST(DeployPayload, SshUsernameFallsBackWhenInvalid) {
  struct Case {
    const char* value;
    const char* expected;
  };
  for (const Case& c : std::vector<Case>{{"root", "gpu-user"},
                                         {"Alice", "gpu-user"},
                                         {"1abc", "gpu-user"},
                                         {"a b", "gpu-user"},
                                         {"_svc-1", "_svc-1"},
                                         {"bob", "bob"}}) {
    auto s = Parse(std::string(R"({"environment": {"SSH_USERNAME": ")") + c.value + "\"}}");
    ASSERT_TRUE(s.ok()) << c.value;
    EXPECT_EQ(s->ssh_username, c.expected) << c.value;
    EXPECT_TRUE(s->env.empty());
  }
}

TEST(DeployPayload, GpuCountZeroAllowedAndMatchingUuids) {
  auto a = Parse(R"({"gpu_count": 0})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->gpu_count, 0);
  auto b = Parse(R"({"gpu_count": 1, "gpu_uuids": ["GPU-abc"]})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->gpu_count, 1);
  auto c = Parse(R"({"gpu_count": 3.0})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->gpu_count, 3);
}

// ---- deploy payload: rejected -----------------------------------------------------------

struct RejectCase {
  const char* name;
  std::string payload;
  std::string reason_contains;
};

class DeployRejects : public ::testing::TestWithParam<RejectCase> {};

TEST_P(DeployRejects, InvalidArgumentNamingTheField) {
  const auto& c = GetParam();
  auto s = Parse(c.payload);
  ASSERT_FALSE(s.ok()) << c.name;
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument) << c.name;
  EXPECT_NE(s.error().message.find(c.reason_contains), std::string::npos)
      << c.name << ": got '" << s.error().message << "'";
}

std::string Big(size_t n) { return std::string(n, 'x'); }

INSTANTIATE_TEST_SUITE_P(
    Table, DeployRejects,
    ::testing::Values(
        RejectCase{"not_json", "{", "payload: is not valid JSON"},
        RejectCase{"array", "[1,2]", "payload: must be a JSON object"},
        RejectCase{"string", R"("deploy")", "payload: must be a JSON object"},
        RejectCase{"image_flag", R"({"image": "--privileged"})", "image: must not start with '-'"},
        RejectCase{"image_space", R"({"image": "ubuntu 22.04"})",
                   "image: must not contain whitespace"},
        RejectCase{"image_newline", R"({"image": "ubuntu\n"})",
                   "image: must not contain whitespace"},
        RejectCase{"image_upper", R"({"image": "Library/Ubuntu:22.04"})", "image:"},
        RejectCase{"image_upper_repo", R"({"image": "docker.io/Ubuntu"})",
                   "image: repository name must be lowercase"},
        RejectCase{"image_empty", R"({"image": ""})", "image: must not be empty"},
        RejectCase{"image_number", R"({"image": 5})", "image: must be a string"},
        RejectCase{"image_bad_digest", R"({"image": "ubuntu@sha256:abc"})", "image: digest"},
        RejectCase{"image_bad_tag", R"({"image": "ubuntu:.bad"})", "image: tag"},
        RejectCase{"image_double_dot", R"({"image": "a..b"})", "image: repository path component"},
        RejectCase{"image_too_long", "{\"image\": \"" + Big(256) + "\"}",
                   "image: is longer than 255"},
        RejectCase{"duration_big", R"({"duration_minutes": 100000})",
                   "duration_minutes: 100000 is above the maximum 10080"},
        RejectCase{"duration_zero", R"({"duration_minutes": 0})",
                   "duration_minutes: 0 is below the minimum 1"},
        RejectCase{"duration_negative", R"({"duration_minutes": "-5"})",
                   "duration_minutes: -5 is below the minimum 1"},
        RejectCase{"duration_fraction", R"({"duration_minutes": 1.5})",
                   "duration_minutes: must be a whole number"},
        RejectCase{"duration_bool", R"({"duration_minutes": true})",
                   "duration_minutes: must be a whole number"},
        RejectCase{"duration_text", R"({"duration_minutes": "1h"})",
                   "duration_minutes: '1h' is not a whole number"},
        RejectCase{"duration_huge", R"({"duration_minutes": 99999999999999999999})",
                   "duration_minutes:"},
        RejectCase{"port_zero", R"({"ports": {"8888": 0}})",
                   "ports: container port 0 is out of range 1-65535"},
        RejectCase{"port_70000", R"({"ports": {"8888": 70000}})",
                   "ports: container port 70000 is out of range 1-65535"},
        RejectCase{"port_text", R"({"ports": {"8888": "http"}})",
                   "ports: container port for '8888'"},
        RejectCase{"port_key_text", R"({"ports": {"web": 80}})",
                   "ports: advertised host port 'web'"},
        RejectCase{"port_key_big", R"({"ports": {"70000": 80}})",
                   "ports: advertised host port '70000'"},
        RejectCase{"port_dup", R"({"ports": {"1": 80, "2": "80"}})",
                   "ports: container port 80 is listed more than once"},
        RejectCase{"ports_too_many",
                   R"({"ports": {"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9}})",
                   "ports: 9 ports requested, at most 8 allowed"},
        RejectCase{"ports_array", R"({"ports": [22]})", "ports: must be an object"},
        RejectCase{"env_equals", R"({"environment": {"A=B": "x"}})",
                   "environment: invalid name 'A=B'"},
        RejectCase{"env_nvidia_devices", R"({"environment": {"NVIDIA_VISIBLE_DEVICES": "all"}})",
                   "environment: 'NVIDIA_VISIBLE_DEVICES' is not allowed"},
        RejectCase{"env_nvidia_caps", R"({"environment": {"NVIDIA_DRIVER_CAPABILITIES": "all"}})",
                   "environment: 'NVIDIA_DRIVER_CAPABILITIES' is not allowed"},
        RejectCase{"env_nvidia_mig", R"({"environment": {"NVIDIA_MIG_CONFIG_DEVICES": "all"}})",
                   "environment: 'NVIDIA_MIG_CONFIG_DEVICES' is not allowed"},
        // The NVIDIA container toolkit's device switches (issue 17 item 2).
        RejectCase{"env_nvidia_mofed", R"({"environment": {"NVIDIA_MOFED": "enabled"}})",
                   "environment: 'NVIDIA_MOFED' is not allowed: NVIDIA_* variables are the "
                   "agent's"},
        RejectCase{"env_nvidia_gds", R"({"environment": {"NVIDIA_GDS": "enabled"}})",
                   "environment: 'NVIDIA_GDS' is not allowed"},
        RejectCase{"env_nvidia_nvswitch", R"({"environment": {"NVIDIA_NVSWITCH": "enabled"}})",
                   "environment: 'NVIDIA_NVSWITCH' is not allowed"},
        RejectCase{"env_nvidia_gdrcopy", R"({"environment": {"NVIDIA_GDRCOPY": "enabled"}})",
                   "environment: 'NVIDIA_GDRCOPY' is not allowed"},
        RejectCase{"env_nvidia_imex", R"({"environment": {"NVIDIA_IMEX_CHANNELS": "0"}})",
                   "environment: 'NVIDIA_IMEX_CHANNELS' is not allowed"},
        RejectCase{"env_nvidia_unknown", R"({"environment": {"NVIDIA_SOMETHING_NEW": "x"}})",
                   "only NVIDIA_DISABLE_REQUIRE and NVIDIA_REQUIRE_* may be set"},
        RejectCase{"env_nvidia_bare_prefix", R"({"environment": {"NVIDIA_": "x"}})",
                   "environment: 'NVIDIA_' is not allowed"},
        RejectCase{"env_digit", R"({"environment": {"1A": "x"}})",
                   "environment: invalid name '1A'"},
        RejectCase{"env_empty_name", R"({"environment": {"": "x"}})",
                   "environment: invalid name ''"},
        RejectCase{"env_object_value", R"({"environment": {"A": {"b": 1}}})",
                   "environment: value of 'A' must be a string"},
        RejectCase{"env_null_value", R"({"environment": {"A": null}})",
                   "environment: value of 'A' must be a string"},
        RejectCase{"env_nul", R"({"environment": {"A": "x\u0000y"}})",
                   "environment: value of 'A' contains a NUL"},
        RejectCase{"env_long", "{\"environment\": {\"A\": \"" + Big(65) + "\"}}",
                   "environment: value of 'A' is longer than 64"},
        RejectCase{"env_too_many", R"({"environment": {"A":"","B":"","C":"","D":"","E":""}})",
                   "environment: 5 variables, at most 4"},
        RejectCase{"volume_root", R"({"volumes": {"/": "/mnt"}})",
                   "volumes: host path '/' is not under an allowed root"},
        RejectCase{"volume_dotdot", R"({"volumes": {"/data/../etc": "/mnt"}})",
                   "volumes: host path '/data/../etc' must not contain '.' or '..'"},
        RejectCase{"volume_dot", R"({"volumes": {"/data/./x": "/mnt"}})", "volumes: host path"},
        RejectCase{"volume_prefix_trick", R"({"volumes": {"/database": "/mnt"}})",
                   "is not under an allowed root"},
        RejectCase{"volume_etc", R"({"volumes": {"/etc": "/mnt"}})",
                   "is not under an allowed root"},
        RejectCase{"volume_relative", R"({"volumes": {"data/x": "/mnt"}})",
                   "must be an absolute path"},
        RejectCase{"volume_trailing", R"({"volumes": {"/data/x/": "/mnt"}})",
                   "must not end with '/'"},
        RejectCase{"volume_double_slash", R"({"volumes": {"/data//x": "/mnt"}})",
                   "must not contain '//'"},
        RejectCase{"volume_colon", R"({"volumes": {"/data/x:/etc": "/mnt"}})",
                   "must not contain ':'"},
        RejectCase{"volume_target_root", R"({"volumes": {"/data/x": "/"}})",
                   "container path '/' is not allowed"},
        RejectCase{"volume_target_proc", R"({"volumes": {"/data/x": "/proc"}})",
                   "container path '/proc' is not allowed"},
        RejectCase{"volume_target_sys_sub", R"({"volumes": {"/data/x": "/sys/fs/cgroup"}})",
                   "is not allowed"},
        RejectCase{"volume_target_dev", R"({"volumes": {"/data/x": "/dev"}})", "is not allowed"},
        RejectCase{"volume_target_etc", R"({"volumes": {"/data/x": "/etc"}})", "is not allowed"},
        RejectCase{"volume_target_relative", R"({"volumes": {"/data/x": "mnt"}})",
                   "container path 'mnt' must be an absolute path"},
        RejectCase{"volume_target_ro_suffix", R"({"volumes": {"/data/x": "/mnt:ro"}})",
                   "must not contain ':'"},
        RejectCase{"volume_target_object", R"({"volumes": {"/data/x": {"bind": "/mnt"}}})",
                   "container path for '/data/x' must be a string"},
        RejectCase{"volume_target_nvidia_devices_run",
                   R"({"volumes": {"/data/x": "/run/nvidia-container-devices/x"}})",
                   "container path '/run/nvidia-container-devices/x' is not allowed: the NVIDIA "
                   "container toolkit"},
        RejectCase{"volume_target_nvidia_devices_var_run",
                   R"({"volumes": {"/data/x": "/var/run/nvidia-container-devices/all"}})",
                   "is not allowed: the NVIDIA container toolkit"},
        RejectCase{"volume_target_nvidia_devices_root",
                   R"({"volumes": {"/data/x": "/var/run/nvidia-container-devices"}})",
                   "is not allowed: the NVIDIA container toolkit"},
        RejectCase{"volume_target_nvidia_devices_suffix",
                   R"({"volumes": {"/data/x": "/var/run/nvidia-container-devicesGPU-1"}})",
                   "is not allowed: the NVIDIA container toolkit"},
        RejectCase{"volume_target_nvidia_devices_imex",
                   R"({"volumes": {"/data/x": "/var/run/nvidia-container-devices/imex/0"}})",
                   "is not allowed: the NVIDIA container toolkit"},
        RejectCase{"volume_target_nvidia_devices_double_slash",
                   R"({"volumes": {"/data/x": "/var/run//nvidia-container-devices"}})",
                   "container path '/var/run//nvidia-container-devices'"},
        RejectCase{"volume_dup_target", R"({"volumes": {"/data/a": "/mnt", "/data/b": "/mnt"}})",
                   "used more than once"},
        RejectCase{"restart_sometimes", R"({"restart_policy": "sometimes"})",
                   "restart_policy: 'sometimes' is not one of"},
        RejectCase{"deployment_id_traversal", R"({"deployment_id": "../x"})",
                   "deployment_id: '../x' must match"},
        RejectCase{"deployment_id_empty", R"({"deployment_id": ""})",
                   "deployment_id: '' must match"},
        RejectCase{"deployment_id_slash", R"({"deployment_id": "a/b"})", "deployment_id:"},
        RejectCase{"deployment_id_long", "{\"deployment_id\": \"" + Big(129) + "\"}",
                   "deployment_id:"},
        RejectCase{"deployment_id_object", R"({"deployment_id": {}})",
                   "deployment_id: must be a string"},
        RejectCase{"gpu_uuid_malformed", R"({"gpu_uuids": ["GPU-abc; rm -rf /"]})",
                   "gpu_uuids: 'GPU-abc; rm -rf /' is not a GPU or MIG UUID"},
        RejectCase{"gpu_uuid_prefix", R"({"gpu_uuids": ["abc"]})", "gpu_uuids: 'abc' is not a GPU"},
        RejectCase{"gpu_uuid_bare_prefix", R"({"gpu_uuids": ["GPU-"]})", "is not a GPU"},
        RejectCase{"gpu_uuid_number", R"({"gpu_uuids": [1]})",
                   "gpu_uuids: entries must be strings"},
        RejectCase{"gpu_uuid_dup", R"({"gpu_uuids": ["GPU-a", "GPU-a"]})", "listed twice"},
        RejectCase{"gpu_uuids_not_array", R"({"gpu_uuids": "GPU-a"})",
                   "gpu_uuids: must be an array"},
        RejectCase{"gpu_uuids_too_many",
                   R"({"gpu_uuids": ["GPU-a","GPU-b","GPU-c","GPU-d","GPU-e"]})", "at most 4"},
        RejectCase{"gpu_count_mismatch", R"({"gpu_count": 2, "gpu_uuids": ["GPU-a"]})",
                   "gpu_count: 2 does not match"},
        RejectCase{"gpu_count_big", R"({"gpu_count": 5})", "gpu_count: 5 is above the maximum 4"},
        RejectCase{"gpu_count_negative", R"({"gpu_count": -1})",
                   "gpu_count: -1 is below the minimum 0"},
        RejectCase{"memory_zero", R"({"memory_limit_mb": 0})",
                   "memory_limit_mb: must be a positive"},
        RejectCase{"memory_huge", R"({"memory_limit_mb": 9000000000000})",
                   "memory_limit_mb: 9000000000000 is out of range"},
        RejectCase{"shm_negative", R"({"shm_size_mb": -1})", "shm_size_mb: must be a positive"},
        RejectCase{"cpu_zero", R"({"cpu_limit": 0})", "cpu_limit: must be a positive"},
        RejectCase{"cpu_text", R"({"cpu_limit": "lots"})", "cpu_limit: 'lots' is not a number"},
        RejectCase{"price_negative", R"({"price_per_hour": -0.5})",
                   "price_per_hour: must not be negative"},
        RejectCase{"price_bool", R"({"price_per_hour": false})",
                   "price_per_hour: must be a number"},
        RejectCase{"ssh_key_garbage", R"({"ssh_public_key": "hello world"})",
                   "ssh_public_key: line 'hello world'"},
        RejectCase{"ssh_key_options", R"({"ssh_public_key": "command=\"x\" ssh-rsa AAAA"})",
                   "is not an OpenSSH public key"},
        RejectCase{"ssh_key_nul", R"({"ssh_public_key": "ssh-rsa AAAA\u0000"})",
                   "ssh_public_key: must not contain control"},
        RejectCase{"ssh_key_empty", R"({"ssh_public_key": "\n# only a comment\n"})",
                   "ssh_public_key: contains no key"},
        RejectCase{"ssh_key_long", "{\"ssh_public_key\": \"ssh-rsa " + Big(16384) + "\"}",
                   "ssh_public_key: is longer"},
        RejectCase{"command_long", "{\"command\": \"" + Big(33) + "\"}",
                   "command: is longer than 32 bytes"},
        RejectCase{"command_nul", R"({"command": "a\u0000b"})", "command: contains a NUL"},
        RejectCase{"command_array", R"({"command": ["sh", "-c", "x"]})",
                   "command: must be a string"},
        RejectCase{"user_id_control", R"({"user_id": "a\nb"})",
                   "user_id: must not contain control"},
        RejectCase{"container_name_long", "{\"container_name\": \"" + Big(256) + "\"}",
                   "container_name: is longer"}),
    [](const ::testing::TestParamInfo<RejectCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(DeployPayload, VolumesDisabledByDefault) {
  ValidationLimits l;  // allowed_volume_roots empty
  auto s = Parse(R"({"volumes": {"/data/x": "/mnt"}})", l);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("volumes: host volumes are disabled on this host"),
            std::string::npos);
  EXPECT_TRUE(Parse(R"({"volumes": {}})", l).ok());
}

TEST(DeployPayload, VolumeRootItselfAndRootSlashConfig) {
  EXPECT_TRUE(Parse(R"({"volumes": {"/data": "/mnt"}})").ok());
  EXPECT_TRUE(Parse(R"({"volumes": {"/srv/shared/x": "/etc/app"}})").ok());  // /etc/app is fine
  ValidationLimits l;
  l.allowed_volume_roots = {"/"};
  EXPECT_TRUE(Parse(R"({"volumes": {"/anything": "/mnt"}})", l).ok());
  EXPECT_FALSE(Parse(R"({"volumes": {"/": "/mnt"}})", l).ok());  // never "/" itself
}

// issue 17 item 1: validation dumps and copies parts of the payload (recursively); a payload
// nested past the limit is refused before it is parsed, at the limit it is validated as usual.
TEST(DeployPayload, NestingIsBoundedBeforeValidation) {
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  for (const char* key : {"environment", "ports", "x"}) {
    SCOPED_TRACE(key);
    auto deep = Parse(std::string(R"({"image": "busybox", ")") + key + R"(": {"A": )" +
                      nested(100000) + "}}");
    ASSERT_FALSE(deep.ok());
    EXPECT_EQ(deep.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(deep.error().message,
              "payload: JSON nested 100002 levels deep, over the limit of 64");
  }
  EXPECT_TRUE(Parse(R"({"image": "busybox", "x": )" + nested(63) + "}").ok());
  auto over = Parse(R"({"image": "busybox", "x": )" + nested(64) + "}");
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().message.find("65 levels deep"), std::string::npos);
  auto terminate =
      ParseTerminatePayload(R"({"deployment_id": "d", "reason": )" + nested(100000) + "}");
  ASSERT_FALSE(terminate.ok());
  EXPECT_NE(terminate.error().message.find("over the limit of 64"), std::string::npos);
}

TEST(DeployPayload, CommandIdMustBeUsableAsIdWhenNoDeploymentId) {
  auto bad = ParseDeployPayload("../evil", "{}", TestLimits());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("command_id: '../evil'"), std::string::npos);
  // With a deployment_id the command id is only recorded.
  auto ok = ParseDeployPayload("../evil", R"({"deployment_id": "d1"})", TestLimits());
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->deployment_id, "d1");
}

// NVIDIA_DISABLE_REQUIRE and NVIDIA_REQUIRE_* only tighten or skip the toolkit's driver
// requirement check: they stay allowed (issue 17 item 2).
TEST(DeployPayload, HarmlessNvidiaVariablesAreAccepted) {
  auto s = Parse(R"({"environment": {"NVIDIA_REQUIRE_CUDA": "cuda>=12.0 brand=tesla",
                     "NVIDIA_DISABLE_REQUIRE": "true", "NVIDIA_REQUIRE_JETPACK": "x",
                     "nvidia_gds": "lower case is another variable"}})");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  std::vector<std::pair<std::string, std::string>> env = {
      {"NVIDIA_DISABLE_REQUIRE", "true"},
      {"NVIDIA_REQUIRE_CUDA", "cuda>=12.0 brand=tesla"},
      {"NVIDIA_REQUIRE_JETPACK", "x"},
      {"nvidia_gds", "lower case is another variable"}};
  EXPECT_EQ(s->env, env);
}

TEST(DeployPayload, VolumeTargetsNextToTheToolkitsMountDirectoryAreAccepted) {
  EXPECT_TRUE(Parse(R"({"volumes": {"/data/x": "/var/run/nvidia"}})").ok());
  EXPECT_TRUE(Parse(R"({"volumes": {"/data/x": "/run/nvidia-container"}})").ok());
  EXPECT_TRUE(Parse(R"({"volumes": {"/data/x": "/mnt/run/nvidia-container-devices"}})").ok());
}

// ---- helpers -----------------------------------------------------------------------------

TEST(NvidiaEnv, RefusedUnlessAllowListed) {
  for (const char* refused :
       {"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_MIG_CONFIG_DEVICES",
        "NVIDIA_MIG_MONITOR_DEVICES", "NVIDIA_MOFED", "NVIDIA_NVSWITCH", "NVIDIA_GDS",
        "NVIDIA_GDRCOPY", "NVIDIA_IMEX_CHANNELS", "NVIDIA_", "NVIDIA_DISABLE_REQUIREX",
        "NVIDIA_REQUIRE"}) {
    EXPECT_TRUE(IsRefusedNvidiaEnv(refused)) << refused;
  }
  for (const char* allowed : {"NVIDIA_DISABLE_REQUIRE", "NVIDIA_REQUIRE_CUDA", "NVIDIA_REQUIRE_",
                              "CUDA_VISIBLE_DEVICES", "NVIDIA", "nvidia_gds", "MY_NVIDIA_GDS"}) {
    EXPECT_FALSE(IsRefusedNvidiaEnv(allowed)) << allowed;
  }
}

// Normalised before comparing, as the toolkit's filepath.Clean does.
TEST(NvidiaDeviceMountTarget, Table) {
  for (const char* hit :
       {"/var/run/nvidia-container-devices", "/var/run/nvidia-container-devices/",
        "/var/run//nvidia-container-devices", "/var/run/nvidia-container-devices/GPU-1",
        "/run/nvidia-container-devices/x", "//run///nvidia-container-devices",
        "/run/./nvidia-container-devices/all", "/tmp/../var/run/nvidia-container-devices/0",
        "/../../run/nvidia-container-devices", "/var/run/nvidia-container-devicesX",
        "var/run/nvidia-container-devices/all"}) {
    EXPECT_TRUE(IsNvidiaDeviceMountTarget(hit)) << hit;
  }
  for (const char* miss : {"/", "", "/var/run", "/run/nvidia", "/var/run/nvidia-container-device",
                           "/mnt/var/run/nvidia-container-devices",
                           "/var/run/nvidia-container-devices/../x", "/workspace"}) {
    EXPECT_FALSE(IsNvidiaDeviceMountTarget(miss)) << miss;
  }
}

TEST(EnvName, Table) {
  for (const char* ok : {"A", "_", "a_1", "PATH", "_X9"}) EXPECT_TRUE(IsValidEnvName(ok)) << ok;
  for (const char* bad : {"", "1A", "A=B", "A-B", "A B", "Ä"})
    EXPECT_FALSE(IsValidEnvName(bad)) << bad;
}

TEST(UserName, Table) {
  for (const char* ok : {"a", "_a", "gpu-user", "u_1-2"}) EXPECT_TRUE(IsValidUserName(ok)) << ok;
  for (const char* bad : {"", "root", "Alice", "-a", "1a", "a.b", "a b"}) {
    EXPECT_FALSE(IsValidUserName(bad)) << bad;
  }
  EXPECT_TRUE(IsValidUserName(std::string(32, 'a')));
  EXPECT_FALSE(IsValidUserName(std::string(33, 'a')));
}

TEST(DeploymentId, Table) {
  for (const char* ok : {"a", "0", "dep-1.2_3", "A"}) EXPECT_TRUE(IsValidDeploymentId(ok)) << ok;
  for (const char* bad : {"", "-a", ".a", "_a", "a/b", "../x", "a b", "a:b"}) {
    EXPECT_FALSE(IsValidDeploymentId(bad)) << bad;
  }
  EXPECT_TRUE(IsValidDeploymentId(std::string(128, 'a')));
  EXPECT_FALSE(IsValidDeploymentId(std::string(129, 'a')));
}

TEST(ValidationLimits, FromConfig) {
  config::DeploymentConfig cfg;
  cfg.max_duration_minutes = 30;
  cfg.max_ports = 2;
  cfg.allowed_volume_roots = {"/data"};
  auto l = ValidationLimitsFromConfig(cfg, 3);
  EXPECT_EQ(l.max_duration_minutes, 30);
  EXPECT_EQ(l.max_ports, 2);
  EXPECT_EQ(l.allowed_volume_roots, cfg.allowed_volume_roots);
  EXPECT_EQ(l.max_gpus, 3);
}

// ---- persisted spec ----------------------------------------------------------------------

TEST(SpecJson, RoundTrip) {
  auto s = Parse(R"({"deployment_id": "d9", "image": "nvcr.io/nvidia/cuda:12.2.0-base",
    "ports": {"2222": 22, "8888": 8888}, "environment": {"B": "2", "A": "1"},
    "volumes": {"/data/x": "/workspace"}, "command": "echo hi",
    "gpu_uuids": ["GPU-1"], "memory_limit_mb": 1024, "cpu_limit": 1.25,
    "ssh_public_key": "ssh-ed25519 AAAA x", "price_per_hour": 0.99, "duration_minutes": 5})");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto back = SpecFromJson(SpecToJson(*s));
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(SpecToJson(*back), SpecToJson(*s));
  EXPECT_EQ(back->deployment_id, "d9");
  EXPECT_EQ(back->ports.size(), 2u);
  EXPECT_EQ(back->ports[1].container_port, 8888);
  EXPECT_EQ(back->env, s->env);
  EXPECT_EQ(back->volumes, s->volumes);
  EXPECT_EQ(back->command, "echo hi");
  EXPECT_EQ(back->gpu_uuids, s->gpu_uuids);
  EXPECT_EQ(back->memory_limit_mb, 1024);
  EXPECT_FALSE(back->shm_size_mb.has_value());
  EXPECT_EQ(back->cpu_limit, 1.25);
  EXPECT_EQ(back->price_per_hour, 0.99);
  EXPECT_EQ(back->ssh_public_key, s->ssh_public_key);

  auto defaults = SpecFromJson(SpecToJson(DeploySpec{}));
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->command.has_value());
  EXPECT_FALSE(defaults->price_per_hour.has_value());
}

TEST(SpecJson, RejectsMalformed) {
  for (const char* bad :
       {"", "[]", "{}", R"({"version": 2})", R"({"version": 1})", R"({"version": "1"})"}) {
    auto r = SpecFromJson(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
  std::string good = SpecToJson(DeploySpec{});
  std::string broken = good;
  broken.replace(broken.find("\"duration_minutes\":60"), 21, "\"duration_minutes\":\"x\"");
  EXPECT_FALSE(SpecFromJson(broken).ok());
}

// ---- terminate ---------------------------------------------------------------------------

TEST(TerminatePayload, Accepts) {
  auto a = ParseTerminatePayload(R"({"deployment_id": "dep-1"})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->deployment_id, "dep-1");
  EXPECT_EQ(a->reason, "user_requested");
  auto b = ParseTerminatePayload(R"({"deployment_id": 17, "reason": "admin\nstop"})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->deployment_id, "17");
  EXPECT_EQ(b->reason, "admin stop");
  auto c = ParseTerminatePayload(R"({"deployment_id": "x", "reason": ")" + std::string(2000, 'r') +
                                 "\"}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->reason.size(), 1024u);
  auto d = ParseTerminatePayload(R"({"deployment_id": "x", "reason": ["a"]})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reason, "user_requested");
}

TEST(TerminatePayload, Rejects) {
  struct Case {
    std::string payload;
    std::string contains;
  };
  std::vector<Case> cases = {
      {"nope", "payload: is not valid JSON"},
      {"[]", "payload: must be a JSON object"},
      {"{}", "deployment_id: is required"},
      {R"({"deployment_id": null})", "deployment_id: is required"},
      {R"({"deployment_id": ""})", "deployment_id: must not be empty"},
      {R"({"deployment_id": true})", "deployment_id: must be a string"},
      {R"({"deployment_id": "a\u0000b"})", "deployment_id: must not contain control"},
      {"{\"deployment_id\": \"" + std::string(257, 'a') + "\"}", "deployment_id: is longer"},
  };
  for (const auto& c : cases) {
    auto r = ParseTerminatePayload(c.payload);
    ASSERT_FALSE(r.ok()) << c.payload;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.contains), std::string::npos)
        << c.payload << " -> " << r.error().message;
  }
}

// ---- port policy -------------------------------------------------------------------------

struct PortCase {
  const char* name;
  std::vector<int> container_ports;
  NamedPorts named;
  PortRangeSpec range;
  std::set<int> taken;
  std::vector<domain::PortAllocation> expected;
};

TEST(PortPolicy, Table) {
  const NamedPorts kNamed{2222, 8888, 9999};
  std::vector<PortCase> cases = {
      {"named_all_free",
       {22, 8888, 6006},
       kNamed,
       {},
       {},
       {{2222, 22, "ssh"}, {8888, 8888, "rental_port_1"}, {9999, 6006, "rental_port_2"}}},
      {"order_preserved_22_last",
       {80, 443, 22},
       kNamed,
       {},
       {},
       {{8888, 80, "rental_port_1"}, {9999, 443, "rental_port_2"}, {2222, 22, "ssh"}}},
      {"third_other_goes_to_range",
       {22, 80, 81, 82},
       kNamed,
       {30000, 30010},
       {},
       {{2222, 22, "ssh"},
        {8888, 80, "rental_port_1"},
        {9999, 81, "rental_port_2"},
        {30000, 82, "range"}}},
      {"second_deployment_all_range",
       {22, 8888},
       kNamed,
       {30000, 30010},
       {2222, 8888, 9999, 30000},
       {{30001, 22, "range"}, {30002, 8888, "range"}}},
      {"ssh_taken_only",
       {22, 8888},
       kNamed,
       {30000, 30010},
       {2222},
       {{30000, 22, "range"}, {8888, 8888, "rental_port_1"}}},
      {"ssh_not_offered",
       {22},
       NamedPorts{0, 8888, 9999},
       {30000, 30001},
       {},
       {{30000, 22, "range"}}},
      {"range_overlapping_named_never_doubles",
       {22, 80, 81},
       kNamed,
       {2222, 2224},
       {8888},
       {{2222, 22, "ssh"}, {2223, 80, "range"}, {9999, 81, "rental_port_2"}}},
      {"empty_request", {}, kNamed, {}, {}, {}},
  };
  for (const auto& c : cases) {
    auto r = AllocatePorts(c.container_ports, c.named, c.range,
                           [&](int p) { return c.taken.count(p) > 0; });
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.error().ToString();
    ASSERT_EQ(r->size(), c.expected.size()) << c.name;
    for (size_t i = 0; i < c.expected.size(); ++i) {
      EXPECT_EQ((*r)[i].host_port, c.expected[i].host_port) << c.name << " #" << i;
      EXPECT_EQ((*r)[i].container_port, c.expected[i].container_port) << c.name << " #" << i;
      EXPECT_EQ((*r)[i].role, c.expected[i].role) << c.name << " #" << i;
    }
  }
}

TEST(PortPolicy, Failures) {
  const NamedPorts kNamed{2222, 8888, 9999};
  auto none_taken = [](int) { return false; };
  auto ssh_taken = [](int p) { return p == 2222; };

  auto a = AllocatePorts({22}, kNamed, {}, ssh_taken);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(a.error().message,
            "no free host port for container port 22: named port 2222 is in use and no "
            "network.port_range is configured");

  auto b = AllocatePorts({22, 80, 81, 82}, kNamed, {}, none_taken);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(b.error().message.find("container port 82: no named port applies"), std::string::npos);

  auto c = AllocatePorts({22, 80}, kNamed, {30000, 30000}, [](int p) { return p != 8888; });
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("network.port_range 30000-30000 is exhausted"),
            std::string::npos);

  // A range of one port serves one container port, never two.
  auto d = AllocatePorts({22, 80}, kNamed, {30000, 30000}, [](int p) { return p != 30000; });
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kFailedPrecondition);

  for (const auto& ports : std::vector<std::vector<int>>{{0}, {70000}, {22, 22}}) {
    auto e = AllocatePorts(ports, kNamed, {}, none_taken);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
  }
  auto f = AllocatePorts({22}, kNamed, {200, 100}, none_taken);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
}

TEST(PortPolicy, NamedPortsEqualNeverGivenTwice) {
  // Misconfiguration: ssh and rental_port_1 share a host port.
  auto r =
      AllocatePorts({22, 80}, NamedPorts{2222, 2222, 0}, {40000, 40005}, [](int) { return false; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].host_port, 2222);
  EXPECT_EQ((*r)[1].host_port, 40000);
  EXPECT_EQ((*r)[1].role, "range");
}

// ---- billing -----------------------------------------------------------------------------

TEST(Billing, Table) {
  const SystemTime t0 = SystemTime(seconds(1'700'000'000));
  struct Case {
    const char* name;
    int duration;
    std::optional<SystemTime> started;
    SystemTime ended;
    std::optional<double> price;
    double used, unused;
    std::optional<double> usage, refund;
  };
  std::vector<Case> cases = {
      {"never_ready_full_refund", 60, std::nullopt, t0 + minutes(10), 2.0, 0, 60, 0.0, 2.0},
      {"half_used", 60, t0, t0 + minutes(30), 2.0, 30, 30, 1.0, 1.0},
      {"overrun_capped", 60, t0, t0 + minutes(95), 2.0, 60, 0, 2.0, 0.0},
      {"clock_skew_negative", 60, t0, t0 - minutes(5), 2.0, 0, 60, 0.0, 2.0},
      {"zero_price", 60, t0, t0 + minutes(20), 0.0, 20, 40, 0.0, 0.0},
      {"no_price", 60, t0, t0 + minutes(20), std::nullopt, 20, 40, std::nullopt, std::nullopt},
      {"fractional_minutes_rounded", 10, t0, t0 + seconds(100), 0.6, 1.67, 8.33, 0.02, 0.08},
      {"cents_half_up", 60, t0, t0 + minutes(1), 0.3, 1, 59, 0.01, 0.30},  // 0.005 -> 0.01
      {"negative_price_ignored", 60, t0, t0 + minutes(1), -5.0, 1, 59, std::nullopt, std::nullopt},
      {"zero_duration", 0, t0, t0 + minutes(5), 1.0, 0, 0, 0.0, 0.0},
  };
  for (const auto& c : cases) {
    domain::Usage u = ComputeUsage(c.duration, c.started, c.ended, c.price);
    EXPECT_DOUBLE_EQ(u.reserved_minutes, std::max(c.duration, 0)) << c.name;
    EXPECT_DOUBLE_EQ(u.used_minutes, c.used) << c.name;
    EXPECT_DOUBLE_EQ(u.unused_minutes, c.unused) << c.name;
    ASSERT_EQ(u.usage_amount.has_value(), c.usage.has_value()) << c.name;
    ASSERT_EQ(u.refund_amount.has_value(), c.refund.has_value()) << c.name;
    if (c.usage) {
      EXPECT_DOUBLE_EQ(*u.usage_amount, *c.usage) << c.name;
    }
    if (c.refund) {
      EXPECT_DOUBLE_EQ(*u.refund_amount, *c.refund) << c.name;
      EXPECT_GE(*u.refund_amount, 0.0) << c.name;
    }
    EXPECT_EQ(u.price_per_hour.has_value(), c.usage.has_value()) << c.name;
  }
}

TEST(Billing, RoundHalfUp) {
  EXPECT_DOUBLE_EQ(RoundHalfUp(1.005, 2), 1.01);
  EXPECT_DOUBLE_EQ(RoundHalfUp(2.675, 2), 2.68);
  EXPECT_DOUBLE_EQ(RoundHalfUp(0.125, 2), 0.13);
  EXPECT_DOUBLE_EQ(RoundHalfUp(0.124, 2), 0.12);
  EXPECT_DOUBLE_EQ(RoundHalfUp(-0.125, 2), -0.13);
  EXPECT_DOUBLE_EQ(RoundHalfUp(123456.785, 2), 123456.79);
  EXPECT_DOUBLE_EQ(RoundHalfUp(1.666666, 2), 1.67);
}

TEST(Billing, MeteringFromTheRentalsSamples) {
  domain::Usage u = ComputeUsageFromUsed(60, std::chrono::minutes(30), std::nullopt);
  domain::RentalMetering m;
  m.samples = 360;
  m.energy_wh = 123.45678;
  m.mean_utilization = 87.26;
  AddMetering(u, m, 2);
  EXPECT_DOUBLE_EQ(u.gpu_seconds, 3600);  // 30 min × 2 GPUs
  EXPECT_DOUBLE_EQ(*u.energy_wh, 123.457);
  EXPECT_DOUBLE_EQ(*u.mean_gpu_utilization, 87.3);

  domain::Usage unreported = ComputeUsageFromUsed(60, std::chrono::seconds(90), std::nullopt);
  AddMetering(unreported, domain::RentalMetering{}, 1);
  EXPECT_DOUBLE_EQ(unreported.gpu_seconds, 90);
  EXPECT_FALSE(unreported.energy_wh.has_value());
  EXPECT_FALSE(unreported.mean_gpu_utilization.has_value());

  domain::Usage cpu_only = ComputeUsageFromUsed(60, std::chrono::minutes(10), std::nullopt);
  AddMetering(cpu_only, m, 0);
  EXPECT_DOUBLE_EQ(cpu_only.gpu_seconds, 0);
  EXPECT_FALSE(cpu_only.energy_wh.has_value()) << "no GPU: nothing metered";

  domain::Usage never_ready = ComputeUsageFromUsed(60, std::nullopt, std::nullopt);
  AddMetering(never_ready, domain::RentalMetering{}, 4);
  EXPECT_DOUBLE_EQ(never_ready.gpu_seconds, 0);
}

// ---- resource limits ---------------------------------------------------------------------

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

TEST(Limits, DefaultsFromGpuShare) {
  config::DeploymentConfig cfg;  // no caps or defaults except shm 1024 and pids 4096
  HostCapacity host{static_cast<uint64_t>(100 * kGiB), 32, 4};
  DeploySpec spec;
  auto one = ComputeLimits(spec, cfg, host, 1);
  ASSERT_TRUE(one.ok()) << one.error().ToString();
  EXPECT_EQ(one->memory_bytes, static_cast<int64_t>(100 * kGiB * 0.85 / 4));
  EXPECT_EQ(one->nano_cpus, 8'000'000'000);
  EXPECT_EQ(one->shm_bytes, 1024 * kMiB);
  EXPECT_EQ(one->pids_limit, 4096);

  auto all = ComputeLimits(spec, cfg, host, 8);  // share capped at 1
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->memory_bytes, static_cast<int64_t>(100 * kGiB * 0.85));
  EXPECT_EQ(all->nano_cpus, 32'000'000'000);

  auto cpu_only = ComputeLimits(spec, cfg, host, 0);  // counts as one GPU's share
  ASSERT_TRUE(cpu_only.ok());
  EXPECT_EQ(cpu_only->nano_cpus, 8'000'000'000);

  HostCapacity no_gpu_host{static_cast<uint64_t>(8 * kGiB), 2, 0};
  auto whole = ComputeLimits(spec, cfg, no_gpu_host, 0);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->nano_cpus, 2'000'000'000);

  HostCapacity many_gpus{static_cast<uint64_t>(100 * kGiB), 2, 8};  // 2/8 cores -> at least 1
  auto min_core = ComputeLimits(spec, cfg, many_gpus, 1);
  ASSERT_TRUE(min_core.ok());
  EXPECT_EQ(min_core->nano_cpus, 1'000'000'000);
}

TEST(Limits, ConfiguredDefaultsAndFloor) {
  config::DeploymentConfig cfg;
  cfg.default_memory_mb = 2048;
  cfg.default_cpus = 1.5;
  cfg.default_shm_mb = 256;
  cfg.pids_limit = 0;
  HostCapacity host{static_cast<uint64_t>(64 * kGiB), 16, 2};
  auto r = ComputeLimits(DeploySpec{}, cfg, host, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->memory_bytes, 2048 * kMiB);
  EXPECT_EQ(r->nano_cpus, 1'500'000'000);
  EXPECT_EQ(r->shm_bytes, 256 * kMiB);
  EXPECT_EQ(r->pids_limit, 0);

  HostCapacity tiny{static_cast<uint64_t>(512 * kMiB), 1, 8};  // share gives < 256 MiB
  auto floor = ComputeLimits(DeploySpec{}, config::DeploymentConfig{}, tiny, 1);
  ASSERT_TRUE(floor.ok());
  EXPECT_EQ(floor->memory_bytes, kMinMemoryBytes);
  EXPECT_LE(floor->shm_bytes, floor->memory_bytes);  // shm defaults are cut to memory

  HostCapacity unknown{0, 0, 0};
  auto open = ComputeLimits(DeploySpec{}, config::DeploymentConfig{}, unknown, 1);
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->memory_bytes, 0);
  EXPECT_EQ(open->nano_cpus, 0);
}

TEST(Limits, RequestsWithinAndAboveCaps) {
  HostCapacity host{static_cast<uint64_t>(10 * kGiB), 8, 1};
  config::DeploymentConfig cfg;
  DeploySpec spec;
  spec.memory_limit_mb = 4096;
  spec.cpu_limit = 2.5;
  spec.shm_size_mb = 2048;
  auto ok = ComputeLimits(spec, cfg, host, 1);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->memory_bytes, 4096 * kMiB);
  EXPECT_EQ(ok->nano_cpus, 2'500'000'000);
  EXPECT_EQ(ok->shm_bytes, 2048 * kMiB);

  struct Case {
    const char* name;
    std::optional<int64_t> mem;
    std::optional<double> cpu;
    std::optional<int64_t> shm;
    config::DeploymentConfig cfg;
    std::string message;
  };
  config::DeploymentConfig capped;
  capped.max_memory_mb = 1000;
  capped.max_cpus = 2;
  capped.max_shm_mb = 64;
  std::vector<Case> cases = {
      {"memory_above_host",
       999999,
       {},
       {},
       cfg,
       "memory_limit_mb: 999999 exceeds this host's cap of 9216"},
      {"memory_above_config",
       1001,
       {},
       {},
       capped,
       "memory_limit_mb: 1001 exceeds this host's cap of 1000"},
      {"memory_below_floor", 100, {}, {}, cfg, "memory_limit_mb: 100 is below the minimum 256"},
      {"cpu_above_host", {}, 9.0, {}, cfg, "cpu_limit: 9 exceeds this host's cap of 8"},
      {"cpu_above_config", {}, 2.5, {}, capped, "cpu_limit: 2.5 exceeds this host's cap of 2"},
      {"cpu_tiny", {}, 0.001, {}, cfg, "cpu_limit: 0.001 is below the minimum 0.01"},
      {"shm_above_config", {}, {}, 65, capped, "shm_size_mb: 65 exceeds this host's cap of 64"},
      {"shm_above_memory",
       512,
       {},
       {1024},
       cfg,
       "shm_size_mb: 1024 exceeds this host's cap of 512"},
  };
  for (const auto& c : cases) {
    DeploySpec s;
    s.memory_limit_mb = c.mem;
    s.cpu_limit = c.cpu;
    s.shm_size_mb = c.shm;
    auto r = ComputeLimits(s, c.cfg, host, 1);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.name;
    EXPECT_EQ(r.error().message, c.message) << c.name;
  }
}

TEST(Limits, ConfiguredCapsBoundDefaults) {
  config::DeploymentConfig cfg;
  cfg.max_memory_mb = 1024;
  cfg.max_cpus = 2;
  cfg.max_shm_mb = 128;
  HostCapacity host{static_cast<uint64_t>(100 * kGiB), 64, 1};
  auto r = ComputeLimits(DeploySpec{}, cfg, host, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->memory_bytes, 1024 * kMiB);
  EXPECT_EQ(r->nano_cpus, 2'000'000'000);
  EXPECT_EQ(r->shm_bytes, 128 * kMiB);
}

}  // namespace
}  // namespace taolie::rules
