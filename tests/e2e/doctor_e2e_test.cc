// `taolie-host-agent doctor` against the test services (private dockerd with the stand-in
// nvidia-container-runtime-hook, the fake NVML, the platform simulator, PostgreSQL binaries),
// breaking one dependency at a time and checking its line and the exit status. Only 127.0.0.1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

struct Line {
  std::string level;  // OK / WARN / FAIL
  std::string text;   // the whole line
};

struct DoctorRun {
  int code = -1;
  std::string output;
  std::map<std::string, Line> lines;  // by check name
};

bool DriverPresent() {
  return std::filesystem::exists("/dev/nvidiactl") ||
         std::filesystem::exists("/proc/driver/nvidia/version");
}

// A TCP listener on 127.0.0.1:`port` for the test's life (something else holding a port).
class Listener {
 public:
  explicit Listener(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          ::listen(fd_, 1) == 0;
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

class DoctorE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    docker_host_ = EnvOr("TAOLIE_TEST_DOCKER_HOST");
    registry_ = EnvOr("TAOLIE_TEST_REGISTRY");
    if (docker_host_.empty() || registry_.empty()) {
      if (InCi()) FAIL() << "TAOLIE_TEST_DOCKER_HOST / TAOLIE_TEST_REGISTRY not set (CI=true)";
      GTEST_SKIP() << "test services not running; use scripts/test.sh";
    }
    auto sim = sim::Simulator::Start({});
    ASSERT_TRUE(sim.ok()) << sim.error().ToString();
    sim_ = std::move(*sim);
    char tmpl[] = "/tmp/taolie-doctor-XXXXXX";
    root_ = mkdtemp(tmpl);
    ports_ = FreePortBlock(4);  // ssh, rental_port_1, rental_port_2, api
    ASSERT_GT(ports_, 0);
    for (int attempt = 0; attempt < 20 && range_ == 0; ++attempt) {
      int first = FreePortBlock(kRange);
      if (first > 0 && (first >= ports_ + 4 || first + kRange <= ports_)) range_ = first;
    }
    ASSERT_GT(range_, 0);
    // The passthrough check runs a local image and never pulls: the test makes one local (from
    // the test registry), as an owner's host has the images its rentals used.
    auto docker = docker::EngineDockerClient::Create(docker_host_, std::chrono::seconds(30));
    ASSERT_TRUE(docker.ok()) << docker.error().ToString();
    const std::string busybox = registry_ + "/taolie-test/busybox:1";
    if (auto have = (*docker)->ImageExists(busybox); !have.ok() || !*have) {
      Status pulled = (*docker)->Pull(busybox, nullptr, std::stop_token{});
      ASSERT_TRUE(pulled.ok()) << pulled.error().ToString();
    }
    server_url_ = sim_->base_url();
    nvml_ = FAKE_NVML_PATH;
    docker_ = docker_host_;
  }
  void TearDown() override {
    if (sim_) sim_->Stop();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }

  std::string ConfigPath() const { return root_ + "/config.yaml"; }

  void WriteConfig() {
    std::ofstream out(ConfigPath());
    out << "agent:\n  api_key: " << api_key_ << "\n"
        << agent_id_yaml_ << "network:\n  public_ip: 127.0.0.1\n  bind_ip: 127.0.0.1\n"
        << "  ports:\n    ssh: " << ports_ << "\n    rental_port_1: " << ports_ + 1
        << "\n    rental_port_2: " << ports_ + 2 << "\n"
        << "  port_range: \"" << range_ << "-" << range_ + kRange - 1 << "\"\n"
        << "server:\n  url: " << server_url_ << "\n  timeout: 5\n"
        << database_yaml_ << "gpu:\n  nvml_library: " << nvml_ << "\n"
        << "logging:\n  file: \"\"\n  journal: false\n"
        << "docker:\n  host: " << docker_ << "\n  timeout: 5\n"
        << "  prefetch_images: [\"" << registry_ << "/taolie-test/busybox:1\"]\n"
        << "deployment:\n  min_free_disk_gb: " << min_free_gb_ << "\n"
        << "  allowed_registries: [\"" << registry_ << "\"]\n"
        << "api:\n  listen: 127.0.0.1\n  port: " << ports_ + 3 << "\n"
        << "data_dir: " << root_ << "/data\n";
  }

