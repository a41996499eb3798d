#pragma once
// CountingPlatformApi: a PlatformApi that forwards every request to another one and counts its
// outcome by request, for /metrics (taolie_platform_requests_total). Thread-safe.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "platform/platform_api.h"

namespace taolie::platform {

class CountingPlatformApi final : public PlatformApi {
 public:
  explicit CountingPlatformApi(PlatformApi& inner) : inner_(inner) {}

  Result<Response> Send(Method method, const std::string& path, const std::string& body,
                        std::stop_token stop) override;

  struct Count {
    std::string request;  // RequestName(path)
    std::string outcome;  // OutcomeName(result)
    uint64_t count = 0;
  };
  std::vector<Count> Counts() const;  // ordered by request, then outcome

  // The request a path names: its last segment ("register", "heartbeat", "commands", "ack",
  // "metrics", "health", or a deployment event's kind); ids never appear (pure).
  static std::string RequestName(const std::string& path);
  // success (2xx) | client_error (4xx) | server_error (5xx and other statuses) |
  // transport_error (no response) | cancelled (pure).
  static std::string OutcomeName(const Result<Response>& r);

 private:
  PlatformApi& inner_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> counts_;
};

}  // namespace taolie::platform
