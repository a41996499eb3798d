#pragma once
// Delivery with retries on top of the PlatformApi seam (platform-api.md "Common rules"):
// transport errors, 408, 429 and 5xx are retried with exponential backoff and full jitter,
// honouring Retry-After; everything else is returned at once.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include "common/result.h"
#include "platform/platform_api.h"

namespace taolie::platform {

struct RetryPolicy {
  int max_attempts = 5;                                // total tries, >= 1
  std::chrono::milliseconds base_delay{500};           // backoff base
  std::chrono::milliseconds max_delay{30'000};         // backoff cap
  std::chrono::milliseconds max_retry_after{300'000};  // cap on a server's Retry-After
  std::optional<uint64_t> seed;                        // jitter seed (tests); none = random
};

using Sleeper = std::function<void(std::chrono::milliseconds)>;

// Sends until success, a non-retryable answer, max_attempts, or stop (-> Cancelled).
// Sleeps between tries through `sleeper` (tests inject a recorder; production uses
// StopAwareSleeper). Returns the last response or error.
Result<Response> SendWithRetry(PlatformApi& api, Method method, const std::string& path,
                               const std::string& body, bool ext_endpoint,
                               const RetryPolicy& policy, std::stop_token stop,
                               const Sleeper& sleeper);

// A sleeper that waits for the duration or until `stop` is requested, whichever comes first.
Sleeper StopAwareSleeper(std::stop_token stop);

// For log lines: masks the values of secret-looking keys (password, token, api_key, full_url,
// AUTHORIZED_KEYS; case-insensitive, also as part of a key such as ssh_password) in JSON or
// JSON-like text and "Bearer ..." credentials, then truncates to `max` characters.
std::string RedactForLog(std::string body, size_t max);

}  // namespace taolie::platform
