// taolie-host-agent: run | check-config | version | dev | sim | firewall remove | gpu reset-done |
// status | deployments | drain | undrain | logs | healthcheck
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <thread>

#include "agent/agent_app.h"
#include "cli/local_client.h"
#include "config/config_loader.h"
#include "doctor/doctor.h"
#include "host/command_runner.h"
#include "host/firewall.h"
#include "host/process_limits.h"
#include "host/sd_notify.h"
#include "host/signals.h"
#include "sim/simulator.h"
#include "store/conninfo.h"
#include "store/managed_postgres.h"
#include "store/pg_store.h"
#include "telemetry/logging.h"

#ifndef TAOLIE_VERSION
#define TAOLIE_VERSION "0.0.0"
#endif

namespace {

using namespace taolie;

constexpr const char* kVersion = TAOLIE_VERSION;

// SIGTERM/SIGINT/SIGHUP are taken by the main thread only: block them before threads start.
bool BlockSignals() {
  Status st = host::SignalWaiter::BlockSignals();
  if (!st.ok()) std::fprintf(stderr, "signals: %s\n", st.error().message.c_str());
  return st.ok();
}

Status InitLogging(const config::Config& cfg) {
  telemetry::LoggingOptions lo;
  lo.level = cfg.logging.level;
  lo.console = cfg.logging.console;
  lo.file = cfg.logging.file;
  lo.max_size_mb = cfg.logging.max_size_mb;
  lo.max_files = cfg.logging.max_files;
  lo.journal = cfg.logging.journal && host::UnderSystemd();
  // Under systemd, stderr goes to the journal too: with the journal sink on, it is the log
  // (each line once, with its level); the file log stays as configured.
  if (lo.journal && host::StderrIsJournal()) lo.console = false;
  Status st = telemetry::SetupLogging(lo);
  if (!st.ok() && !lo.file.empty()) {
    // The file is optional for the agent's survival: fall back to console + journal.
    std::fprintf(stderr, "logging.file: %s; logging to the console only\n",
                 st.error().message.c_str());
    lo.file.clear();
    st = telemetry::SetupLogging(lo);
  }
  telemetry::RegisterSecret(cfg.agent.api_key);
  telemetry::RegisterSecret(cfg.database.password);
  return st;
}

// The soft RLIMIT_NOFILE raised to the hard one (systemd's default soft 1024 is too few).
void LogOpenFilesLimit() {
  auto limit = host::RaiseOpenFilesLimit();
  if (!limit.ok()) {
    spdlog::warn("open files limit: {}", limit.error().message);
  } else if (limit->soft != limit->soft_before) {
    spdlog::info("open files limit: {} (raised from {}, the hard limit)", limit->soft,
                 limit->soft_before);
  } else {
    spdlog::info("open files limit: {} (the hard limit)", limit->soft);
  }
}

// Runs the agent until SIGTERM/SIGINT. SIGHUP re-sends the registration. `on_started` runs
// once the agent is up (dev mode prints its hints there).
int RunUntilSignal(const config::Config& cfg, const std::string& config_path,
                   const std::function<void(agent::AgentApp&)>& on_started = nullptr) {
  auto app = agent::AgentApp::Create(cfg, kVersion);
  if (!app.ok()) {
    spdlog::critical("cannot start: {}", app.error().ToString());
    return 1;
  }
  if (Status st = (*app)->Start(); !st.ok()) {
    spdlog::critical("cannot start: {}", st.error().ToString());
    return 1;
  }
  if (on_started) on_started(**app);
  host::SdNotify::Ready();
  // Wake for signals at once, and otherwise as often as systemd's watchdog and STATUS= need:
  // the watchdog is fed only while every loop finishes its rounds (agent/liveness.h), so a
  // stuck loop makes systemd restart the agent, while an outage (rounds that fail and back
  // off) does not.
  const bool notify = std::getenv("NOTIFY_SOCKET") != nullptr;
  auto wake = std::chrono::milliseconds(notify ? 10'000 : 60'000);
  if (auto wd = host::SdNotify::WatchdogInterval()) {
    wake = std::min(wake, std::max(std::chrono::milliseconds(500),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(*wd) / 2));
  }
  std::string last_status;
  bool was_stuck = false;
  auto tell_systemd = [&] {
    loops::Liveness live = (*app)->CheckLiveness();
    if (live.ok) {
      host::SdNotify::Watchdog();
      if (was_stuck) spdlog::info("every loop finishes its rounds again: watchdog fed again");
    } else if (!was_stuck) {
      spdlog::error("{}: systemd's watchdog is no longer fed (systemd restarts the agent)",
                    live.detail);
    }
    was_stuck = !live.ok;
    if (notify) {
      std::string line = (*app)->StatusLine();
      if (line != last_status) {
        host::SdNotify::Status(line);
        last_status = std::move(line);
      }
    }
  };
  tell_systemd();
  while (true) {
    int sig = host::SignalWaiter::Wait(wake);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("signal {}: stopping", sig);
      host::SdNotify::Stopping();
      break;
    }
    if (sig == SIGHUP) {
      // Re-read the config for the API key only (everything else needs a restart).
      std::string key = cfg.agent.api_key;
      if (!config_path.empty()) {
        auto reloaded =
            config::LoadConfigFile(config_path, [](const char* n) { return std::getenv(n); });
        if (reloaded.ok() && !config::HasFatal(reloaded->problems)) {
          key = reloaded->config.agent.api_key;
          telemetry::RegisterSecret(key);
        } else {
          spdlog::warn("SIGHUP: {} has problems; keeping the running config", config_path);
        }
      }
      spdlog::info("SIGHUP: registering again");
      (*app)->Reload(key);
    }
    tell_systemd();
  }
  // Everything is recorded before it is done, so work still in flight after a few seconds (a
  // container's stop grace period, a pull) can be left: the next start resumes it.
  std::promise<void> stopped;
  auto done = stopped.get_future();
  std::thread stopper([&] {
    try {  // the thread's catch-all: a failing stop still ends the process, logged
      (*app)->Stop();
    } catch (const std::exception& e) {
      spdlog::error("stopping: {}", e.what());
    } catch (...) {
      spdlog::error("stopping: unknown exception");
    }
    stopped.set_value();
  });
  if (done.wait_for(std::chrono::milliseconds(4500)) == std::future_status::timeout) {
    spdlog::warn("work still in progress; it resumes at the next start");
    spdlog::default_logger()->flush();
    std::_Exit(0);
  }
  stopper.join();
  return 0;
}