  DoctorRun Doctor(const std::string& extra_args = "") {
    WriteConfig();
    DoctorRun run;
    const std::string cmd = "TAOLIE_FAKE_NVML_SCENARIO='" + std::string(SCENARIO_DIR) +
                            "/two_gpus.ini' timeout 120 '" + std::string(AGENT_BIN) +
                            "' doctor -c '" + ConfigPath() + "' " + extra_args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return run;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) run.output.append(buf, n);
    const int status = ::pclose(p);
    run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::istringstream lines(run.output);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string level, name;
      words >> level >> name;
      if (level == "OK" || level == "WARN" || level == "FAIL") run.lines[name] = Line{level, line};
    }
    std::cerr << "---- doctor (exit " << run.code << ") ----\n" << run.output;
    return run;
  }

  static constexpr int kRange = 20;
  std::string docker_host_, registry_, root_;
  std::unique_ptr<sim::Simulator> sim_;
  int ports_ = 0, range_ = 0;
  // What the next WriteConfig() writes; each test breaks one.
  std::string api_key_ = "sim-key";
  std::string agent_id_yaml_;
  std::string server_url_;
  std::string nvml_;
  std::string docker_;
  std::string database_yaml_ = "database:\n  mode: managed\n";
  std::string min_free_gb_ = "0.001";
};

// Levels that hold on every test machine for a config that is all right: the clock line
// depends on the machine (WARN where it is not synchronised).
void ExpectHealthy(const DoctorRun& r, const std::string& except = "") {
  for (const char* name : {"config", "nvml", "docker", "gpu-passthrough", "nvidia-toolkit", "ports",
                           "api-port", "postgres", "platform", "disk"}) {
    if (name == except) continue;
    ASSERT_TRUE(r.lines.count(name)) << "no line for " << name << "\n" << r.output;
    EXPECT_NE(r.lines.at(name).level, "FAIL") << r.lines.at(name).text;
  }
  ASSERT_TRUE(r.lines.count("clock")) << r.output;
}

TEST_F(DoctorE2eTest, EverythingInPlaceExitsZero) {
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 0) << r.output;
  ExpectHealthy(r);
  EXPECT_EQ(r.lines["nvml"].level, "OK");
  EXPECT_NE(r.lines["nvml"].text.find("2 GPU(s)"), std::string::npos) << r.lines["nvml"].text;
  EXPECT_EQ(r.lines["docker"].level, "OK");
  EXPECT_NE(r.lines["docker"].text.find("cgroup driver"), std::string::npos);
  EXPECT_EQ(r.lines["gpu-passthrough"].level, "OK") << r.lines["gpu-passthrough"].text;
  EXPECT_NE(r.lines["gpu-passthrough"].text.find("started"), std::string::npos);
  EXPECT_EQ(r.lines["ports"].level, "OK");
  EXPECT_EQ(r.lines["postgres"].level, "OK");
  EXPECT_NE(r.lines["postgres"].text.find("managed; cluster under"), std::string::npos);
  EXPECT_EQ(r.lines["platform"].level, "OK");
  EXPECT_NE(r.lines["platform"].text.find("API key accepted"), std::string::npos);
  EXPECT_EQ(r.lines["disk"].level, "OK");
  EXPECT_NE(r.output.find("verdict: "), std::string::npos);

  // The test container is gone.
  auto docker = docker::EngineDockerClient::Create(docker_host_, std::chrono::seconds(10));
  ASSERT_TRUE(docker.ok());
  auto left = (*docker)->List({{"taolie.doctor", "true"}});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << left->size() << " doctor container(s) left";

  DoctorRun j = Doctor("--json");
  EXPECT_EQ(j.code, 0);
  auto parsed = nlohmann::json::parse(j.output.substr(j.output.find('{')), nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << j.output;
  EXPECT_EQ(parsed["exit_code"], 0);
  EXPECT_EQ(parsed["checks"].size(), 11u);
}

