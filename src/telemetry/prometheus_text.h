#pragma once
// Prometheus text exposition format (version 0.0.4) over plain structs. The text itself is
// written by prometheus-cpp's TextSerializer (its headers stay inside src/telemetry); this layer
// only maps our structs onto its MetricFamily/ClientMetric and drops what would be invalid.
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

// Renders families as "# HELP", "# TYPE" and `name{label="value"} value` lines. A counter keeps
// the name it is given (no "_total" is added). Label values and help text are escaped by the
// serializer. Skipped (never emitted half-formed): a family whose name is not a valid metric
// name, whose type is unknown, or whose name repeats an earlier family; a sample with an
// invalid or reserved ("__") label name, or a label name repeated within the sample.
std::string PrometheusText(const std::vector<MetricFamily>& families);

// Name checks used by PrometheusText, exposed for callers that build names dynamically.
bool IsValidMetricName(const std::string& name);
bool IsValidLabelName(const std::string& name);

}  // namespace taolie::telemetry
