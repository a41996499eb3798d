#include "telemetry/status_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace taolie::telemetry {
namespace {

constexpr time_t kSocketTimeoutSec = 5;
constexpr size_t kPayloadMaxBytes = size_t{64} * 1024;
constexpr size_t kWorkerThreads = 2;
// How long a worker waits for a request on an accepted connection. Bounds how long an idle
// client can delay Stop(); one request per connection, so no keep-alive reuse beyond that.
constexpr time_t kIdleConnectionSec = 1;
constexpr auto kListenerStartTimeout = std::chrono::seconds(2);
constexpr auto kProviderErrorLogInterval = std::chrono::seconds(60);

constexpr const char* kMetricsContentType = kPrometheusContentType;

struct ParsedIp {
  int family = 0;
  std::array<std::uint8_t, 16> addr{};
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Numeric IPv4 or IPv6 address; an IPv4-mapped IPv6 address becomes IPv4.
std::optional<ParsedIp> ParseIp(std::string_view text) {
  const std::string s(text);
  ParsedIp ip;
  if (inet_pton(AF_INET, s.c_str(), ip.addr.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (inet_pton(AF_INET6, s.c_str(), ip.addr.data()) == 1) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.addr.data(), kMapped, sizeof(kMapped)) == 0) {
      std::memmove(ip.addr.data(), ip.addr.data() + 12, 4);
      std::memset(ip.addr.data() + 4, 0, 12);
      ip.family = AF_INET;
      return ip;
    }
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

bool PrefixMatches(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                   int prefix_len) {
  int full_bytes = prefix_len / 8;
  if (std::memcmp(a.data(), b.data(), static_cast<size_t>(full_bytes)) != 0) return false;
  const int rest = prefix_len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full_bytes] & mask) == (b[full_bytes] & mask);
}

std::string HostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// IpAllowList

Result<IpAllowList> IpAllowList::Parse(const std::vector<std::string>& entries) {
  IpAllowList list;
  if (entries.empty()) return Parse({"127.0.0.0/8", "::1"});
  for (const std::string& raw : entries) {
    const std::string_view entry = Trim(raw);
    const size_t slash = entry.find('/');
    const std::string_view addr_text = entry.substr(0, slash);
    std::optional<ParsedIp> ip = ParseIp(addr_text);
    if (!ip) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "allowed_ips entry '" + raw + "' is not an IP address or CIDR");
    }
    // A mapped address written in IPv6 form ("::ffff:10.0.0.0/104") keeps its IPv4 meaning.
    const bool written_as_v6 = addr_text.find(':') != std::string_view::npos;
    const int written_max = written_as_v6 ? 128 : 32;
    int prefix_len = written_max;
    if (slash != std::string_view::npos) {
      const std::string_view len_text = entry.substr(slash + 1);
      int value = 0;
      const auto [ptr, ec] =
          std::from_chars(len_text.data(), len_text.data() + len_text.size(), value);
      if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size() ||
          value < 0 || value > written_max) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "allowed_ips entry '" + raw + "' has an invalid prefix length");
      }
      prefix_len = value;
    }
    if (ip->family == AF_INET && written_as_v6) {
      if (prefix_len < 96) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "allowed_ips entry '" + raw + "' mixes IPv4-mapped and IPv6 space");
      }
      prefix_len -= 96;
    }
    list.blocks_.push_back(Block{ip->family, ip->addr, prefix_len});
  }
  return list;
}

