// doctor's verdicts, line format and each check driven through fakes of its seams.
#include "doctor/doctor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>

#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"

namespace taolie::doctor {
namespace {

using ::taolie::testing::FakeDocker;
using ::taolie::testing::FakeGpuProbe;
using ::testing::HasSubstr;
using ::testing::Not;

// Answers every request with one scripted reply and records the paths asked for.
class ScriptedPlatformApi : public platform::PlatformApi {
 public:
  Result<platform::Response> reply = Error{ErrorCode::kUnavailable, "connection refused"};
  std::vector<std::string> paths;
  Result<platform::Response> Send(platform::Method method, const std::string& path,
                                  const std::string&, std::stop_token) override {
    EXPECT_EQ(method, platform::Method::kGet) << "doctor only polls";
    paths.push_back(path);
    return reply;
  }
};

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg.data_dir = "/data";
    cfg.network.bind_ip = "127.0.0.1";
    cfg.network.ports = {2222, 8888, 9999, 0};
    cfg.network.port_range = {30000, 30009};
    cfg.deployment.min_free_disk_gb = 10;
    cfg.server.url = "https://platform.test";
    docker = std::make_shared<FakeDocker>();
    api = std::make_shared<ScriptedPlatformApi>();
    env.docker = docker;
    env.docker_address = "unix:///run/test.sock";
    env.platform = api;
    env.open_nvml = [this](const config::GpuConfig&) {
      auto p = std::make_unique<FakeGpuProbe>();
      p->available = gpus_available;
      if (gpus_available) {
        p->driver = gpu::DriverInfo{"550.54.15", "12.4", "12.550"};
        p->gpus = gpu_list;
      }
      return p;
    };
    env.nvidia_driver_present = [this] { return driver_present; };
    env.port_in_use = [this](const std::string& ip, int port) -> Result<bool> {
      if (ip != "127.0.0.1") {
        return Error{ErrorCode::kUnavailable, "Cannot assign requested address"};
      }
      return busy_ports.count(port) > 0;
    };
    env.read_clock = [this]() -> Result<ClockStatus> { return clock; };
    env.free_bytes = [this](const std::string& path) -> Result<uint64_t> {
      auto it = free.find(path);
      if (it == free.end()) return Error{ErrorCode::kUnavailable, "statvfs: no such file"};
      return it->second;
    };
    env.filesystem_id = [this](const std::string& path) -> Result<uint64_t> {
      return fs_ids.count(path) > 0 ? fs_ids[path] : 0;
    };
    env.find_postgres = [this](const std::string&) -> Result<std::string> {
      if (pg_bin.empty())
        return Error{ErrorCode::kNotFound, "PostgreSQL server binaries not found"};
      return pg_bin;
    };
    env.dir_writable = [](const std::string&) { return OkStatus(); };
    env.probe_postgres = [this](const std::string& conninfo) -> Result<store::PgProbeResult> {
      conninfos.push_back(conninfo);
      return pg;
    };
    env.nvidia_toolkit_config = std::string(DOCTOR_TESTDATA) + "/absent.toml";
  }

  static gpu::GpuInfo Gpu(int index, const std::string& uuid) {
    gpu::GpuInfo g;
    g.index = index;
    g.uuid = uuid;
    g.name = "NVIDIA H100 80GB HBM3";
    return g;
  }

  config::Config cfg;
  Environment env;
  Findings found;
  std::shared_ptr<FakeDocker> docker;
  std::shared_ptr<ScriptedPlatformApi> api;
  bool gpus_available = false;
  bool driver_present = false;
  std::vector<gpu::GpuInfo> gpu_list;
  std::set<int> busy_ports;
  ClockStatus clock;
  std::map<std::string, uint64_t> free;
  std::map<std::string, uint64_t> fs_ids;
  std::string pg_bin = "/usr/lib/postgresql/15/bin";
  Result<store::PgProbeResult> pg = store::PgProbeResult{"15.8", std::nullopt};
  std::vector<std::string> conninfos;
};

