#include "docker/engine_docker_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "common/curl_global.h"
#include "common/real_time.h"
#include "docker/engine_api.h"

namespace taolie::docker {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBodyBytes = size_t{32} * 1024 * 1024;  // inspect/list answers are far smaller
constexpr size_t kMaxKeptStreamBytes = size_t{64} * 1024;   // raw body kept when streaming
constexpr size_t kMaxPullLineBytes = size_t{1024} * 1024;
constexpr size_t kMaxExecOutput = size_t{16} * 1024;
constexpr const char* kDefaultHost = "unix:///var/run/docker.sock";

struct HttpRequest {
  std::string method = "GET";
  std::string path;  // including query
  std::optional<std::string> body;
  milliseconds timeout{0};
  long stall_seconds = 0;  // abort when less than 1 byte/s arrives for this long; 0 = off
  // Streaming consumer; returns false to abort the transfer. When set, the body is still
  // kept (first kMaxKeptStreamBytes) for error messages.
  // Gets the HTTP status with each chunk.
  std::function<bool(long status, std::string_view chunk)> on_data;
  std::stop_token stop;
  std::string registry_auth;  // X-Registry-Auth value (secret); "" = none
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

struct TransferState {
  CURL* handle = nullptr;
  const HttpRequest* request = nullptr;
  std::string* body = nullptr;
  bool overflow = false;
  bool consumer_aborted = false;
};

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* user) {
  auto* st = static_cast<TransferState*>(user);
  size_t n = size * nmemb;
  std::string_view chunk(data, n);
  if (st->request->on_data) {
    if (st->body->size() < kMaxKeptStreamBytes) {
      st->body->append(chunk.substr(0, kMaxKeptStreamBytes - st->body->size()));
    }
    long status = 0;
    curl_easy_getinfo(st->handle, CURLINFO_RESPONSE_CODE, &status);
    if (!st->request->on_data(status, chunk)) {
      st->consumer_aborted = true;
      return 0;
    }
    return n;
  }
  if (st->body->size() + n > kMaxBodyBytes) {
    st->overflow = true;
    return 0;
  }
  st->body->append(chunk);
  return n;
}

int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<TransferState*>(user);
  return st->request->stop.stop_requested() ? 1 : 0;
}

std::string Describe(const HttpRequest& r) {
  std::string path = r.path.substr(0, r.path.find('?'));
  return r.method + " " + path;
}

// One HTTP/1.1 exchange over the unix socket with its own curl handle.
Result<HttpResponse> Perform(const std::string& socket_path, const HttpRequest& request) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return MakeError(ErrorCode::kInternal, "docker: curl_easy_init failed");
  CURL* h = curl.get();
  HttpResponse response;
  TransferState state{h, &request, &response.body};
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string url = "http://localhost" + request.path;
  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, ProgressCallback);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &state);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  long timeout_ms = std::max<long>(1, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(timeout_ms, 10000L));
  if (request.stall_seconds > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, request.stall_seconds);
  }
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Expect:");
  if (request.body) headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!request.registry_auth.empty()) {
    headers = curl_slist_append(headers, ("X-Registry-Auth: " + request.registry_auth).c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           curl_slist_free_all);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  static const std::string kNoBody;
  const std::string& body = request.body ? *request.body : kNoBody;  // outlives the perform
  if (request.method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  if (rc == CURLE_OK) return response;

  std::string what = "docker: " + Describe(request) + ": ";
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return MakeError(ErrorCode::kDeadlineExceeded, what + "timed out (" + detail + ")");
    case CURLE_ABORTED_BY_CALLBACK:
      return MakeError(ErrorCode::kCancelled, what + "cancelled");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return MakeError(ErrorCode::kUnavailable, what + "cannot connect to the engine at " +
                                                    socket_path + " (" + detail + ")");
    case CURLE_WRITE_ERROR:
      if (state.overflow) {
        return MakeError(ErrorCode::kInternal, what + "response larger than the limit");
      }
      if (state.consumer_aborted) return response;  // the consumer recorded why
      [[fallthrough]];
    default:
      return MakeError(ErrorCode::kUnavailable, what + detail);
  }
}

std::string PercentEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