bool IpAllowList::Allows(std::string_view client_ip) const {
  const size_t zone = client_ip.find('%');
  if (zone != std::string_view::npos) client_ip = client_ip.substr(0, zone);
  std::optional<ParsedIp> ip = ParseIp(client_ip);
  if (!ip) return false;
  for (const Block& block : blocks_) {
    if (block.family == ip->family && PrefixMatches(block.addr, ip->addr, block.prefix_len)) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// StatusServer

struct StatusServer::Impl {
  Impl(IpAllowList allow_list, ApiRoutes api_routes, std::string token)
      : allow(std::move(allow_list)),
        routes(std::move(api_routes)),
        admin_token(std::move(token)) {}

  void Handle(const httplib::Request& req, httplib::Response& res);
  void LogProviderError(const std::string& path, const std::string& what);
  bool TokenMatches(const httplib::Request& req) const;

  const IpAllowList allow;
  const ApiRoutes routes;
  const std::string admin_token;
  std::unique_ptr<httplib::Server> server;  // httplib::SSLServer with TLS
  bool tls = false;
  std::string endpoint;  // host:port, for messages
  int port = 0;
  std::thread thread;
  std::atomic<bool> finished{false};
  std::mutex stop_mu;
  bool stopped = false;
  std::mutex log_mu;
  std::optional<std::chrono::steady_clock::time_point> last_error_log;
};

void StatusServer::Impl::LogProviderError(const std::string& path, const std::string& what) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(log_mu);
  if (last_error_log && now - *last_error_log < kProviderErrorLogInterval) return;
  last_error_log = now;
  spdlog::warn("status endpoint: provider for {} failed: {}", path, what);
}

// "Authorization: Bearer <token>", compared in constant time.
bool StatusServer::Impl::TokenMatches(const httplib::Request& req) const {
  if (admin_token.empty()) return false;
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() != kBearer.size() + admin_token.size() ||
      header.compare(0, kBearer.size(), kBearer) != 0) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < admin_token.size(); ++i) {
    diff |= static_cast<unsigned char>(header[kBearer.size() + i] ^ admin_token[i]);
  }
  return diff == 0;
}

void StatusServer::Impl::Handle(const httplib::Request& req, httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  if (!allow.Allows(req.remote_addr)) {
    res.status = 403;
    res.set_content("forbidden\n", "text/plain");
    return;
  }
  const auto route = routes.find(req.path);
  if (route == routes.end()) {
    res.status = 404;
    res.set_content("not found\n", "text/plain");
    return;
  }
  const bool change = route->second.kind == ApiRoute::Kind::kChange;
  const bool method_ok =
      change ? req.method == "POST" : (req.method == "GET" || req.method == "HEAD");
  if (!method_ok) {
    res.status = 405;
    res.set_header("Allow", change ? "POST" : "GET, HEAD");
    res.set_content("method not allowed\n", "text/plain");
    return;
  }
  if (change && !TokenMatches(req)) {
    res.status = admin_token.empty() ? 403 : 401;
    res.set_content(admin_token.empty()
                        ? "changes are disabled on this endpoint\n"
                        : "this change needs the agent's admin token (Authorization: Bearer)\n",
                    "text/plain");
    return;
  }
  ApiReply reply;
  try {
    reply = route->second.handler(change ? req.body : std::string());
  } catch (const std::exception& e) {
    LogProviderError(req.path, e.what());
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
    return;
  } catch (...) {
    LogProviderError(req.path, "unknown exception");
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
    return;
  }
  res.status = reply.status;
  res.set_content(reply.body, reply.content_type);
}

StatusServer::StatusServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusServer::~StatusServer() { Stop(); }

int StatusServer::port() const { return impl_->port; }

