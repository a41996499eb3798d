// EngineDockerClient against a scripted fake engine on a unix socket: version negotiation,
// pull error lines and cancellation mid-stream, exec stream demultiplexing, timeouts. No
// daemon and no sleeps; every socket read is bounded by SO_RCVTIMEO.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "docker/engine_docker_client.h"

namespace taolie::docker {
namespace {

using std::chrono::seconds;

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string JsonResponse(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// Serves one request per connection; the handler for the first matching path prefix answers.
class FakeEngine {
 public:
  using Handler = std::function<void(int fd)>;

  FakeEngine() {
    path_ = "/tmp/taolie-fake-engine-" + std::to_string(getpid()) + "-" +
            std::to_string(counter_++) + ".sock";
    unlink(path_.c_str());
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 16) != 0) {
      ADD_FAILURE() << "fake engine cannot listen on " << path_;
      return;
    }
    thread_ = std::thread([this] { Serve(); });
  }

  ~FakeEngine() {
    shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
  }

  void On(const std::string& method, const std::string& path_prefix, Handler h) {
    std::lock_guard lock(mu_);
    routes_.push_back({method, path_prefix, std::move(h)});
  }

  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::string host() const { return "unix://" + path_; }

 private:
  struct Route {
    std::string method, prefix;
    Handler handler;
  };

  void Serve() {
    while (true) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;  // shut down
      timeval tv{10, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      Handle(fd);
      close(fd);
    }
  }

  void Handle(int fd) {
    std::string req;
    char buf[4096];
    size_t header_end = std::string::npos;
    while (header_end == std::string::npos) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
      header_end = req.find("\r\n\r\n");
    }
    size_t content_length = 0;
    if (size_t p = req.find("Content-Length: "); p != std::string::npos && p < header_end) {
      content_length = std::stoul(req.substr(p + 16));
    }
    while (req.size() < header_end + 4 + content_length) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    std::string line = req.substr(0, req.find("\r\n"));
    std::string method = line.substr(0, line.find(' '));
    std::string path = line.substr(method.size() + 1, line.rfind(' ') - method.size() - 1);
    Handler handler;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(method + " " + path);
      for (const auto& r : routes_) {
        if (r.method == method && path.rfind(r.prefix, 0) == 0) {
          handler = r.handler;
          break;
        }
      }
    }
    if (handler) {
      handler(fd);
    } else {
      WriteAll(fd, JsonResponse(404, R"({"message":"page not found"})"));
    }
  }

  static inline std::atomic<int> counter_{0};
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Route> routes_;
  std::vector<std::string> requests_;
};

// Blocks until the client closes the connection (or the 10 s receive timeout).
void WaitForClientClose(int fd) {
  char buf[256];
  while (recv(fd, buf, sizeof(buf), 0) > 0) {
  }
}

TEST(EngineDockerClientFakeTest, NegotiatesDownToSupportedVersionAndPrefixesPaths) {
  FakeEngine engine;
  engine.On("GET", "/version", [](int fd) {
    WriteAll(fd, JsonResponse(200, R"({"ApiVersion":"1.45","Version":"27.0.0","Os":"linux"})"));
  });
  engine.On("GET", "/v1.43/containers/json", [](int fd) { WriteAll(fd, JsonResponse(200, "[]")); });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5));
  ASSERT_TRUE(c.ok());
  auto list = (*c)->List({{"taolie.agent", "a1"}});
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  EXPECT_TRUE(list->empty());
  auto reqs = engine.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0], "GET /version");
  EXPECT_EQ(
      reqs[1],
      "GET /v1.43/containers/json?all=1&filters=%7B%22label%22%3A%5B%22taolie.agent%3Da1%22%5D%7D");
  // Negotiated once.
  ASSERT_TRUE((*c)->List({}).ok());
  EXPECT_EQ(engine.requests().size(), 3u);
}