Error EngineError(const std::string& op, const HttpResponse& r, ErrorCode conflict) {
  return MakeError(
      CodeForHttpStatus(r.status, conflict),
      "docker: " + op + ": " + EngineMessage(r.body) + " (HTTP " + std::to_string(r.status) + ")");
}

// The answer of a create call: 201 with a JSON object carrying a string "Id"; 409 is
// AlreadyExists.
Result<json> CreatedObject(const std::string& op, const Result<HttpResponse>& resp) {
  if (!resp.ok()) return resp.error();
  if (resp->status != 201) return EngineError(op, *resp, ErrorCode::kAlreadyExists);
  json j = json::parse(resp->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("Id") || !j["Id"].is_string()) {
    return MakeError(ErrorCode::kInternal, "docker: " + op + ": no Id in answer");
  }
  return j;
}

// One plain request to the engine: `path` as VersionedPath made it (its error passes through).
Result<HttpResponse> Send(const std::string& socket_path, const Result<std::string>& path,
                          const char* method, milliseconds timeout,
                          std::optional<std::string> body = std::nullopt) {
  if (!path.ok()) return path.error();
  HttpRequest req;
  req.method = method;
  req.path = *path;
  req.body = std::move(body);
  req.timeout = timeout;
  return Perform(socket_path, req);
}

Status CheckRef(const std::string& id) {
  if (IsValidContainerRef(id)) return OkStatus();
  return MakeError(ErrorCode::kInvalidArgument,
                   "docker: invalid container id or name \"" + id.substr(0, 80) + "\"");
}

Result<std::string> ResolveSocketPath(const std::string& host_in) {
  std::string host = host_in;
  if (host.empty()) {
    const char* env = std::getenv("DOCKER_HOST");
    host = (env != nullptr && *env != '\0') ? env : kDefaultHost;
  }
  std::string path;
  if (host.rfind("unix://", 0) == 0) {
    path = host.substr(7);
  } else if (!host.empty() && host.front() == '/') {
    path = host;
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     "docker: host \"" + host.substr(0, 80) +
                         "\" is not supported (use unix:///path/docker.sock)");
  }
  if (path.empty() || path.front() != '/') {
    return MakeError(ErrorCode::kInvalidArgument, "docker: socket path must be absolute");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument, "docker: socket path too long: " + path);
  }
  return path;
}

}  // namespace

Result<std::unique_ptr<EngineDockerClient>> EngineDockerClient::Create(
    const std::string& host, std::chrono::seconds timeout, const std::string& api_version) {
  if (timeout.count() <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "docker: timeout must be positive");
  }
  auto path = ResolveSocketPath(host);
  if (!path.ok()) return path.error();
  if (!api_version.empty()) {
    auto pinned = NegotiateApiVersion(api_version, kMinApiVersion, api_version);
    if (!pinned.ok()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "docker: api_version \"" + api_version.substr(0, 16) +
                           "\" is not a supported version (>= " + kMinApiVersion + ")");
    }
  }
  EnsureCurlGlobalInit();
  return std::unique_ptr<EngineDockerClient>(
      new EngineDockerClient(std::move(*path), timeout, api_version));
}

EngineDockerClient::EngineDockerClient(std::string socket_path, std::chrono::seconds timeout,
                                       std::string pinned_api_version)
    : socket_path_(std::move(socket_path)),
      timeout_(timeout),
      api_version_(std::move(pinned_api_version)) {}

void EngineDockerClient::SetPullLimits(std::chrono::seconds total, std::chrono::seconds stall) {
  pull_total_ = total;
  pull_stall_ = stall;
}

Result<std::string> EngineDockerClient::ApiVersion() {
  {
    std::lock_guard lock(mu_);
    if (!api_version_.empty()) return api_version_;
  }
  HttpRequest req;
  req.path = "/version";
  req.timeout = timeout_;
  auto resp = Perform(socket_path_, req);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) return EngineError("version", *resp, ErrorCode::kInternal);
  json j = json::parse(resp->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ApiVersion") ||
      !j["ApiVersion"].is_string()) {
    return MakeError(ErrorCode::kInternal, "docker: /version has no ApiVersion");
  }
  auto chosen =
      NegotiateApiVersion(j["ApiVersion"].get<std::string>(), kMinApiVersion, kMaxApiVersion);
  if (!chosen.ok()) return chosen.error();
  std::lock_guard lock(mu_);
  if (api_version_.empty()) {
    api_version_ = *chosen;
    spdlog::info("docker: engine at {} speaks API {}, using {}", socket_path_,
                 j["ApiVersion"].get<std::string>(), api_version_);
  }
  return api_version_;
}

