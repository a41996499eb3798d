#include "telemetry/prometheus_text.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::telemetry {
namespace {

TEST(PrometheusTextTest, EmptyInputGivesEmptyOutput) { EXPECT_EQ(PrometheusText({}), ""); }

TEST(PrometheusTextTest, GaugeWithoutLabels) {
  MetricFamily f{"taolie_gpus", "Number of GPUs.", "gauge", {Sample{{}, 4}}};
  EXPECT_EQ(PrometheusText({f}),
            "# HELP taolie_gpus Number of GPUs.\n"
            "# TYPE taolie_gpus gauge\n"
            "taolie_gpus 4\n");
}

TEST(PrometheusTextTest, CounterWithMultipleSamplesAndLabels) {
  MetricFamily f{"taolie_requests_total",
                 "Requests to the platform.",
                 "counter",
                 {Sample{{{"endpoint", "heartbeat"}, {"code", "200"}}, 12},
                  Sample{{{"endpoint", "commands"}, {"code", "503"}}, 1}}};
  EXPECT_EQ(PrometheusText({f}),
            "# HELP taolie_requests_total Requests to the platform.\n"
            "# TYPE taolie_requests_total counter\n"
            "taolie_requests_total{endpoint=\"heartbeat\",code=\"200\"} 12\n"
            "taolie_requests_total{endpoint=\"commands\",code=\"503\"} 1\n");
}

TEST(PrometheusTextTest, MultipleFamiliesInOrder) {
  std::vector<MetricFamily> fs = {
      {"b_metric", "B.", "gauge", {Sample{{}, 1}}},
      {"a_metric", "A.", "counter", {Sample{{}, 2}}},
  };
  EXPECT_EQ(PrometheusText(fs),
            "# HELP b_metric B.\n# TYPE b_metric gauge\nb_metric 1\n"
            "# HELP a_metric A.\n# TYPE a_metric counter\na_metric 2\n");
}

TEST(PrometheusTextTest, EmptyTypeIsUntypedAndEmptyHelpIsOmitted) {
  MetricFamily f{"x", "", "", {Sample{{}, 1}}};
  EXPECT_EQ(PrometheusText({f}), "# TYPE x untyped\nx 1\n");
}

TEST(PrometheusTextTest, FamilyWithoutSamplesKeepsMetadata) {
  MetricFamily f{"x_total", "Nothing yet.", "counter", {}};
  EXPECT_EQ(PrometheusText({f}), "# HELP x_total Nothing yet.\n# TYPE x_total counter\n");
}

TEST(PrometheusTextTest, EscapesLabelValues) {
  MetricFamily f{"m", "", "gauge", {Sample{{{"path", "C:\\dir \"q\"\nnext"}}, 1}}};
  EXPECT_EQ(PrometheusText({f}),
            "# TYPE m gauge\n"
            "m{path=\"C:\\\\dir \\\"q\\\"\\nnext\"} 1\n");
}

TEST(PrometheusTextTest, EscapesHelpButNotQuotesInHelp) {
  MetricFamily f{"m", "a \\ b \"c\"\nd", "gauge", {}};
  EXPECT_EQ(PrometheusText({f}), "# HELP m a \\\\ b \"c\"\\nd\n# TYPE m gauge\n");
}

struct ValueCase {
  double value;
  const char* text;
};

class PrometheusValueTest : public ::testing::TestWithParam<ValueCase> {};

TEST_P(PrometheusValueTest, FormatsValue) {
  MetricFamily f{"v", "", "gauge", {Sample{{}, GetParam().value}}};
  EXPECT_EQ(PrometheusText({f}), std::string("# TYPE v gauge\nv ") + GetParam().text + "\n");
}

// Formatting is prometheus-cpp's; these pin what the agent's values look like through it.
INSTANTIATE_TEST_SUITE_P(Values, PrometheusValueTest,
                         ::testing::Values(ValueCase{0, "0"}, ValueCase{-3, "-3"},
                                           ValueCase{0.5, "0.5"},
                                           ValueCase{1234567890123, "1234567890123"},
                                           ValueCase{0.1, "0.1"}));

struct NameCase {
  const char* name;
  bool metric_ok;
  bool label_ok;
};

class PrometheusNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(PrometheusNameTest, ValidatesNames) {
  EXPECT_EQ(IsValidMetricName(GetParam().name), GetParam().metric_ok) << GetParam().name;
  EXPECT_EQ(IsValidLabelName(GetParam().name), GetParam().label_ok) << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    Names, PrometheusNameTest,
    ::testing::Values(NameCase{"abc", true, true}, NameCase{"_a1", true, true},
                      NameCase{"job:rate5m", true, false}, NameCase{":x", true, false},
                      NameCase{"1abc", false, false}, NameCase{"", false, false},
                      NameCase{"a-b", false, false}, NameCase{"a b", false, false},
                      NameCase{"gpu.util", false, false},
                      NameCase{"\xc3\xa9t\xc3\xa9", false, false}));

TEST(PrometheusTextTest, SkipsFamilyWithInvalidName) {
  std::vector<MetricFamily> fs = {
      {"bad-name", "x", "gauge", {Sample{{}, 1}}},
      {"9lives", "x", "gauge", {Sample{{}, 1}}},
      {"good", "", "gauge", {Sample{{}, 2}}},
  };
  EXPECT_EQ(PrometheusText(fs), "# TYPE good gauge\ngood 2\n");
}

TEST(PrometheusTextTest, SkipsFamilyWithUnknownType) {
  std::vector<MetricFamily> fs = {
      {"h", "", "histogram", {Sample{{}, 1}}},
      {"g", "", "GAUGE", {Sample{{}, 1}}},
      {"ok", "", "counter", {Sample{{}, 3}}},
  };
  EXPECT_EQ(PrometheusText(fs), "# TYPE ok counter\nok 3\n");
}

TEST(PrometheusTextTest, SkipsDuplicateFamilyName) {
  std::vector<MetricFamily> fs = {
      {"dup", "first", "gauge", {Sample{{}, 1}}},
      {"dup", "second", "gauge", {Sample{{}, 2}}},
  };
  EXPECT_EQ(PrometheusText(fs), "# HELP dup first\n# TYPE dup gauge\ndup 1\n");
}

TEST(PrometheusTextTest, SkipsSamplesWithInvalidOrReservedOrDuplicateLabelNames) {
  MetricFamily f{"m",
                 "",
                 "gauge",
                 {Sample{{{"bad-label", "x"}}, 1}, Sample{{{"__name__", "x"}}, 2},
                  Sample{{{"a", "1"}, {"a", "2"}}, 3}, Sample{{{"with:colon", "x"}}, 4},
                  Sample{{{"ok", "y"}}, 5}}};
  EXPECT_EQ(PrometheusText({f}), "# TYPE m gauge\nm{ok=\"y\"} 5\n");
}

TEST(PrometheusTextTest, CounterKeepsItsNameWithoutTotalSuffix) {
  MetricFamily f{"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "", "counter", {Sample{{{"gpu", "0"}}, 7}}};
  EXPECT_EQ(PrometheusText({f}),
            "# TYPE DCGM_FI_DEV_PCIE_REPLAY_COUNTER counter\n"
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER{gpu=\"0\"} 7\n");
}

TEST(PrometheusTextTest, EmptyLabelValueIsKept) {
  MetricFamily f{"m", "", "gauge", {Sample{{{"a", ""}}, 1}}};
  EXPECT_EQ(PrometheusText({f}), "# TYPE m gauge\nm{a=\"\"} 1\n");
}

}  // namespace
}  // namespace taolie::telemetry
