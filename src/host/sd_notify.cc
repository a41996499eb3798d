#include "host/sd_notify.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace taolie::host {

namespace {

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

bool Send(const std::string& state) { return sd_notify(0, state.c_str()) > 0; }

}  // namespace

bool UnderSystemd() { return EnvSet("INVOCATION_ID") || EnvSet("NOTIFY_SOCKET"); }

bool StderrIsJournal() {
  const char* v = std::getenv("JOURNAL_STREAM");
  if (v == nullptr || *v == '\0') return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(v, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

bool SdNotify::Ready() { return Send("READY=1"); }

bool SdNotify::Stopping() { return Send("STOPPING=1"); }

bool SdNotify::Watchdog() { return Send("WATCHDOG=1"); }

bool SdNotify::Status(std::string_view text) {
  std::string line = "STATUS=";
  for (char c : text) line.push_back(c == '\n' || c == '\r' ? ' ' : c);
  return Send(line);
}

std::optional<std::chrono::microseconds> SdNotify::WatchdogInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
  return std::nullopt;
}

}  // namespace taolie::host
