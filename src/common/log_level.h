#pragma once
// The log-level names the agent accepts (config and logging setup), without spdlog.
#include <optional>
#include <string_view>

namespace taolie {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };

// trace, debug, info, warn|warning, error|err, critical|fatal, off, in any case; nullopt else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);

}  // namespace taolie
