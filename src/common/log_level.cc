#include "common/log_level.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <utility>

namespace taolie {

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, LogLevel>, 10> kNames = {{
      {"trace", LogLevel::kTrace},
      {"debug", LogLevel::kDebug},
      {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},
      {"warning", LogLevel::kWarn},
      {"error", LogLevel::kError},
      {"err", LogLevel::kError},
      {"critical", LogLevel::kCritical},
      {"fatal", LogLevel::kCritical},
      {"off", LogLevel::kOff},
  }};
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& [spelling, level] : kNames) {
    if (lower == spelling) return level;
  }
  return std::nullopt;
}

}  // namespace taolie
