#include "common/time_format.h"

#include <cstdio>
#include <ctime>

namespace taolie {
namespace {

std::string Format(SystemTime t, bool zulu) {
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  long long secs = us / 1'000'000;
  long long frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lld%s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac, zulu ? "Z" : "");
  return buf;
}

}  // namespace

std::string FormatNaiveIso(SystemTime t) { return Format(t, false); }
std::string FormatRfc3339(SystemTime t) { return Format(t, true); }

std::optional<SystemTime> ParseTimestamp(std::string_view s) {
  int y, mo, d, h, mi, sec;
  std::string str(s);
  int consumed = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
                  &consumed) != 6)
    return std::nullopt;
  long long micros = 0;
  size_t pos = static_cast<size_t>(consumed);
  if (pos < str.size() && str[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < str.size() && str[pos] >= '0' && str[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (str[pos] - '0');
      ++digits;
      ++pos;
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  std::string rest = str.substr(pos);
  if (!(rest.empty() || rest == "Z" || rest == "z" || rest == "+00:00" || rest == "+0000"))
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t tt = timegm(&tm);
  return SystemTime(std::chrono::seconds(tt)) + std::chrono::microseconds(micros);
}

}  // namespace taolie