int CmdCheckConfig(const std::string& path) {
  auto loaded = config::LoadConfigFile(path, [](const char* n) { return std::getenv(n); });
  if (!loaded.ok()) {
    std::cerr << loaded.error().message << "\n";
    return 2;
  }
  auto problems = loaded->problems;
  auto run_problems = config::ValidateForRun(loaded->config);
  problems.insert(problems.end(), run_problems.begin(), run_problems.end());
  int fatal = 0;
  for (const auto& p : problems) {
    std::cout << (p.fatal ? "error: " : "warning: ") << config::FormatProblem(p) << "\n";
    fatal += p.fatal ? 1 : 0;
  }
  if (fatal > 0) {
    std::cout << fatal << " problem(s) in " << path << "\n";
    return 1;
  }
  std::cout << path << ": OK\n";
  return 0;
}

int CmdRun(const std::string& path) {
  if (!BlockSignals()) return 1;  // before any thread starts
  auto loaded = config::LoadConfigFile(path, [](const char* n) { return std::getenv(n); });
  if (!loaded.ok()) {
    std::cerr << loaded.error().message << "\n";
    return 2;
  }
  config::Config cfg = loaded->config;
  auto problems = loaded->problems;
  auto more = config::ValidateForRun(cfg);
  problems.insert(problems.end(), more.begin(), more.end());
  bool fatal = false;
  for (const auto& p : problems) {
    std::cerr << (p.fatal ? "error: " : "warning: ") << config::FormatProblem(p) << "\n";
    fatal = fatal || p.fatal;
  }
  if (fatal) return 2;
  if (Status st = InitLogging(cfg); !st.ok()) {
    std::cerr << "logging: " << st.error().message << "\n";
    return 2;
  }
  spdlog::info("taolie-host-agent {} starting (config {})", kVersion, path);
  LogOpenFilesLimit();
  return RunUntilSignal(cfg, path);
}

