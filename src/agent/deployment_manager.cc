#include "agent/deployment_manager.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "agent/failpoints.h"
#include "agent/periodic_runner.h"
#include "agent/rules/billing.h"
#include "agent/rules/limits.h"
#include "agent/rules/port_policy.h"
#include "common/secrets.h"
#include "platform/messages.h"

namespace taolie::agent {
namespace {

using domain::Deployment;
using domain::DeploymentState;

constexpr char kLabelManaged[] = "taolie.managed";
constexpr char kLabelAgent[] = "taolie.agent_id";
constexpr char kLabelDeployment[] = "taolie.deployment_id";
constexpr char kLabelGpus[] = "taolie.gpus";
constexpr char kLabelCommand[] = "taolie.command_id";

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// Connects to host:port within `timeout`; returns the fd or -1.
int ConnectWithTimeout(const std::string& host, int port, std::chrono::milliseconds timeout) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
    ::close(fd);
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads up to `max` bytes until `pred` holds or the timeout passes.
std::string ReadSome(int fd, std::chrono::milliseconds timeout, size_t max) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < max) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.find('\n') != std::string::npos) break;
  }
  return out;
}

bool SshBanner(const std::string& host, int port) {
  int fd = ConnectWithTimeout(host, port, std::chrono::milliseconds(1000));
  if (fd < 0) return false;
  std::string got = ReadSome(fd, std::chrono::milliseconds(2000), 255);
  ::close(fd);
  return got.rfind("SSH-2.0", 0) == 0;
}

bool HttpAnswers(const std::string& host, int port) {
  int fd = ConnectWithTimeout(host, port, std::chrono::milliseconds(1000));
  if (fd < 0) return false;
  std::string req = "GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  bool ok = ::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size());
  std::string got = ok ? ReadSome(fd, std::chrono::milliseconds(2000), 64) : "";
  ::close(fd);
  return got.rfind("HTTP/", 0) == 0;
}

// True when host process `pid` runs in the container (its cgroup path names the container id).
bool ProcessInContainer(uint32_t pid, const std::string& container_id) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(container_id) != std::string::npos) return true;
  }
  return false;
}

// The address a readiness probe connects to for a port bound on `bind_ip`.
std::string ProbeAddress(const std::string& bind_ip) {
  if (bind_ip.empty() || bind_ip == "0.0.0.0" || bind_ip == "::") return "127.0.0.1";
  return bind_ip;
}

}  // namespace

