#include "telemetry/status_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "common/real_time.h"
#include "telemetry/connection_guard.h"

namespace taolie::telemetry {
namespace {

constexpr time_t kSocketTimeoutSec = 5;
constexpr size_t kPayloadMaxBytes = size_t{64} * 1024;
constexpr size_t kHeaderMaxBytes = size_t{16} * 1024;
// Workers answer whole requests only (the accept loop waits for the bytes), one request per
// connection.
constexpr size_t kWorkerThreads = 4;
// Connections accepted and not yet closed, waiting for their request or being answered.
constexpr size_t kMaxInFlight = 64;
// A connection must send its first byte within kFirstByte and its whole request (TLS: also
// the handshake) within kWholeRequest of being accepted.
constexpr std::chrono::milliseconds kFirstByte{1000};
constexpr std::chrono::milliseconds kWholeRequest{3000};
// Connections taken from the backlog per round of the accept loop before reading the others.
constexpr int kAcceptBatch = 256;
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
//
// The accept loop is the agent's own, not httplib's (whose 0.11.4 loop has no hook between
// accept() and its task queue, and queues every connection without bound). One thread
// accepts, closes a peer outside allowed_ips before reading a byte, keeps at most
// kMaxInFlight connections (PendingConnections: a connection beyond that closes the oldest one
// still waiting for its request), and reads each plain-HTTP request whole (header and body,
// within kFirstByte / kWholeRequest) before a worker sees it. So idle or slow clients cost a
// slot for at most a second or three, never a worker. httplib still parses the request,
// routes and writes the answer: the workers call its process_request() on a stream of the
// bytes already read. With TLS the first byte (the ClientHello) is awaited the same way; the
// handshake and the request then run on a worker under the same whole-request deadline.

namespace {

using SteadyClock = std::chrono::steady_clock;

// Gives the workers httplib's request processing (parse, route, write) on a stream of ours.
template <class Base>
class RequestProcessor : public Base {
 public:
  using Base::Base;
  bool Serve(httplib::Stream& stream) {
    bool closed = false;
    return this->process_request(stream, /*close_connection=*/true, closed, nullptr);
  }
};
using PlainProcessor = RequestProcessor<httplib::Server>;
using TlsProcessor = RequestProcessor<httplib::SSLServer>;

// Waits until `fd` is ready for `events` or `deadline` passes.
bool WaitReady(int fd, short events, SteadyClock::time_point deadline) {
  for (int i = 0; i < 1000; ++i) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
  return false;
}

std::string IpText(const sockaddr_storage& addr, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    *port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    *port = ntohs(a->sin6_port);
  }
  return text;
}

// One accepted connection on a worker: the bytes the accept loop read, then the socket (or
// the TLS session on it), every read bounded by the request's deadline.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int fd, SSL* ssl, std::string buffered, std::string peer_ip, int peer_port,
                   SteadyClock::time_point read_deadline)
      : fd_(fd),
        ssl_(ssl),
        buffered_(std::move(buffered)),
        peer_ip_(std::move(peer_ip)),
        peer_port_(peer_port),
        read_deadline_(read_deadline) {}

