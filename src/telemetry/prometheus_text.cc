#include "telemetry/prometheus_text.h"

#include <prometheus/check_names.h>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <optional>
#include <set>
#include <sstream>
#include <string_view>

namespace taolie::telemetry {
namespace {

std::optional<prometheus::MetricType> ParseType(const std::string& type) {
  if (type == "counter") return prometheus::MetricType::Counter;
  if (type == "gauge") return prometheus::MetricType::Gauge;
  if (type.empty() || type == "untyped") return prometheus::MetricType::Untyped;
  return std::nullopt;
}

bool SampleLabelsValid(const Sample& sample) {
  std::set<std::string_view> seen;
  for (const auto& [name, value] : sample.labels) {
    if (!IsValidLabelName(name)) return false;
    if (!seen.insert(name).second) return false;
  }
  return true;
}

// prometheus-cpp 1.0.1 (Debian 12) writes HELP text as given: a newline in it would end the
// line early. The exposition format escapes '\\' and newline there (not '"').
std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

prometheus::ClientMetric ToClientMetric(const Sample& sample, prometheus::MetricType type) {
  prometheus::ClientMetric m;
  m.label.reserve(sample.labels.size());
  for (const auto& [name, value] : sample.labels) m.label.push_back({name, value});
  switch (type) {
    case prometheus::MetricType::Counter:
      m.counter.value = sample.value;
      break;
    case prometheus::MetricType::Gauge:
      m.gauge.value = sample.value;
      break;
    default:
      m.untyped.value = sample.value;
      break;
  }
  return m;
}

}  // namespace

bool IsValidMetricName(const std::string& name) { return prometheus::CheckMetricName(name); }

bool IsValidLabelName(const std::string& name) {
  return prometheus::CheckLabelName(name) && !name.starts_with("__");
}

std::string PrometheusText(const std::vector<MetricFamily>& families) {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families.size());
  std::set<std::string_view> emitted;
  for (const MetricFamily& family : families) {
    const auto type = ParseType(family.type);
    if (!type || !IsValidMetricName(family.name)) continue;
    if (!emitted.insert(family.name).second) continue;  // a second TYPE line is invalid
    prometheus::MetricFamily f;
    f.name = family.name;
    f.help = EscapeHelp(family.help);
    f.type = *type;
    f.metric.reserve(family.samples.size());
    for (const Sample& sample : family.samples) {
      if (SampleLabelsValid(sample)) f.metric.push_back(ToClientMetric(sample, *type));
    }
    out.push_back(std::move(f));
  }
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, out);
  return text.str();
}

}  // namespace taolie::telemetry
