#include "platform/delivery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "common/backoff.h"

namespace taolie::platform {
namespace {

const char* MethodName(Method m) { return m == Method::kGet ? "GET" : "POST"; }

bool IsSecretKey(std::string key) {
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* s : {"password", "token", "api_key", "apikey", "full_url", "authorized_keys",
                        "authorization", "secret"}) {
    if (key.find(s) != std::string::npos) return true;
  }
  return false;
}

void MaskJson(nlohmann::ordered_json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (IsSecretKey(it.key()) && !it.value().is_null() && !it.value().is_structured()) {
        it.value() = "***";
      } else {
        MaskJson(it.value());
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) MaskJson(e);
  }
}

// Not JSON (an HTML error page, a truncated body): mask "key": "value" / key=value pairs.
std::string MaskText(const std::string& text) {
  static const std::regex kQuoted(
      R"re(("[^"]*(?:password|token|api_key|apikey|full_url|authorized_keys|secret)[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*")re",
      std::regex::icase);
  static const std::regex kAssign(
      R"re(((?:password|token|api_key|apikey|full_url|authorized_keys|secret)[A-Za-z_]*\s*=\s*)[^&\s"]+)re",
      std::regex::icase);
  static const std::regex kBearer(R"re((Bearer\s+)[^\s"]+)re", std::regex::icase);
  std::string out = std::regex_replace(text, kQuoted, "$1\"***\"");
  out = std::regex_replace(out, kAssign, "$1***");
  out = std::regex_replace(out, kBearer, "$1***");
  return out;
}

}  // namespace

std::string RedactForLog(std::string body, size_t max) {
  auto j = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string masked;
  if (!j.is_discarded()) {
    MaskJson(j);
    masked = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  } else {
    masked = MaskText(body);
  }
  if (masked.size() > max) {
    size_t dropped = masked.size() - max;
    masked.resize(max);
    masked += "...(" + std::to_string(dropped) + " more bytes)";
  }
  return masked;
}

Sleeper StopAwareSleeper(std::stop_token stop) {
  return [stop](std::chrono::milliseconds d) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait_for(lock, stop, d, [] { return false; });
  };
}

Result<Response> SendWithRetry(PlatformApi& api, Method method, const std::string& path,
                               const std::string& body, bool ext_endpoint,
                               const RetryPolicy& policy, std::stop_token stop,
                               const Sleeper& sleeper) {
  const int max_attempts = std::max(1, policy.max_attempts);
  Backoff backoff(policy.base_delay, policy.max_delay,
                  policy.seed.has_value() ? *policy.seed : std::random_device{}());
  for (int attempt = 1;; ++attempt) {
    if (stop.stop_requested()) {
      return MakeError(ErrorCode::kCancelled, std::string(MethodName(method)) + " " + path +
                                                  ": stopped before attempt " +
                                                  std::to_string(attempt));
    }
    Result<Response> r = api.Send(method, path, body, stop);
    const Disposition d = Classify(r, ext_endpoint);
    if (d == Disposition::kPermanent && r.ok()) {
      spdlog::warn("platform {} {} answered {}: {}", MethodName(method), path, r->status,
                   RedactForLog(r->body, 512));
    }
    if (d != Disposition::kRetry) return r;
    const std::string what = r.ok() ? "HTTP " + std::to_string(r->status) : r.error().ToString();
    if (attempt >= max_attempts) {
      spdlog::warn("platform {} {} failed after {} attempts: {}", MethodName(method), path, attempt,
                   what);
      return r;
    }
    std::chrono::milliseconds delay = backoff.Next();
    if (r.ok() && r->retry_after.has_value()) {
      delay = std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(*r->retry_after),
          policy.max_retry_after);
    }
    spdlog::debug("platform {} {} attempt {} failed ({}); retrying in {} ms", MethodName(method),
                  path, attempt, what, delay.count());
    sleeper(delay);  // also for 0 ms, so every retry goes through the (stop-aware) sleeper
  }
}

}  // namespace taolie::platform
