// Alerts end to end on this machine (issue 8 item 5, label integration): the health rounds'
// transitions (agent/alert_rules.h) raised into the real Alerter, delivered by libcurl to a
// webhook receiver (cpp-httplib) and to a small SMTP receiver written here, both on
// 127.0.0.1 at free ports. Each transition arrives exactly once at each; a webhook that fails
// once is retried; STARTTLS required against a server that does not offer it sends nothing.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "health/alert_rules.h"
#include "telemetry/alert_channels.h"
#include "telemetry/alerter.h"

namespace taolie::health {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

// Accepts POST /hook; answers 503 to the first `fail_first` requests. Records what it accepted.
class WebhookReceiver {
 public:
  explicit WebhookReceiver(int fail_first = 0) : fail_left_(fail_first) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard l(mu_);
      ++requests_;
      if (fail_left_ > 0) {
        --fail_left_;
        res.status = 503;
        return;
      }
      content_types_.push_back(req.get_header_value("Content-Type"));
      bodies_.push_back(req.body);
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound and listening already: a request before the accept loop runs waits in the backlog.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> bodies() {
    std::lock_guard l(mu_);
    return bodies_;
  }
  std::vector<std::string> content_types() {
    std::lock_guard l(mu_);
    return content_types_;
  }
  int requests() {
    std::lock_guard l(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int fail_left_;
  int requests_ = 0;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
};

// A minimal SMTP receiver (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
// without STARTTLS or AUTH. One session at a time; every wait is bounded.
class SmtpReceiver {
 public:
  struct Mail {
    std::string from;
    std::vector<std::string> rcpt;
    std::string data;
  };

  SmtpReceiver() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SmtpReceiver() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  std::vector<Mail> mails() {
    std::lock_guard l(mu_);
    return mails_;
  }
  int sessions() {
    std::lock_guard l(mu_);
    return sessions_;
  }
  std::vector<std::string> commands() {
    std::lock_guard l(mu_);
    return commands_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      {
        std::lock_guard l(mu_);
        ++sessions_;
      }
      Session(c);
      close(c);
    }
  }

  // One line (without CRLF) within 5 s; false on timeout, close or stop.
  bool ReadLine(int c, std::string& buf, std::string& line) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(5);
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      if (size_t eol = buf.find("\r\n"); eol != std::string::npos) {
        line = buf.substr(0, eol);
        buf.erase(0, eol + 2);
        return true;
      }
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char chunk[4096];
      ssize_t n = recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<size_t>(n));
    }
    return false;
  }

  static void Reply(int c, const std::string& s) {
    (void)!send(c, s.data(), s.size(), MSG_NOSIGNAL);
  }

  void Session(int c) {
    Reply(c, "220 receiver.test ESMTP\r\n");
    std::string buf;
    std::string line;
    Mail mail;
    for (int i = 0; i < 1000 && ReadLine(c, buf, line); ++i) {
      std::string verb = line.substr(0, 4);
      for (auto& ch : verb) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
      {
        std::lock_guard l(mu_);
        commands_.push_back(verb);
      }
      if (verb == "EHLO") {
        Reply(c, "250-receiver.test\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n");
      } else if (verb == "HELO") {
        Reply(c, "250 receiver.test\r\n");
      } else if (verb == "MAIL") {
        mail = Mail{};
        mail.from = line.substr(line.find(':') + 1);
        mail.from = mail.from.substr(0, mail.from.find('>') + 1);  // without SIZE=...
        Reply(c, "250 OK\r\n");
      } else if (verb == "RCPT") {
        mail.rcpt.push_back(line.substr(line.find(':') + 1));
        Reply(c, "250 OK\r\n");
      } else if (verb == "DATA") {
        Reply(c, "354 end with <CRLF>.<CRLF>\r\n");
        std::string data;
        bool done = false;
        for (int j = 0; j < 10000 && ReadLine(c, buf, line); ++j) {
          if (line == ".") {
            done = true;
            break;
          }
          data += (line.rfind("..", 0) == 0 ? line.substr(1) : line) + "\r\n";
        }
        if (!done) return;
        mail.data = data;
        {
          std::lock_guard l(mu_);
          mails_.push_back(mail);
        }
        Reply(c, "250 OK queued\r\n");
      } else if (verb == "RSET" || verb == "NOOP") {
        Reply(c, "250 OK\r\n");
      } else if (verb == "QUIT") {
        Reply(c, "221 bye\r\n");
        return;
      } else {
        Reply(c, "502 not implemented\r\n");
      }
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Mail> mails_;
  std::vector<std::string> commands_;
  int sessions_ = 0;
};

GpuHealth Verdict(const std::string& health) {
  GpuHealth g;
  g.uuid = "GPU-7";
  g.index = 1;
  g.health = health;
  if (health != "healthy") {
    HealthCheck c;
    c.name = "xid";
    c.severity = health;
    c.ok = false;
    c.message = "XID 79: GPU has fallen off the bus";
    g.checks.push_back(c);
  }
  return g;
}

telemetry::SmtpOptions PlainSmtp(int port) {
  telemetry::SmtpOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.starttls = false;
  o.from = "agent@gpu-host.test";
  o.to = {"ops@example.test", "oncall@example.test"};
  o.timeout = seconds(10);
  return o;
}

std::unique_ptr<telemetry::Alerter> MakeAlerter(
    std::vector<std::unique_ptr<telemetry::AlertChannel>> channels, const Clock& clock) {
  telemetry::AlerterOptions o;
  o.agent_id = "agent-0123456789ab";
  o.host = "gpu-host.test";
  o.retry_base = milliseconds(20);
  o.max_tries = 3;
  return std::make_unique<telemetry::Alerter>(o, std::move(channels), clock);
}

TEST(AlertDelivery, EachTransitionArrivesOnceByWebhookAndByMail) {
  WebhookReceiver hook(/*fail_first=*/1);  // the first POST fails: retried, delivered once
  SmtpReceiver smtp;
  RealClock clock;
  std::vector<std::unique_ptr<telemetry::AlertChannel>> ch;
  telemetry::WebhookOptions w;
  w.url = hook.url();
  ch.push_back(telemetry::MakeWebhookChannel(w));
  ch.push_back(telemetry::MakeSmtpChannel(PlainSmtp(smtp.port())));
  auto alerter = MakeAlerter(std::move(ch), clock);

  // Six health rounds: healthy; unhealthy and quarantined; the same again; healthy but still
  // quarantined; released; then the platform silent past its limit.
  struct RoundFacts {
    std::string verdict;
    bool quarantined;
    bool platform_silent;
  };
  const std::vector<RoundFacts> rounds = {{"healthy", false, false},  {"unhealthy", true, false},
                                          {"unhealthy", true, false}, {"healthy", true, false},
                                          {"healthy", false, false},  {"healthy", false, true}};
  AlertMemory mem;
  const SystemTime t0 = clock.Now();
  SystemTime now = t0;
  int raised = 0;
  for (const auto& r : rounds) {
    GpuHealth g = Verdict(r.verdict);
    AlertRulesInput in;
    GpuAlertInput gi;
    gi.health = &g;
    gi.quarantined = r.quarantined;
    gi.quarantine_reason = "XID 79";
    gi.deployment_id = "dep-42";
    in.gpus.push_back(gi);
    in.now = now;
    in.last_platform_ok = r.platform_silent ? t0 - seconds(700) : now;
    in.platform_unreachable_seconds = 600;
    for (auto& a : DeriveAlerts(in, mem)) {
      alerter->Raise(a);
      alerter->Raise(a);  // raised twice: de-duplicated, still one delivery
      ++raised;
    }
    now += seconds(60);
  }
  ASSERT_EQ(raised, 5);
  ASSERT_TRUE(alerter->WaitIdle(seconds(60)));

  const std::vector<std::pair<std::string, std::string>> want = {
      {"gpu_verdict", "unhealthy"},
      {"gpu_quarantined", "quarantined"},
      {"gpu_verdict", "healthy"},
      {"gpu_released", "released"},
      {"platform_unreachable", "unreachable"}};
  auto bodies = hook.bodies();
  ASSERT_EQ(bodies.size(), want.size());
  EXPECT_EQ(hook.requests(), static_cast<int>(want.size()) + 1);  // one 503, retried
  for (size_t i = 0; i < want.size(); ++i) {
    auto j = nlohmann::json::parse(bodies[i]);
    EXPECT_EQ(j["kind"], want[i].first) << bodies[i];
    EXPECT_EQ(j["state"], want[i].second) << bodies[i];
    EXPECT_EQ(j["agent_id"], "agent-0123456789ab");
    EXPECT_EQ(j["host"], "gpu-host.test");
    if (want[i].first != "platform_unreachable") {
      EXPECT_EQ(j["gpu_uuid"], "GPU-7");
      EXPECT_EQ(j["gpu_index"], 1);
      EXPECT_EQ(j["deployment_id"], "dep-42");
    }
    EXPECT_EQ(hook.content_types()[i], "application/json");
  }

  auto mails = smtp.mails();
  ASSERT_EQ(mails.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(mails[i].from, "<agent@gpu-host.test>");
    EXPECT_EQ(mails[i].rcpt,
              (std::vector<std::string>{"<ops@example.test>", "<oncall@example.test>"}));
    EXPECT_THAT(mails[i].data, HasSubstr("X-Taolie-Alert: " + want[i].first + "\r\n"));
    EXPECT_THAT(mails[i].data, HasSubstr("state: " + want[i].second + "\r\n"));
    for (const char* h :
         {"Subject: [TAOLIE ", "From: agent@gpu-host.test\r\n",
          "To: ops@example.test, oncall@example.test\r\n", "Date: ", "Message-ID: <"}) {
      EXPECT_THAT(mails[i].data, HasSubstr(h));
    }
  }
  auto c = alerter->Counters();
  EXPECT_EQ(c.sent, 2 * want.size());  // two channels
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.retries, 1u);
  EXPECT_EQ(c.suppressed, want.size());
}