TEST(EngineDockerClientFakeTest, RefusesTooOldEngine) {
  FakeEngine engine;
  engine.On("GET", "/version",
            [](int fd) { WriteAll(fd, JsonResponse(200, R"({"ApiVersion":"1.39"})")); });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5));
  ASSERT_TRUE(c.ok());
  auto v = (*c)->Inspect("x");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::kFailedPrecondition) << v.error().ToString();
}

TEST(EngineDockerClientFakeTest, PullErrorLineMidStreamFailsWithItsMessage) {
  FakeEngine engine;
  engine.On(
      "POST", "/v1.41/images/create?fromImage=127.0.0.1%3A5555%2Fa%2Fb&tag=sha256%3A", [](int fd) {
        WriteAll(fd,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                 "{\"status\":\"Pulling from a/b\",\"id\":\"1\"}\r\n"
                 "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":5,\"total\":10},"
                 "\"id\":\"abc\"}\r\n"
                 "{\"errorDetail\":{\"message\":\"toomanyrequests: slow down\"},"
                 "\"error\":\"toomanyrequests: slow down\"}\r\n");
      });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  std::vector<PullProgress> seen;
  auto st = (*c)->Pull("127.0.0.1:5555/a/b@sha256:" + std::string(64, 'e'),
                       [&](const PullProgress& p) { seen.push_back(p); }, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("toomanyrequests: slow down"), std::string::npos);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].id, "abc");
  EXPECT_EQ(seen[1].status, "Downloading");
  EXPECT_EQ(seen[1].current, 5);
  EXPECT_EQ(seen[1].total, 10);
}

TEST(EngineDockerClientFakeTest, PullStopsMidStreamWhenAsked) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/images/create", [](int fd) {
    WriteAll(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
             "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":1000}}\n");
    WaitForClientClose(fd);  // a stalled multi-GB pull
  });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  std::stop_source stop;
  auto t0 = std::chrono::steady_clock::now();
  auto st = (*c)->Pull(
      "big/image:1", [&](const PullProgress&) { stop.request_stop(); }, stop.get_token());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kCancelled) << st.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(3));
}

TEST(EngineDockerClientFakeTest, PullStallHitsDeadline) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/images/create", [](int fd) {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"x\"}\n");
    WaitForClientClose(fd);
  });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  (*c)->SetPullLimits(seconds(1), seconds(60));
  auto st = (*c)->Pull("big/image:1", nullptr, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kDeadlineExceeded) << st.error().ToString();
  EXPECT_NE(st.error().message.find("docker.pull_timeout"), std::string::npos)
      << st.error().message;
}

// docker.pull_timeout bounds the whole pull, even while data keeps coming: a registry that
// trickles a progress line every 200 ms never trips the stall limit (1 s) but is abandoned at
// the total limit (2 s), with a message naming the key.
TEST(EngineDockerClientFakeTest, PullTimeoutBoundsAPullThatKeepsTrickling) {
  FakeEngine engine;
  std::atomic<int> lines{0};
  engine.On("POST", "/v1.41/images/create", [&lines](int fd) {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
    // At most 10 s of trickle; ends early when the client goes away.
    for (int i = 0; i < 50; ++i) {
      WriteAll(fd, "{\"status\":\"Downloading\",\"id\":\"abc\",\"progressDetail\":{\"current\":" +
                       std::to_string(i + 1) + ",\"total\":1000000}}\n");
      ++lines;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 200) > 0) {
        char buf[64];
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0) return;
      }
    }
  });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  (*c)->SetPullLimits(seconds(2), seconds(1));
  auto t0 = std::chrono::steady_clock::now();
  int seen = 0;
  auto st = (*c)->Pull("big/image:1", [&](const PullProgress&) { ++seen; }, {});
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kDeadlineExceeded) << st.error().ToString();
  EXPECT_NE(st.error().message.find("docker.pull_timeout (2 s)"), std::string::npos)
      << st.error().message;
  EXPECT_GE(took, std::chrono::milliseconds(1900));  // curl may end a few ms early
  EXPECT_LT(took, seconds(5));
  EXPECT_GE(seen, 5) << "the stream kept coming until the deadline";
}

