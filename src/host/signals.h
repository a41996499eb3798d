#pragma once
// SignalWaiter: the process takes SIGTERM, SIGINT and SIGHUP synchronously on one thread.
// Call BlockSignals() at the top of main(), before any thread starts (threads inherit the mask),
// then let one thread loop on Wait().
#include <chrono>

#include "common/result.h"

namespace taolie::host {

class SignalWaiter {
 public:
  // Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and threads it creates later).
  static Status BlockSignals();
  // Waits up to `timeout` for one of those signals; returns its number, or 0 on timeout.
  // A timeout of 0 polls. EINTR from other signals restarts the wait with the time left.
  static int Wait(std::chrono::milliseconds timeout);
};

}  // namespace taolie::host
