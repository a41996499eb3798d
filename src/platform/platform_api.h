#pragma once
// PlatformApi seam: one HTTP exchange with the central platform. HttpsPlatformApi implements
// it with libcurl (TLS verified, Bearer auth, User-Agent, timeouts). Retry policy and JSON
// mapping live above it (platform/delivery.h, platform/messages.h).
#include <chrono>
#include <optional>
#include <stop_token>
#include <string>

#include "common/result.h"

namespace taolie::platform {

enum class Method { kGet, kPost };

struct Response {
  long status = 0;  // HTTP status
  std::string body;
  std::optional<std::chrono::seconds> retry_after;  // parsed Retry-After (seconds form)
};

class PlatformApi {
 public:
  virtual ~PlatformApi() = default;
  // One attempt. `path` starts with '/', e.g. "/api/host-agents/register".
  // Transport failures (connect, TLS, timeout) -> Unavailable / DeadlineExceeded.
  // Any HTTP response, 2xx or not, -> Response.
  virtual Result<Response> Send(Method method, const std::string& path, const std::string& body,
                                std::stop_token stop) = 0;
};

// How a response should be treated (pure; platform-api.md "Common rules").
enum class Disposition {
  kSuccess,      // 2xx
  kRetry,        // transport error, 408, 429, 5xx
  kUnsupported,  // 404/405 from an ext endpoint
  kPermanent,    // other 4xx
};
Disposition Classify(const Result<Response>& r, bool ext_endpoint);

}  // namespace taolie::platform
