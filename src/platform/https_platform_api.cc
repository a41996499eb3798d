#include "platform/https_platform_api.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>

#include "common/curl_global.h"
#include "common/net_address.h"
#include "common/real_time.h"
#include "platform/delivery.h"

namespace taolie::platform {
namespace {

constexpr size_t kMaxPooledHandles = 4;
constexpr size_t kMaxResponseBytes = 16 * 1024 * 1024;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

struct Exchange {
  std::string body;
  bool too_large = false;
  std::optional<std::chrono::seconds> retry_after;
  std::stop_token stop;
};

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t n = size * nmemb;
  if (ex->body.size() + n > kMaxResponseBytes) {
    ex->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  ex->body.append(data, n);
  return n;
}

size_t HeaderCallback(char* data, size_t size, size_t nitems, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t n = size * nitems;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    ex->retry_after.reset();  // a new response (after 100 Continue): forget earlier headers
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  if (Lower(std::string(line.substr(0, colon))) != "retry-after") return n;
  // Clamped while parsed (delay-seconds or HTTP-date); anything else: backoff applies.
  ex->retry_after = ParseRetryAfter(Trim(line.substr(colon + 1)), WallNow());
  return n;
}

int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  return ex->stop.stop_requested() ? 1 : 0;  // non-zero aborts: CURLE_ABORTED_BY_CALLBACK
}

// Host part of a URL ("" when it cannot be parsed), brackets of IPv6 literals removed.
std::string UrlHostOf(const std::string& url, std::string* scheme) {
  CURLU* u = curl_url();
  if (u == nullptr) return "";
  std::string host;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* part = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
      *scheme = Lower(part);
      curl_free(part);
    }
    part = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
      host = part;
      curl_free(part);
    }
  }
  curl_url_cleanup(u);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

void HttpsPlatformApi::SetApiKey(const std::string& api_key) {
  std::lock_guard lock(key_mu_);
  options_.api_key = api_key;
}

std::string HttpsPlatformApi::JoinUrl(const std::string& base, const std::string& path) {
  size_t end = base.size();
  while (end > 0 && base[end - 1] == '/') --end;
  size_t start = 0;
  while (start < path.size() && path[start] == '/') ++start;
  return base.substr(0, end) + "/" + path.substr(start);
}

Result<std::unique_ptr<HttpsPlatformApi>> HttpsPlatformApi::Create(const Options& options) {
  EnsureCurlGlobalInit();
  if (options.base_url.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "server.url: must not be empty");
  }
  std::string scheme;
  const std::string host = UrlHostOf(options.base_url, &scheme);
  if (host.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "server.url: '" + options.base_url + "' is not a valid URL");
  }
  if (scheme == "http") {
    if (!IsLoopbackHost(host) && !options.allow_insecure) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "server.url: plain http:// is only allowed for loopback hosts ('" + host +
                           "' is not); use https:// or set server.allow_insecure: true");
    }
  } else if (scheme != "https") {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "server.url: scheme must be https:// (or http:// for loopback), got '" + scheme + "'");
  }
  if (options.base_url.find('?') != std::string::npos ||
      options.base_url.find('#') != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "server.url: must not contain a query or fragment");
  }
  if (!options.ca_file.empty() && ::access(options.ca_file.c_str(), R_OK) != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "server.ca_file: cannot read '" + options.ca_file + "'");
  }
  if (options.timeout.count() <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "server.timeout: must be at least 1 second");
  }
  return std::unique_ptr<HttpsPlatformApi>(new HttpsPlatformApi(options));
}

HttpsPlatformApi::HttpsPlatformApi(Options options) : options_(std::move(options)) {
  base_ = options_.base_url;
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  if (options_.user_agent.empty()) options_.user_agent = "taolie-host-agent";
}

HttpsPlatformApi::~HttpsPlatformApi() {
  for (void* h : pool_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpsPlatformApi::AcquireHandle() {
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      void* h = pool_.back();
      pool_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void HttpsPlatformApi::ReleaseHandle(void* handle) {
  {
    std::lock_guard lock(pool_mu_);
    if (pool_.size() < kMaxPooledHandles) {
      pool_.push_back(handle);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

Result<Response> HttpsPlatformApi::Send(Method method, const std::string& path,
                                        const std::string& body, std::stop_token stop) {
  if (path.empty() || path.front() != '/') {
    return MakeError(ErrorCode::kInvalidArgument, "platform path must start with '/': " + path);
  }
  if (stop.stop_requested()) {
    return MakeError(ErrorCode::kCancelled, "platform request " + path + " cancelled");
  }
  CURL* curl = static_cast<CURL*>(AcquireHandle());
  if (curl == nullptr) return MakeError(ErrorCode::kInternal, "curl_easy_init failed");
  curl_easy_reset(curl);  // keeps the connection cache, drops options of the previous call

  const std::string url = JoinUrl(base_, path);
  Exchange ex;
  ex.stop = stop;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_slist* headers = nullptr;
  std::string auth;
  {
    std::lock_guard lock(key_mu_);
    auth = "Authorization: Bearer " + options_.api_key;
  }
  headers = curl_slist_append(headers, auth.c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // never replay the Bearer elsewhere
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &ex);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  if (method == Method::kPost) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }

  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  ReleaseHandle(curl);

  const char* method_name = method == Method::kGet ? "GET" : "POST";
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    std::string where = std::string(method_name) + " " + url + ": ";
    switch (rc) {
      case CURLE_ABORTED_BY_CALLBACK:
        return MakeError(ErrorCode::kCancelled, where + "cancelled (agent stopping)");
      case CURLE_OPERATION_TIMEDOUT:
        return MakeError(ErrorCode::kDeadlineExceeded,
                         where + "timed out after " + std::to_string(options_.timeout.count()) +
                             " s (" + detail + ")");
      case CURLE_WRITE_ERROR:
        if (ex.too_large) {
          return MakeError(ErrorCode::kUnavailable, where + "response larger than 16 MiB");
        }
        return MakeError(ErrorCode::kUnavailable, where + detail);
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return MakeError(ErrorCode::kInvalidArgument, where + detail);
      default:
        return MakeError(ErrorCode::kUnavailable, where + detail);
    }
  }
  Response r;
  r.status = status;
  r.body = std::move(ex.body);
  r.retry_after = ex.retry_after;
  return r;
}

}  // namespace taolie::platform
