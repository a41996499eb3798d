#pragma once
// Process-wide logging setup: installs spdlog's default logger (spdlog::info(...) everywhere)
// with a console sink (stderr), an optional size-rotated file and an optional systemd journal
// sink. Every sink sits behind a redacting wrapper: registered secrets are replaced by "***"
// before any sink formats or writes a message.
#include <cstddef>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace taolie::telemetry {

struct LoggingOptions {
  std::string level = "info";  // trace|debug|info|warn(ing)|error|critical|off, any case
  bool console = true;         // stderr
  std::string file;            // "" = no file; the parent directory is created
  int max_size_mb = 100;       // rotate when the file would exceed this size
  int max_files = 5;           // rotated files kept besides the current one (agent.1.log ...)
  bool journal = false;        // systemd journal (sd_journal_send)
  size_t max_size_bytes = 0;   // when > 0 overrides max_size_mb (tests use tiny sizes)
};

// Replaces the default logger. On error (unknown level, file not writable) the previous
// logger stays installed and the error names the cause; the caller decides whether to go on.
Status SetupLogging(const LoggingOptions& options);

// Registers a value that must never be emitted by any sink. Values shorter than 6 characters
// are ignored (they would redact ordinary words). Thread-safe; applies to later messages.
void RegisterSecret(const std::string& secret);

// Changes the default logger's level; an unknown name leaves the level as it is and logs a
// warning. Thread-safe.
void SetLogLevel(const std::string& level);

// True for the names SetupLogging/SetLogLevel accept.
bool IsValidLogLevel(const std::string& level);

// Flushes every sink of the default logger (the file is also flushed after each message).
void FlushLogs();

// monitoring.retention.logs_days: deletes the rotated copies of `file` (spdlog names them
// <stem>.<N><ext>, e.g. agent.1.log) last written before `older_than`; never `file` itself nor
// any other name. Returns how many were deleted; errors (an unreadable directory) are
// returned, a file that cannot be deleted is logged and skipped.
Result<int> PruneRotatedLogs(const std::string& file, std::filesystem::file_time_type older_than);

// Redacts registered secrets in `text` (what the sinks do); exposed for other outputs such as
// error bodies shown on the status page.
std::string RedactSecrets(const std::string& text);

}  // namespace taolie::telemetry