std::optional<std::string> CommandIdFromAckPath(const std::string& path) {
  const std::string marker = "/commands/";
  auto pos = path.rfind(marker);
  if (pos == std::string::npos || path.size() < 4 ||
      path.compare(path.size() - 4, 4, "/ack") != 0) {
    return std::nullopt;
  }
  std::string enc = path.substr(pos + marker.size(), path.size() - 4 - pos - marker.size());
  std::string out;
  for (size_t i = 0; i < enc.size(); ++i) {
    if (enc[i] == '%' && i + 2 < enc.size() &&
        std::isxdigit(static_cast<unsigned char>(enc[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(enc[i + 2]))) {
      out.push_back(static_cast<char>(std::strtol(enc.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(enc[i]);
    }
  }
  return out;
}

DeploymentManager::DeploymentManager(Deps deps, Runtime& rt, WorkQueue& work)
    : d_(deps), rt_(rt), work_(work) {}

store::OutboxEvent DeploymentManager::Event(const std::string& deployment_id,
                                            domain::EventKind kind, std::string body,
                                            bool ext) const {
  store::OutboxEvent e;
  e.deployment_id = deployment_id;
  e.kind = kind;
  e.path = platform::DeploymentEventPath(deployment_id, domain::EventKindName(kind));
  e.body = std::move(body);
  e.ext = ext;
  e.created_at = d_.clock.Now();
  return e;
}

store::OutboxEvent DeploymentManager::AckEvent(const std::string& command_id,
                                               const std::string& result, const std::string& error,
                                               const std::string& deployment_id) const {
  store::OutboxEvent e;
  e.deployment_id = deployment_id;
  e.kind = domain::EventKind::kAck;
  e.path = platform::AckPath(rt_.agent_id(), command_id);
  e.body = platform::BuildAckBody(d_.clock.Now(), rt_.ts(), result, error, deployment_id);
  e.ext = false;
  e.created_at = d_.clock.Now();
  return e;
}

void DeploymentManager::Schedule(const store::CommandRecord& cmd) {
  std::string serial = "cmd:" + cmd.command_id;
  if (cmd.command_type == "terminate") {
    // A terminate cancels an in-flight deploy of the same deployment right away.
    auto spec = ParseTerminatePayload(cmd.payload_json);
    if (spec.ok()) {
      std::string id = spec->deployment_id;
      if (auto by_cmd = d_.store.FindDeploymentByCommand(id); by_cmd.ok() && by_cmd->has_value()) {
        id = (*by_cmd)->id;
      }
      serial = "dep:" + id;
      std::lock_guard l(cancel_mu_);
      if (auto it = cancels_.find(id); it != cancels_.end()) it->second->request_stop();
    }
  } else if (cmd.command_type == "deploy") {
    // Serialise with later terminates of the same deployment.
    serial = "dep:" + PayloadDeploymentId(cmd);
  }
  work_.Submit("cmd:" + cmd.command_id, serial,
               [this, cmd](std::stop_token st) { Process(cmd, st); });
}

void DeploymentManager::Process(const store::CommandRecord& cmd, std::stop_token stop) {
  auto current = d_.store.GetCommand(cmd.command_id);
  if (current.ok() && current->has_value() && (*current)->state == store::CommandState::kDone)
    return;
  if (cmd.command_type == "deploy") {
    ProcessDeploy(cmd, stop);
  } else if (cmd.command_type == "terminate") {
    ProcessTerminate(cmd, stop);
  } else {
    spdlog::warn("command {}: unknown command_type '{}', rejected", cmd.command_id,
                 cmd.command_type);
    FinishCommand(cmd, "rejected", "unknown command_type '" + cmd.command_type + "'", "", {});
  }
}

void DeploymentManager::FinishCommand(const store::CommandRecord& cmd, const std::string& result,
                                      const std::string& error, const std::string& deployment_id,
                                      std::vector<store::OutboxEvent> extra_events) {
  extra_events.push_back(AckEvent(cmd.command_id, result, error, deployment_id));
  Status st = d_.store.FinishCommand(cmd.command_id, result, error, deployment_id, extra_events);
  if (!st.ok()) {
    // Left pending: the next reconcile or re-delivery processes it again (idempotently).
    spdlog::error("command {}: could not record result: {}", cmd.command_id, st.error().ToString());
    return;
  }
  rt_.NotifyOutbox();
}

std::string DeploymentManager::ResultOf(const Deployment& d, std::string* error) const {
  if (d.state == DeploymentState::kRunning) return "succeeded";
  if (d.state == DeploymentState::kEnded && d.error_stage.empty()) {
    return "succeeded";  // it ran, and has ended since
  }
  *error = d.error.empty() ? "deployment failed" : d.error;
  return "failed";
}

bool DeploymentManager::HostPortTaken(int port) const {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  bool taken =
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return taken;
}

ValidationLimits DeploymentManager::Limits() const {
  int gpus = 8;
  if (auto list = d_.store.ListGpus(); list.ok() && !list->empty())
    gpus = static_cast<int>(list->size());
  return ValidationLimitsFromConfig(d_.cfg.deployment, gpus);
}

std::string DeploymentManager::PayloadDeploymentId(const store::CommandRecord& cmd) {
  auto j = nlohmann::json::parse(cmd.payload_json, nullptr, false);
  if (j.is_object() && j.contains("deployment_id")) {
    const auto& v = j["deployment_id"];
    std::string id = v.is_string() ? v.get<std::string>() : v.is_number_integer() ? v.dump() : "";
    if (IsValidDeploymentId(id)) return id;
  }
  return cmd.command_id;
}

std::string DeploymentManager::RejectedDeploymentId(const store::CommandRecord& cmd) const {
  // Report under the payload's deployment_id when it is well-formed and not in use, so the
  // platform can match the failure; otherwise under the command id.
  std::string id = PayloadDeploymentId(cmd);
  if (id == cmd.command_id) return id;
  auto existing = d_.store.GetDeployment(id);
  return existing.ok() && !existing->has_value() ? id : cmd.command_id;
}

void DeploymentManager::ProcessDeploy(const store::CommandRecord& cmd, std::stop_token stop) {
  const auto& cfg = d_.cfg;
  auto parsed = ParseDeployPayload(cmd.command_id, cmd.payload_json, Limits());
  if (!parsed.ok()) {
    spdlog::warn("deploy {} rejected: {}", cmd.command_id, parsed.error().message);
    std::string id = RejectedDeploymentId(cmd);
    FinishCommand(cmd, "rejected", parsed.error().message, id,
                  {Event(id, domain::EventKind::kFailed,
                         platform::BuildFailedBody(id, "validate", parsed.error().message,
                                                   d_.clock.Now(), rt_.ts()),
                         true)});
    rt_.deploys_failed++;
    return;
  }
  DeploySpec spec = std::move(parsed.value());

  // Re-delivered or resumed command: never deploy twice.
  auto existing = d_.store.GetDeployment(spec.deployment_id);
  if (!existing.ok()) {
    spdlog::warn("deploy {}: store unavailable: {}", cmd.command_id, existing.error().ToString());
    return;  // stays pending; retried by the next poll/reconcile
  }
  if (!existing->has_value()) {
    auto by_cmd = d_.store.FindDeploymentByCommand(cmd.command_id);
    if (by_cmd.ok() && by_cmd->has_value()) existing = std::move(by_cmd);
  }
  if (existing->has_value()) {
    Deployment d = **existing;
    if (d.state != DeploymentState::kRunning && d.state != DeploymentState::kEnded &&
        d.state != DeploymentState::kStopping) {
      RunDeployment(d, stop);  // resume a half-done deploy
      return;
    }
    std::string err;
    std::string result = ResultOf(d, &err);
    FinishCommand(cmd, result, err, d.id, {});
    return;
  }

  // Admission: choose GPUs and ports and claim them atomically with the deployment row.
  // Serialised, but only admission: a long pull of one rental never holds up another's.
  std::unique_lock admit(admit_mu_);
  Deployment d;
  d.id = spec.deployment_id;
  d.command_id = cmd.command_id;
  d.user_id = spec.user_id;
  d.template_id = spec.template_id;
  d.image = spec.image;
  d.spec_json = SpecToJson(spec);
  d.container_name = ContainerName(d.id);
  d.duration_minutes = spec.duration_minutes;
  d.price_per_hour = spec.price_per_hour;
  d.ssh_username = spec.ssh_username;
  d.created_at = d_.clock.Now();
  auto password = RandomAlnum(24);
  auto token = RandomAlnum(48);
  if (!password.ok() || !token.ok()) {
    spdlog::error("deploy {}: CSPRNG failed", cmd.command_id);
    return;
  }
  d.ssh_password = *password;
  d.jupyter_token = *token;

  auto reject = [&](const std::string& why) {
    spdlog::warn("deploy {} rejected: {}", d.id, why);
    FinishCommand(
        cmd, "failed", why, d.id,
        {Event(d.id, domain::EventKind::kFailed,
               platform::BuildFailedBody(d.id, "validate", why, d_.clock.Now(), rt_.ts()), true)});
    rt_.deploys_failed++;
  };

  store::GpuClaim claim;
  claim.count = spec.gpu_count;
  claim.uuids = spec.gpu_uuids;
  auto gpus = d_.store.ListGpus();
  if (!gpus.ok()) {
    spdlog::warn("deploy {}: store unavailable: {}", d.id, gpus.error().ToString());
    return;
  }
  // Resource requests beyond this host's caps are refused here, before anything is claimed.
  host::HostFacts facts;
  if (auto f = d_.host.Facts(); f.ok()) facts = *f;
  int claimed_count = claim.uuids.empty() ? claim.count : static_cast<int>(claim.uuids.size());
  auto limits = ComputeLimits(
      spec, cfg.deployment,
      HostCapacity{facts.ram_total_bytes, facts.cpu_logical, static_cast<int>(gpus->size())},
      claimed_count);
  if (!limits.ok()) {
    reject(limits.error().message);
    return;
  }
  if (claim.uuids.empty() && claim.count > 0) {
    int free = 0;
    for (const auto& g : *gpus) {
      if (g.present && g.deployment_id.empty() && (domain::Rentable(g.health)))
        ++free;
    }
    if (claim.count > free) {
      reject("gpu_count: " + std::to_string(claim.count) + " requested but only " +
             std::to_string(free) + " healthy GPU(s) are free");
      return;
    }
  }

  std::vector<int> container_ports;
  for (const auto& p : spec.ports) container_ports.push_back(p.container_port);
  auto allocated = d_.store.AllocatedPorts();
  if (!allocated.ok()) {
    spdlog::warn("deploy {}: store unavailable: {}", d.id, allocated.error().ToString());
    return;
  }
  std::set<int> in_db;
  for (const auto& a : *allocated) in_db.insert(a.host_port);
  NamedPorts named{cfg.network.ports.ssh, cfg.network.ports.rental_port_1,
                   cfg.network.ports.rental_port_2};
  PortRangeSpec range{cfg.network.port_range.first, cfg.network.port_range.last};
  auto ports = AllocatePorts(container_ports, named, range, [&](int port) {
    return in_db.count(port) > 0 || HostPortTaken(port);
  });
  if (!ports.ok()) {
    reject(ports.error().message);
    return;
  }
  d.ports = *ports;

  auto created = d_.store.CreateDeployment(d, claim, {});
  if (!created.ok()) {
    if (created.error().code == ErrorCode::kFailedPrecondition) {
      reject(created.error().message);
    } else {
      spdlog::warn("deploy {}: could not record: {}", d.id, created.error().ToString());
    }
    return;
  }
  d = *created;
  rt_.claims_generation++;
  admit.unlock();
  spdlog::info("deployment {} accepted: image {}, GPUs [{}], {} port(s)", d.id, d.image,
               Join(d.gpu_uuids, ","), d.ports.size());
  Failpoint("after_claim");
  RunDeployment(std::move(d), stop);
}

docker::ContainerSpec DeploymentManager::BuildContainerSpec(const Deployment& d,
                                                            const DeploySpec& spec,
                                                            std::string* error) {
  const auto& dc = d_.cfg.deployment;
  docker::ContainerSpec c;
  c.name = d.container_name;
  c.image = d.image;
  for (const auto& [k, v] : spec.env) c.env.push_back(k + "=" + v);
  c.env.push_back("DEPLOYMENT_ID=" + d.id);
  c.env.push_back("SSH_USERNAME=" + d.ssh_username);
  c.env.push_back("SSH_PASSWORD=" + d.ssh_password.value_or(""));
  c.env.push_back("JUPYTER_TOKEN=" + d.jupyter_token);
  if (d.expires_at) c.env.push_back("DEPLOYMENT_EXPIRES_AT=" + FormatRfc3339(*d.expires_at));
  if (spec.ssh_public_key) c.env.push_back("AUTHORIZED_KEYS=" + *spec.ssh_public_key);
  c.labels = {{kLabelManaged, "true"},
              {kLabelAgent, rt_.agent_id()},
              {kLabelDeployment, d.id},
              {kLabelCommand, d.command_id},
              {kLabelGpus, Join(d.gpu_uuids, ",")}};
  if (spec.command) c.cmd = std::vector<std::string>{"sh", "-c", *spec.command};
  c.restart_policy = spec.restart_policy;
  std::string bind_ip = d_.cfg.network.bind_ip == "0.0.0.0" ? "" : d_.cfg.network.bind_ip;
  for (const auto& p : d.ports) c.ports.push_back({p.container_port, "tcp", bind_ip, p.host_port});
  c.gpu_uuids = d.gpu_uuids;
  for (const auto& [host_path, container_path] : spec.volumes)
    c.binds.push_back(host_path + ":" + container_path);

  host::HostFacts facts;
  if (auto f = d_.host.Facts(); f.ok()) facts = *f;
  auto gpus = d_.store.ListGpus();
  int total_gpus = gpus.ok() ? static_cast<int>(gpus->size()) : 0;
  HostCapacity cap{facts.ram_total_bytes, facts.cpu_logical, total_gpus};
  auto limits = ComputeLimits(spec, dc, cap, static_cast<int>(d.gpu_uuids.size()));
  if (!limits.ok()) {
    *error = limits.error().message;
    return c;
  }
  c.memory_bytes = limits->memory_bytes;
  c.nano_cpus = limits->nano_cpus;
  c.shm_size_bytes = limits->shm_bytes;
  c.pids_limit = limits->pids_limit;
  c.log_max_size = std::to_string(dc.log_max_size_mb) + "m";
  c.log_max_file = std::to_string(dc.log_max_files);
  c.no_new_privileges = dc.no_new_privileges;
  c.runtime = dc.runtime;
  return c;
}

void DeploymentManager::FailDeployment(Deployment& d, const std::string& stage,
                                       const std::string& error) {
  spdlog::warn("deployment {} failed at {}: {}", d.id, stage, error);
  // Intent first: the container must go before the GPU and ports are handed out again.
  d.error_stage = stage;
  d.error = error;
  d.end_status = "failed";
  d.end_reason = stage + ": " + error;
  d.state = DeploymentState::kStopping;
  if (Status st = d_.store.UpdateDeployment(d, {}); !st.ok()) {
    spdlog::error("deployment {}: could not record failure: {}", d.id, st.error().ToString());
    return;
  }
  // The container goes before the GPU and ports are handed out again (EndDeployment); when
  // Docker is unavailable the deployment stays in kStopping and the duration monitor retries.
  if (Status st = EndDeployment(d.id, "failed", d.end_reason, std::stop_token()); !st.ok()) {
    spdlog::error("deployment {}: cleanup after failure incomplete: {} (retried)", d.id,
                  st.error().ToString());
    return;
  }
  rt_.deploys_failed++;
  auto cmd = d_.store.GetCommand(d.command_id);
  if (cmd.ok() && cmd->has_value() && (*cmd)->state == store::CommandState::kPending) {
    FinishCommand(**cmd, "failed", d.end_reason, d.id, {});
  }
}

Status DeploymentManager::ReadinessCheck(const Deployment& d, std::stop_token stop,
                                         std::string* why) {
  const auto& dc = d_.cfg.deployment;
  std::string addr = ProbeAddress(d_.cfg.network.bind_ip);
  int ssh_port = 0;
  int http_port = 0;
  for (const auto& p : d.ports) {
    if (p.container_port == 22) ssh_port = p.host_port;
    if (p.container_port == 8888) http_port = p.host_port;  // Jupyter's port in platform images
  }
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(dc.readiness_timeout_seconds);
  bool ssh_ok = ssh_port == 0 && !dc.require_ssh;
  bool http_ok = http_port == 0;
  if (ssh_port == 0 && dc.require_ssh) {
    *why = "no SSH port (container port 22) is published";
    return MakeError(ErrorCode::kFailedPrecondition, *why);
  }
  std::chrono::milliseconds pause(25);
  while (std::chrono::steady_clock::now() < deadline) {
    if (stop.stop_requested()) return MakeError(ErrorCode::kCancelled, "stopped");
    auto info = d_.docker.Inspect(d.container_id);
    if (info.ok() && !info->running) {
      *why =
          "container exited with code " + std::to_string(info->exit_code) + " before it was ready";
      return MakeError(ErrorCode::kFailedPrecondition, *why);
    }
    if (!ssh_ok) ssh_ok = SshBanner(addr, ssh_port);
    if (!http_ok) http_ok = HttpAnswers(addr, http_port);
    if (ssh_ok && http_ok) return OkStatus();
    SleepFor(pause, stop);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));  // quick first probes, then calmer
  }
  *why = std::string("not ready within ") + std::to_string(dc.readiness_timeout_seconds) +
         " s:" + (ssh_ok ? "" : " no SSH-2.0 banner on port " + std::to_string(ssh_port)) +
         (http_ok ? "" : " no HTTP answer on port " + std::to_string(http_port));
  return MakeError(ErrorCode::kDeadlineExceeded, *why);
}

void DeploymentManager::RunDeployment(Deployment d, std::stop_token stop) {
  auto spec_r = SpecFromJson(d.spec_json);
  if (!spec_r.ok()) {
    FailDeployment(d, "validate", "stored spec unreadable: " + spec_r.error().message);
    return;
  }
  const DeploySpec& spec = *spec_r;

  // Own stop source: a terminate cancels this deploy; agent shutdown only pauses it.
  auto cancel = std::make_shared<std::stop_source>();
  {
    std::lock_guard l(cancel_mu_);
    cancels_[d.id] = cancel;
  }
  std::stop_callback on_shutdown(stop, [cancel] { cancel->request_stop(); });
  struct Unregister {
    DeploymentManager* m;
    std::string id;
    ~Unregister() {
      std::lock_guard l(m->cancel_mu_);
      m->cancels_.erase(id);
    }
  } unregister{this, d.id};
  std::stop_token st = cancel->get_token();
  auto interrupted = [&]() -> bool {
    if (!st.stop_requested()) return false;
    if (stop.stop_requested()) {
      spdlog::info("deployment {}: paused at {} by shutdown; resumed at next start", d.id,
                   domain::DeploymentStateName(d.state));
    } else {
      spdlog::info("deployment {}: terminated while deploying", d.id);
      {
        std::lock_guard l(cancel_mu_);
        cancels_.erase(d.id);
      }
      if (Status s =
              EndDeployment(d.id, "terminated", "terminated while deploying", std::stop_token());
          !s.ok()) {
        spdlog::warn("deployment {}: {}", d.id, s.error().ToString());
      }
      auto cmd = d_.store.GetCommand(d.command_id);
      if (cmd.ok() && cmd->has_value() && (*cmd)->state == store::CommandState::kPending) {
        FinishCommand(**cmd, "failed", "terminated while deploying", d.id, {});
      }
    }
    return true;
  };
  auto save = [&](std::vector<store::OutboxEvent> ev = {}) -> bool {
    d.updated_at = d_.clock.Now();
    Status s = d_.store.UpdateDeployment(d, ev);
    if (!s.ok()) spdlog::error("deployment {}: store write failed: {}", d.id, s.error().ToString());
    return s.ok();
  };

  while (true) {
    if (interrupted()) return;
    switch (d.state) {
      case DeploymentState::kAccepted:
        d.state = DeploymentState::kPulling;
        if (!save()) return;
        break;
      case DeploymentState::kPulling: {
        spdlog::info("deployment {}: pulling {}", d.id, d.image);
        int64_t last_logged = -1;
        Status pulled = d_.docker.Pull(
            d.image,
            [&](const docker::PullProgress& p) {
              if (p.total > 0) {
                int64_t pct = p.current * 100 / p.total;
                if (pct / 25 != last_logged) {
                  last_logged = pct / 25;
                  spdlog::debug("deployment {}: {} {}%", d.id, p.status, pct);
                }
              }
            },
            st);
        if (interrupted()) return;
        if (!pulled.ok()) {
          auto present = d_.docker.ImageExists(d.image);
          if (present.ok() && *present) {
            spdlog::warn("deployment {}: pull failed ({}), using the local copy of {}", d.id,
                         pulled.error().message, d.image);
          } else {
            FailDeployment(d, "pull", pulled.error().message);
            return;
          }
        }
        d.state = DeploymentState::kCreating;
        d.expires_at = d_.clock.Now() + std::chrono::minutes(d.duration_minutes);
        if (!save()) return;
        Failpoint("after_pull");
        break;
      }
      case DeploymentState::kCreating: {
        std::string spec_error;
        docker::ContainerSpec cs = BuildContainerSpec(d, spec, &spec_error);
        if (!spec_error.empty()) {
          FailDeployment(d, "create", spec_error);
          return;
        }
        // A crash after create but before recording leaves a container with our name: adopt it.
        auto existing = d_.docker.Inspect(d.container_name);
        if (existing.ok() && existing->labels.count(kLabelDeployment) > 0 &&
            existing->labels.at(kLabelDeployment) == d.id) {
          d.container_id = existing->id;
        } else {
          if (existing.ok()) {
            FailDeployment(d, "create",
                           "a container named " + d.container_name + " exists and is not ours");
            return;
          }
          auto id = d_.docker.Create(cs);
          if (!id.ok()) {
            FailDeployment(d, "create", id.error().message);
            return;
          }
          d.container_id = *id;
        }
        d.state = DeploymentState::kStarting;
        if (!save()) return;
        Failpoint("after_create");
        break;
      }
      case DeploymentState::kStarting: {
        Status started = d_.docker.Start(d.container_id);
        if (!started.ok()) {
          FailDeployment(d, "start", started.error().message);
          return;
        }
        d.state = DeploymentState::kReadiness;
        if (!save()) return;
        Failpoint("after_start");
        break;
      }
      case DeploymentState::kReadiness: {
        // What is reported is what the engine really bound.
        auto info = d_.docker.Inspect(d.container_id);
        if (!info.ok()) {
          FailDeployment(d, "start", info.error().message);
          return;
        }
        for (auto& p : d.ports) {
          bool found = false;
          for (const auto& b : info->ports) {
            if (b.container_port == p.container_port && b.host_port == p.host_port) found = true;
          }
          if (!found) {
            FailDeployment(d, "start",
                           "port " + std::to_string(p.host_port) + " for container port " +
                               std::to_string(p.container_port) + " is not bound");
            return;
          }
        }
        std::string why;
        Status ready = ReadinessCheck(d, st, &why);
        if (interrupted()) return;
        if (!ready.ok()) {
          FailDeployment(d, "readiness", why);
          return;
        }
        d.started_at = d_.clock.Now();
        d.state = DeploymentState::kRunning;
        platform::AccessInfo access;
        access.public_ip = d_.cfg.network.public_ip;
        access.ssh_username = d.ssh_username;
        access.ssh_password = d.ssh_password.value_or("");
        access.jupyter_token = d.jupyter_token;
        for (const auto& p : d.ports) {
          access.port_mappings[p.container_port] = p.host_port;
          if (p.container_port == 22) access.ssh_port = p.host_port;
          if (p.role == "rental_port_1") access.jupyter_host_port = p.host_port;
          if (p.role == "rental_port_2") access.custom_host_port = p.host_port;
        }
        Failpoint("before_success_event");
        auto body =
            platform::BuildSuccessBody(d.id, d.container_id, access, d.gpu_uuids, *d.started_at,
                                       d.expires_at.value_or(*d.started_at), rt_.ts());
        if (!save({Event(d.id, domain::EventKind::kSuccess, body, false)})) return;
        rt_.deploys_succeeded++;
        rt_.NotifyOutbox();
        spdlog::info("deployment {} running: container {}, expires {}", d.id,
                     d.container_id.substr(0, 12), FormatRfc3339(*d.expires_at));
        Failpoint("after_success_event");
        auto cmd = d_.store.GetCommand(d.command_id);
        if (cmd.ok() && cmd->has_value() && (*cmd)->state == store::CommandState::kPending) {
          FinishCommand(**cmd, "succeeded", "", d.id, {});
        }
        return;
      }
      case DeploymentState::kRunning:
      case DeploymentState::kStopping:
      case DeploymentState::kEnded:
        return;
    }
  }
}

void DeploymentManager::ProcessTerminate(const store::CommandRecord& cmd, std::stop_token stop) {
  auto spec = ParseTerminatePayload(cmd.payload_json);
  if (!spec.ok()) {
    FinishCommand(cmd, "rejected", spec.error().message, "", {});
    return;
  }
  auto found = d_.store.GetDeployment(spec->deployment_id);
  if (found.ok() && !found->has_value())
    found = d_.store.FindDeploymentByCommand(spec->deployment_id);
  if (!found.ok()) {
    spdlog::warn("terminate {}: store unavailable: {}", cmd.command_id, found.error().ToString());
    return;
  }
  if (!found->has_value() || (*found)->state == DeploymentState::kEnded) {
    spdlog::info("terminate {}: deployment {} is unknown or already ended", cmd.command_id,
                 spec->deployment_id);
    FinishCommand(cmd, "succeeded", "", found->has_value() ? (*found)->id : spec->deployment_id,
                  {});
    return;
  }
  std::string id = (*found)->id;
  Status st = EndDeployment(id, "terminated", spec->reason, stop);
  if (!st.ok()) {
    spdlog::warn("terminate {}: {}", cmd.command_id, st.error().ToString());
    return;  // pending: retried on the next poll (the platform re-delivers) or reconcile
  }
  auto after = d_.store.GetDeployment(id);
  if (after.ok() && after->has_value() && (*after)->state == DeploymentState::kEnded) {
    FinishCommand(cmd, "succeeded", "", id, {});
  }
}

Status DeploymentManager::EndDeployment(const std::string& deployment_id,
                                        const std::string& end_status, const std::string& reason,
                                        std::stop_token stop) {
  auto found = d_.store.GetDeployment(deployment_id);
  if (!found.ok()) return found.error();
  if (!found->has_value()) return MakeError(ErrorCode::kNotFound, "no deployment " + deployment_id);
  Deployment d = **found;
  if (d.state == DeploymentState::kEnded) return OkStatus();
  if (d.state != DeploymentState::kRunning && d.state != DeploymentState::kStopping) {
    // Still deploying: cancel it; the deploy job ends it.
    std::lock_guard l(cancel_mu_);
    if (auto it = cancels_.find(d.id); it != cancels_.end()) {
      it->second->request_stop();
      return MakeError(ErrorCode::kUnavailable, "deploy of " + d.id + " is being cancelled");
    }
  }
  if (d.state != DeploymentState::kStopping) {
    d.end_status = end_status;
    d.end_reason = reason;
    d.state = DeploymentState::kStopping;
    TAOLIE_RETURN_IF_ERROR(d_.store.UpdateDeployment(d, {}));
  }
  Failpoint("after_stop_intent");
  std::string target = d.container_id.empty() ? d.container_name : d.container_id;
  spdlog::info("deployment {}: stopping ({}: {})", d.id, d.end_status, d.end_reason);
  // A renter who never got access has nothing to save: no grace period then.
  auto grace = d.started_at ? std::chrono::seconds(d_.cfg.deployment.stop_grace_seconds)
                            : std::chrono::seconds(0);
  Status stopped = d_.docker.Stop(target, grace);
  if (!stopped.ok() && stopped.error().code != ErrorCode::kNotFound) return stopped.error();
  Status removed = d_.docker.Remove(target, true);
  if (!removed.ok() && removed.error().code != ErrorCode::kNotFound) return removed.error();
  Failpoint("after_remove");
  // The GPU must show no process of this rental before it is handed out again: a process on
  // a claimed GPU whose cgroup names the container is one of the rental's.
  if (d_.gpus.Available() && !d.gpu_uuids.empty() && !d.container_id.empty()) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      std::vector<uint32_t> leftover;
      if (auto samples = d_.gpus.Sample(); samples.ok()) {
        for (const auto& s : *samples) {
          if (std::find(d.gpu_uuids.begin(), d.gpu_uuids.end(), s.uuid) == d.gpu_uuids.end())
            continue;
          for (uint32_t pid : s.process_pids) {
            if (ProcessInContainer(pid, d.container_id)) leftover.push_back(pid);
          }
        }
      }
      if (leftover.empty()) break;
      if (attempt == 9) {
        spdlog::warn(
            "deployment {}: {} process(es) of the rental still on its GPU(s); GPUs marked warning",
            d.id, leftover.size());
        for (const auto& u : d.gpu_uuids)
          WarnIfError(d_.store.SetGpuHealth(u, domain::GpuHealthState::kWarning), "mark GPU " + u);
      }
      SleepFor(std::chrono::milliseconds(500), stop);
    }
  }
  d.state = DeploymentState::kEnded;
  d.ended_at = d_.clock.Now();
  d.ssh_password.reset();
  domain::Usage usage =
      ComputeUsage(d.duration_minutes, d.started_at, *d.ended_at, d.price_per_hour);
  std::vector<store::OutboxEvent> events;
  if (!d.error_stage.empty() && !d.started_at) {
    // Never became ready: the platform hears `failed` with the stage, not an ending.
    events.push_back(Event(d.id, domain::EventKind::kFailed,
        platform::BuildFailedBody(d.id, d.error_stage, d.error, *d.ended_at, rt_.ts()), true));
  } else {
    events.push_back(
        Event(d.id, domain::EventKind::kTerminated,
              platform::BuildTerminatedBody(d.id, d.end_status, d.end_reason, d.started_at,
                                            *d.ended_at, usage, rt_.ts()),
              true));
  }
  TAOLIE_RETURN_IF_ERROR(d_.store.UpdateDeployment(d, events));
  rt_.claims_generation++;
  spdlog::info("deployment {} ended ({}), used {:.2f} of {} min", d.id, d.end_status,
               usage.used_minutes, d.duration_minutes);
  rt_.NotifyOutbox();
  return OkStatus();
}

Status DeploymentManager::WarnExpiry(Deployment& d) {
  auto now = d_.clock.Now();
  auto left = std::chrono::duration_cast<std::chrono::seconds>(*d.expires_at - now).count();
  if (left < 0) left = 0;
  std::string msg = "TAOLIE: this rental ends at " + FormatRfc3339(*d.expires_at) + " (in " +
                    std::to_string(left) + " s). Save your work now.";
  auto r = d_.docker.Exec(
      d.container_id,
      {"sh", "-c",
       "mkdir -p /run/taolie && printf '%s\\n' \"$1\" > /run/taolie/expiry; "
       "for t in /dev/pts/[0-9]*; do [ -c \"$t\" ] && printf '\\r\\n%s\\r\\n' \"$1\" > \"$t\"; "
       "done 2>/dev/null; true",
       "sh", msg},
      std::chrono::seconds(10));
  if (!r.ok())
    spdlog::warn("deployment {}: expiry warning not delivered inside: {}", d.id, r.error().message);
  d.warned_at = now;
  return d_.store.UpdateDeployment(
      d, {Event(d.id, domain::EventKind::kExpiring, platform::BuildExpiringBody(d.id, *d.expires_at, left, rt_.ts()),
                true)});
}

Status DeploymentManager::CheckDeployments(std::stop_token /*stop*/) {
  auto active = d_.store.ActiveDeployments();
  if (!active.ok()) return active.error();
  auto now = d_.clock.Now();
  auto warn = std::chrono::seconds(d_.cfg.deployment.expiry_warning_seconds);
  for (auto& d : *active) {
    if (d.state != DeploymentState::kRunning) {
      if (d.state == DeploymentState::kStopping) {
        std::string id = d.id;
        work_.Submit("end:" + id, "dep:" + id, [this, id](std::stop_token s) {
          if (Status st = EndDeployment(id, "", "", s); !st.ok())
            spdlog::warn("end {}: {}", id, st.error().ToString());
        });
      }
      continue;
    }
    if (d.expires_at && now >= *d.expires_at) {
      std::string id = d.id;
      work_.Submit("end:" + id, "dep:" + id, [this, id](std::stop_token s) {
        if (Status st = EndDeployment(id, "expired", "rental duration elapsed", s); !st.ok()) {
          spdlog::warn("expire {}: {}", id, st.error().ToString());
        }
      });
      continue;
    }
    auto info = d_.docker.Inspect(d.container_id);
    if (!info.ok() && info.error().code == ErrorCode::kNotFound) {
      std::string id = d.id;
      work_.Submit("end:" + id, "dep:" + id, [this, id](std::stop_token s) {
        if (Status st = EndDeployment(id, "failed", "container was removed outside the agent", s);
            !st.ok()) {
          spdlog::warn("end {}: {} (retried)", id, st.error().ToString());
        }
      });
      continue;
    }
    if (info.ok() && !info->running && info->state != "restarting") {
      std::string id = d.id;
      std::string reason = info->state == "removing"
                               ? "container was removed outside the agent"
                               : "container " + info->state + " with exit code " +
                                     std::to_string(info->exit_code) +
                                     (info->oom_killed ? " (out of memory)" : "");
      work_.Submit("end:" + id, "dep:" + id, [this, id, reason](std::stop_token s) {
        if (Status st = EndDeployment(id, "failed", reason, s); !st.ok()) {
          spdlog::warn("end {}: {} (retried)", id, st.error().ToString());
        }
      });
      continue;
    }
    if (d.expires_at && !d.warned_at && now + warn >= *d.expires_at) {
      if (Status st = WarnExpiry(d); !st.ok())
        spdlog::warn("warn {}: {}", d.id, st.error().ToString());
      rt_.NotifyOutbox();
    }
  }
  rt_.active_deployments = static_cast<int>(active->size());
  return OkStatus();
}

Status DeploymentManager::Reconcile(std::stop_token stop) {
  auto active = d_.store.ActiveDeployments();
  if (!active.ok()) return active.error();
  auto containers = d_.docker.List({{kLabelManaged, "true"}, {kLabelAgent, rt_.agent_id()}});
  if (!containers.ok()) return containers.error();
  std::set<std::string> owned;
  for (const auto& d : *active) owned.insert(d.id);

  // Containers with our labels that no active deployment owns are removed.
  for (const auto& c : *containers) {
    auto it = c.labels.find(kLabelDeployment);
    std::string dep = it == c.labels.end() ? "" : it->second;
    if (owned.count(dep) == 0) {
      spdlog::warn("reconcile: removing orphan container {} (deployment '{}')", c.name, dep);
      Status rm = d_.docker.Remove(c.id, true);
      if (!rm.ok() && rm.error().code != ErrorCode::kNotFound) {
        spdlog::warn("reconcile: could not remove {}: {}", c.name, rm.error().ToString());
      }
    }
  }

  for (const auto& d : *active) {
    if (stop.stop_requested()) break;
    std::string id = d.id;
    switch (d.state) {
      case DeploymentState::kRunning:
        break;  // adopted; the duration monitor watches it
      case DeploymentState::kStopping:
        work_.Submit("end:" + id, "dep:" + id, [this, id](std::stop_token s) {
          if (Status st = EndDeployment(id, "", "", s); !st.ok())
            spdlog::warn("end {}: {}", id, st.error().ToString());
        });
        break;
      default: {
        // Half-done deploy: finish it from where it stopped.
        spdlog::info("reconcile: resuming deployment {} from {}", id,
                     domain::DeploymentStateName(d.state));
        Deployment copy = d;
        work_.Submit("resume:" + id, "dep:" + id,
                     [this, copy](std::stop_token s) { RunDeployment(copy, s); });
        break;
      }
    }
  }

  // Commands recorded but not finished (crash between record and result).
  auto pending = d_.store.PendingCommands(100);
  if (!pending.ok()) return pending.error();
  for (const auto& c : *pending) Schedule(c);
  return OkStatus();
}

}  // namespace taolie::agent