Result<std::string> EngineDockerClient::VersionedPath(const std::string& path) {
  auto v = ApiVersion();
  if (!v.ok()) return v.error();
  return "/v" + *v + path;
}

Result<VersionInfo> EngineDockerClient::Version() {
  auto resp = Send(socket_path_, VersionedPath("/version"), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) return EngineError("version", *resp, ErrorCode::kInternal);
  json j = json::parse(resp->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInternal, "docker: unparsable /version response");
  }
  VersionInfo info;
  info.version = j.value("Version", "");
  info.api_version = j.value("ApiVersion", "");
  info.os = j.value("Os", "");

  auto info_resp = Send(socket_path_, VersionedPath("/info"), "GET", timeout_);
  if (info_resp.ok() && info_resp->status == 200) {
    json i = json::parse(info_resp->body, nullptr, false);
    if (!i.is_discarded() && i.is_object()) {
      info.root_dir = i.value("DockerRootDir", "");
      info.cgroup_driver = i.value("CgroupDriver", "");
      info.cgroup_version = i.value("CgroupVersion", "");
    }
  } else {
    spdlog::warn("docker: /info unavailable; DockerRootDir unknown");
  }
  return info;
}

Result<bool> EngineDockerClient::ImageExists(const std::string& image) {
  auto ref = ParseImageReference(image);
  if (!ref.ok()) return ref.error();
  auto resp = Send(socket_path_, VersionedPath("/images/" + image + "/json"), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 200) return true;
  if (resp->status == 404) return false;
  return EngineError("inspect image " + image, *resp, ErrorCode::kFailedPrecondition);
}

Status EngineDockerClient::Pull(const std::string& image,
                                const std::function<void(const PullProgress&)>& progress,
                                std::stop_token stop, const RegistryAuth& auth) {
  auto ref = ParseImageReference(image);
  if (!ref.ok()) return ref.error();
  if (stop.stop_requested()) {
    return MakeError(ErrorCode::kCancelled, "docker: pull " + image + " cancelled");
  }
  auto path = VersionedPath("/images/create?fromImage=" + PercentEncode(ref->Name()) +
                            "&tag=" + PercentEncode(ref->PullTag()));
  if (!path.ok()) return path.error();

  std::string pending;  // partial line
  std::optional<std::string> stream_error;
  std::string consumer_error;
  auto handle_line = [&](std::string_view line) -> bool {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) return true;
    auto parsed = ParsePullLine(line);
    if (!parsed.ok()) {
      consumer_error = parsed.error().message;
      return false;
    }
    if (parsed->error) {
      stream_error = parsed->error;
      return true;  // keep reading; the engine ends the stream after an error
    }
    if (progress) {
      try {
        progress(parsed->progress);
      } catch (const std::exception& e) {
        consumer_error = std::string("progress callback threw: ") + e.what();
        return false;
      } catch (...) {
        consumer_error = "progress callback threw";
        return false;
      }
    }
    return true;
  };

  HttpRequest req;
  req.method = "POST";
  req.path = *path;
  req.timeout = pull_total_;
  req.stall_seconds = static_cast<long>(pull_stall_.count());
  req.registry_auth =
      RegistryAuthHeader(auth, ref->domain.empty() ? "https://index.docker.io/v1/" : ref->domain);
  req.stop = stop;
  req.on_data = [&](long status, std::string_view chunk) -> bool {
    if (status != 200) return true;  // an error body: kept by Perform for the message
    pending.append(chunk);
    size_t start = 0;
    size_t nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      if (!handle_line(std::string_view(pending).substr(start, nl - start))) return false;
      start = nl + 1;
    }
    pending.erase(0, start);
    if (pending.size() > kMaxPullLineBytes) {
      consumer_error = "progress line longer than the limit";
      return false;
    }
    return true;
  };
  spdlog::info("docker: pulling {}", image);
  const auto started = SteadyNow();
  auto resp = Perform(socket_path_, req);
  if (!resp.ok()) {
    if (resp.error().code == ErrorCode::kCancelled) {
      return MakeError(ErrorCode::kCancelled, "docker: pull " + image + " cancelled");
    }
    if (resp.error().code == ErrorCode::kDeadlineExceeded) {
      // Both limits end the transfer the same way (curl's total timeout, or its low-speed
      // limit): the time spent tells which one it was (curl may end a few ms early).
      if (SteadyNow() - started + milliseconds(100) >= pull_total_) {
        return MakeError(ErrorCode::kDeadlineExceeded,
                         "docker: pull " + image + " not finished within docker.pull_timeout (" +
                             std::to_string(pull_total_.count()) +
                             " s); raise docker.pull_timeout for images this large or this "
                             "slow to download");
      }
      return MakeError(ErrorCode::kDeadlineExceeded,
                       "docker: pull " + image +
                           " received nothing for docker.pull_stall_timeout (" +
                           std::to_string(pull_stall_.count()) +
                           " s); check that the registry is reachable from this host");
    }
    return resp.error();
  }
  if (resp->status == 500) {  // registry trouble: classify by the engine's message
    std::string message = EngineMessage(resp->body);
    return MakeError(CodeForPullError(message),
                     "docker: pull " + image + ": " + message + " (HTTP 500)");
  }
  if (resp->status != 200) {
    return EngineError("pull " + image, *resp, ErrorCode::kFailedPrecondition);
  }
  if (consumer_error.empty() && !pending.empty() && !stream_error) handle_line(pending);
  if (stream_error) {
    return MakeError(CodeForPullError(*stream_error),
                     "docker: pull " + image + ": " + *stream_error);
  }
  if (!consumer_error.empty()) {
    return MakeError(ErrorCode::kInternal, "docker: pull " + image + ": " + consumer_error);
  }
  spdlog::info("docker: pulled {}", image);
  return OkStatus();
}