TEST(DoctorFormat, LinesVerdictAndExitStatus) {
  std::vector<Check> checks = {{"config", Level::kOk, "loads", ""},
                               {"clock", Level::kWarn, "not synchronised", "enable chrony"}};
  EXPECT_EQ(FormatLine(checks[0]), "OK   config           loads");
  EXPECT_EQ(FormatLine(checks[1]), "WARN clock            not synchronised -- fix: enable chrony");
  EXPECT_EQ(Verdict(checks), Level::kWarn);
  EXPECT_EQ(ExitCode(checks), 0) << "a WARN alone leaves the exit status 0";
  checks.push_back({"docker", Level::kFail, "cannot reach\nDocker", "start it"});
  EXPECT_EQ(FormatLine(checks[2]), "FAIL docker           cannot reach Docker -- fix: start it")
      << "one line per check";
  EXPECT_EQ(Verdict(checks), Level::kFail);
  EXPECT_EQ(ExitCode(checks), 1);
  EXPECT_EQ(ExitCode({}), 0);

  auto j = nlohmann::json::parse(FormatJson(checks));
  EXPECT_EQ(j["verdict"], "FAIL");
  EXPECT_EQ(j["exit_code"], 1);
  ASSERT_EQ(j["checks"].size(), 3u);
  EXPECT_EQ(j["checks"][1]["name"], "clock");
  EXPECT_EQ(j["checks"][1]["level"], "WARN");
  EXPECT_EQ(j["checks"][1]["fix"], "enable chrony");
}

TEST(DoctorConfig, AFatalProblemFailsAndWarningsWarn) {
  auto bad =
      config::LoadConfigString("agent: {api_key: k-123456789}\nnetwork: {ports: {ssh: 70000}}\n");
  Check c = CheckConfig(bad);
  EXPECT_EQ(c.level, Level::kFail) << c.message;
  EXPECT_THAT(c.message, HasSubstr("network.ports.ssh"));
  EXPECT_THAT(c.fix, HasSubstr("check-config"));

  auto no_key = config::LoadConfigString("network: {public_ip: 203.0.113.7}\n");
  EXPECT_EQ(CheckConfig(no_key).level, Level::kFail) << "ValidateForRun: agent.api_key is needed";

  auto good = config::LoadConfigString(
      "agent: {api_key: k-123456789}\nnetwork: {public_ip: 203.0.113.7}\n"
      "server: {url: \"https://platform.test\"}\n");
  Check ok = CheckConfig(good);
  EXPECT_NE(ok.level, Level::kFail) << ok.message;
}

TEST_F(DoctorTest, NoDriverAndNoNvmlIsACpuOnlyHostNotAFailure) {
  Check c = CheckNvml(cfg, env, found);
  EXPECT_EQ(c.level, Level::kWarn);
  EXPECT_THAT(c.message, HasSubstr("CPU-only host: no GPU will be offered"));
  EXPECT_FALSE(found.nvml_ok);
  Check pass = CheckGpuPassthrough(cfg, env, found);
  EXPECT_EQ(pass.level, Level::kOk);
  EXPECT_THAT(pass.message, HasSubstr("no GPU"));
  EXPECT_EQ(docker->calls.size(), 0u) << "nothing is run without a GPU";
}

TEST_F(DoctorTest, ADriverWithoutUsableNvmlFails) {
  driver_present = true;
  Check c = CheckNvml(cfg, env, found);
  EXPECT_EQ(c.level, Level::kFail);
  EXPECT_THAT(c.message, HasSubstr("driver is loaded"));
  EXPECT_THAT(c.fix, HasSubstr("gpu.nvml_library"));
  EXPECT_EQ(CheckGpuPassthrough(cfg, env, found).level, Level::kWarn);
}

TEST_F(DoctorTest, ADriverWithoutNvmlButWithNvidiaSmiIsTheAgentsDegradedMode) {
  driver_present = true;
  env.open_fallback = [](const config::GpuConfig&, std::string* tool) {
    *tool = "/usr/bin/nvidia-smi";
    auto p = std::make_unique<FakeGpuProbe>();
    p->gpus = std::vector<gpu::GpuInfo>{Gpu(0, "GPU-s")};
    return p;
  };
  Check c = CheckNvml(cfg, env, found);
  EXPECT_EQ(c.level, Level::kWarn) << c.message;
  EXPECT_THAT(c.message, HasSubstr("through /usr/bin/nvidia-smi"));
  EXPECT_EQ(found.gpu_uuids, (std::vector<std::string>{"GPU-s"})) << "passthrough can test it";

  driver_present = false;
  Findings cpu_only;
  EXPECT_THAT(CheckNvml(cfg, env, cpu_only).message, HasSubstr("CPU-only host"))
      << "no driver: nvidia-smi is not looked for";
}

