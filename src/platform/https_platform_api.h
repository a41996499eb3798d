#pragma once
// HttpsPlatformApi: the PlatformApi seam over libcurl. TLS peer and host verification are always
// on (a custom CA file may be given); plain http:// is refused unless the host is loopback or
// the operator allowed it. Every request carries Bearer auth, JSON content type and the
// User-Agent, has a total timeout, and is aborted when its stop_token is requested.
// Thread-safe: concurrent Send() calls each take their own curl handle from a small pool.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "platform/platform_api.h"

namespace taolie::platform {

class HttpsPlatformApi final : public PlatformApi {
 public:
  struct Options {
    std::string base_url;  // server.url, e.g. "https://api.example.com" (trailing '/' ok)
    std::string api_key;   // agent.api_key; never logged
    std::chrono::seconds timeout{10};  // connect + transfer
    std::string ca_file;               // custom CA bundle; "" = system store
    bool allow_insecure = false;       // allow http:// to non-loopback hosts
    std::string user_agent;            // "" = "taolie-host-agent"
  };

  // Validates the options (InvalidArgument naming `server.url` / `server.timeout`).
  static Result<std::unique_ptr<HttpsPlatformApi>> Create(const Options& options);
  ~HttpsPlatformApi() override;
  HttpsPlatformApi(const HttpsPlatformApi&) = delete;
  HttpsPlatformApi& operator=(const HttpsPlatformApi&) = delete;

  Result<Response> Send(Method method, const std::string& path, const std::string& body,
                        std::stop_token stop) override;

  // Replaces the API key for later requests (SIGHUP after the operator fixed agent.api_key).
  void SetApiKey(const std::string& api_key);

  // base_url + path, with exactly one '/' between them (pure; exposed for tests).
  static std::string JoinUrl(const std::string& base, const std::string& path);
  // True for 127.0.0.0/8, ::1 and "localhost" (pure; exposed for tests).

 private:
  explicit HttpsPlatformApi(Options options);
  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  Options options_;
  std::mutex key_mu_;  // guards options_.api_key
  std::string base_;   // base_url without trailing slashes
  std::mutex pool_mu_;
  std::vector<void*> pool_;  // idle CURL* handles (keep their connections alive)
};

}  // namespace taolie::platform