TEST_F(DoctorE2eTest, AWrongDockerSocketFails) {
  docker_ = "unix://" + root_ + "/no-docker.sock";
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["docker"].level, "FAIL") << r.lines["docker"].text;
  EXPECT_NE(r.lines["docker"].text.find("no-docker.sock"), std::string::npos);
  EXPECT_NE(r.lines["docker"].text.find("fix:"), std::string::npos);
  EXPECT_EQ(r.lines["gpu-passthrough"].level, "WARN") << "skipped without Docker";
  ExpectHealthy(r, "docker");
}

TEST_F(DoctorE2eTest, APlatformOnAClosedPortFails) {
  const int closed = FreePortBlock(1);
  ASSERT_GT(closed, 0);
  server_url_ = "http://127.0.0.1:" + std::to_string(closed);
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["platform"].level, "FAIL") << r.lines["platform"].text;
  EXPECT_NE(r.lines["platform"].text.find("cannot reach"), std::string::npos);
  ExpectHealthy(r, "platform");
}

TEST_F(DoctorE2eTest, AWrongApiKeyIsRejected) {
  api_key_ = "not-the-key-1234";
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["platform"].level, "FAIL");
  EXPECT_NE(r.lines["platform"].text.find("rejected"), std::string::npos)
      << r.lines["platform"].text;
  EXPECT_EQ(r.output.find("not-the-key-1234"), std::string::npos) << "the key is never shown";
  ExpectHealthy(r, "platform");
}

TEST_F(DoctorE2eTest, ThePollLeavesTheCommandsForTheAgent) {
  agent_id_yaml_ = "  id: agent-0123456789ab\n";
  const std::string cmd = sim_->QueueCommand("agent-0123456789ab", "deploy", "{}");
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.lines["platform"].text.find("1 command(s) waiting"), std::string::npos)
      << r.lines["platform"].text;
  EXPECT_FALSE(sim_->Acked(cmd)) << "doctor acknowledges nothing";
  int polls = 0;
  for (const auto& req : sim_->Requests("/api/host-agents/agent-0123456789ab/commands")) {
    polls += req.method == "GET";
  }
  EXPECT_EQ(polls, 1);
  EXPECT_TRUE(sim_->Requests("/api/host-agents/register").empty()) << "doctor registers nothing";
}

TEST_F(DoctorE2eTest, AnExternalDatabaseOnAClosedPortFails) {
  const int closed = FreePortBlock(1);
  ASSERT_GT(closed, 0);
  database_yaml_ =
      "database:\n  mode: external\n  host: 127.0.0.1\n  port: " + std::to_string(closed) +
      "\n  name: taolie\n  user: agent\n  password: pw-never-shown\n";
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["postgres"].level, "FAIL") << r.lines["postgres"].text;
  EXPECT_NE(r.lines["postgres"].text.find(std::to_string(closed)), std::string::npos);
  EXPECT_EQ(r.output.find("pw-never-shown"), std::string::npos);
  ExpectHealthy(r, "postgres");
}

TEST_F(DoctorE2eTest, APortHeldBySomethingElseFails) {
  Listener held(range_ + 3);
  ASSERT_TRUE(held.ok());
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["ports"].level, "FAIL") << r.lines["ports"].text;
  EXPECT_NE(r.lines["ports"].text.find(std::to_string(range_ + 3) + " (port_range)"),
            std::string::npos)
      << r.lines["ports"].text;
  ExpectHealthy(r, "ports");
}

