#pragma once
// SignalWaiter: the process takes SIGTERM, SIGINT and SIGHUP synchronously on one thread.
// Call BlockSignals() at the top of main(), before any thread starts (threads inherit the mask),
// then let one thread loop on Wait(). IgnoreSigpipe() first thing in main(): a peer that
// closes a socket (the local API, the platform, Docker, PostgreSQL) must cost an EPIPE, never
// the process.
#include <chrono>

#include "common/result.h"

namespace taolie::host {

// SIGPIPE ignored process-wide (inherited by every thread started after it, and reset to the
// default by exec in children).
Status IgnoreSigpipe();

class SignalWaiter {
 public:
  // Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and threads it creates later).
  static Status BlockSignals();
  // Waits up to `timeout` for one of those signals; returns its number, or 0 on timeout.
  // A timeout of 0 polls. EINTR from other signals restarts the wait with the time left.
  static int Wait(std::chrono::milliseconds timeout);
};

}  // namespace taolie::host
