#pragma once
// The agent's own local API: a table of routes (GET reads, some with the admin token, POST
// changes that need it), over plain HTTP or TLS. Small and hard to block by design (issue 17
// item 4, docs/local-api.md): its own accept loop closes a client outside the allow-list of
// IPs/CIDRs (loopback only by default) before reading a byte, keeps at most 64 connections in
// flight (a new one beyond that closes the oldest still waiting for its request), gives each
// 1 s for its first byte and 3 s for its whole request, and hands only whole requests to its
// four workers; a Host header that is not this agent's name (DNS rebinding) gets 421.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace taolie::telemetry {

struct StatusServerOptions {
  std::string listen = "127.0.0.1";  // a numeric IPv4 or IPv6 address
  int port = 9109;                   // 0 = pick a free port (see StatusServer::port())
  // IPs or CIDRs (IPv4 and IPv6) allowed to connect; empty = loopback clients only
  // (127.0.0.0/8 and ::1).
  std::vector<std::string> allowed_ips;
  // TLS: both set = HTTPS with this PEM certificate (chain) and key; both empty = plain HTTP.
  std::string tls_cert;
  std::string tls_key;
  // Routes that change something need "Authorization: Bearer <admin_token>"; empty = such
  // routes answer 403.
  std::string admin_token;
  // Host header names answered besides IP literals and "localhost" (api.allowed_hosts).
  std::vector<std::string> allowed_hosts;
};

struct ApiReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct ApiRoute {
  // kRead: GET and HEAD; kTokenRead: GET and HEAD with the token; kChange: POST with the token.
  enum class Kind { kRead, kTokenRead, kChange };
  Kind kind = Kind::kRead;
  // Runs on a server worker; `body` is the request body (empty for reads). A handler that
  // throws yields a 500.
  std::function<ApiReply(const std::string& body)> handler;
};

using ApiRoutes = std::map<std::string, ApiRoute>;  // path (no query) -> route

// The Content-Type of the Prometheus text exposition format.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// A parsed allow-list of IP addresses and CIDR blocks. IPv4-mapped IPv6 client addresses
// (::ffff:a.b.c.d) are matched as IPv4; a zone suffix ("fe80::1%eth0") is ignored.
class IpAllowList {
 public:
  // Empty `entries` = loopback only. InvalidArgument names the first malformed entry.
  static Result<IpAllowList> Parse(const std::vector<std::string>& entries);
  bool Allows(std::string_view client_ip) const;

 private:
  struct Block {
    int family = 0;                       // AF_INET or AF_INET6
    std::array<std::uint8_t, 16> addr{};  // first 4 bytes used for AF_INET
    int prefix_len = 0;
  };
  std::vector<Block> blocks_;
};

class StatusServer {
 public:
  using Provider = std::function<std::string()>;

  // Binds listen:port synchronously and serves on background threads; returns once the
  // listener is accepting. Unavailable (naming listen:port and the errno text) if the port
  // cannot be bound; InvalidArgument for a bad address, port, allow-list or empty provider.
  // Providers run on the server's worker threads; one that throws yields a 500.
  static Result<std::unique_ptr<StatusServer>> Start(const StatusServerOptions& options,
                                                     ApiRoutes routes);
  // The read-only endpoint of old: /healthz ("ok"), /status (JSON) and /metrics.
  static Result<std::unique_ptr<StatusServer>> Start(const StatusServerOptions& options,
                                                     Provider status_json, Provider metrics_text);
  ~StatusServer();  // Stop()

  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  int port() const;
  bool tls() const;
  // Idempotent. Closes the listener and the connections still waiting for their request, and
  // joins the threads once the requests handed to workers are answered.
  void Stop();

 private:
  struct Impl;
  explicit StatusServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taolie::telemetry