TEST(AlertDelivery, RequiredStartTlsAgainstAServerWithoutItSendsNothing) {
  SmtpReceiver smtp;
  RealClock clock;
  telemetry::SmtpOptions o = PlainSmtp(smtp.port());
  o.starttls = true;  // the default: required
  std::vector<std::unique_ptr<telemetry::AlertChannel>> ch;
  ch.push_back(telemetry::MakeSmtpChannel(o));
  auto alerter = MakeAlerter(std::move(ch), clock);
  telemetry::Alert a;
  a.kind = "gpu_verdict";
  a.key = "gpu_verdict/GPU-7";
  a.state = "unhealthy";
  a.message = "GPU 1 (GPU-7) is unhealthy";
  alerter->Raise(a);
  ASSERT_TRUE(alerter->WaitIdle(seconds(60)));
  auto c = alerter->Counters();
  EXPECT_EQ(c.sent, 0u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retries, 0u);       // a refusal for good, not tried again
  EXPECT_GE(smtp.sessions(), 1);  // it connected and was refused, it was not unreachable
  EXPECT_TRUE(smtp.mails().empty());
  auto cmds = smtp.commands();
  EXPECT_THAT(cmds, ::testing::Contains("EHLO"));
  EXPECT_THAT(cmds, ::testing::Not(::testing::Contains("MAIL")));
  EXPECT_THAT(cmds, ::testing::Not(::testing::Contains("DATA")));
}

TEST(AlertDelivery, AWebhookThatKeepsFailingIsGivenUpAfterItsTries) {
  WebhookReceiver hook(/*fail_first=*/100);
  RealClock clock;
  std::vector<std::unique_ptr<telemetry::AlertChannel>> ch;
  telemetry::WebhookOptions w;
  w.url = hook.url();
  ch.push_back(telemetry::MakeWebhookChannel(w));
  auto alerter = MakeAlerter(std::move(ch), clock);
  telemetry::Alert a;
  a.kind = "platform_unreachable";
  a.key = "platform";
  a.state = "unreachable";
  alerter->Raise(a);
  ASSERT_TRUE(alerter->WaitIdle(seconds(60)));
  EXPECT_EQ(hook.requests(), 3);  // max_tries
  EXPECT_TRUE(hook.bodies().empty());
  EXPECT_EQ(alerter->Counters().failed, 1u);
}

}  // namespace
}  // namespace taolie::health
