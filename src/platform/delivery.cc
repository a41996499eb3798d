#include "platform/delivery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string_view>
#include <vector>

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

// Text that is not JSON is masked only this far past what the log line shows.
constexpr size_t kMaskMargin = 1024;

// Masks the scalar value of every member whose key looks secret, in valid JSON text, by one
// pass over its tokens: no tree is built, so no depth of nesting can overflow the stack (and a
// secret nested deeper than kMaxJsonDepth is masked like a shallow one). White space outside
// strings is dropped, as a compact dump would.
std::string MaskJsonText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::vector<bool> in_object;  // per open level
  bool expect_key = false;      // the next string is a key
  bool mask_value = false;      // the next scalar is the value of a secret key
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
      const std::string_view token = text.substr(i, end - i);
      i = end;
      if (expect_key) {
        auto key = nlohmann::ordered_json::parse(token, nullptr, /*allow_exceptions=*/false);
        mask_value = key.is_string() && IsSecretKey(key.get<std::string>());
        expect_key = false;
        out += token;
      } else {
        out += mask_value ? std::string_view("\"***\"") : token;
        mask_value = false;
      }
    } else if (c == '{' || c == '[') {
      in_object.push_back(c == '{');
      expect_key = c == '{';
      mask_value = false;  // a structured secret value is walked, not masked
      out.push_back(c);
      ++i;
    } else if (c == '}' || c == ']') {
      if (!in_object.empty()) in_object.pop_back();
      out.push_back(c);
      ++i;
    } else if (c == ',') {
      expect_key = !in_object.empty() && in_object.back();
      out.push_back(c);
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == ':') {
      out.push_back(c);
      ++i;
    } else {  // a number, true, false or null
      size_t end = i;
      while (end < text.size() &&
             std::string_view(",:]} \t\n\r").find(text[end]) == std::string_view::npos) {
        ++end;
      }
      const std::string_view token = text.substr(i, end - i);
      out += mask_value && token != "null" ? std::string_view("\"***\"") : token;
      mask_value = false;
      i = end;
    }
  }
  return out;
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
  // Valid JSON (checked by nlohmann's acceptor, which is iterative) of any depth is masked
  // token by token. Other text goes through the regular expressions, which libstdc++ matches
  // recursively (stack frames grow with the text): only the head of it that the log line can
  // show, plus a margin so that a secret starting there is still matched whole.
  std::string masked;
  size_t unmasked = 0;  // bytes cut before masking
  if (nlohmann::ordered_json::accept(body)) {
    // nlohmann reads a NUL byte as the end of the input: what follows one was never JSON.
    masked = MaskJsonText(std::string_view(body).substr(0, body.find('\0')));
  } else {
    if (body.size() > max + kMaskMargin) {
      unmasked = body.size() - (max + kMaskMargin);
      body.resize(max + kMaskMargin);
    }
    masked = MaskText(body);
  }
  if (masked.size() > max || unmasked > 0) {
    const size_t dropped = (masked.size() > max ? masked.size() - max : 0) + unmasked;
    masked.resize(std::min(masked.size(), max));
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
      delay = RetryAfterDelay(*r->retry_after, policy.max_retry_after);
    }
    spdlog::debug("platform {} {} attempt {} failed ({}); retrying in {} ms", MethodName(method),
                  path, attempt, what, delay.count());
    sleeper(delay);  // also for 0 ms, so every retry goes through the (stop-aware) sleeper
  }
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, SystemTime now) {
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Any number of digits: compared with the cap as text, so none ever overflows.
    const std::string_view digits =
        value.substr(std::min(value.find_first_not_of('0'), value.size()));
    const std::string cap = std::to_string(kMaxRetryAfter.count());
    if (digits.size() > cap.size() || (digits.size() == cap.size() && digits > cap)) {
      return kMaxRetryAfter;
    }
    int64_t secs = 0;
    (void)std::from_chars(digits.data(), digits.data() + digits.size(), secs);  // <= the cap
    return std::chrono::seconds(secs);
  }
  // IMF-fixdate, the HTTP-date form servers send (RFC 9110 5.6.7).
  std::tm tm{};
  const std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const time_t at = timegm(&tm);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const int64_t ahead = static_cast<int64_t>(at) - now_s;  // both far from overflow: time_t
  return std::chrono::seconds(std::clamp<int64_t>(ahead, 0, kMaxRetryAfter.count()));
}

std::chrono::milliseconds RetryAfterDelay(std::chrono::seconds retry_after,
                                          std::chrono::milliseconds cap) {
  // Compared in seconds first: a huge count is never multiplied into milliseconds.
  const auto cap_s = std::chrono::duration_cast<std::chrono::seconds>(cap);
  if (retry_after <= std::chrono::seconds(0)) return std::chrono::milliseconds(0);
  if (retry_after > cap_s) return cap;
  return std::min<std::chrono::milliseconds>(retry_after, cap);
}

OutboxPlan PlanOutboxRound(const std::vector<GroupHead>& heads, SystemTime now,
                           const OutboxRetryPolicy& policy) {
  const auto longest = std::max(policy.max_delay, policy.max_retry_after);
  OutboxPlan plan;
  for (const auto& h : heads) {
    if (h.kind == domain::EventKind::kExpiring && h.attempts > 0 && h.end_pending) {
      plan.steps.push_back({h.id, OutboxAction::kSupersede});
      continue;
    }
    const bool due = !h.next_attempt_at.has_value() || *h.next_attempt_at <= now ||
                     *h.next_attempt_at - now > longest;
    if (due) {
      plan.steps.push_back({h.id, OutboxAction::kSend});
    } else if (!plan.next_due.has_value() || *h.next_attempt_at < *plan.next_due) {
      plan.next_due = *h.next_attempt_at;
    }
  }
  std::sort(plan.steps.begin(), plan.steps.end(),
            [](const OutboxStep& a, const OutboxStep& b) { return a.id < b.id; });
  return plan;
}

FailureVerdict OnDeliveryFailure(bool ext, int attempts, SystemTime first_failed_at, SystemTime now,
                                 std::optional<std::chrono::seconds> retry_after,
                                 const OutboxRetryPolicy& policy, double jitter) {
  FailureVerdict v;
  if (ext && now - first_failed_at >= policy.ext_give_up) {
    v.give_up = true;
    v.next_attempt_at = now;
    return v;
  }
  const Backoff backoff(policy.base_delay, policy.max_delay, /*seed=*/0);
  const auto ceiling = backoff.Ceiling(std::max(0, attempts - 1));
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto delay =
      ceiling / 2 + std::chrono::milliseconds(static_cast<int64_t>(jitter * (ceiling / 2).count()));
  if (retry_after.has_value()) {
    delay = std::max(delay, RetryAfterDelay(*retry_after, policy.max_retry_after));
  }
  v.next_attempt_at = now + delay;
  return v;
}

}  // namespace taolie::platform