bool StatusServer::tls() const { return impl_->tls; }

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const StatusServerOptions& options,
                                                          Provider status_json,
                                                          Provider metrics_text) {
  if (!status_json || !metrics_text) {
    return MakeError(ErrorCode::kInvalidArgument, "status endpoint needs both providers");
  }
  auto provide = [](Provider p, const char* type) {
    return ApiRoute{ApiRoute::Kind::kRead, [p = std::move(p), type](const std::string&) {
                      return ApiReply{200, type, p()};
                    }};
  };
  ApiRoutes routes;
  routes["/healthz"] = ApiRoute{ApiRoute::Kind::kRead, [](const std::string&) {
                                  return ApiReply{200, "text/plain", "ok\n"};
                                }};
  routes["/status"] = provide(std::move(status_json), "application/json");
  routes["/metrics"] = provide(std::move(metrics_text), kMetricsContentType);
  return Start(options, std::move(routes));
}

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const StatusServerOptions& options,
                                                          ApiRoutes routes) {
  for (const auto& [path, route] : routes) {
    if (!route.handler) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "status endpoint route " + path + " has no handler");
    }
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "status endpoint TLS needs both a certificate and a key");
  }
  if (options.port < 0 || options.port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "status endpoint port " + std::to_string(options.port) + " out of range");
  }
  const std::optional<ParsedIp> listen_ip = ParseIp(options.listen);
  if (options.listen.find('%') != std::string::npos || !listen_ip) {
    return MakeError(ErrorCode::kInvalidArgument, "status endpoint listen address '" +
                                                      options.listen +
                                                      "' is not a numeric IPv4/IPv6 address");
  }
  Result<IpAllowList> allow = IpAllowList::Parse(options.allowed_ips);
  if (!allow.ok()) return allow.error();

  auto impl =
      std::make_unique<Impl>(std::move(allow).value(), std::move(routes), options.admin_token);
  Impl* raw = impl.get();
  if (!options.tls_cert.empty()) {
    auto ssl =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!ssl->is_valid()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "status endpoint TLS: cannot load the certificate " + options.tls_cert +
                           " and key " + options.tls_key +
                           " (PEM files, the key matching the certificate, readable by the agent)");
    }
    raw->server = std::move(ssl);
    raw->tls = true;
  } else {
    raw->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *raw->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server.set_read_timeout(kSocketTimeoutSec, 0);
  server.set_write_timeout(kSocketTimeoutSec, 0);
  server.set_payload_max_length(kPayloadMaxBytes);
  server.set_keep_alive_max_count(1);
  server.set_keep_alive_timeout(kIdleConnectionSec);
  // SO_REUSEADDR (quick restart) but not httplib's default SO_REUSEPORT, which would let a
  // second agent silently share the port; close-on-exec so spawned children don't inherit it.
  server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    const int flags = fcntl(sock, F_GETFD);
    if (flags >= 0) fcntl(sock, F_SETFD, flags | FD_CLOEXEC);
  });
  server.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    raw->Handle(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });

  errno = 0;
  bool bound = false;
  if (options.port == 0) {
    const int port = server.bind_to_any_port(options.listen);
    bound = port > 0;
    raw->port = port;
  } else {
    bound = server.bind_to_port(options.listen, options.port);
    raw->port = options.port;
  }
  if (!bound) {
    const int err = errno;
    return MakeError(ErrorCode::kUnavailable,
                     "cannot bind status endpoint " + HostPort(options.listen, options.port) +
                         ": " + (err != 0 ? std::strerror(err) : "unknown error"));
  }
  raw->endpoint = HostPort(options.listen, raw->port);

  raw->thread = std::thread([raw] {
    if (!raw->server->listen_after_bind()) {
      spdlog::error("status endpoint {}: accept loop ended with an error", raw->endpoint);
    }
    raw->finished = true;
  });

  std::unique_ptr<StatusServer> status_server(new StatusServer(std::move(impl)));
  const auto deadline = std::chrono::steady_clock::now() + kListenerStartTimeout;
  while (!raw->server->is_running() && !raw->finished &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->server->is_running()) {
    status_server->Stop();
    return MakeError(ErrorCode::kUnavailable,
                     "status endpoint " + raw->endpoint + " did not start accepting");
  }
  spdlog::info("local API listening on {}://{}/", raw->tls ? "https" : "http", raw->endpoint);
  return status_server;
}

void StatusServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  // httplib's stop() only acts once the accept loop runs; Start() waited for that, but if it
  // gave up, wait (bounded) for the loop to either start or finish before stopping it.
  const auto deadline = std::chrono::steady_clock::now() + kListenerStartTimeout;
  while (!impl_->server->is_running() && !impl_->finished &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace taolie::telemetry
