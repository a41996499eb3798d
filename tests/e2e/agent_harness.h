#pragma once
// Runs the real agent binary as a child process against the simulator, a private dockerd,
// the local registry, the fake NVML and its own managed PostgreSQL.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "docker/engine_docker_client.h"
#include "fixtures/test_env.h"
#include "sim/simulator.h"
#include "store/pg_store.h"
#include "support/contract_check.h"

extern char** environ;

namespace taolie::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Tail(const std::string& s, size_t n) {
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// Opens the agent's managed database (socket dir and password under its data dir).
inline std::unique_ptr<store::PgStore> OpenAgentDb(const std::string& data_dir) {
  std::string password = ReadFile(data_dir + "/pg-password");
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r'))
    password.pop_back();
  auto s = store::PgStore::Create(
      "host=" + data_dir + "/pg-run dbname=taolie_host_agent user=taolie password=" + password +
      " connect_timeout=5");
  if (!s.ok()) return nullptr;
  return std::move(*s);
}

// Runs a shell command and returns its standard output.
inline std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// GET http://127.0.0.1:<port><path>; returns the body ("" on failure).
inline std::string HttpGet(int port, const std::string& path) {
  return Shell("curl -s --max-time 5 http://127.0.0.1:" + std::to_string(port) + path);
}

// True when `count` TCP ports from `first` can be bound on all addresses right now (the agent
// checks host ports the same way, and Docker publishes on 127.0.0.1).
inline bool PortsFree(int first, int count) {
  for (int port = first; port < first + count; ++port) {
    if (port <= 0 || port > 65535) return false;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    if (!ok) return false;
  }
  return true;
}

// The first of `count` consecutive free ports: the kernel picks a free port (bind to port 0 on
// 127.0.0.1) and the ones after it are checked; 0 when none was found in a bounded search.
inline int FreePortBlock(int count) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t len = sizeof(a);
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    if (port > 0 && PortsFree(port, count)) return port;
  }
  return 0;
}

struct HarnessOptions {
  std::string scenario = "two_gpus.ini";
  std::string extra_yaml;  // appended to the generated config
  std::map<std::string, std::string> env;
  int readiness_timeout = 40;
  std::string api_key = "sim-key";
  std::string nvml_library;     // "" = the project's fake libnvidia-ml.so.1
  std::string database_yaml;    // the `database:` section; "" = managed under the data dir
  std::string gpu_yaml;         // more keys of the `gpu:` section ("  key: value\n" lines)
  std::string monitoring_yaml;  // more keys of the `monitoring:` section, the same way
  std::string docker_yaml;      // more keys of the `docker:` section, the same way
  std::string deployment_yaml;  // more keys of the `deployment:` section, the same way
  std::string network_yaml;     // more keys of the `network:` section, the same way
  // Registries allowed besides the local test registry (e.g. a test's own fake registry).
  std::vector<std::string> extra_registries;
  // network.bind_ip of the agent under test.
  std::string bind_ip = "127.0.0.1";
  // RLIMIT_NOFILE soft:hard for the agent (prlimit before exec), e.g. systemd's default
  // 1024:524288; "" = inherited.
  std::string open_files_limit;
};

