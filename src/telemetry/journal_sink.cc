#include "telemetry/journal_sink.h"

#include <syslog.h>
#include <systemd/sd-journal.h>

namespace taolie::telemetry {

int JournalPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LOG_DEBUG;
    case spdlog::level::info:
      return LOG_INFO;
    case spdlog::level::warn:
      return LOG_WARNING;
    case spdlog::level::err:
      return LOG_ERR;
    case spdlog::level::critical:
      return LOG_CRIT;
    default:
      return LOG_INFO;
  }
}

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
  const int length = static_cast<int>(msg.payload.size());
  const char* data = msg.payload.data();
  if (msg.source.filename != nullptr && msg.source.line > 0) {
    sd_journal_send("MESSAGE=%.*s", length, data, "PRIORITY=%d", JournalPriority(msg.level),
                    "SYSLOG_IDENTIFIER=%s", kSyslogIdentifier, "CODE_FILE=%s", msg.source.filename,
                    "CODE_LINE=%d", msg.source.line, nullptr);
  } else {
    sd_journal_send("MESSAGE=%.*s", length, data, "PRIORITY=%d", JournalPriority(msg.level),
                    "SYSLOG_IDENTIFIER=%s", kSyslogIdentifier, nullptr);
  }
}

}  // namespace taolie::telemetry