Result<std::string> EngineDockerClient::Create(const ContainerSpec& spec) {
  TAOLIE_RETURN_IF_ERROR(ValidateSpec(spec));
  std::string query = spec.name.empty() ? "" : "?name=" + PercentEncode(spec.name);
  auto j = CreatedObject("create " + spec.name,
                         Send(socket_path_, VersionedPath("/containers/create" + query), "POST",
                              timeout_, BuildCreateBody(spec)));
  if (!j.ok()) return j.error();
  if (auto w = j->find("Warnings"); w != j->end() && w->is_array()) {
    for (const auto& warning : *w) {
      if (warning.is_string()) {
        spdlog::warn("docker: create {}: {}", spec.name, warning.get<std::string>());
      }
    }
  }
  return (*j)["Id"].get<std::string>();
}

Status EngineDockerClient::Start(const std::string& id) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id));
  auto resp = Send(socket_path_, VersionedPath("/containers/" + id + "/start"), "POST", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 204 || resp->status == 304) return OkStatus();
  return EngineError("start " + id, *resp, ErrorCode::kFailedPrecondition);
}

Status EngineDockerClient::Stop(const std::string& id, std::chrono::seconds grace) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id));
  constexpr int64_t kMaxGraceSeconds = int64_t{24} * 3600;
  int64_t t = std::clamp<int64_t>(grace.count(), 0, kMaxGraceSeconds);
  auto resp =
      Send(socket_path_, VersionedPath("/containers/" + id + "/stop?t=" + std::to_string(t)),
           "POST", std::chrono::seconds(t) + timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 204 || resp->status == 304) return OkStatus();
  return EngineError("stop " + id, *resp, ErrorCode::kFailedPrecondition);
}

Status EngineDockerClient::Kill(const std::string& id, const std::string& signal) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id));
  bool ok_signal = !signal.empty() && signal.size() <= 16 &&
                   std::all_of(signal.begin(), signal.end(), [](char c) {
                     return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+';
                   });
  if (!ok_signal) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "docker: invalid signal \"" + signal.substr(0, 16) + "\"");
  }
  auto resp = Send(socket_path_, VersionedPath("/containers/" + id + "/kill?signal=" + signal),
                   "POST", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 204) return OkStatus();
  return EngineError("kill " + id, *resp, ErrorCode::kFailedPrecondition);
}