  bool is_readable() const override {
    return pos_ < buffered_.size() || (ssl_ != nullptr && SSL_pending(ssl_) > 0) ||
           WaitReady(fd_, POLLIN, read_deadline_);
  }
  bool is_writable() const override { return WaitReady(fd_, POLLOUT, WriteDeadline()); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ < buffered_.size()) {
      const size_t n = std::min(size, buffered_.size() - pos_);
      std::memcpy(ptr, buffered_.data() + pos_, n);
      pos_ += n;
      return static_cast<ssize_t>(n);
    }
    if (ssl_ != nullptr) return SslIo(ptr, size, /*write=*/false);
    for (int i = 0; i < 1000; ++i) {
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n >= 0) return n;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
      if (!WaitReady(fd_, POLLIN, read_deadline_)) return -1;
    }
    return -1;
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (ssl_ != nullptr) return SslIo(const_cast<char*>(ptr), size, /*write=*/true);
    const auto deadline = WriteDeadline();
    for (int i = 0; i < 1000; ++i) {
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
      if (!WaitReady(fd_, POLLOUT, deadline)) return -1;
    }
    return -1;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = peer_ip_;
    port = peer_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    port = 0;
    ip.clear();
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) ip = IpText(addr, &port);
  }
  socket_t socket() const override { return fd_; }

  // The TLS handshake, bounded by the read deadline.
  bool Handshake() {
    for (int i = 0; i < 1000; ++i) {
      const int r = SSL_accept(ssl_);
      if (r == 1) return true;
      if (!WaitFor(SSL_get_error(ssl_, r), read_deadline_)) return false;
    }
    return false;
  }

 private:
  static SteadyClock::time_point WriteDeadline() {
    return SteadyNow() + std::chrono::seconds(kSocketTimeoutSec);
  }
  bool WaitFor(int ssl_error, SteadyClock::time_point deadline) const {
    if (ssl_error == SSL_ERROR_WANT_READ) return WaitReady(fd_, POLLIN, deadline);
    if (ssl_error == SSL_ERROR_WANT_WRITE) return WaitReady(fd_, POLLOUT, deadline);
    return false;
  }
  ssize_t SslIo(char* ptr, size_t size, bool write) {
    const int len = static_cast<int>(std::min<size_t>(size, 1 << 30));
    const auto deadline = write ? WriteDeadline() : read_deadline_;
    for (int i = 0; i < 1000; ++i) {
      const int r = write ? SSL_write(ssl_, ptr, len) : SSL_read(ssl_, ptr, len);
      if (r > 0) return r;
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      if (!WaitFor(err, deadline)) return -1;
    }
    return -1;
  }

  int fd_;
  SSL* ssl_;
  std::string buffered_;
  size_t pos_ = 0;
  std::string peer_ip_;
  int peer_port_;
  SteadyClock::time_point read_deadline_;
};

// A request the accept loop hands to a worker.
struct Job {
  int fd = -1;
  std::string buffered;
  std::string peer_ip;
  int peer_port = 0;
  SteadyClock::time_point accepted;
};

// Rate-limited warning with a count of what happened meanwhile.
class Throttled {
 public:
  explicit Throttled(const char* what) : what_(what) {}
  void Note(const std::string& detail) {
    ++count_;
    const auto now = SteadyNow();
    if (last_ && now - *last_ < kProviderErrorLogInterval) return;
    last_ = now;
    spdlog::warn("local API: {} ({}; {} since the last such message)", what_, detail, count_);
    count_ = 0;
  }

 private:
  const char* what_;
  std::optional<SteadyClock::time_point> last_;
  uint64_t count_ = 0;
};

struct PendingBuffer {
  std::string bytes;
  std::string peer_ip;
  int peer_port = 0;
};

}  // namespace