struct DevOptions {
  std::string data_dir = ".dev";
  std::string docker_host;
  int sim_port = 8470;
  std::string fake_nvml;
  std::string scenario;
  std::string demo_image;
};

int CmdDev(const DevOptions& o) {
  if (!BlockSignals()) return 1;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o.data_dir, ec);
  config::Config cfg;
  cfg.data_dir = fs::absolute(o.data_dir).string();
  cfg.agent.api_key = "sim-key";
  cfg.network.public_ip = "127.0.0.1";
  cfg.network.bind_ip = "127.0.0.1";
  cfg.network.ports = {22022, 28888, 29999, 0};
  cfg.network.port_range = {30000, 30099};
  cfg.logging.file = cfg.data_dir + "/agent.log";
  cfg.logging.journal = false;
  cfg.docker.host = o.docker_host;
  cfg.deployment.readiness_timeout_seconds = 60;
  cfg.monitoring.heartbeat_interval = 10;
  cfg.monitoring.command_poll_interval = 2;
  cfg.monitoring.duration_check_interval = 5;
  cfg.api.port = 8471;
  // The local test registry (tests/fixtures/services.sh) is on loopback: dev mode allows it.
  cfg.deployment.allowed_registries = {"127.0.0.1:5555"};

  // Real NVML when the machine has it; the project's fake GPUs otherwise.
  std::string fake = o.fake_nvml;
  if (fake.empty()) {
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    fake = (exe.parent_path() / "fake_nvml" / "libnvidia-ml.so.1").string();
  }
  bool real_nvml = fs::exists("/dev/nvidiactl") && o.fake_nvml.empty();
  if (!real_nvml) {
    cfg.gpu.nvml_library = fake;
    if (!o.scenario.empty()) setenv("TAOLIE_FAKE_NVML_SCENARIO", o.scenario.c_str(), 1);
  }

  sim::Simulator::Options so;
  so.port = o.sim_port;
  so.api_key = cfg.agent.api_key;
  auto simulator = sim::Simulator::Start(so);
  if (!simulator.ok()) {
    std::cerr << "simulator: " << simulator.error().ToString() << "\n";
    return 1;
  }
  cfg.server.url = (*simulator)->base_url();
  if (Status st = InitLogging(cfg); !st.ok()) {
    std::cerr << "logging: " << st.error().message << "\n";
    return 2;
  }
  spdlog::info("dev mode: simulator at {}, GPUs {}, data in {}", cfg.server.url,
               real_nvml ? "from NVML" : "simulated (" + fake + ")", cfg.data_dir);
  std::string base = (*simulator)->base_url();
  std::string image = o.demo_image.empty() ? "127.0.0.1:5555/taolie-test/sshd:1" : o.demo_image;
  auto hints = [&](agent::AgentApp& app) {
    const std::string& id = app.agent_id();
    std::printf(
        "\n=== TAOLIE host agent (dev) is running as %s ===\n"
        "Rent a GPU (5 minutes, SSH + Jupyter):\n"
        "  curl -s -X POST %s/sim/agents/%s/deploy -d "
        "'{\"image\":\"%s\",\"ports\":{\"22\":22,\"8888\":8888},"
        "\"duration_minutes\":5,\"price_per_hour\":1.2}'\n"
        "See the access details the agent reported:\n"
        "  curl -s %s/sim/deployments\n"
        "End it early:\n"
        "  curl -s -X POST %s/sim/agents/%s/terminate/<deployment_id> -d '{}'\n"
        "Everything the agent sent: curl -s %s/sim/events   Log: %s\n"
        "The agent's own status and metrics: curl -s http://127.0.0.1:8471/status (and /metrics)\n"
        "Ctrl-C stops the agent (containers keep running; the next start adopts them).\n\n",
        id.c_str(), base.c_str(), id.c_str(), image.c_str(), base.c_str(), base.c_str(), id.c_str(),
        base.c_str(), cfg.logging.file.c_str());
    std::fflush(stdout);
  };
  LogOpenFilesLimit();
  int rc = RunUntilSignal(cfg, "", hints);
  (*simulator)->Stop();
  return rc;
}

