#pragma once
// Prometheus text exposition format (version 0.0.4), as a pure function over plain structs.
#include <string>
#include <utility>
#include <vector>

namespace taolie::telemetry {

struct Sample {
  std::vector<std::pair<std::string, std::string>> labels;  // name, value
  double value = 0;
};

struct MetricFamily {
  std::string name;
  std::string help;
  std::string type;  // "counter", "gauge" or "untyped" (empty means untyped)
  std::vector<Sample> samples;
};

// Renders families as "# HELP", "# TYPE" and `name{label="value"} value` lines, each ending in
// '\n'. Help text escapes '\\' and newline; label values escape '\\', '"' and newline. Values
// use the shortest round-trip form; NaN and infinities print as NaN, +Inf, -Inf.
// Skipped (never emitted half-formed): a family whose name does not match
// [a-zA-Z_:][a-zA-Z0-9_:]*, whose type is unknown, or whose name repeats an earlier family;
// a sample with a label name not matching [a-zA-Z_][a-zA-Z0-9_]*, a reserved "__" label name,
// or a label name repeated within the sample.
std::string PrometheusText(const std::vector<MetricFamily>& families);

// Name checks used by PrometheusText, exposed for callers that build names dynamically.
bool IsValidMetricName(const std::string& name);
bool IsValidLabelName(const std::string& name);

}  // namespace taolie::telemetry