struct StatusServer::Impl {
  Impl(IpAllowList allow_list, ApiRoutes api_routes, std::string token,
       std::vector<std::string> hosts)
      : allow(std::move(allow_list)),
        routes(std::move(api_routes)),
        admin_token(std::move(token)),
        allowed_hosts(std::move(hosts)),
        pending(PendingConnections::Limits{kMaxInFlight, kFirstByte, kWholeRequest}) {}
  ~Impl() {
    for (int fd : {listen_fd, wake_read, wake_write, spare_fd}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void Handle(const httplib::Request& req, httplib::Response& res);
  void LogProviderError(const std::string& path, const std::string& what);
  bool TokenMatches(const httplib::Request& req) const;

  void AcceptLoop();
  void AcceptReady();
  void ReadPending(int fd);
  void Drop(int fd);
  void Dispatch(int fd);
  void Work();
  void Serve(Job& job);

  const IpAllowList allow;
  const ApiRoutes routes;
  const std::string admin_token;
  const std::vector<std::string> allowed_hosts;
  std::unique_ptr<httplib::Server> server;  // routing; a TlsProcessor with TLS
  std::function<bool(httplib::Stream&)> serve;
  SSL_CTX* ssl_ctx = nullptr;
  bool tls = false;
  std::string endpoint;  // host:port, for messages
  int port = 0;
  int listen_fd = -1;
  int wake_read = -1, wake_write = -1;
  int spare_fd = -1;  // kept for EMFILE: closed to accept (and drop) one connection
  std::thread acceptor;
  std::vector<std::thread> workers;

  // The accept loop's own state.
  PendingConnections pending;
  std::map<int, PendingBuffer> buffers;
  Throttled refused_peer{"closed a connection from a client outside network.security.allowed_ips"};
  Throttled overflow{"too many connections at once: closed one"};
  Throttled no_fds{"out of file descriptors: a connection was closed unanswered"};

  // Shared with the workers.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  std::atomic<size_t> active{0};  // queued or being answered

  std::mutex stop_mu;
  bool stopped = false;
  std::mutex log_mu;
  std::optional<SteadyClock::time_point> last_error_log;
};

void StatusServer::Impl::LogProviderError(const std::string& path, const std::string& what) {
  const auto now = SteadyNow();
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
  if (!allow.Allows(req.remote_addr)) {  // the accept loop closed these already
    res.status = 403;
    res.set_content("forbidden\n", "text/plain");
    return;
  }
  const std::string host_value = req.get_header_value("Host");
  const std::optional<std::string_view> host =
      req.has_header("Host") ? std::optional<std::string_view>(host_value) : std::nullopt;
  if (req.get_header_value_count("Host") > 1 || !HostHeaderAllowed(host, allowed_hosts)) {
    res.status = 421;
    res.set_content(
        "this Host is not a name of this agent (localhost, an IP address or api.allowed_hosts)\n",
        "text/plain");
    return;
  }
  const auto route = routes.find(req.path);
  if (route == routes.end()) {
    res.status = 404;
    res.set_content("not found\n", "text/plain");
    return;
  }
  const bool change = route->second.kind == ApiRoute::Kind::kChange;
  const bool needs_token = route->second.kind != ApiRoute::Kind::kRead;
  const bool method_ok =
      change ? req.method == "POST" : (req.method == "GET" || req.method == "HEAD");
  if (!method_ok) {
    res.status = 405;
    res.set_header("Allow", change ? "POST" : "GET, HEAD");
    res.set_content("method not allowed\n", "text/plain");
    return;
  }
  if (needs_token && !TokenMatches(req)) {
    res.status = admin_token.empty() ? 403 : 401;
    res.set_content(admin_token.empty()
                        ? "this path needs the admin token, and none is set on this endpoint\n"
                        : "this path needs the agent's admin token (Authorization: Bearer)\n",
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

void StatusServer::Impl::Drop(int fd) {
  pending.Remove(fd);
  buffers.erase(fd);
  ::close(fd);
}

void StatusServer::Impl::Dispatch(int fd) {
  auto node = buffers.extract(fd);
  Job job{fd, std::move(node.mapped().bytes), std::move(node.mapped().peer_ip),
          node.mapped().peer_port, SteadyNow()};
  for (const auto& e : pending.entries()) {
    if (e.fd == fd) job.accepted = e.accepted;
  }
  pending.Remove(fd);
  ++active;
  {
    std::lock_guard<std::mutex> lock(mu);
    jobs.push_back(std::move(job));
  }
  cv.notify_one();
}

void StatusServer::Impl::AcceptReady() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Without a descriptor the connection would stay in the backlog and wake us forever:
        // free the spare one, take the connection and close it, and keep a spare again.
        if (spare_fd >= 0) {
          ::close(spare_fd);
          const int dropped = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (dropped >= 0) ::close(dropped);
          spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        no_fds.Note(std::strerror(EMFILE));
        continue;
      }
      return;  // EAGAIN: nothing more to take now (or an error on this one connection)
    }
    int peer_port = 0;
    std::string peer_ip = IpText(addr, &peer_port);
    if (!allow.Allows(peer_ip)) {
      ::close(fd);  // before a byte is read
      refused_peer.Note(peer_ip);
      continue;
    }
    const PendingConnections::Admission a = pending.Admit(fd, SteadyNow(), active.load());
    if (a.close_fd) {
      overflow.Note(std::to_string(kMaxInFlight) + " in flight");
      buffers.erase(*a.close_fd);
      ::close(*a.close_fd);
    }
    if (a.admitted) buffers[fd] = PendingBuffer{"", std::move(peer_ip), peer_port};
  }
}

void StatusServer::Impl::ReadPending(int fd) {
  if (tls) {  // the ClientHello arrived: the handshake runs on a worker
    Dispatch(fd);
    return;
  }
  PendingBuffer& b = buffers[fd];
  char chunk[4096];
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n == 0) {
      Drop(fd);  // closed before its request was whole
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) Drop(fd);
      break;
    }
    b.bytes.append(chunk, static_cast<size_t>(n));
    pending.MarkGotBytes(fd);
    const RequestProgress p = CheckRequestProgress(b.bytes, kHeaderMaxBytes, kPayloadMaxBytes);
    if (p == RequestProgress::kComplete) {
      Dispatch(fd);
      return;
    }
    if (p != RequestProgress::kNeedMore) {
      const char* answer = p == RequestProgress::kTooLarge
                               ? "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
                                 "Content-Length: 0\r\n\r\n"
                               : "HTTP/1.1 411 Length Required\r\nConnection: close\r\n"
                                 "Content-Length: 0\r\n\r\n";
      (void)!::send(fd, answer, std::strlen(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
      Drop(fd);
      return;
    }
  }
}

void StatusServer::Impl::AcceptLoop() {
  std::vector<pollfd> fds;
  for (;;) {
    const auto now = SteadyNow();
    for (int fd : pending.Expire(now)) {
      buffers.erase(fd);
      ::close(fd);
    }
    int timeout_ms = 1000;
    if (auto next = pending.NextDeadline(now)) {
      timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*next).count());
    }
    fds.clear();
    fds.push_back(pollfd{wake_read, POLLIN, 0});
    fds.push_back(pollfd{listen_fd, POLLIN, 0});
    for (const auto& e : pending.entries()) fds.push_back(pollfd{e.fd, POLLIN, 0});
    const int r = ::poll(fds.data(), fds.size(), timeout_ms);
    if (r < 0 && errno != EINTR) {
      spdlog::error("local API {}: poll failed: {}", endpoint, std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (r <= 0) continue;
    if (fds[0].revents != 0) break;  // Stop()
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents != 0 && buffers.count(fds[i].fd) != 0) ReadPending(fds[i].fd);
    }
    if (fds[1].revents != 0) AcceptReady();
  }
  for (const auto& [fd, buffer] : buffers) ::close(fd);
  buffers.clear();
}

