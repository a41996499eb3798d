#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace taolie {

// Naive UTC ISO form the platform has always received: YYYY-MM-DDTHH:MM:SS.ffffff
std::string FormatNaiveIso(SystemTime t);
// RFC 3339 UTC with microseconds and Z suffix: YYYY-MM-DDTHH:MM:SS.ffffffZ
std::string FormatRfc3339(SystemTime t);
// Parses both forms above (fraction optional, 'Z' or '+00:00' or none = UTC).
std::optional<SystemTime> ParseTimestamp(std::string_view s);

enum class TimestampFormat { kNaive, kRfc3339 };
inline std::string FormatTimestamp(SystemTime t, TimestampFormat f) {
  return f == TimestampFormat::kRfc3339 ? FormatRfc3339(t) : FormatNaiveIso(t);
}

}  // namespace taolie