TEST_F(DoctorTest, NvmlCountsTheGpusAndTheDriver) {
  gpus_available = true;
  gpu_list = {Gpu(0, "GPU-a"), Gpu(1, "GPU-b")};
  Check c = CheckNvml(cfg, env, found);
  EXPECT_EQ(c.level, Level::kOk);
  EXPECT_THAT(c.message, HasSubstr("2 GPU(s): 2x NVIDIA H100 80GB HBM3"));
  EXPECT_THAT(c.message, HasSubstr("driver 550.54.15, CUDA 12.4"));
  EXPECT_EQ(found.gpu_uuids, (std::vector<std::string>{"GPU-a", "GPU-b"}));

  gpu_list.clear();
  Findings none;
  EXPECT_EQ(CheckNvml(cfg, env, none).level, Level::kWarn) << "NVML without a GPU offers nothing";
}

TEST_F(DoctorTest, DockerDownFailsAndUpReportsItsVersionAndRentalPorts) {
  docker->down = true;
  Check down = CheckDocker(cfg, env, found);
  EXPECT_EQ(down.level, Level::kFail);
  EXPECT_THAT(down.message, HasSubstr("cannot reach Docker at unix:///run/test.sock"));
  EXPECT_THAT(down.fix, HasSubstr("docker.host"));
  EXPECT_FALSE(found.docker.has_value());

  docker->down = false;
  docker::ContainerInfo rental;
  rental.id = "r1";
  rental.labels = {{"taolie.managed", "true"}};
  rental.ports = {{22, "tcp", "127.0.0.1", 2222}, {8888, "tcp", "127.0.0.1", 30001}};
  docker->containers["r1"] = rental;
  docker::ContainerInfo other;
  other.id = "o1";
  other.ports = {{80, "tcp", "", 30002}};
  docker->containers["o1"] = other;
  Check up = CheckDocker(cfg, env, found);
  EXPECT_EQ(up.level, Level::kOk) << up.message;
  EXPECT_THAT(up.message, HasSubstr("Docker 20.10.24 (API 1.41)"));
  EXPECT_THAT(up.message, HasSubstr("data root /var/lib/docker"));
  EXPECT_EQ(found.rental_ports, (std::set<int>{2222, 30001})) << "only the agent's rentals";

  Environment no_client = env;
  no_client.docker = nullptr;
  no_client.docker_error = "unsupported docker host tcp://x";
  Findings f;
  EXPECT_EQ(CheckDocker(cfg, no_client, f).level, Level::kFail);
}

