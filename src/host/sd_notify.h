#pragma once
// Thin wrapper over libsystemd's sd_notify for Type=notify services. Every call is a no-op
// returning false when the agent is not started by systemd ($NOTIFY_SOCKET unset).
#include <chrono>
#include <optional>
#include <string_view>

namespace taolie::host {

// True when started by systemd: $INVOCATION_ID or $NOTIFY_SOCKET is set.
bool UnderSystemd();
// True when stderr is connected to the journal ($JOURNAL_STREAM names its device and inode):
// a line written there and to the journal sink would be logged twice.
bool StderrIsJournal();

class SdNotify {
 public:
  // Each returns true when the message was sent.
  static bool Ready();
  static bool Stopping();
  static bool Watchdog();
  static bool Status(std::string_view text);  // STATUS=<text>, newlines replaced by spaces
  // The service's WatchdogSec when enabled for this process; ping at about half of it.
  static std::optional<std::chrono::microseconds> WatchdogInterval();
};

}  // namespace taolie::host
