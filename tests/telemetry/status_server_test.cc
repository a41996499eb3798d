// Integration tests: a real StatusServer on 127.0.0.1 and a real HTTP client.
#include "telemetry/status_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/prometheus_text.h"

namespace taolie::telemetry {
namespace {

using std::chrono::steady_clock;

constexpr const char* kJson = R"({"agent_id":"a-1","state":"ok"})";

StatusServerOptions FreePortOptions() {
  StatusServerOptions options;
  options.listen = "127.0.0.1";
  options.port = 0;
  return options;
}

std::string Metrics() {
  return PrometheusText({{"taolie_up", "Agent is up.", "gauge", {Sample{{}, 1}}}});
}

std::unique_ptr<StatusServer> MustStart(
    const StatusServerOptions& options, StatusServer::Provider status = [] { return kJson; },
    StatusServer::Provider metrics = Metrics) {
  auto server = StatusServer::Start(options, std::move(status), std::move(metrics));
  EXPECT_TRUE(server.ok()) << server.error().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

// A server whose status provider counts its calls.
std::unique_ptr<StatusServer> MustStartCounting(const StatusServerOptions& options,
                                                std::atomic<int>* calls) {
  return MustStart(options, [calls] {
    ++*calls;
    return std::string(kJson);
  });
}

httplib::Client MakeClient(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  client.set_write_timeout(5, 0);
  return client;
}

TEST(StatusServerTest, PicksFreePortAndServesHealthz) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  auto client = MakeClient(server->port());
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain");
}

TEST(StatusServerTest, ServesStatusJsonFromProviderOnEveryRequest) {
  std::atomic<int> calls{0};
  auto server = MustStart(FreePortOptions(),
                          [&calls] { return R"({"calls":)" + std::to_string(++calls) + "}"; });
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  for (int i = 1; i <= 3; ++i) {
    auto res = client.Get("/status");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(res->body, R"({"calls":)" + std::to_string(i) + "}");
  }
}

TEST(StatusServerTest, ServesMetricsInPrometheusTextFormat) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body, "# HELP taolie_up Agent is up.\n# TYPE taolie_up gauge\ntaolie_up 1\n");
}

TEST(StatusServerTest, QueryStringDoesNotChangeTheRoute) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  auto res = client.Get("/status?verbose=1");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, kJson);
}

TEST(StatusServerTest, HeadIsAnsweredWithoutBody) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  auto res = client.Head("/status");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "");
}

TEST(StatusServerTest, UnknownPathIs404) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  for (const char* path : {"/", "/nope", "/status/", "/metricsx", "/healthz/extra"}) {
    auto res = client.Get(path);
    ASSERT_TRUE(res) << path << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 404) << path;
  }
  auto post = client.Post("/nope", "x", "text/plain");
  ASSERT_TRUE(post) << httplib::to_string(post.error());
  EXPECT_EQ(post->status, 404);
}

TEST(StatusServerTest, NonGetMethodsAre405) {
  std::atomic<int> calls{0};
  auto server = MustStart(FreePortOptions(), [&calls] {
    ++calls;
    return std::string(kJson);
  });
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  auto post = client.Post("/status", "{}", "application/json");
  ASSERT_TRUE(post) << httplib::to_string(post.error());
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  auto put = client.Put("/metrics", "x", "text/plain");
  ASSERT_TRUE(put) << httplib::to_string(put.error());
  EXPECT_EQ(put->status, 405);
  auto del = client.Delete("/healthz");
  ASSERT_TRUE(del) << httplib::to_string(del.error());
  EXPECT_EQ(del->status, 405);
  auto options = client.Options("/status");
  ASSERT_TRUE(options) << httplib::to_string(options.error());
  EXPECT_EQ(options->status, 405);
  EXPECT_EQ(calls.load(), 0) << "a refused method must not run the provider";
}

TEST(StatusServerTest, ThrowingProviderGives500AndServerKeepsServing) {
  std::atomic<int> calls{0};
  auto server = MustStart(
      FreePortOptions(),
      [&calls]() -> std::string {
        if (++calls % 2 == 1) throw std::runtime_error("store unavailable password=hunter2");
        throw 42;  // not a std::exception
      },
      Metrics);
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  for (int i = 0; i < 2; ++i) {
    auto res = client.Get("/status");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 500);
    EXPECT_EQ(res->body, "internal error\n");
    EXPECT_EQ(res->body.find("hunter2"), std::string::npos);
    for (const auto& [name, value] : res->headers) {
      EXPECT_EQ(value.find("hunter2"), std::string::npos) << name;
    }
  }
  EXPECT_EQ(calls.load(), 2);
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
}