class AgentHarness {
 public:
  // `root` holds the agent's data dir; kept across restarts of the same harness.
  AgentHarness(std::string docker_host, std::string registry, sim::Simulator& sim, HarnessOptions o)
      : docker_host_(std::move(docker_host)),
        registry_(std::move(registry)),
        sim_(sim),
        o_(std::move(o)) {
    char tmpl[] = "/tmp/taolie-e2e-XXXXXX";
    root_ = mkdtemp(tmpl);
    ::chmod(root_.c_str(), 0755);
    // Free ports, so that tests may run side by side: ssh, rental_port_1 and _2 and the status
    // port in one block, and a port range of 50. set_ports() still overrides them.
    if (int base = FreePortBlock(4); base > 0) ssh_port_ = base;
    for (int attempt = 0; attempt < 20; ++attempt) {
      int first = FreePortBlock(kRangeSize);
      if (first > 0 && (first >= ssh_port_ + 4 || first + kRangeSize <= ssh_port_)) {
        range_first_ = first;
        break;
      }
    }
  }
  ~AgentHarness() {
    Kill();
    std::error_code ec;
    // The managed PostgreSQL of a killed agent keeps running: stop it by its pid file.
    std::string pidfile = root_ + "/data/pg/postmaster.pid";
    std::ifstream in(pidfile);
    pid_t pg = 0;
    if (in >> pg && pg > 0) {
      ::kill(pg, SIGINT);
      for (int i = 0; i < 100 && ::kill(pg, 0) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::filesystem::remove_all(root_, ec);
  }

  std::string ConfigPath() const { return root_ + "/config.yaml"; }
  std::string LogPath() const { return root_ + "/agent.out"; }
  // A regular file standing in for /dev/kmsg (gpu.kmsg_path): tests append records to it.
  std::string KmsgPath() const { return root_ + "/kmsg"; }
  std::string Log() const { return ReadFile(LogPath()); }

  std::string ExtraRegistries() const {
    std::string out;
    for (const auto& r : o_.extra_registries) out += ", \"" + r + "\"";
    return out;
  }

  void WriteConfig() {
    if (!std::filesystem::exists(KmsgPath())) std::ofstream(KmsgPath()).flush();
    std::ofstream out(ConfigPath());
    out << "agent:\n  api_key: " << o_.api_key << "\n"
        << "network:\n  public_ip: 127.0.0.1\n  bind_ip: " << o_.bind_ip << "\n"
        << "  ports:\n    ssh: " << ssh_port_ << "\n    rental_port_1: " << ssh_port_ + 1
        << "\n    rental_port_2: " << ssh_port_ + 2 << "\n"
        << "  port_range: \"" << range_first_ << "-" << range_first_ + kRangeSize - 1 << "\"\n"
        << o_.network_yaml << "server:\n  url: " << sim_.base_url() << "\n  timeout: 5\n"
        << "monitoring:\n  heartbeat_interval: 2\n  command_poll_interval: 1\n  "
           "metrics_push_interval: 2\n"
        << "  health_push_interval: 3\n  duration_check_interval: 1\n  gpu_metrics_interval: 2\n"
        << "  gpu_health_interval: 3\n"
        << o_.monitoring_yaml
        << (o_.database_yaml.empty() ? std::string("database:\n  mode: managed\n")
                                     : o_.database_yaml)
        << "gpu:\n  nvml_library: " << (o_.nvml_library.empty() ? FAKE_NVML_PATH : o_.nvml_library)
        << "\n  kmsg_path: " << KmsgPath() << "\n"
        << o_.gpu_yaml << "logging:\n  level: debug\n  file: \"\"\n  journal: false\n"
        << "docker:\n  host: " << docker_host_ << "\n"
        << o_.docker_yaml << "deployment:\n  readiness_timeout_seconds: " << o_.readiness_timeout
        << "\n  stop_grace_seconds: 3\n  expiry_warning_seconds: 30\n"
        << "  allowed_registries: [\"" << registry_ << "\"" << ExtraRegistries() << "]\n"
        << o_.deployment_yaml << "api:\n  listen: 127.0.0.1\n  port: " << ssh_port_ + 3 << "\n"
        << "data_dir: " << root_ << "/data\n"
        << o_.extra_yaml;
  }

  void Start() {
    WriteConfig();
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back(std::string("TAOLIE_FAKE_NVML_SCENARIO=") +
                          (o_.scenario.rfind('/', 0) == 0
                               ? o_.scenario
                               : std::string(SCENARIO_DIR) + "/" + o_.scenario));
    for (const auto& [k, v] : o_.env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string bin = AGENT_BIN;
    std::string cfg = ConfigPath();
    std::vector<char*> argv{bin.data(), const_cast<char*>("run"), const_cast<char*>("--config"),
                            cfg.data(), nullptr};
    // prlimit sets the limits and execs the agent: same pid.
    std::string prlimit = "/usr/bin/prlimit", nofile = "--nofile=" + o_.open_files_limit,
                dashes = "--";
    if (!o_.open_files_limit.empty()) {
      argv.insert(argv.begin(), {prlimit.data(), nofile.data(), dashes.data()});
    }
    const std::string exe = o_.open_files_limit.empty() ? bin : prlimit;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, LogPath().c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = 0;
  }

  // Waits for the child to exit; returns its wait status or -1 on timeout.
  int WaitExit(std::chrono::seconds timeout) {
    if (pid_ == 0) return 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = 0;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  int Terminate(std::chrono::seconds timeout = std::chrono::seconds(10)) {
    if (pid_ != 0) ::kill(pid_, SIGTERM);
    return WaitExit(timeout);
  }
  void Kill() {
    if (pid_ != 0) {
      ::kill(pid_, SIGKILL);
      WaitExit(std::chrono::seconds(10));
    }
  }
  bool Running() const { return pid_ != 0 && ::kill(pid_, 0) == 0 && !Exited(); }
  bool Exited() const {
    int status = 0;
    return pid_ != 0 && ::waitpid(pid_, &status, WNOHANG) == pid_;
  }
  pid_t pid() const { return pid_; }

  // The agent's id, read from the first registration it sent.
  std::string AgentId() const {
    auto reg = sim_.LatestRegistration();
    if (!reg) return "";
    return nlohmann::json::parse(*reg).value("host_agent_id", "");
  }
  std::string WaitAgentId(std::chrono::seconds timeout) {
    std::string id;
    sim::Simulator::WaitFor([&] { return !(id = AgentId()).empty(); }, timeout);
    return id;
  }

  // Environment for the next Start() (e.g. TAOLIE_FAILPOINTS); "" removes a variable.
  void SetEnv(const std::string& k, const std::string& v) {
    if (v.empty()) {
      o_.env.erase(k);
    } else {
      o_.env[k] = v;
    }
  }
  // Rewrites the config with another API key and sends SIGHUP.
  void ReloadWithApiKey(const std::string& key) {
    o_.api_key = key;
    WriteConfig();
    if (pid_ != 0) ::kill(pid_, SIGHUP);
  }
  // The `database:` section for the next Start().
  void set_database_yaml(const std::string& yaml) { o_.database_yaml = yaml; }
  int ssh_port() const { return ssh_port_; }
  int status_port() const { return ssh_port_ + 3; }
  void set_ports(int ssh_port, int range_first) {
    ssh_port_ = ssh_port;
    range_first_ = range_first;
  }
  const std::string& root() const { return root_; }
  const std::string& registry() const { return registry_; }

 private:
  std::string docker_host_;
  std::string registry_;
  sim::Simulator& sim_;
  HarnessOptions o_;
  std::string root_;
  pid_t pid_ = 0;
  static constexpr int kRangeSize = 50;
  int ssh_port_ = 42022;  // replaced by free ports in the constructor
  int range_first_ = 42100;
};

// Base fixture: the simulator, a Docker client for checks, and one agent under test. Skips
// (or fails under CI=true) when the test services are not running.
class AgentE2eTest : public ::testing::Test {
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
    auto docker = docker::EngineDockerClient::Create(docker_host_, std::chrono::seconds(30));
    ASSERT_TRUE(docker.ok()) << docker.error().ToString();
    docker_ = std::move(*docker);
  }
  void TearDown() override {
    // Every body the agent sent and every answer the simulator gave follows the contract
    // (docs/platform-api.md, schemas/).
    if (sim_ && check_contract_) {
      for (const auto& problem : ContractViolations(sim_->Requests())) {
        ADD_FAILURE() << "platform contract: " << problem;
      }
    }
    if (agent_ && HasFailure())
      std::cerr << "---- agent log (tail) ----\n" << Tail(agent_->Log(), 8000) << "\n";
    agent_.reset();
    if (docker_) {
      if (auto list = docker_->List({{"taolie.managed", "true"}}); list.ok()) {
        for (const auto& c : *list) (void)docker_->Remove(c.id, true);
      }
    }
    if (sim_) sim_->Stop();
  }

  void StartAgent(HarnessOptions o = {}) {
    agent_ = std::make_unique<AgentHarness>(docker_host_, registry_, *sim_, std::move(o));
    agent_->Start();
    agent_id_ = agent_->WaitAgentId(std::chrono::seconds(60));
    ASSERT_FALSE(agent_id_.empty()) << "agent did not register\n" << Tail(agent_->Log(), 4000);
  }

  std::string SshImage() const { return registry_ + "/taolie-test/sshd:1"; }

  std::vector<docker::ContainerInfo> Containers(const std::string& deployment_id) {
    auto list = docker_->List({{"taolie.deployment_id", deployment_id}});
    return list.ok() ? *list : std::vector<docker::ContainerInfo>{};
  }
  std::vector<docker::ContainerInfo> Managed() {
    auto list = docker_->List({{"taolie.managed", "true"}});
    return list.ok() ? *list : std::vector<docker::ContainerInfo>{};
  }

  // The first event of a kind for a deployment, waited for up to `timeout`; null if none.
  nlohmann::json WaitEvent(const std::string& dep, const std::string& kind,
                           std::chrono::seconds timeout) {
    std::vector<std::string> ev;
    sim::Simulator::WaitFor([&] { return !(ev = sim_->Events(dep, kind)).empty(); }, timeout);
    return ev.empty() ? nlohmann::json() : nlohmann::json::parse(ev.front());
  }
  // The last ack body of a command, once acked; null if not acked in time.
  nlohmann::json Ack(const std::string& cmd, std::chrono::seconds timeout) {
    if (!sim::Simulator::WaitFor([&] { return sim_->Acked(cmd); }, timeout))
      return nlohmann::json();
    auto bodies = sim_->AckBodies(cmd);
    return bodies.empty() ? nlohmann::json() : nlohmann::json::parse(bodies.back());
  }

  // Waits until the agent has polled for commands `n` more times: after it, what the agent
  // would have done with what it saw before has had its chance (a positive signal, instead
  // of sleeping and checking that nothing happened).
  bool WaitForPolls(int n, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const std::string path = "/api/host-agents/" + agent_id_ + "/commands";
    auto polls = [&] {
      int count = 0;
      for (const auto& r : sim_->Requests(path)) count += r.method == "GET" ? 1 : 0;
      return count;
    };
    const int start = polls();
    return sim::Simulator::WaitFor([&] { return polls() >= start + n; }, timeout);
  }

  std::string docker_host_, registry_, agent_id_;
  // The contract check at teardown. Answers a test injects through the simulator's raw poll
  // reply or a non-object payload are skipped by themselves; a test that feeds other
  // off-contract input on purpose turns the check off, saying why.
  bool check_contract_ = true;
  std::unique_ptr<sim::Simulator> sim_;
  std::unique_ptr<docker::EngineDockerClient> docker_;
  std::unique_ptr<AgentHarness> agent_;
};

}  // namespace taolie::testing