TEST_F(DoctorE2eTest, TheApiPortInUseOnlyWarns) {
  Listener held(ports_ + 3);
  ASSERT_TRUE(held.ok());
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.lines["api-port"].level, "WARN") << r.lines["api-port"].text;
}

TEST_F(DoctorE2eTest, TooLittleDiskFails) {
  min_free_gb_ = "1000000";
  DoctorRun r = Doctor();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.lines["disk"].level, "FAIL") << r.lines["disk"].text;
  EXPECT_NE(r.lines["disk"].text.find("min_free_disk_gb"), std::string::npos);
  ExpectHealthy(r, "disk");
}

TEST_F(DoctorE2eTest, NoNvmlOnAHostWithoutADriverIsAWarning) {
  nvml_ = root_ + "/missing/libnvidia-ml.so.1";
  DoctorRun r = Doctor();
  if (DriverPresent()) {
    EXPECT_EQ(r.lines["nvml"].level, "FAIL") << "a driver is loaded: NVML must work";
    return;
  }
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.lines["nvml"].level, "WARN") << r.lines["nvml"].text;
  EXPECT_NE(r.lines["nvml"].text.find("CPU-only host"), std::string::npos);
  EXPECT_EQ(r.lines["gpu-passthrough"].level, "OK");
  EXPECT_NE(r.lines["gpu-passthrough"].text.find("no GPU"), std::string::npos);
}

TEST_F(DoctorE2eTest, AnUnreadableConfigExitsTwo) {
  const std::string cmd =
      std::string(AGENT_BIN) + " doctor -c " + root_ + "/absent.yaml >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

// While the agent runs with a rental: the rental's published ports are the agent's own (OK),
// the API port is the agent's (WARN), the agent id comes from its managed database, and the
// poll leaves the commands to the agent.
class DoctorWithAgentTest : public AgentE2eTest {};

TEST_F(DoctorWithAgentTest, ARunningAgentAndItsRentalAreNotProblems) {
  StartAgent();
  nlohmann::json payload = {{"deployment_id", "doctor-rental-1"},
                            {"image", SshImage()},
                            {"duration_minutes", 30},
                            {"ports", {{"22", 22}, {"8888", 8888}}}};
  sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  ASSERT_FALSE(WaitEvent("doctor-rental-1", "success", std::chrono::seconds(120)).is_null())
      << Tail(agent_->Log(), 4000);

  const std::string cmd = "TAOLIE_FAKE_NVML_SCENARIO='" + std::string(SCENARIO_DIR) +
                          "/two_gpus.ini' timeout 120 '" + std::string(AGENT_BIN) +
                          "' doctor -c '" + agent_->ConfigPath() + "' 2>&1";
  std::string out = Shell(cmd + "; echo \"exit=$?\"");
  std::cerr << "---- doctor ----\n" << out;
  auto line = [&](const std::string& name) {
    std::istringstream in(out);
    std::string l;
    while (std::getline(in, l)) {
      std::istringstream words(l);
      std::string level, n;
      words >> level >> n;
      if (n == name) return l;
    }
    return std::string();
  };
  EXPECT_EQ(line("ports").rfind("OK ", 0), 0u) << line("ports");
  EXPECT_NE(line("ports").find("held by the agent's rentals"), std::string::npos) << line("ports");
  EXPECT_EQ(line("api-port").rfind("WARN", 0), 0u) << line("api-port");
  EXPECT_NE(line("postgres").find("running, PostgreSQL"), std::string::npos) << line("postgres");
  EXPECT_NE(line("platform").find("agent " + agent_id_), std::string::npos) << line("platform");
  EXPECT_NE(out.find("exit=0"), std::string::npos) << out;
  EXPECT_EQ(Containers("doctor-rental-1").size(), 1u) << "the rental is left alone";
}

}  // namespace
}  // namespace taolie::testing