// A raw TCP connection to 127.0.0.1:port (blocking), or -1.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// What the server sends on `fd` until it closes it or `timeout` passes; nullopt on timeout.
std::optional<std::string> ReadUntilClosed(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  char buf[4096];
  for (int i = 0; i < 1000; ++i) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || errno == ECONNRESET) return got;
    return std::nullopt;
  }
  return std::nullopt;
}

// A client outside allowed_ips is closed at once, before it sends a byte, on every path.
TEST(StatusServerTest, ClientOutsideAllowListIsClosedBeforeAByte) {
  StatusServerOptions options = FreePortOptions();
  options.allowed_ips = {"10.0.0.0/8"};
  std::atomic<int> calls{0};
  auto server = MustStartCounting(options, &calls);
  ASSERT_NE(server, nullptr);
  const int fd = ConnectLoopback(server->port());
  ASSERT_GE(fd, 0);
  const auto begin = steady_clock::now();
  const std::optional<std::string> got = ReadUntilClosed(fd, std::chrono::milliseconds(900));
  close(fd);
  ASSERT_TRUE(got.has_value()) << "not closed before the first-byte deadline";
  EXPECT_EQ(*got, "");
  EXPECT_LT(steady_clock::now() - begin, std::chrono::milliseconds(500));
  auto client = MakeClient(server->port());
  for (const char* path : {"/healthz", "/status", "/metrics", "/nope"}) {
    auto res = client.Get(path);
    EXPECT_FALSE(res) << path << " answered " << res->status;
  }
  EXPECT_FALSE(client.Post("/status", "{}", "application/json"));
  EXPECT_EQ(calls.load(), 0);
}

TEST(StatusServerTest, ExplicitAllowListAdmitsMatchingClient) {
  StatusServerOptions options = FreePortOptions();
  options.allowed_ips = {"10.0.0.0/8", "127.0.0.1/32"};
  auto server = MustStart(options);
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(server->port());
  auto res = client.Get("/status");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, kJson);
}

TEST(StatusServerTest, PortInUseIsUnavailableNamingAddressAndErrno) {
  auto first = MustStart(FreePortOptions());
  ASSERT_NE(first, nullptr);
  StatusServerOptions options = FreePortOptions();
  options.port = first->port();
  auto second = StatusServer::Start(
      options, [] { return "{}"; }, Metrics);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message.find("127.0.0.1:" + std::to_string(first->port())),
            std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("Address already in use"), std::string::npos)
      << second.error().message;
  // The first server is unaffected.
  auto client = MakeClient(first->port());
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST(StatusServerTest, InvalidOptionsAreInvalidArgument) {
  auto start = [](StatusServerOptions options) {
    return StatusServer::Start(
        options, [] { return "{}"; }, Metrics);
  };
  for (const char* listen : {"", "localhost", "not-an-ip", "127.0.0.256", "fe80::1%lo"}) {
    StatusServerOptions options = FreePortOptions();
    options.listen = listen;
    auto r = start(options);
    ASSERT_FALSE(r.ok()) << listen;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << listen;
  }
  for (int port : {-1, 65536}) {
    StatusServerOptions options = FreePortOptions();
    options.port = port;
    auto r = start(options);
    ASSERT_FALSE(r.ok()) << port;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << port;
  }
  StatusServerOptions options = FreePortOptions();
  options.allowed_ips = {"10.0.0.0/40"};
  auto bad_cidr = start(options);
  ASSERT_FALSE(bad_cidr.ok());
  EXPECT_EQ(bad_cidr.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_cidr.error().message.find("10.0.0.0/40"), std::string::npos);

  auto no_provider = StatusServer::Start(FreePortOptions(), nullptr, Metrics);
  ASSERT_FALSE(no_provider.ok());
  EXPECT_EQ(no_provider.error().code, ErrorCode::kInvalidArgument);
}