void StatusServer::Impl::Serve(Job& job) {
  const auto deadline = job.accepted + kWholeRequest;
  SSL* ssl = nullptr;
  if (tls) {
    ssl = SSL_new(ssl_ctx);
    if (ssl == nullptr || SSL_set_fd(ssl, job.fd) != 1) {
      if (ssl != nullptr) SSL_free(ssl);
      return;
    }
  }
  ConnectionStream stream(job.fd, ssl, std::move(job.buffered), job.peer_ip, job.peer_port,
                          deadline);
  if (ssl == nullptr || stream.Handshake()) {
    serve(stream);
    if (ssl != nullptr) SSL_shutdown(ssl);
  }
  if (ssl != nullptr) SSL_free(ssl);
}

void StatusServer::Impl::Work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return stopping || !jobs.empty(); });
      if (jobs.empty()) return;
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    try {
      Serve(job);
    } catch (const std::exception& e) {
      LogProviderError("a request", e.what());
    } catch (...) {
      LogProviderError("a request", "unknown exception");
    }
    ::shutdown(job.fd, SHUT_RDWR);
    ::close(job.fd);
    --active;
  }
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

namespace {

// A listening TCP socket on listen_ip:port (0 = any free port), non-blocking, close-on-exec,
// SO_REUSEADDR (quick restart) but not SO_REUSEPORT (a second agent must not share the port).
Result<int> Listen(const ParsedIp& ip, const std::string& listen, int port, int* bound_port) {
  const int fd = ::socket(ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return MakeError(
        ErrorCode::kUnavailable,
        std::string("cannot open a socket for the status endpoint: ") + std::strerror(errno));
  }
  const int yes = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (ip.family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->sin_addr, ip.addr.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->sin6_addr, ip.addr.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(fd);
    return MakeError(
        ErrorCode::kUnavailable,
        "cannot bind status endpoint " + HostPort(listen, port) + ": " + std::strerror(err));
  }
  sockaddr_storage got{};
  socklen_t got_len = sizeof(got);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len);
  IpText(got, bound_port);
  return fd;
}

}  // namespace

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

  auto impl = std::make_unique<Impl>(std::move(allow).value(), std::move(routes),
                                     options.admin_token, options.allowed_hosts);
  Impl* raw = impl.get();
  if (!options.tls_cert.empty()) {
    auto ssl = std::make_unique<TlsProcessor>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!ssl->is_valid()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "status endpoint TLS: cannot load the certificate " + options.tls_cert +
                           " and key " + options.tls_key +
                           " (PEM files, the key matching the certificate, readable by the agent)");
    }
    raw->ssl_ctx = ssl->ssl_context();
    TlsProcessor* p = ssl.get();
    raw->serve = [p](httplib::Stream& s) { return p->Serve(s); };
    raw->server = std::move(ssl);
    raw->tls = true;
  } else {
    auto plain = std::make_unique<PlainProcessor>();
    PlainProcessor* p = plain.get();
    raw->serve = [p](httplib::Stream& s) { return p->Serve(s); };
    raw->server = std::move(plain);
  }
  httplib::Server& server = *raw->server;
  server.set_read_timeout(kSocketTimeoutSec, 0);
  server.set_write_timeout(kSocketTimeoutSec, 0);
  server.set_payload_max_length(kPayloadMaxBytes);
  server.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    raw->Handle(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });

  Result<int> fd = Listen(*listen_ip, options.listen, options.port, &raw->port);
  if (!fd.ok()) return fd.error();
  raw->listen_fd = *fd;
  raw->endpoint = HostPort(options.listen, raw->port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     std::string("status endpoint: pipe: ") + std::strerror(errno));
  }
  raw->wake_read = wake[0];
  raw->wake_write = wake[1];
  raw->spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  for (size_t i = 0; i < kWorkerThreads; ++i) raw->workers.emplace_back([raw] { raw->Work(); });
  raw->acceptor = std::thread([raw] {
    try {
      raw->AcceptLoop();
    } catch (const std::exception& e) {
      spdlog::error("local API {}: accept loop ended: {}", raw->endpoint, e.what());
    } catch (...) {
      spdlog::error("local API {}: accept loop ended by an unknown exception", raw->endpoint);
    }
  });
  std::unique_ptr<StatusServer> status_server(new StatusServer(std::move(impl)));
  spdlog::info("local API listening on {}://{}/ (at most {} connections in flight)",
               raw->tls ? "https" : "http", raw->endpoint, kMaxInFlight);
  return status_server;
}

void StatusServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  const char byte = 1;
  (void)!::write(impl_->wake_write, &byte, 1);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
  {
    std::lock_guard<std::mutex> jobs_lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& w : impl_->workers) {
    if (w.joinable()) w.join();
  }
}

}  // namespace taolie::telemetry