TEST_F(DoctorTest, PassthroughRunsATinyGpuContainerFromALocalImageAndRemovesIt) {
  found.gpu_uuids = {"GPU-a", "GPU-b"};
  found.nvml_ok = true;
  found.docker = docker::VersionInfo{};
  docker->images = {{"sha256:big", {"big/cuda:12"}, 0, 5'000'000'000},
                    {"sha256:small", {"busybox:1"}, 0, 2'000'000},
                    {"sha256:dangling", {}, 0, 1000}};
  Check c = CheckGpuPassthrough(cfg, env, found);
  EXPECT_EQ(c.level, Level::kOk) << c.message;
  EXPECT_THAT(c.message, HasSubstr("GPU-a"));
  EXPECT_THAT(c.message, HasSubstr("busybox:1")) << "the smallest tagged image";
  ASSERT_EQ(docker->specs.size(), 0u) << "the test container is removed";
  EXPECT_EQ(docker->Count("Pull"), 0) << "never pulls";
  EXPECT_EQ(docker->Count("Create"), 1);
  EXPECT_EQ(docker->Count("Remove"), 1);

  // A prefetched image present locally is preferred.
  cfg.docker.prefetch_images = {"missing:1", "big/cuda:12"};
  docker->local_images = {"big/cuda:12"};
  EXPECT_THAT(CheckGpuPassthrough(cfg, env, found).message, HasSubstr("big/cuda:12"));
}

TEST_F(DoctorTest, PassthroughWithoutALocalImageWarnsAndAStartErrorFailsWithTheToolkitFix) {
  found.gpu_uuids = {"GPU-a"};
  found.nvml_ok = true;
  found.docker = docker::VersionInfo{};
  Check none = CheckGpuPassthrough(cfg, env, found);
  EXPECT_EQ(none.level, Level::kWarn);
  EXPECT_THAT(none.message, HasSubstr("no image"));
  EXPECT_THAT(none.fix, HasSubstr("docker.prefetch_images"));

  docker->images = {{"sha256:small", {"busybox:1"}, 0, 2'000'000}};
  docker->start_fails = true;
  Check broken = CheckGpuPassthrough(cfg, env, found);
  EXPECT_EQ(broken.level, Level::kFail);
  EXPECT_THAT(broken.fix, HasSubstr("nvidia-ctk runtime configure"));
  EXPECT_EQ(docker->containers.size(), 0u) << "removed after a failed start too";

  Findings no_docker = found;
  no_docker.docker.reset();
  EXPECT_EQ(CheckGpuPassthrough(cfg, env, no_docker).level, Level::kWarn);
}

TEST_F(DoctorTest, APortHeldBySomethingElseFailsAndOneHeldByARentalDoesNot) {
  Check free_ports = CheckPorts(cfg, env, found);
  EXPECT_EQ(free_ports.level, Level::kOk) << free_ports.message;
  EXPECT_THAT(free_ports.message, HasSubstr("port_range 30000-30009"));

  busy_ports = {2222, 30005};
  found.rental_ports = {2222};
  Check c = CheckPorts(cfg, env, found);
  EXPECT_EQ(c.level, Level::kFail);
  EXPECT_THAT(c.message, HasSubstr("30005 (port_range)"));
  EXPECT_THAT(c.message, Not(HasSubstr("2222 (ssh)")));
  EXPECT_THAT(c.message, HasSubstr("1 held by the agent's rentals"));

  found.rental_ports = {2222, 30005};
  EXPECT_EQ(CheckPorts(cfg, env, found).level, Level::kOk);

  cfg.network.bind_ip = "192.0.2.1";  // not an address of this host
  Check bad_ip = CheckPorts(cfg, env, found);
  EXPECT_EQ(bad_ip.level, Level::kFail);
  EXPECT_THAT(bad_ip.fix, HasSubstr("network.bind_ip"));
}

TEST_F(DoctorTest, TheApiPortInUseIsOnlyAWarning) {
  EXPECT_EQ(CheckApiPort(cfg, env, found).level, Level::kOk);
  busy_ports = {cfg.api.port};
  Check c = CheckApiPort(cfg, env, found);
  EXPECT_EQ(c.level, Level::kWarn);
  EXPECT_THAT(c.message, HasSubstr("the running agent"));
  cfg.api.enabled = false;
  EXPECT_EQ(CheckApiPort(cfg, env, found).level, Level::kOk);
}

TEST_F(DoctorTest, ManagedPostgresNeedsItsBinariesAndAWritableDataDir) {
  Check ok = CheckPostgres(cfg, env, found);
  EXPECT_EQ(ok.level, Level::kOk) << ok.message;
  EXPECT_THAT(ok.message, HasSubstr("managed; cluster under /data/pg"));
  EXPECT_TRUE(conninfos.empty()) << "no cluster is running under /data: nothing to connect to";

  pg_bin.clear();
  Check missing = CheckPostgres(cfg, env, found);
  EXPECT_EQ(missing.level, Level::kFail);
  EXPECT_THAT(missing.fix, HasSubstr("apt-get install postgresql"));

  pg_bin = "/usr/lib/postgresql/15/bin";
  env.dir_writable = [](const std::string&) -> Status {
    return Error{ErrorCode::kPermissionDenied, "Read-only file system"};
  };
  Check ro = CheckPostgres(cfg, env, found);
  EXPECT_EQ(ro.level, Level::kFail);
  EXPECT_THAT(ro.message, HasSubstr("Read-only file system"));
}

TEST_F(DoctorTest, ExternalPostgresFailsWithLibpqsMessageAndNeverThePassword) {
  cfg.database.mode = "external";
  cfg.database.host = "127.0.0.1";
  cfg.database.port = 1;
  cfg.database.password = "s3cret-pw";
  cfg.database.connect_timeout = 30;
  pg =
      Error{ErrorCode::kUnavailable,
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused (s3cret-pw)"};
  Check c = CheckPostgres(cfg, env, found);
  EXPECT_EQ(c.level, Level::kFail);
  EXPECT_THAT(c.message, HasSubstr("Connection refused"));
  EXPECT_THAT(c.message, Not(HasSubstr("s3cret-pw")));
  ASSERT_EQ(conninfos.size(), 1u);
  EXPECT_THAT(conninfos[0], HasSubstr("connect_timeout=5 ")) << "bounded at 5 s";

  pg = store::PgProbeResult{"15.8", std::string("agent-0123456789ab")};
  Check ok = CheckPostgres(cfg, env, found);
  EXPECT_EQ(ok.level, Level::kOk) << ok.message;
  EXPECT_EQ(found.agent_id, "agent-0123456789ab");
}

TEST_F(DoctorTest, PlatformPollChecksReachabilityAndTheApiKey) {
  Check down = CheckPlatform(cfg, env, found);
  EXPECT_EQ(down.level, Level::kFail);
  EXPECT_THAT(down.message, HasSubstr("cannot reach https://platform.test"));

  api->reply = platform::Response{401, "{\"error\":\"invalid API key\"}", std::nullopt};
  Check rejected = CheckPlatform(cfg, env, found);
  EXPECT_EQ(rejected.level, Level::kFail);
  EXPECT_THAT(rejected.message, HasSubstr("API key rejected"));
  EXPECT_THAT(rejected.fix, HasSubstr("agent.api_key"));
  EXPECT_EQ(api->paths.back(), "/api/host-agents/agent-000000000000/commands")
      << "never registered: polled with a placeholder id";

  found.agent_id = "agent-0123456789ab";
  api->reply = platform::Response{
      200, R"({"commands":[{"command_id":"c1","command_type":"deploy","payload":{}}]})",
      std::nullopt};
  Check ok = CheckPlatform(cfg, env, found);
  EXPECT_EQ(ok.level, Level::kOk) << ok.message;
  EXPECT_THAT(ok.message, HasSubstr("1 command(s) waiting, left for the agent"));
  EXPECT_EQ(api->paths.back(), "/api/host-agents/agent-0123456789ab/commands");

  cfg.agent.id = "agent-cccccccccccc";  // the configured id wins
  (void)CheckPlatform(cfg, env, found);
  EXPECT_EQ(api->paths.back(), "/api/host-agents/agent-cccccccccccc/commands");

  api->reply = platform::Response{503, "down", std::nullopt};
  EXPECT_EQ(CheckPlatform(cfg, env, found).level, Level::kFail);

  Findings unregistered;
  cfg.agent.id.clear();
  api->reply = platform::Response{404, "unknown agent", std::nullopt};
  EXPECT_EQ(CheckPlatform(cfg, env, unregistered).level, Level::kWarn);

  Environment refused = env;
  refused.platform = nullptr;
  refused.platform_error = "plain http:// is refused";
  EXPECT_EQ(CheckPlatform(cfg, refused, found).level, Level::kFail);
}

TEST_F(DoctorTest, AnUnsynchronisedClockWarns) {
  clock = {false, 20'000, 1'000};
  EXPECT_EQ(CheckClock(env).level, Level::kOk);
  clock = {true, 16'000'000, 16'000'000};
  Check c = CheckClock(env);
  EXPECT_EQ(c.level, Level::kWarn);
  EXPECT_THAT(c.message, HasSubstr("clock not synchronised"));
  EXPECT_THAT(c.fix, HasSubstr("systemd-timesyncd"));
  clock = {false, 3'000'000, 1'000};
  EXPECT_EQ(CheckClock(env).level, Level::kWarn) << "a large error bound";
}

TEST_F(DoctorTest, DiskUnderTheMinimumFailsAndUnderTwiceItWarns) {
  // data_dir "/data" does not exist here: its nearest existing ancestor ("/") is checked.
  found.docker = docker::VersionInfo{};
  found.docker->root_dir = "/";  // exists on every machine
  free["/"] = 50'000'000'000;
  Check ok = CheckDisk(cfg, env, found);
  EXPECT_EQ(ok.level, Level::kOk) << ok.message;
  EXPECT_THAT(ok.message, HasSubstr("50.0 GB free"));
  free["/"] = 15'000'000'000;
  EXPECT_EQ(CheckDisk(cfg, env, found).level, Level::kWarn);
  free["/"] = 5'000'000'000;
  Check low = CheckDisk(cfg, env, found);
  EXPECT_EQ(low.level, Level::kFail);
  EXPECT_THAT(low.fix, HasSubstr("min_free_disk_gb"));
}

// Issue 17 item 2: the toolkit settings that let a container obtain devices the agent did not
// give it.
TEST(RiskyToolkitSettings, Table) {
  struct Case {
    const char* name;
    const char* toml;
    std::vector<std::string> risky;
  };
  const Case cases[] = {
      {"empty", "", {}},
      {"volume_mounts",
       "accept-nvidia-visible-devices-as-volume-mounts = true\n",
       {"accept-nvidia-visible-devices-as-volume-mounts = true"}},
      {"volume_mounts_off", "accept-nvidia-visible-devices-as-volume-mounts = false\n", {}},
      {"commented", "#accept-nvidia-visible-devices-as-volume-mounts = true\n", {}},
      {"volume_mounts_in_a_table",
       "[nvidia-container-cli]\naccept-nvidia-visible-devices-as-volume-mounts = true\n",
       {}},
      {"features",
       "[features]\nmofed = true\ngds = true\nnvswitch = true\ngdrcopy = true\n",
       {"features.mofed = true", "features.gds = true", "features.nvswitch = true",
        "features.gdrcopy = true"}},
      {"features_off", "[features]\nmofed = false\ngds = false # off\n", {}},
      {"dotted", "features.mofed = true\n", {"features.mofed = true"}},
      {"quoted", "[\"features\"]\n\"gdrcopy\" = true\n", {"features.gdrcopy = true"}},
      {"spaced_crlf", "[ features ]\r\n  nvswitch=true   # yes\r\n", {"features.nvswitch = true"}},
      {"other_table", "[nvidia-container-runtime]\nmofed = true\n", {}},
      {"string_true", "[features]\nmofed = \"true\"\n", {}},
      {"after_other_table", "[features]\ngds = false\n[nvidia-ctk]\ngds = true\n", {}},
      {"in_multiline_string", "a = \"\"\"\n[features]\nmofed = true\n\"\"\"\n", {}},
      {"in_multiline_array", "a = [\n  \"x\",\n]\nfeatures.gds = true\n", {"features.gds = true"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RiskyToolkitSettings(c.toml), c.risky) << c.name;
  }
}

TEST_F(DoctorTest, NvidiaToolkitWarnsWhenItsConfigLetsContainersAskForDevices) {
  Check absent = CheckNvidiaToolkit(cfg, env, found);
  EXPECT_EQ(absent.level, Level::kOk) << absent.message;
  EXPECT_THAT(absent.message, HasSubstr("no " + env.nvidia_toolkit_config));

  env.nvidia_toolkit_config = std::string(DOCTOR_TESTDATA) + "/nvidia-toolkit-default.toml";
  Check packaged = CheckNvidiaToolkit(cfg, env, found);
  EXPECT_EQ(packaged.level, Level::kOk) << packaged.message;
  EXPECT_EQ(packaged.fix, "");

  env.nvidia_toolkit_config = std::string(DOCTOR_TESTDATA) + "/nvidia-toolkit-risky.toml";
  Check risky = CheckNvidiaToolkit(cfg, env, found);
  EXPECT_EQ(risky.level, Level::kWarn);
  EXPECT_THAT(risky.message,
              HasSubstr("sets accept-nvidia-visible-devices-as-volume-mounts = true, "
                        "features.mofed = true, features.gds = true:"));
  EXPECT_THAT(risky.message, Not(HasSubstr("nvswitch")));
  EXPECT_THAT(risky.fix, HasSubstr("accept-nvidia-visible-devices-as-volume-mounts = false"));

  env.nvidia_toolkit_config = DOCTOR_TESTDATA;  // a directory: exists, cannot be read as a file
  Check unreadable = CheckNvidiaToolkit(cfg, env, found);
  EXPECT_EQ(unreadable.level, Level::kWarn) << unreadable.message;
  EXPECT_THAT(unreadable.message, HasSubstr("cannot read"));
}

TEST_F(DoctorTest, RunDoctorGivesEveryCheckALineAndBoundsAHangingOne) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  env.read_clock = [released]() -> Result<ClockStatus> {
    released.wait();  // hangs until the test ends
    return ClockStatus{};
  };
  auto loaded = config::LoadConfigString("agent: {api_key: k-123456789}\n");
  loaded.config.data_dir = "/data";
  auto shared = std::make_shared<Environment>(env);
  Report r = RunDoctor(loaded, shared, RunOptions{std::chrono::milliseconds(200)});
  release.set_value();
  std::vector<std::string> names;
  for (const auto& c : r.checks) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"config", "nvml", "docker", "gpu-passthrough",
                                             "nvidia-toolkit", "ports", "api-port", "postgres",
                                             "platform", "clock", "disk"}));
  EXPECT_TRUE(r.abandoned);
  EXPECT_EQ(r.checks[9].level, Level::kFail);
  EXPECT_THAT(r.checks[9].message, HasSubstr("no answer within 0.2 s"));
  EXPECT_EQ(ExitCode(r.checks), 1);
}

}  // namespace
}  // namespace taolie::doctor
