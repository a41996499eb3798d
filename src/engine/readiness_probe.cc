#include "engine/readiness_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/real_time.h"

namespace taolie::engine {
namespace {

// Owns a file descriptor; closes it once.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Connects to host:port within `timeout`; an invalid fd when it cannot.
UniqueFd ConnectWithTimeout(const std::string& host, int port, std::chrono::milliseconds timeout) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return UniqueFd();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return UniqueFd();
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) return UniqueFd();
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return UniqueFd();
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return UniqueFd();
  return fd;
}

// Reads up to `max` bytes, until a newline or the timeout.
std::string ReadLine(int fd, std::chrono::milliseconds timeout, size_t max) {
  std::string out;
  auto deadline = SteadyNow() + timeout;
  while (out.size() < max) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow());
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

// The address a probe connects to for a port bound on `bind_ip`.
std::string ProbeAddress(const std::string& bind_ip) {
  if (bind_ip.empty() || bind_ip == "0.0.0.0" || bind_ip == "::") return "127.0.0.1";
  return bind_ip;
}

}  // namespace

bool TcpReadinessProbe::SshBanner(const std::string& host, int port) {
  UniqueFd fd = ConnectWithTimeout(host, port, std::chrono::milliseconds(1000));
  if (!fd.valid()) return false;
  return ReadLine(fd.get(), std::chrono::milliseconds(2000), 255).rfind("SSH-2.0", 0) == 0;
}

bool TcpReadinessProbe::HttpAnswers(const std::string& host, int port) {
  UniqueFd fd = ConnectWithTimeout(host, port, std::chrono::milliseconds(1000));
  if (!fd.valid()) return false;
  std::string req = "GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) return false;
  return ReadLine(fd.get(), std::chrono::milliseconds(2000), 64).rfind("HTTP/", 0) == 0;
}

Status WaitUntilReady(const domain::Deployment& d, const ReadinessOptions& options,
                      ReadinessProbe& probe, docker::DockerClient& docker, const Clock& clock,
                      std::stop_token stop, std::string* why) {
  std::string addr = ProbeAddress(options.bind_ip);
  int ssh_port = 0;
  int http_port = 0;
  for (const auto& p : d.ports) {
    if (p.container_port == 22) ssh_port = p.host_port;
    if (p.container_port == 8888) http_port = p.host_port;  // Jupyter's port in platform images
  }
  if (ssh_port == 0 && options.require_ssh) {
    *why = "no SSH port (container port 22) is published";
    return MakeError(ErrorCode::kFailedPrecondition, *why);
  }
  bool ssh_ok = ssh_port == 0;
  bool http_ok = http_port == 0;
  const auto deadline = clock.Monotonic() + options.timeout;
  std::chrono::milliseconds pause(25);
  while (clock.Monotonic() < deadline) {
    if (stop.stop_requested()) return MakeError(ErrorCode::kCancelled, "stopped");
    auto info = docker.Inspect(d.container_id);
    if (info.ok() && !info->running) {
      *why =
          "container exited with code " + std::to_string(info->exit_code) + " before it was ready";
      return MakeError(ErrorCode::kFailedPrecondition, *why);
    }
    if (!ssh_ok) ssh_ok = probe.SshBanner(addr, ssh_port);
    if (!http_ok) http_ok = probe.HttpAnswers(addr, http_port);
    if (ssh_ok && http_ok) return OkStatus();
    if (!clock.SleepFor(pause, stop)) return MakeError(ErrorCode::kCancelled, "stopped");
    pause = std::min(pause * 2, std::chrono::milliseconds(500));  // quick first, then calmer
  }
  *why = "not ready within " + std::to_string(options.timeout.count()) +
         " s:" + (ssh_ok ? "" : " no SSH-2.0 banner on port " + std::to_string(ssh_port)) +
         (http_ok ? "" : " no HTTP answer on port " + std::to_string(http_port));
  return MakeError(ErrorCode::kDeadlineExceeded, *why);
}

}  // namespace taolie::engine