Status EngineDockerClient::Remove(const std::string& id, bool force) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id));
  auto resp = Send(socket_path_,
                   VersionedPath("/containers/" + id + "?force=" + (force ? "1" : "0") + "&v=1"),
                   "DELETE", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 204) return OkStatus();
  return EngineError("remove " + id, *resp, ErrorCode::kFailedPrecondition);
}

Result<ContainerInfo> EngineDockerClient::Inspect(const std::string& id_or_name) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id_or_name));
  auto resp =
      Send(socket_path_, VersionedPath("/containers/" + id_or_name + "/json"), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) {
    return EngineError("inspect " + id_or_name, *resp, ErrorCode::kFailedPrecondition);
  }
  return ParseInspect(resp->body);
}

Result<std::string> EngineDockerClient::ListJson(const std::map<std::string, std::string>& labels,
                                                 bool sizes) {
  std::vector<std::pair<std::string, std::string>> filter(labels.begin(), labels.end());
  std::string query = sizes ? "?all=1&size=true" : "?all=1";
  if (!filter.empty()) query += "&filters=" + PercentEncode(BuildLabelFilter(filter));
  auto resp = Send(socket_path_, VersionedPath("/containers/json" + query), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) {
    return EngineError(sizes ? "list sizes" : "list", *resp, ErrorCode::kFailedPrecondition);
  }
  return std::move(resp->body);
}

Result<std::vector<ContainerInfo>> EngineDockerClient::List(
    const std::map<std::string, std::string>& labels) {
  auto body = ListJson(labels, false);
  if (!body.ok()) return body.error();
  return ParseList(*body);
}

Result<std::map<std::string, int64_t>> EngineDockerClient::WritableLayerSizes(
    const std::map<std::string, std::string>& labels) {
  auto body = ListJson(labels, true);
  if (!body.ok()) return body.error();
  return ParseWritableSizes(*body);
}

Result<std::vector<ImageInfo>> EngineDockerClient::ListImages() {
  auto resp = Send(socket_path_, VersionedPath("/images/json"), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) return EngineError("list images", *resp, ErrorCode::kInternal);
  return ParseImageList(resp->body);
}

Status EngineDockerClient::RemoveImage(const std::string& id_or_ref) {
  if (!IsValidImageId(id_or_ref)) {
    if (auto ref = ParseImageReference(id_or_ref); !ref.ok()) return ref.error();
  }
  auto resp =
      Send(socket_path_, VersionedPath("/images/" + id_or_ref + "?force=0"), "DELETE", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 200) return OkStatus();
  return EngineError("remove image " + id_or_ref, *resp, ErrorCode::kFailedPrecondition);
}

Result<NetworkInfo> EngineDockerClient::InspectNetwork(const std::string& name) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(name));
  auto resp = Send(socket_path_, VersionedPath("/networks/" + name), "GET", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status != 200) {
    return EngineError("inspect network " + name, *resp, ErrorCode::kFailedPrecondition);
  }
  return ParseNetworkInspect(resp->body);
}

Result<std::string> EngineDockerClient::CreateNetwork(const NetworkSpec& spec) {
  TAOLIE_RETURN_IF_ERROR(ValidateNetworkSpec(spec));
  auto j = CreatedObject("create network " + spec.name,
                         Send(socket_path_, VersionedPath("/networks/create"), "POST", timeout_,
                              BuildNetworkCreateBody(spec)));
  if (!j.ok()) return j.error();
  spdlog::info("docker: created network {} ({}, bridge {})", spec.name, spec.subnet,
               spec.bridge_name);
  return (*j)["Id"].get<std::string>();
}

Status EngineDockerClient::RemoveNetwork(const std::string& name) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(name));
  auto resp = Send(socket_path_, VersionedPath("/networks/" + name), "DELETE", timeout_);
  if (!resp.ok()) return resp.error();
  if (resp->status == 204) return OkStatus();
  return EngineError("remove network " + name, *resp, ErrorCode::kFailedPrecondition);
}

