#include "telemetry/prometheus_text.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <string_view>

namespace taolie::telemetry {
namespace {

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

bool IsValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        IsAsciiAlpha(c) || c == '_' || (allow_colon && c == ':') || (i > 0 && IsAsciiDigit(c));
    if (!ok) return false;
  }
  return true;
}

void AppendEscaped(std::string& out, std::string_view text, bool escape_quote) {
  for (const char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        out += escape_quote ? "\\\"" : "\"";
        break;
      default:
        out += c;
    }
  }
}

void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    std::array<char, 64> buf{};
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    if (ec != std::errc()) {  // cannot happen for 64 chars; keep the value rather than drop it
      const int n = std::snprintf(buf.data(), buf.size(), "%.17g", value);
      end = buf.data() + (n > 0 ? std::min<size_t>(static_cast<size_t>(n), buf.size() - 1) : 0);
    }
    out.append(buf.data(), end);
  }
}

bool SampleLabelsValid(const Sample& sample) {
  std::set<std::string_view> seen;
  for (const auto& [name, value] : sample.labels) {
    if (!IsValidLabelName(name) || name.starts_with("__")) return false;
    if (!seen.insert(name).second) return false;
  }
  return true;
}

}  // namespace

bool IsValidMetricName(const std::string& name) { return IsValidName(name, true); }
bool IsValidLabelName(const std::string& name) { return IsValidName(name, false); }

std::string PrometheusText(const std::vector<MetricFamily>& families) {
  std::string out;
  std::set<std::string_view> emitted;
  for (const MetricFamily& family : families) {
    const std::string type = family.type.empty() ? "untyped" : family.type;
    if (type != "counter" && type != "gauge" && type != "untyped") continue;
    if (!IsValidMetricName(family.name)) continue;
    if (!emitted.insert(family.name).second) continue;  // a second TYPE line is invalid

    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += ' ';
      AppendEscaped(out, family.help, /*escape_quote=*/false);
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += ' ';
    out += type;
    out += '\n';

    for (const Sample& sample : family.samples) {
      if (!SampleLabelsValid(sample)) continue;
      out += family.name;
      if (!sample.labels.empty()) {
        out += '{';
        bool first = true;
        for (const auto& [name, value] : sample.labels) {
          if (!first) out += ',';
          first = false;
          out += name;
          out += "=\"";
          AppendEscaped(out, value, /*escape_quote=*/true);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      AppendValue(out, sample.value);
      out += '\n';
    }
  }
  return out;
}

}  // namespace taolie::telemetry
