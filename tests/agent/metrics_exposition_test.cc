#include "agent/metrics_exposition.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace taolie::agent {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The sample lines (not comments) of one family.
std::vector<std::string> Samples(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  for (const auto& l : Lines(text)) {
    if (l.rfind(family + "{", 0) == 0 || l.rfind(family + " ", 0) == 0) out.push_back(l);
  }
  return out;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const auto& l : Lines(text)) {
    if (l == line) return true;
  }
  return false;
}

gpu::GpuInfo Info(int index, const std::string& uuid, const std::string& name,
                  const std::string& bus) {
  gpu::GpuInfo i;
  i.index = index;
  i.uuid = uuid;
  i.name = name;
  i.pci_bus_id = bus;
  return i;
}

MetricsSnapshot TwoGpus() {
  MetricsSnapshot s;
  s.version = "1.2.3";
  s.hostname = "gpu-host-1";
  s.driver_version = "550.54.15";
  s.gpu_infos = {Info(0, "GPU-aaa", "NVIDIA A100-SXM4-80GB", "00000000:07:00.0"),
                 Info(1, "GPU-bbb", "NVIDIA L4", "00000000:81:00.0")};
  gpu::GpuSample a;
  a.index = 0;
  a.uuid = "GPU-aaa";
  a.temperature_c = 61;
  a.power_draw_watts = 312.5;
  a.power_limit_watts = 400;
  a.utilization_percent = 97;
  a.memory_utilization_percent = 40;
  a.memory_used_mb = 70000;
  a.memory_free_mb = 11920;
  a.memory_total_mb = 81920;
  a.sm_clock_mhz = 1410;
  a.mem_clock_mhz = 1593;
  a.energy_joules = 123456.789;
  a.pcie_replay_count = 3;
  a.pcie_gen = 4;
  a.pcie_max_gen = 4;
  a.pcie_width = 16;
  a.pcie_max_width = 16;
  a.ecc_enabled = true;
  a.ecc_volatile_corrected = 5;
  a.ecc_volatile_uncorrected = 0;
  a.ecc_aggregate_corrected = 12;
  a.ecc_aggregate_uncorrected = 1;
  a.remapped_rows_correctable = 2;
  a.remapped_rows_uncorrectable = 0;
  a.remapped_rows_failure = false;
  a.remapped_rows_pending = true;
  a.throttle_reasons = 0x4;
  a.power_violation_ns = 1000;
  a.thermal_violation_ns = 0;
  a.recovery_action = 0;
  a.persistence_mode = true;
  gpu::GpuSample b;  // a fanless card that reports little
  b.index = 1;
  b.uuid = "GPU-bbb";
  b.temperature_c = 40;
  b.retired_pages_sbe = 1;
  b.retired_pages_dbe = 0;
  b.retired_pages_pending = false;
  s.gpu_samples = {a, b};
  s.last_xid = {{"GPU-aaa", 79}};
  s.gpu_states = {{"GPU-aaa", 0, "unhealthy", true, true, true, false, ""},
                  {"GPU-bbb", 1, "healthy", true, false, false, true, "dep-42"}};
  return s;
}

constexpr const char* kLabelsA =
    "gpu=\"0\",UUID=\"GPU-aaa\",pci_bus_id=\"00000000:07:00.0\",device=\"nvidia0\","
    "modelName=\"NVIDIA A100-SXM4-80GB\",hostname=\"gpu-host-1\","
    "DCGM_FI_DRIVER_VERSION=\"550.54.15\"";
constexpr const char* kLabelsB =
    "gpu=\"1\",UUID=\"GPU-bbb\",pci_bus_id=\"00000000:81:00.0\",device=\"nvidia1\","
    "modelName=\"NVIDIA L4\",hostname=\"gpu-host-1\",DCGM_FI_DRIVER_VERSION=\"550.54.15\"";

std::string A(const std::string& family, const std::string& value) {
  return family + "{" + kLabelsA + "} " + value;
}
std::string B(const std::string& family, const std::string& value) {
  return family + "{" + kLabelsB + "} " + value;
}

