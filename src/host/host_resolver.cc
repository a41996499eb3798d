#include "host/host_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

namespace taolie::host {
namespace {

Result<std::vector<std::string>> Lookup(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    ErrorCode code =
        rc == EAI_NONAME || rc == EAI_NODATA ? ErrorCode::kNotFound : ErrorCode::kUnavailable;
    return MakeError(code, std::string("getaddrinfo: ") + ::gai_strerror(rc));
  }
  std::vector<std::string> out;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* src = nullptr;
    if (ai->ai_family == AF_INET) {
      src = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      src = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (::inet_ntop(ai->ai_family, src, buf, sizeof(buf)) != nullptr) out.emplace_back(buf);
  }
  ::freeaddrinfo(res);
  return out;
}

}  // namespace

Result<std::vector<std::string>> ResolveHost(const std::string& host,
                                             std::chrono::milliseconds timeout) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Result<std::vector<std::string>> answer = MakeError(ErrorCode::kInternal, "not resolved");
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, host] {
    Result<std::vector<std::string>> answer = MakeError(ErrorCode::kInternal, "not resolved");
    try {  // the thread's catch-all: an exception is this lookup's error, not the agent's end
      answer = Lookup(host);
    } catch (const std::exception& e) {
      answer = MakeError(ErrorCode::kInternal, "resolving " + host + ": " + e.what());
    } catch (...) {
      answer = MakeError(ErrorCode::kInternal, "resolving " + host + ": unknown exception");
    }
    std::lock_guard l(shared->mu);
    shared->answer = std::move(answer);
    shared->done = true;
    shared->cv.notify_all();
  }).detach();
  std::unique_lock l(shared->mu);
  if (!shared->cv.wait_for(l, timeout, [&] { return shared->done; })) {
    return MakeError(ErrorCode::kDeadlineExceeded, "no answer from the resolver within " +
                                                       std::to_string(timeout.count()) + " ms");
  }
  return shared->answer;
}

}  // namespace taolie::host
