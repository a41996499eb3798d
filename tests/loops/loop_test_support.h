#pragma once
// What the loops' unit tests share: a platform that answers what the test scripts and records
// every request, the seams on fakes, and a capture of the log lines a round writes.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "platform/platform_api.h"
#include "runtime/runtime.h"

namespace taolie::testing {

// One request the platform received.
struct SentRequest {
  platform::Method method = platform::Method::kGet;
  std::string path;
  std::string body;
};

// Answers each request with `answer` (unset: the request fails the test) and records it.
class ScriptedPlatform : public platform::PlatformApi {
 public:
  std::function<Result<platform::Response>(const SentRequest&)> answer;

  Result<platform::Response> Send(platform::Method method, const std::string& path,
                                  const std::string& body, std::stop_token) override {
    SentRequest req{method, path, body};
    {
      std::lock_guard l(mu_);
      sent_.push_back(req);
    }
    if (!answer) {
      ADD_FAILURE() << "ScriptedPlatform: unexpected request to " << path;
      return Error{ErrorCode::kInternal, "unexpected"};
    }
    return answer(req);
  }
  std::vector<SentRequest> sent() const {
    std::lock_guard l(mu_);
    return sent_;
  }
  // The paths requested, in order.
  std::vector<std::string> paths() const {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& r : sent_) out.push_back(r.path);
    return out;
  }
  void Clear() {
    std::lock_guard l(mu_);
    sent_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<SentRequest> sent_;
};

inline Result<platform::Response> Http(long status, std::string body = "{}") {
  return platform::Response{status, std::move(body), std::nullopt};
}

// The seams a loop takes (runtime::Deps) on fakes, with the store, host probe and platform a
// test chooses, and the runtime of agent "agent-1". A fixture derives from it.
template <typename Store, typename Host = FakeHostProbe, typename Platform = ScriptedPlatform>
struct LoopSeams {
  config::Config cfg;
  Store store;
  FakeDocker docker;
  FakeGpuProbe gpus;
  Host host;
  Platform platform;
  FakeClock clock;
  runtime::Runtime rt{"agent-1", "test", TimestampFormat::kRfc3339};
  runtime::Deps deps{cfg, store, docker, gpus, host, platform, clock, {}};
};

// Sends spdlog's default logger to a string while it lives; restores the previous one after.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // How many times `text` occurs in what was logged so far.
  int Count(const std::string& text) const {
    const std::string all = out_.str();
    int n = 0;
    for (size_t at = all.find(text); at != std::string::npos; at = all.find(text, at + 1)) ++n;
    return n;
  }
  std::string Text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace taolie::testing