// docker.pull_stall_timeout alone: a stream that goes silent is abandoned after the stall
// limit, well before the total limit, with a message naming that key.
TEST(EngineDockerClientFakeTest, PullStallTimeoutAbandonsASilentStream) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/images/create", [](int fd) {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"x\"}\n");
    WaitForClientClose(fd);
  });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  (*c)->SetPullLimits(seconds(30), seconds(1));
  auto t0 = std::chrono::steady_clock::now();
  auto st = (*c)->Pull("big/image:1", nullptr, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kDeadlineExceeded) << st.error().ToString();
  EXPECT_NE(st.error().message.find("docker.pull_stall_timeout (1 s)"), std::string::npos)
      << st.error().message;
  // curl averages the speed over its last few seconds: the stall shows some 6 s late.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(20));
}

TEST(EngineDockerClientFakeTest, EngineErrorsKeepTheEnginesMessage) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/containers/create", [](int fd) {
    WriteAll(fd,
             JsonResponse(
                 409, R"({"message":"Conflict. The container name \"/d1\" is already in use"})"));
  });
  engine.On("POST", "/v1.41/containers/d1/start", [](int fd) {
    WriteAll(fd, JsonResponse(500, R"({"message":"could not select device driver \"nvidia\""})"));
  });
  engine.On("POST", "/v1.41/containers/d1/stop",
            [](int fd) { WriteAll(fd, "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"); });
  engine.On("GET", "/v1.41/containers/d1/json",
            [](int fd) { WriteAll(fd, JsonResponse(503, "{}")); });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  ContainerSpec spec;
  spec.name = "d1";
  spec.image = "img:1";
  auto created = (*c)->Create(spec);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(created.error().message.find("is already in use"), std::string::npos);
  auto started = (*c)->Start("d1");
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().code, ErrorCode::kInternal);
  EXPECT_NE(started.error().message.find("could not select device driver"), std::string::npos);
  EXPECT_TRUE((*c)->Stop("d1", seconds(1)).ok());
  auto inspected = (*c)->Inspect("d1");
  ASSERT_FALSE(inspected.ok());
  EXPECT_EQ(inspected.error().code, ErrorCode::kUnavailable);
}

TEST(EngineDockerClientFakeTest, ExecDemultiplexesHijackedStream) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/containers/c1/exec",
            [](int fd) { WriteAll(fd, JsonResponse(201, R"({"Id":"e1"})")); });
  engine.On("POST", "/v1.41/exec/e1/start", [](int fd) {
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n";
    out += std::string("\x01\0\0\0\0\0\0\x06", 8) + "hello\n";
    out += std::string("\x02\0\0\0\0\0\0\x04", 8) + "oops";
    WriteAll(fd, out);  // then close, as the engine does when the process exits
  });
  engine.On("GET", "/v1.41/exec/e1/json",
            [](int fd) { WriteAll(fd, JsonResponse(200, R"({"Running":false,"ExitCode":7})")); });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Exec("c1", {"sh", "-c", "x"}, seconds(5));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->output, "hello\noops");
}

TEST(EngineDockerClientFakeTest, ExecTimesOutOnSilentProcess) {
  FakeEngine engine;
  engine.On("POST", "/v1.41/containers/c1/exec",
            [](int fd) { WriteAll(fd, JsonResponse(201, R"({"Id":"e2"})")); });
  engine.On("POST", "/v1.41/exec/e2/start", [](int fd) {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n");
    WaitForClientClose(fd);
  });
  auto c = EngineDockerClient::Create(engine.host(), seconds(5), "1.41");
  ASSERT_TRUE(c.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->Exec("c1", {"sleep", "100"}, seconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded) << r.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(3));
}

}  // namespace
}  // namespace taolie::docker
