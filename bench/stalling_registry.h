#pragma once
// A "registry" that accepts TCP connections on a free 127.0.0.1 port and never answers: a
// pull from it hangs (TLS handshake, then plain HTTP) the way a pull from an overloaded or
// black-holed registry does. Bounded: at most `max_connections` are held at once (more are
// closed at once), and everything is closed after `lifetime` or on destruction. What clients
// send is read and dropped, so that they never block on a full socket buffer.
// Used by the stall e2e test and the benchmarks (dockerd treats 127.0.0.0/8 registries as
// insecure, so `127.0.0.1:<port>/x/y:1` needs no daemon flag).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace taolie::testing {

class StallingRegistry {
 public:
  explicit StallingRegistry(std::chrono::seconds lifetime = std::chrono::minutes(10),
                            size_t max_connections = 128)
      : max_connections_(max_connections) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t len = sizeof(a);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    port_ = ntohs(a.sin_port);
    const auto deadline = std::chrono::steady_clock::now() + lifetime;
    thread_ = std::thread([this, deadline] { Serve(deadline); });
  }
  ~StallingRegistry() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);  // only when Serve never ran
  }
  StallingRegistry(const StallingRegistry&) = delete;
  StallingRegistry& operator=(const StallingRegistry&) = delete;

  int port() const { return port_; }  // 0 when it could not listen
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // An image reference on this registry, e.g. Image("stall/img1:1").
  std::string Image(const std::string& repository_and_tag) const {
    return host() + "/" + repository_and_tag;
  }
  int accepted() const { return accepted_.load(); }  // connections accepted so far
  int open() const { return open_.load(); }          // connections held now

 private:
  void Serve(std::chrono::steady_clock::time_point deadline) {
    std::vector<int> held;
    char sink[4096];
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      for (int fd : held) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
      std::vector<int> keep;
      for (size_t i = 1; i < fds.size(); ++i) {
        const int fd = fds[i].fd;
        bool closed = false;
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
          const ssize_t n = ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
          closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        }
        if (closed) {
          ::close(fd);
        } else {
          keep.push_back(fd);
        }
      }
      held = std::move(keep);
      if ((fds[0].revents & POLLIN) != 0) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          ++accepted_;
          if (held.size() < max_connections_) {
            held.push_back(fd);
          } else {
            ::close(fd);
          }
        }
      }
      open_ = static_cast<int>(held.size());
    }
    for (int fd : held) ::close(fd);
    open_ = 0;
    ::close(listen_fd_);  // later connections are refused, not left hanging in the backlog
    listen_fd_ = -1;
  }

  size_t max_connections_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::thread thread_;
};

}  // namespace taolie::testing