int CmdSim(int port) {
  if (!BlockSignals()) return 1;
  sim::Simulator::Options so;
  so.port = port;
  auto simulator = sim::Simulator::Start(so);
  if (!simulator.ok()) {
    std::cerr << "simulator: " << simulator.error().ToString() << "\n";
    return 1;
  }
  std::printf("simulator listening on %s (api key: %s)\n", (*simulator)->base_url().c_str(),
              so.api_key.c_str());
  std::fflush(stdout);
  while (true) {
    int sig = host::SignalWaiter::Wait(std::chrono::milliseconds(1000));
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  (*simulator)->Stop();
  return 0;
}

// Removes every firewall rule the agent installed (tagged taolie-host-agent) and its own
// chains; what is not there is not an error. Needs no config.
int CmdFirewallRemove() {
  host::SubprocessRunner runner;
  auto fw = host::IptablesFirewall::Create(runner);
  Status st = fw.ok() ? (*fw)->Remove() : Status(fw.error());
  if (!st.ok()) {
    std::fprintf(stderr, "firewall remove: %s\n", st.error().ToString().c_str());
    return 1;
  }
  std::printf("firewall: removed the rules tagged %s (iptables %s)\n", host::kFirewallTag,
              (*fw)->Backend().c_str());
  // The IPv6 rules: none to remove where ip6tables is not installed.
  auto fw6 = host::IptablesFirewall::Create(runner, host::IpFamily::kIpv6);
  if (!fw6.ok() && fw6.error().code == ErrorCode::kNotFound) {
    std::printf("firewall: no ip6tables (%s): no IPv6 rules\n", fw6.error().message.c_str());
    return 0;
  }
  st = fw6.ok() ? (*fw6)->Remove() : Status(fw6.error());
  if (!st.ok()) {
    std::fprintf(stderr, "firewall remove (IPv6): %s\n", st.error().ToString().c_str());
    return 1;
  }
  std::printf("firewall: removed the IPv6 rules tagged %s (ip6tables %s)\n", host::kFirewallTag,
              (*fw6)->Backend().c_str());
  return 0;
}

// The operator reset a quarantined GPU that waits for a reset (nvidia-smi -r, or a reboot the
// agent cannot see as one): the store's flag is cleared, and the GPU returns to service once it
// has stayed healthy for monitoring.quarantine_clear_seconds. Talks to the running agent's
// database (managed: its socket and password under data_dir).
int CmdGpuResetDone(const std::string& config_path, const std::string& uuid) {
  auto loaded = config::LoadConfigFile(config_path, [](const char* n) { return std::getenv(n); });
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
    return 2;
  }
  const config::Config& cfg = loaded->config;
  std::string conninfo;
  if (store::UsesManagedDatabase(cfg.database)) {
    auto managed = store::ManagedPostgres::ConnInfoUnder(cfg.data_dir);
    if (!managed.ok()) {
      std::fprintf(stderr, "gpu reset-done: no managed database under %s (is the agent set up?)\n",
                   cfg.data_dir.c_str());
      return 1;
    }
    conninfo = *managed;
  } else {
    conninfo = store::ExternalConnInfo(cfg.database);
  }
  auto db = store::PgStore::Create(conninfo, cfg.database.statement_timeout_ms);
  if (!db.ok()) {
    std::fprintf(stderr, "gpu reset-done: database: %s\n", db.error().message.c_str());
    return 1;
  }
  auto gpus = (*db)->ListGpus();
  if (!gpus.ok()) {
    std::fprintf(stderr, "gpu reset-done: %s\n", gpus.error().ToString().c_str());
    return 1;
  }
  auto g = std::find_if(gpus->begin(), gpus->end(),
                        [&](const store::GpuRecord& r) { return r.uuid == uuid; });
  if (g == gpus->end()) {
    std::fprintf(stderr, "gpu reset-done: no GPU %s on this host\n", uuid.c_str());
    return 1;
  }
  if (!g->needs_reset) {
    std::printf(
        "GPU %s is not waiting for a reset%s\n", uuid.c_str(),
        g->quarantined_since ? " (it is quarantined: it returns once healthy long enough)" : "");
    return 0;
  }
  if (Status st = (*db)->MarkGpuReset(uuid); !st.ok()) {
    std::fprintf(stderr, "gpu reset-done: %s\n", st.error().ToString().c_str());
    return 1;
  }
  std::printf("GPU %s marked reset: it returns to service after %d s healthy\n", uuid.c_str(),
              cfg.monitoring.quarantine_clear_seconds);
  return 0;
}