Result<ExecResult> EngineDockerClient::Exec(const std::string& id,
                                            const std::vector<std::string>& cmd,
                                            std::chrono::seconds timeout) {
  TAOLIE_RETURN_IF_ERROR(CheckRef(id));
  if (cmd.empty()) return MakeError(ErrorCode::kInvalidArgument, "docker: exec: empty command");
  if (timeout.count() <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "docker: exec: timeout must be positive");
  }
  const auto deadline = SteadyNow() + timeout;
  auto remaining = [&]() -> Result<milliseconds> {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyNow());
    if (left.count() <= 0) {
      return MakeError(
          ErrorCode::kDeadlineExceeded,
          "docker: exec in " + id + ": timed out after " + std::to_string(timeout.count()) + "s");
    }
    return left;
  };

  auto create_path = VersionedPath("/containers/" + id + "/exec");
  if (!create_path.ok()) return create_path.error();
  HttpRequest req;
  req.method = "POST";
  req.path = *create_path;
  req.body = json{{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true},
                  {"Tty", false},         {"User", "0"},          {"Cmd", cmd}}
                 .dump();
  req.timeout = std::min<milliseconds>(timeout_, timeout);
  auto created = Perform(socket_path_, req);
  if (!created.ok()) return created.error();
  if (created->status != 201) {
    return EngineError("exec in " + id, *created, ErrorCode::kFailedPrecondition);
  }
  json cj = json::parse(created->body, nullptr, false);
  if (cj.is_discarded() || !cj.is_object() || !cj.contains("Id") || !cj["Id"].is_string() ||
      !IsValidContainerRef(cj["Id"].get<std::string>())) {
    return MakeError(ErrorCode::kInternal, "docker: exec in " + id + ": no exec Id in answer");
  }
  const std::string exec_id = cj["Id"].get<std::string>();

  StreamDemuxer demux(kMaxExecOutput);
  bool malformed = false;
  auto start_path = VersionedPath("/exec/" + exec_id + "/start");
  if (!start_path.ok()) return start_path.error();
  auto left = remaining();
  if (!left.ok()) return left.error();
  HttpRequest start;
  start.method = "POST";
  start.path = *start_path;
  start.body = json{{"Detach", false}, {"Tty", false}}.dump();
  start.timeout = *left;
  start.on_data = [&](long status, std::string_view chunk) {
    if (status != 200) return true;  // an error body: kept by Perform for the message
    if (!demux.Feed(chunk)) {
      malformed = true;
      return false;
    }
    return true;
  };
  auto started = Perform(socket_path_, start);
  if (!started.ok()) {
    if (started.error().code == ErrorCode::kDeadlineExceeded) {
      return MakeError(
          ErrorCode::kDeadlineExceeded,
          "docker: exec in " + id + ": timed out after " + std::to_string(timeout.count()) + "s");
    }
    return started.error();
  }
  if (started->status != 200) {
    return EngineError("exec start in " + id, *started, ErrorCode::kFailedPrecondition);
  }
  if (malformed) {
    return MakeError(ErrorCode::kInternal, "docker: exec in " + id + ": malformed output stream");
  }

  // The stream ends when the process exits; the exit code may lag a moment behind.
  auto inspect_path = VersionedPath("/exec/" + exec_id + "/json");
  if (!inspect_path.ok()) return inspect_path.error();
  for (int attempt = 0; attempt < 100; ++attempt) {
    left = remaining();
    if (!left.ok()) return left.error();
    HttpRequest inspect;
    inspect.path = *inspect_path;
    inspect.timeout = std::min<milliseconds>(*left, timeout_);
    auto resp = Perform(socket_path_, inspect);
    if (!resp.ok()) return resp.error();
    if (resp->status != 200) {
      return EngineError("exec inspect in " + id, *resp, ErrorCode::kFailedPrecondition);
    }
    json ij = json::parse(resp->body, nullptr, false);
    if (ij.is_discarded() || !ij.is_object()) {
      return MakeError(ErrorCode::kInternal, "docker: unparsable exec inspect answer");
    }
    if (!ij.value("Running", false) && ij.contains("ExitCode") &&
        ij["ExitCode"].is_number_integer()) {
      ExecResult result;
      result.exit_code = ij["ExitCode"].get<int>();
      result.output = demux.output();
      return result;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return MakeError(ErrorCode::kDeadlineExceeded,
                   "docker: exec in " + id + ": process did not report an exit code");
}

}  // namespace taolie::docker