TEST(MetricsExpositionTest, GpuValuesUseDcgmExporterNamesUnitsAndLabels) {
  const std::string text = MetricsExposition(TwoGpus());
  for (const std::string& line :
       {A("DCGM_FI_DEV_GPU_TEMP", "61"),
        B("DCGM_FI_DEV_GPU_TEMP", "40"),
        A("DCGM_FI_DEV_POWER_USAGE", "312.5"),
        A("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "400"),
        A("DCGM_FI_DEV_GPU_UTIL", "97"),
        A("DCGM_FI_DEV_MEM_COPY_UTIL", "40"),
        A("DCGM_FI_DEV_FB_USED", "70000"),
        A("DCGM_FI_DEV_FB_FREE", "11920"),
        A("DCGM_FI_DEV_FB_TOTAL", "81920"),
        A("DCGM_FI_DEV_SM_CLOCK", "1410"),
        A("DCGM_FI_DEV_MEM_CLOCK", "1593"),
        A("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "123456789"),  // J -> mJ
        A("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "3"),
        A("DCGM_FI_DEV_PCIE_LINK_GEN", "4"),
        A("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "16"),
        A("DCGM_FI_DEV_ECC_CURRENT", "1"),
        A("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "5"),
        A("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "0"),
        A("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "12"),
        A("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "1"),
        A("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "2"),
        A("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "0"),
        A("DCGM_FI_DEV_ROW_REMAP_FAILURE", "0"),
        A("DCGM_FI_DEV_ROW_REMAP_PENDING", "1"),
        B("DCGM_FI_DEV_RETIRED_SBE", "1"),
        B("DCGM_FI_DEV_RETIRED_PENDING", "0"),
        A("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "4"),
        A("DCGM_FI_DEV_POWER_VIOLATION", "1000"),
        A("DCGM_FI_DEV_PERSISTENCE_MODE", "1"),
        A("DCGM_FI_DEV_XID_ERRORS", "79"),
        B("DCGM_FI_DEV_XID_ERRORS", "0"),

        std::string("taolie_gpu_recovery_action{gpu=\"0\",UUID=\"GPU-aaa\"} 0"),
        std::string("taolie_gpu_lost{gpu=\"1\",UUID=\"GPU-bbb\"} 0")}) {
    EXPECT_TRUE(HasLine(text, line)) << "missing: " << line << "\nin:\n" << text;
  }
}

TEST(MetricsExpositionTest, TypesMatchDcgmExporterAndCountersKeepTheirNames) {
  const std::string text = MetricsExposition(TwoGpus());
  for (const char* counter :
       {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_RETIRED_DBE", "DCGM_FI_DEV_POWER_VIOLATION"}) {
    EXPECT_TRUE(HasLine(text, std::string("# TYPE ") + counter + " counter")) << counter;
    EXPECT_EQ(text.find(std::string(counter) + "_total"), std::string::npos) << counter;
  }
  for (const char* gauge : {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS",
                            "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_FB_USED"}) {
    EXPECT_TRUE(HasLine(text, std::string("# TYPE ") + gauge + " gauge")) << gauge;
  }
  EXPECT_TRUE(HasLine(text, "# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C)."));
}

TEST(MetricsExpositionTest, AbsentValuesGiveNoLine) {
  const std::string text = MetricsExposition(TwoGpus());
  // GPU 1 reports no power, fan, clocks, ECC or remapped rows; GPU 0 no fan or retired pages.
  for (const char* family :
       {"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "taolie_gpu_recovery_action"}) {
    EXPECT_EQ(Samples(text, family).size(), 1u) << family;
  }
  EXPECT_TRUE(Samples(text, "DCGM_FI_DEV_FAN_SPEED").empty());
  EXPECT_TRUE(Samples(text, "DCGM_FI_DEV_MEMORY_TEMP").empty());  // not read from NVML
  EXPECT_EQ(Samples(text, "DCGM_FI_DEV_RETIRED_SBE"),
            std::vector<std::string>{B("DCGM_FI_DEV_RETIRED_SBE", "1")});
}

TEST(MetricsExpositionTest, LostGpuShowsLostAndItsLastXidOnly) {
  MetricsSnapshot s = TwoGpus();
  gpu::GpuSample lost;
  lost.index = 0;
  lost.uuid = "GPU-aaa";
  lost.lost = true;
  s.gpu_samples = {lost};
  const std::string text = MetricsExposition(s);
  EXPECT_TRUE(Samples(text, "DCGM_FI_DEV_GPU_TEMP").empty());
  EXPECT_TRUE(HasLine(text, "taolie_gpu_lost{gpu=\"0\",UUID=\"GPU-aaa\"} 1"));
  EXPECT_TRUE(HasLine(text, A("DCGM_FI_DEV_XID_ERRORS", "79")));
}

TEST(MetricsExpositionTest, NoHostnameOrDriverMeansNoSuchLabel) {
  MetricsSnapshot s = TwoGpus();
  s.hostname.clear();
  s.driver_version.clear();
  s.gpu_infos.clear();  // the store did not answer: no model name nor bus id known
  const std::string text = MetricsExposition(s);
  EXPECT_TRUE(HasLine(text,
                      "DCGM_FI_DEV_GPU_TEMP{gpu=\"1\",UUID=\"GPU-bbb\",pci_bus_id=\"\","
                      "device=\"nvidia1\",modelName=\"\"} 40"))
      << text;
}

TEST(MetricsExpositionTest, HealthQuarantineAndRentalSeries) {
  const std::string text = MetricsExposition(TwoGpus());
  EXPECT_EQ(Samples(text, "taolie_gpu_health"),
            (std::vector<std::string>{
                "taolie_gpu_health{gpu=\"0\",UUID=\"GPU-aaa\",verdict=\"healthy\"} 0",
                "taolie_gpu_health{gpu=\"0\",UUID=\"GPU-aaa\",verdict=\"warning\"} 0",
                "taolie_gpu_health{gpu=\"0\",UUID=\"GPU-aaa\",verdict=\"unhealthy\"} 1",
                "taolie_gpu_health{gpu=\"0\",UUID=\"GPU-aaa\",verdict=\"lost\"} 0",
                "taolie_gpu_health{gpu=\"1\",UUID=\"GPU-bbb\",verdict=\"healthy\"} 1",
                "taolie_gpu_health{gpu=\"1\",UUID=\"GPU-bbb\",verdict=\"warning\"} 0",
                "taolie_gpu_health{gpu=\"1\",UUID=\"GPU-bbb\",verdict=\"unhealthy\"} 0",
                "taolie_gpu_health{gpu=\"1\",UUID=\"GPU-bbb\",verdict=\"lost\"} 0"}));
  EXPECT_TRUE(HasLine(text, "taolie_gpu_quarantined{gpu=\"0\",UUID=\"GPU-aaa\"} 1"));
  EXPECT_TRUE(HasLine(text, "taolie_gpu_quarantined{gpu=\"1\",UUID=\"GPU-bbb\"} 0"));
  EXPECT_TRUE(HasLine(text, "taolie_gpu_needs_reset{gpu=\"0\",UUID=\"GPU-aaa\"} 1"));
  EXPECT_TRUE(HasLine(text, "taolie_gpu_dirty{gpu=\"1\",UUID=\"GPU-bbb\"} 1"));
  EXPECT_EQ(Samples(text, "taolie_gpu_deployment_info"),
            std::vector<std::string>{
                "taolie_gpu_deployment_info{gpu=\"1\",UUID=\"GPU-bbb\",deployment_id=\"dep-42\"} "
                "1"});
}

TEST(MetricsExpositionTest, AgentFamilies) {
  MetricsSnapshot s = TwoGpus();
  s.loops = {{"heartbeat", 10, 2, 1, 0.25}, {"gpu-metrics", 7, 0, 0, 0.002}};
  s.deployments_by_state = std::map<std::string, int>{{"running", 2}, {"pulling", 1}};
  s.outbox_pending = 4;
  s.platform_requests = {{"heartbeat", "success", 9}, {"heartbeat", "server_error", 1}};
  runtime::RuntimeMetrics rt;
  rt.active_deployments = 3;
  rt.deploys_succeeded = 5;
  s.runtime_metrics = rt.Read();
  s.registered = true;
  const std::string text = MetricsExposition(s);
  for (const char* line :
       {"taolie_build_info{version=\"1.2.3\"} 1", "taolie_loop_rounds_total{loop=\"heartbeat\"} 10",
        "taolie_loop_failures_total{loop=\"heartbeat\"} 2",
        "taolie_loop_exceptions_total{loop=\"heartbeat\"} 1",
        "taolie_loop_last_round_duration_seconds{loop=\"heartbeat\"} 0.25",
        "taolie_loop_last_round_duration_seconds{loop=\"gpu-metrics\"} 0.002",
        "taolie_deployments{state=\"running\"} 2", "taolie_deployments{state=\"pulling\"} 1",
        "taolie_deployments{state=\"accepted\"} 0", "taolie_outbox_pending_events 4",
        "taolie_platform_requests_total{request=\"heartbeat\",outcome=\"success\"} 9",
        "taolie_platform_requests_total{request=\"heartbeat\",outcome=\"server_error\"} 1",
        "taolie_deployments_active 3", "taolie_deploys_total{result=\"succeeded\"} 5",
        "taolie_registered 1", "# TYPE taolie_loop_rounds_total counter",
        "# TYPE taolie_platform_requests_total counter"}) {
    EXPECT_TRUE(HasLine(text, line)) << "missing: " << line;
  }
  EXPECT_EQ(Samples(text, "taolie_deployments").size(), 7u);  // every state not ended
  EXPECT_TRUE(Samples(text, "taolie_deployments{state=\"ended\"").empty());
}

TEST(MetricsExpositionTest, WithoutTheStoreItsFamiliesAreLeftOut) {
  MetricsSnapshot s = TwoGpus();
  s.gpu_states.clear();
  const std::string text = MetricsExposition(s);  // deployments_by_state, outbox_pending unset
  EXPECT_TRUE(Samples(text, "taolie_deployments").empty());
  EXPECT_TRUE(Samples(text, "taolie_outbox_pending_events").empty());
  EXPECT_TRUE(Samples(text, "taolie_gpu_health").empty());
  EXPECT_EQ(text.find("# TYPE taolie_deployments gauge"), std::string::npos);
}

TEST(MetricsExpositionTest, LabelValuesAreEscaped) {
  MetricsSnapshot s = TwoGpus();
  s.gpu_infos[1].name = "Odd \"GPU\"\\model\nx";
  s.gpu_states[1].deployment_id = "dep\"1";
  const std::string text = MetricsExposition(s);
  EXPECT_NE(text.find("modelName=\"Odd \\\"GPU\\\"\\\\model\\nx\""), std::string::npos) << text;
  EXPECT_NE(text.find("deployment_id=\"dep\\\"1\""), std::string::npos);
  for (const auto& l : Lines(text)) {  // every line is a comment or a whole sample
    ASSERT_FALSE(l.empty());
    if (l[0] != '#') {
      EXPECT_TRUE(l.rfind("DCGM_", 0) == 0 || l.rfind("taolie_", 0) == 0) << l;
    }
  }
}

// The runtime's families after the loops' and the platform's: each reading of the table.
std::string RuntimeFamiliesText(const std::string& text) {
  const size_t from = text.find("# HELP taolie_deployments_active ");
  return from == std::string::npos ? "" : text.substr(from);
}

// Every counter and gauge of the runtime set to its own value (1, 2, ... in table order).
std::vector<runtime::MetricReading> NumberedReadings() {
  std::vector<runtime::MetricReading> r = runtime::RuntimeMetrics().Read();
  for (size_t i = 0; i < r.size(); ++i) r[i].value = static_cast<int64_t>(i + 1);
  return r;
}

// The text the runtime's table gives, as it was before the table existed (issue 18 item 4:
// the same bytes), values numbered in the table's order.
TEST(MetricsExpositionTest, RuntimeTableGivesTheFamiliesItReplaced) {
  MetricsSnapshot s;
  s.runtime_metrics = NumberedReadings();
  s.registered = true;
  EXPECT_EQ(
      RuntimeFamiliesText(MetricsExposition(s)),
      "# HELP taolie_deployments_active Deployments not yet ended.\n"
      "# TYPE taolie_deployments_active gauge\n"
      "taolie_deployments_active 1\n"
      "# HELP taolie_gpus_available Healthy GPUs free to rent.\n"
      "# TYPE taolie_gpus_available gauge\n"
      "taolie_gpus_available 2\n"
      "# HELP taolie_deploys_total Deploys by outcome since start.\n"
      "# TYPE taolie_deploys_total counter\n"
      "taolie_deploys_total{result=\"succeeded\"} 3\n"
      "taolie_deploys_total{result=\"failed\"} 4\n"
      "# HELP taolie_events_delivered_total Outbox events delivered to the platform.\n"
      "# TYPE taolie_events_delivered_total counter\n"
      "taolie_events_delivered_total 5\n"
      "# HELP taolie_events_unsupported_total Events to ext endpoints the platform does not have "
      "(404/405), kept as delivered-unsupported.\n"
      "# TYPE taolie_events_unsupported_total counter\n"
      "taolie_events_unsupported_total 6\n"
      "# HELP taolie_events_given_up_total Ext events given up after "
      "server.ext_event_give_up_hours, kept as failed.\n"
      "# TYPE taolie_events_given_up_total counter\n"
      "taolie_events_given_up_total 7\n"
      "# HELP taolie_clock_wall_steps_total Wall-clock steps against the monotonic clock "
      "(rentals are timed on the latter).\n"
      "# TYPE taolie_clock_wall_steps_total counter\n"
      "taolie_clock_wall_steps_total 8\n"
      "# HELP taolie_enforced_without_database_total Expiry warnings and expiries enforced while "
      "the database was unavailable.\n"
      "# TYPE taolie_enforced_without_database_total counter\n"
      "taolie_enforced_without_database_total{action=\"warning\"} 10\n"
      "taolie_enforced_without_database_total{action=\"expiry\"} 11\n"
      "# HELP taolie_containers_adopted_total Rental containers found without a row (database "
      "lost) and adopted from labels.\n"
      "# TYPE taolie_containers_adopted_total counter\n"
      "taolie_containers_adopted_total 12\n"
      "# HELP taolie_platform_errors_total Failed calls to the platform.\n"
      "# TYPE taolie_platform_errors_total counter\n"
      "taolie_platform_errors_total 14\n"
      "# HELP taolie_registered 1 when the platform accepted the registration.\n"
      "# TYPE taolie_registered gauge\n"
      "taolie_registered 1\n");
}

// /v1/status keeps its keys: the table's values go into the objects the page already has.
TEST(MetricsExpositionTest, RuntimeTableGivesTheStatusKeysItReplaced) {
  nlohmann::json status = {{"counters", {{"images_collected", 0}}},
                           {"clock", {{"last_wall_step_seconds", -1.5}}}};
  AddRuntimeStatus(NumberedReadings(), status);
  EXPECT_EQ(status.dump(),
            R"({"clock":{"last_wall_step_seconds":-1.5,"wall_steps":8},)"
            R"("counters":{"containers_adopted":12,"containers_ended_unadoptable":13,)"
            R"("deploys_failed":4,"deploys_succeeded":3,"events_delivered":5,)"
            R"("events_given_up":7,"events_unsupported":6,"images_collected":0,)"
            R"("platform_errors":14},)"
            R"("without_database":{"expiries":11,"monitor_rounds":9,"warnings":10}})");
}

// What a contributor writes to add a counter and a gauge: one line each. Here a test-only table
// (the agent's own plus two); Runtime holds TAOLIE_RUNTIME_METRICS the same way.
// clang-format off
#define TEST_METRICS(X)                                                                        \
  TAOLIE_RUNTIME_METRICS(X)                                                                    \
  X(uint64_t, widgets_made, "taolie_widgets_made_total", kCounter, "Widgets made since start.", \
    "", "counters.widgets_made")                                                               \
  X(int, queue_depth, "taolie_queue_depth", kGauge, "Jobs waiting, by lane.", "lane=deploy",   \
    "queue_depth")
// clang-format on
TAOLIE_DECLARE_METRICS(TestMetrics, TEST_METRICS);

TEST(MetricsExpositionTest, OneDeclarationAddsTheFamilyAndTheStatusKey) {
  TestMetrics m;
  m.widgets_made++;  // bumped as the engine bumps rt.deploys_succeeded
  m.widgets_made++;
  m.queue_depth = 4;
  m.deploys_failed++;
  MetricsSnapshot s;
  s.runtime_metrics = m.Read();
  const std::string text = MetricsExposition(s);
  for (const char* line :
       {"# HELP taolie_widgets_made_total Widgets made since start.",
        "# TYPE taolie_widgets_made_total counter", "taolie_widgets_made_total 2",
        "# HELP taolie_queue_depth Jobs waiting, by lane.", "# TYPE taolie_queue_depth gauge",
        "taolie_queue_depth{lane=\"deploy\"} 4", "taolie_deploys_total{result=\"failed\"} 1"}) {
    EXPECT_TRUE(HasLine(text, line)) << "missing: " << line << "\nin:\n" << text;
  }
  nlohmann::json status = nlohmann::json::object();
  AddRuntimeStatus(s.runtime_metrics, status);
  EXPECT_EQ(status["counters"]["widgets_made"], 2) << status.dump();
  EXPECT_EQ(status["queue_depth"], 4) << status.dump();  // a path without a group: top level
  EXPECT_EQ(status["counters"]["deploys_failed"], 1) << status.dump();
}

// The table's rules, checked at compile time by TAOLIE_DECLARE_METRICS.
TEST(MetricsExpositionTest, MetricTableRules) {
  using runtime::MetricDecl;
  using runtime::MetricKind;
  using runtime::ValidMetricTable;
  constexpr auto kC = MetricKind::kCounter;
  constexpr auto kG = MetricKind::kGauge;
  struct Case {
    const char* what;
    std::vector<MetricDecl> table;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"one counter", {{"a_total", kC, "A.", "", "a"}}, true},
      {"a gauge, status only, a grouped key",
       {{"g", kG, "G.", "", ""}, {"", kC, "", "", "x.s"}, {"b_total", kC, "B.", "", "x.b"}},
       true},
      {"a family of two samples",
       {{"d_total", kC, "D.", "r=ok", "d.ok"}, {"d_total", kC, "", "r=failed", "d.failed"}},
       true},
      {"shown nowhere", {{"", kC, "", "", ""}}, false},
      {"a counter without _total", {{"a", kC, "A.", "", ""}}, false},
      {"no help", {{"a_total", kC, "", "", ""}}, false},
      {"a second help",
       {{"d_total", kC, "D.", "r=1", ""}, {"d_total", kC, "D.", "r=2", ""}},
       false},
      {"samples apart",
       {{"d_total", kC, "D.", "r=1", ""}, {"e", kG, "E.", "", ""}, {"d_total", kC, "", "r=2", ""}},
       false},
      {"kinds differ", {{"d_total", kC, "D.", "r=1", ""}, {"d_total", kG, "", "r=2", ""}}, false},
      {"a sample without its label",
       {{"d_total", kC, "D.", "", ""}, {"d_total", kC, "", "r=2", ""}},
       false},
      {"the same label twice",
       {{"d_total", kC, "D.", "r=1", ""}, {"d_total", kC, "", "r=1", ""}},
       false},
      {"another label name",
       {{"d_total", kC, "D.", "r=1", ""}, {"d_total", kC, "", "q=2", ""}},
       false},
      {"a label without =", {{"g", kG, "G.", "r", ""}}, false},
      {"a label without a name", {{"g", kG, "G.", "=1", ""}}, false},
      {"a status path twice", {{"g", kG, "G.", "", "x.g"}, {"h", kG, "H.", "", "x.g"}}, false},
      {"a status path ending in .", {{"g", kG, "G.", "", "x."}}, false},
      {"a status path starting with .", {{"g", kG, "G.", "", ".g"}}, false},
  };
  for (const Case& c : cases) EXPECT_EQ(ValidMetricTable(c.table), c.valid) << c.what;
}

}  // namespace
}  // namespace taolie::agent
