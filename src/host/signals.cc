#include "host/signals.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/real_time.h"

namespace taolie::host {

namespace {

sigset_t AgentSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

Status IgnoreSigpipe() {
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPIPE, &sa, nullptr) != 0) {
    return MakeError(ErrorCode::kInternal,
                     std::string("sigaction(SIGPIPE): ") + std::strerror(errno));
  }
  return OkStatus();
}

Status SignalWaiter::BlockSignals() {
  sigset_t set = AgentSignals();
  int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) {
    return MakeError(ErrorCode::kInternal, std::string("pthread_sigmask: ") + std::strerror(rc));
  }
  return OkStatus();
}

int SignalWaiter::Wait(std::chrono::milliseconds timeout) {
  const sigset_t set = AgentSignals();
  const auto deadline = SteadyNow() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - SteadyNow());
    if (left.count() < 0) left = std::chrono::nanoseconds(0);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EINTR && left.count() > 0) continue;
    return 0;  // EAGAIN: timed out
  }
}

}  // namespace taolie::host