TEST(StatusServerTest, StopIsPromptIdempotentAndClosesThePort) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto client = MakeClient(port);
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());

  const auto begin = steady_clock::now();
  server->Stop();
  EXPECT_LT(steady_clock::now() - begin, std::chrono::seconds(1));
  server->Stop();  // idempotent

  auto after = MakeClient(port).Get("/healthz");
  EXPECT_FALSE(after) << "server still answering after Stop()";

  // The port is free again: a new server can bind it at once.
  StatusServerOptions options = FreePortOptions();
  options.port = port;
  auto again = MustStart(options);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->port(), port);
}

TEST(StatusServerTest, StopRightAfterStartIsPrompt) {
  for (int i = 0; i < 5; ++i) {
    auto server = MustStart(FreePortOptions());
    ASSERT_NE(server, nullptr);
    const auto begin = steady_clock::now();
    server.reset();  // destructor stops
    EXPECT_LT(steady_clock::now() - begin, std::chrono::seconds(1));
  }
}

// An idle client holding a connection open does not delay Stop(): it waits in the accept loop,
// not on a worker.
TEST(StatusServerTest, IdleConnectionDelaysStopOnlyBriefly) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // Let the accept loop take the connection, which then waits for a request.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  const auto begin = steady_clock::now();
  server->Stop();
  const auto took = steady_clock::now() - begin;
  close(fd);
  EXPECT_LT(took, std::chrono::milliseconds(500))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  RecordProperty(
      "stop_ms",
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
}

