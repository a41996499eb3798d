#pragma once
// spdlog sink writing structured entries to the systemd journal with sd_journal_send:
// MESSAGE (the raw message, no pattern: the journal keeps its own timestamps), PRIORITY
// (syslog level mapped from the spdlog level), SYSLOG_IDENTIFIER=taolie-host-agent and, when
// known, CODE_FILE/CODE_LINE. Errors from the journal (no journald) are ignored: logging must
// never fail the agent.
#include <spdlog/sinks/base_sink.h>

#include <mutex>

namespace taolie::telemetry {

inline constexpr char kSyslogIdentifier[] = "taolie-host-agent";

// spdlog level -> syslog priority (LOG_DEBUG=7 ... LOG_CRIT=2).
int JournalPriority(spdlog::level::level_enum level);

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
};

}  // namespace taolie::telemetry