// The config a CLI subcommand reads to find the running agent (its api.* and data_dir keys).
// Problems are not fatal here: the agent itself refuses a bad config at its start.
std::optional<config::Config> CliConfig(const std::string& path) {
  auto loaded = config::LoadConfigFile(path, [](const char* n) { return std::getenv(n); });
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
    return std::nullopt;
  }
  return loaded->config;
}

// Pre-flight checks without the agent running (docs/doctor.md): one line per dependency, exit 1
// on any FAIL, 2 when the config cannot be read.
int CmdDoctor(const std::string& config_path, bool as_json) {
  spdlog::set_level(spdlog::level::off);  // the libraries' own log lines are not the report
  auto loaded = config::LoadConfigFile(config_path, [](const char* n) { return std::getenv(n); });
  if (!loaded.ok()) {
    std::fprintf(stderr, "doctor: %s\n", loaded.error().message.c_str());
    return 2;
  }
  auto report = doctor::RunDoctor(
      *loaded, std::make_shared<doctor::Environment>(doctor::RealEnvironment(loaded->config)));
  if (as_json) {
    std::printf("%s\n", doctor::FormatJson(report.checks).c_str());
  } else {
    for (const auto& c : report.checks) std::printf("%s\n", doctor::FormatLine(c).c_str());
    std::printf("verdict: %s\n",
                std::string(doctor::LevelName(doctor::Verdict(report.checks))).c_str());
  }
  std::fflush(stdout);
  const int rc = doctor::ExitCode(report.checks);
  if (report.abandoned) std::_Exit(rc);  // a hung check's thread still runs
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, in every subcommand: a closed peer costs an EPIPE, not the process.
  if (Status st = host::IgnoreSigpipe(); !st.ok()) {
    std::fprintf(stderr, "signals: %s\n", st.error().message.c_str());
    return 1;
  }
  CLI::App cli{"TAOLIE host agent: rents this machine's GPUs out through the TAOLIE platform"};
  cli.require_subcommand(1);
  std::string config_path = "/etc/taolie-host-agent/config.yaml";
  auto* run = cli.add_subcommand("run", "run the agent");
  run->add_option("-c,--config", config_path, "config file")->capture_default_str();
  auto* check = cli.add_subcommand("check-config",
                                   "validate a config file; prints each problem as 'key: reason'");
  check->add_option("-c,--config", config_path, "config file")->capture_default_str();
  auto* version = cli.add_subcommand("version", "print the version");
  DevOptions dev_opts;
  auto* dev = cli.add_subcommand(
      "dev", "all-in-one local mode: managed PostgreSQL, platform simulator, fake GPUs");
  dev->add_option("--data-dir", dev_opts.data_dir)->capture_default_str();
  dev->add_option("--docker-host", dev_opts.docker_host,
                  "Docker socket (default $DOCKER_HOST or the standard one)");
  dev->add_option("--sim-port", dev_opts.sim_port)->capture_default_str();
  dev->add_option("--fake-nvml", dev_opts.fake_nvml, "path of the fake libnvidia-ml.so.1");
  dev->add_option("--scenario", dev_opts.scenario, "fake NVML scenario file");
  dev->add_option("--image", dev_opts.demo_image, "image shown in the how-to-rent hint");
  int sim_port = 8470;
  auto* simcmd = cli.add_subcommand(
      "sim", "run only the platform simulator on 127.0.0.1 (for tests and benchmarks)");
  simcmd->add_option("--port", sim_port)->capture_default_str();
  auto* firewall = cli.add_subcommand("firewall", "the rental network's firewall rules");
  firewall->require_subcommand(1);
  auto* firewall_remove = firewall->add_subcommand(
      "remove", "remove every rule the agent installed (tagged taolie-host-agent)");
  auto* gpu = cli.add_subcommand("gpu", "the GPUs' standing for rentals");
  gpu->require_subcommand(1);
  std::string reset_uuid;
  auto* gpu_reset_done = gpu->add_subcommand(
      "reset-done", "the operator reset this quarantined GPU (nvidia-smi -r): stop waiting for it");
  gpu_reset_done->add_option("uuid", reset_uuid, "the GPU's UUID (GPU-...)")->required();
  gpu_reset_done->add_option("-c,--config", config_path, "config file")->capture_default_str();
  // The running agent, through its local API (docs/local-api.md).
  bool as_json = false;
  auto* status =
      cli.add_subcommand("status", "the running agent: platform link, rentals, GPUs, loops");
  status->add_flag("--json", as_json, "the API's JSON document (/v1/status)");
  auto* deployments = cli.add_subcommand("deployments", "the rentals on this host");
  deployments->add_flag("--json", as_json, "the API's JSON document (/v1/deployments)");
  auto* drain = cli.add_subcommand(
      "drain", "finish the current rentals and accept no new one (kept across restarts; root)");
  auto* undrain = cli.add_subcommand("undrain", "accept rentals again (root)");
  auto* healthcheck =
      cli.add_subcommand("healthcheck", "exit 0 when the agent's loops are alive (/healthz)");
  bool follow = false;
  int log_lines = 100;
  auto* logs =
      cli.add_subcommand("logs", "the agent's log: the journal under systemd, else the file");
  logs->add_flag("-f,--follow", follow, "keep printing new lines");
  logs->add_option("-n,--lines", log_lines, "lines to show")->capture_default_str();
  for (auto* c : {status, deployments, drain, undrain, healthcheck, logs}) {
    c->add_option("-c,--config", config_path, "config file")->capture_default_str();
  }
  bool doctor_json = false;
  auto* doctor_cmd = cli.add_subcommand(
      "doctor", "check every dependency without the agent running: OK / WARN / FAIL with the fix");
  doctor_cmd->add_option("-c,--config", config_path, "config file")->capture_default_str();
  doctor_cmd->add_flag("--json", doctor_json, "print the checks as JSON");
  CLI11_PARSE(cli, argc, argv);

  if (*version) {
    std::printf("taolie-host-agent %s\n", kVersion);
    return 0;
  }
  if (*check) return CmdCheckConfig(config_path);
  if (*run) return CmdRun(config_path);
  if (*dev) return CmdDev(dev_opts);
  if (*simcmd) return CmdSim(sim_port);
  if (*firewall_remove) return CmdFirewallRemove();
  if (*gpu_reset_done) return CmdGpuResetDone(config_path, reset_uuid);
  for (auto* c : {status, deployments, drain, undrain, healthcheck, logs}) {
    if (!*c) continue;
    auto cfg = CliConfig(config_path);
    if (!cfg) return 2;
    if (c == status) return taolie::cli::CmdStatus(*cfg, as_json);
    if (c == deployments) return taolie::cli::CmdDeployments(*cfg, as_json);
    if (c == drain || c == undrain) return taolie::cli::CmdDrain(*cfg, c == drain);
    if (c == healthcheck) return taolie::cli::CmdHealthcheck(*cfg);
    return taolie::cli::CmdLogs(*cfg, follow, log_lines);
  }
  if (*doctor_cmd) return CmdDoctor(config_path, doctor_json);
  return 2;
}