TEST(StatusServerTest, ConcurrentClientsAllServed) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  constexpr int kThreads = 4;
  constexpr int kRequests = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ok, port = server->port()] {
      auto client = MakeClient(port);
      for (int i = 0; i < kRequests; ++i) {
        auto res = client.Get(i % 2 == 0 ? "/status" : "/metrics");
        if (res && res->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
}

// The local API's route table: a change needs POST and the admin token.
TEST(StatusServerTest, ChangesNeedPostAndTheAdminToken) {
  std::atomic<int> drains{0};
  ApiRoutes routes;
  routes["/v1/drain"] = ApiRoute{ApiRoute::Kind::kChange, [&](const std::string&) {
                                   ++drains;
                                   return ApiReply{200, "application/json", R"({"draining":true})"};
                                 }};
  routes["/readyz"] = ApiRoute{ApiRoute::Kind::kRead, [](const std::string&) {
                                 return ApiReply{503, "application/json", R"({"ready":false})"};
                               }};
  StatusServerOptions options = FreePortOptions();
  options.admin_token = "0123456789abcdefABCDEF0123456789";
  auto server = StatusServer::Start(options, routes);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto client = MakeClient((*server)->port());
  auto none = client.Post("/v1/drain", "", "text/plain");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  auto wrong =
      client.Post("/v1/drain", {{"Authorization", "Bearer 0123456789abcdefABCDEF012345678X"}}, "",
                  "text/plain");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto shorter = client.Post("/v1/drain", {{"Authorization", "Bearer 0123"}}, "", "text/plain");
  ASSERT_TRUE(shorter);
  EXPECT_EQ(shorter->status, 401);
  auto get = client.Get("/v1/drain");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  EXPECT_EQ(drains.load(), 0);
  auto right = client.Post("/v1/drain", {{"Authorization", "Bearer " + options.admin_token}}, "",
                           "text/plain");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(right->body, R"({"draining":true})");
  EXPECT_EQ(drains.load(), 1);
  // A read is not a change: POST is refused; a handler's own status passes through.
  auto post_read = client.Post("/readyz", "", "text/plain");
  ASSERT_TRUE(post_read);
  EXPECT_EQ(post_read->status, 405);
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, R"({"ready":false})");
}

TEST(StatusServerTest, WithoutAnAdminTokenChangesAreDisabled) {
  ApiRoutes routes;
  routes["/v1/drain"] = ApiRoute{ApiRoute::Kind::kChange, [](const std::string&) {
                                   return ApiReply{200, "text/plain", "drained"};
                                 }};
  auto server = StatusServer::Start(FreePortOptions(), routes);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto client = MakeClient((*server)->port());
  auto res = client.Post("/v1/drain", {{"Authorization", "Bearer "}}, "", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
}

TEST(StatusServerTest, TlsOptionsAreCheckedAtStart) {
  StatusServerOptions half = FreePortOptions();
  half.tls_cert = "/nonexistent/agent.crt";
  auto a = StatusServer::Start(half, ApiRoutes{});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(a.error().message.find("both a certificate and a key"), std::string::npos);
  StatusServerOptions missing = half;
  missing.tls_key = "/nonexistent/agent.key";
  auto b = StatusServer::Start(missing, ApiRoutes{});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(b.error().message.find("cannot load the certificate /nonexistent/agent.crt"),
            std::string::npos)
      << b.error().message;
  ApiRoutes empty_handler;
  empty_handler["/x"] = ApiRoute{};
  EXPECT_FALSE(StatusServer::Start(FreePortOptions(), empty_handler).ok());
}

// Sends `request` on a new connection and returns the whole answer ("" when closed unanswered).
std::string Exchange(int port, const std::string& request) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "connect failed";
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::optional<std::string> got = ReadUntilClosed(fd, std::chrono::milliseconds(5000));
  close(fd);
  return got.value_or("timed out");
}

// DNS rebinding: a browser page whose name now resolves to 127.0.0.1 sends its own name.
TEST(StatusServerTest, AForeignHostHeaderGets421) {
  StatusServerOptions options = FreePortOptions();
  options.allowed_hosts = {"gpu-host-1"};
  std::atomic<int> calls{0};
  auto server = MustStartCounting(options, &calls);
  ASSERT_NE(server, nullptr);
  const std::string port = std::to_string(server->port());
  auto get = [&](const std::string& host_line) {
    return Exchange(server->port(), "GET /status HTTP/1.1\r\n" + host_line + "\r\n");
  };
  EXPECT_EQ(get("Host: attacker.example:" + port + "\r\n").rfind("HTTP/1.1 421", 0), 0u);
  EXPECT_EQ(get("Host: localhost.attacker.example\r\n").rfind("HTTP/1.1 421", 0), 0u);
  EXPECT_EQ(get("Host: localhost\r\nHost: attacker.example\r\n").rfind("HTTP/1.1 421", 0), 0u);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(get("Host: localhost:" + port + "\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(get("Host: 127.0.0.1:" + port + "\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(get("Host: GPU-host-1:" + port + "\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(calls.load(), 3);
}

TEST(StatusServerTest, ATokenReadNeedsTheTokenOnGet) {
  ApiRoutes routes;
  routes["/v1/deployments"] = ApiRoute{ApiRoute::Kind::kTokenRead, [](const std::string&) {
                                         return ApiReply{200, "application/json", "[]"};
                                       }};
  StatusServerOptions options = FreePortOptions();
  options.admin_token = "0123456789abcdefABCDEF0123456789";
  auto server = StatusServer::Start(options, routes);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto client = MakeClient((*server)->port());
  auto none = client.Get("/v1/deployments");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  auto right = client.Get("/v1/deployments", {{"Authorization", "Bearer " + options.admin_token}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(right->body, "[]");
}

// A flood of idle connections (and slow ones that send a byte and stall) does not keep
// /healthz from answering within a second; each idle one is closed after its first-byte
// deadline. On the old server (httplib's queue behind 2 workers) /healthz waited.
TEST(StatusServerTest, HealthzAnswersDuringAFloodOfIdleAndSlowConnections) {
  auto server = MustStart(FreePortOptions());
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 300; ++i) {
    const int fd = ConnectLoopback(server->port());
    if (fd < 0) break;
    if (i % 10 == 0) (void)!send(fd, "G", 1, MSG_NOSIGNAL);  // slow: one byte, then nothing
    idle.push_back(fd);
  }
  ASSERT_EQ(idle.size(), 300u);
  const auto begin = steady_clock::now();
  auto client = MakeClient(server->port());
  client.set_read_timeout(1, 0);
  auto res = client.Get("/healthz");
  const auto took = steady_clock::now() - begin;
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(took, std::chrono::seconds(1));
  RecordProperty(
      "healthz_ms",
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  // The last idle connection (kept: the newest ones stay) is closed by its first-byte deadline.
  const std::optional<std::string> got =
      ReadUntilClosed(idle.back(), std::chrono::milliseconds(2500));
  ASSERT_TRUE(got.has_value()) << "an idle connection was not closed";
  EXPECT_EQ(*got, "");
  for (int fd : idle) close(fd);
}

}  // namespace
}  // namespace taolie::telemetry
