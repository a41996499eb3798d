// /metrics of the real agent (8 fake GPUs) checked by promtool and scraped by a real Prometheus
// server, whose queries of Grafana dashboard 12239's panels return one series per GPU
// (issue 8 item 6). Needs promtool and prometheus (Debian's `prometheus` package).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent_harness.h"

namespace taolie::testing {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

// The path of an executable on PATH, "" when there is none.
std::string Which(const std::string& tool) {
  std::string out = Shell("command -v " + tool + " 2>/dev/null");
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// "GET" through curl with the query URL-encoded; the JSON body, or null.
json PromQuery(int port, const std::string& api, const std::string& param,
               const std::string& value) {
  const std::string cmd = "curl -s --max-time 5 -G http://127.0.0.1:" + std::to_string(port) + api +
                          " --data-urlencode '" + param + "=" + value + "'";
  return json::parse(Shell(cmd), nullptr, false);
}

// A Prometheus server of its own on 127.0.0.1, scraping `target` every second.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, const std::string& dir, const std::string& target)
      : dir_(dir) {
    std::filesystem::create_directories(dir + "/data");
    port_ = FreePortBlock(1);
    std::ofstream(dir + "/prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        << "scrape_configs:\n  - job_name: taolie-host-agent\n"
        << "    static_configs:\n      - targets: ['" << target << "']\n";
    const std::string config = "--config.file=" + dir + "/prometheus.yml";
    const std::string storage = "--storage.tsdb.path=" + dir + "/data";
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    std::string bin = binary;
    std::vector<char*> argv{bin.data(), const_cast<char*>(config.c_str()),
                            const_cast<char*>(storage.c_str()), const_cast<char*>(listen.c_str()),
                            nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string log = dir + "/prometheus.log";
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~PrometheusServer() {
    if (pid_ == 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  bool started() const { return pid_ != 0 && port_ > 0; }
  int port() const { return port_; }
  std::string Log() const { return ReadFile(dir_ + "/prometheus.log"); }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

// The sample lines of one family in a text exposition.
std::vector<std::string> Samples(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family + "{", 0) == 0 || line.rfind(family + " ", 0) == 0) out.push_back(line);
  }
  return out;
}

class MetricsE2eTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    promtool_ = Which("promtool");
    prometheus_ = Which("prometheus");
    if (promtool_.empty() || prometheus_.empty()) {
      if (InCi()) FAIL() << "promtool / prometheus not installed (scripts/install-deps.sh)";
      GTEST_SKIP() << "promtool / prometheus not installed (Debian package prometheus)";
    }
    HarnessOptions o;
    o.scenario = "eight_gpus.ini";
    StartAgent(o);
  }

  std::string Metrics() { return HttpGet(agent_->status_port(), "/metrics"); }

  // Waits until every GPU has a temperature line and GPU 5's XIDs are in (bounded).
  std::string WaitForGpuMetrics() {
    std::string text;
    sim::Simulator::WaitFor(
        [&] {
          text = Metrics();
          bool xid = false;
          for (const auto& l : Samples(text, "DCGM_FI_DEV_XID_ERRORS")) {
            xid |= l.find("gpu=\"5\"") != std::string::npos && !l.ends_with(" 0");
          }
          return Samples(text, "DCGM_FI_DEV_GPU_TEMP").size() == 8 && xid;
        },
        seconds(60));
    return text;
  }

  std::string promtool_, prometheus_;
};

TEST_F(MetricsE2eTest, PromtoolAcceptsTheAgentsMetrics) {
  const std::string text = WaitForGpuMetrics();
  ASSERT_EQ(Samples(text, "DCGM_FI_DEV_GPU_TEMP").size(), 8u) << text;
  const std::string file = agent_->root() + "/metrics.txt";
  std::ofstream(file) << text;
  const std::string out = Shell(promtool_ + " check metrics < " + file + " 2>&1; echo \"rc=$?\"");
  // promtool exits 1 when the text does not parse, 3 when it parses with lint findings. The only
  // findings allowed are the two dcgm-exporter compatibility demands: its counters have no
  // "_total" suffix and its label is spelled modelName. Anything else fails the test.
  std::istringstream lines(out);
  std::string rc;
  int findings = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("rc=", 0) == 0) {
      rc = line.substr(3);
      continue;
    }
    const bool dcgm_counter =
        line.rfind("DCGM_FI_", 0) == 0 &&
        line.find("counter metrics should have \"_total\" suffix") != std::string::npos;
    // ... nor is a dcgm-exporter counter renamed for having "counter" in its name
    // (DCGM_FI_DEV_PCIE_REPLAY_COUNTER).
    const bool dcgm_counter_name =
        line.rfind("DCGM_FI_", 0) == 0 &&
        line.find("metric name should not include type 'counter'") != std::string::npos;
    const bool model_name =
        line.rfind("DCGM_FI_", 0) == 0 &&
        line.find("label names should be written in 'snake_case'") != std::string::npos;
    EXPECT_TRUE(dcgm_counter || dcgm_counter_name || model_name) << "promtool: " << line;
    ++findings;
  }
  EXPECT_TRUE(rc == "0" || rc == "3") << "promtool did not accept /metrics:\n" << out;
  EXPECT_EQ(rc == "3", findings > 0) << out;
  // It saw a counter of dcgm-exporter's under its own name (the fake NVML reports ECC).
  EXPECT_NE(out.find("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL counter metrics should have"),
            std::string::npos)
      << out;
}

TEST_F(MetricsE2eTest, PrometheusScrapesAndDashboardPanelsReturnSeries) {
  ASSERT_EQ(Samples(WaitForGpuMetrics(), "DCGM_FI_DEV_GPU_TEMP").size(), 8u);
  const std::string instance = "127.0.0.1:" + std::to_string(agent_->status_port());
  PrometheusServer prom(prometheus_, agent_->root() + "/prometheus", instance);
  ASSERT_TRUE(prom.started());

  // Up and scraped: `up` of the agent's target is 1 (bounded wait).
  const bool scraped = sim::Simulator::WaitFor(
      [&] {
        json r = PromQuery(prom.port(), "/api/v1/query", "query",
                           "up{instance=\"" + instance + "\"} == 1");
        return r.is_object() && r.value("status", "") == "success" && !r["data"]["result"].empty();
      },
      seconds(60));
  ASSERT_TRUE(scraped) << "no successful scrape\n" << Tail(prom.Log(), 4000);

  // Dashboard 12239's variables: label_values(DCGM_FI_DEV_GPU_TEMP, instance) and (.., gpu).
  json inst =
      PromQuery(prom.port(), "/api/v1/label/instance/values", "match[]", "DCGM_FI_DEV_GPU_TEMP");
  ASSERT_TRUE(inst.is_object()) << Tail(prom.Log(), 2000);
  EXPECT_EQ(inst["data"], json::array({instance}));
  json gpus = PromQuery(prom.port(), "/api/v1/label/gpu/values", "match[]", "DCGM_FI_DEV_GPU_TEMP");
  EXPECT_EQ(gpus["data"], json::array({"0", "1", "2", "3", "4", "5", "6", "7"}));

  // Its panels, with $instance and $gpu as Grafana substitutes "All".
  const std::string sel = "{instance=~\"" + instance + "\", gpu=~\"0|1|2|3|4|5|6|7\"}";
  struct Panel {
    std::string title;
    std::string expr;
    size_t series;
  };
  // tests/fake_nvml/scenarios/eight_gpus.ini's cards, by index.
  const std::vector<std::string> kModels = {"NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3",
                                            "NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB",
                                            "Quadro RTX 8000",       "Quadro RTX 8000",
                                            "Quadro RTX 6000",       "NVIDIA GeForce RTX 4090"};
  const std::vector<Panel> panels = {
      {"GPU Temperature", "DCGM_FI_DEV_GPU_TEMP" + sel, 8},
      {"GPU Avg. Temp", "avg(DCGM_FI_DEV_GPU_TEMP" + sel + ")", 1},
      {"GPU Power Usage", "DCGM_FI_DEV_POWER_USAGE" + sel, 8},
      {"GPU Power Total", "sum(DCGM_FI_DEV_POWER_USAGE" + sel + ")", 1},
      {"GPU SM Clocks", "DCGM_FI_DEV_SM_CLOCK" + sel + " * 1000000", 8},
      {"GPU Utilization", "DCGM_FI_DEV_GPU_UTIL" + sel, 8},
      {"GPU Framebuffer Mem Used", "DCGM_FI_DEV_FB_USED" + sel, 8},
  };
  for (const Panel& p : panels) {
    json r = PromQuery(prom.port(), "/api/v1/query", "query", p.expr);
    ASSERT_TRUE(r.is_object()) << p.title;
    ASSERT_EQ(r.value("status", ""), "success") << p.title << ": " << r.dump();
    const json& result = r["data"]["result"];
    EXPECT_EQ(result.size(), p.series) << p.title << ": " << r.dump();
    std::set<std::string> seen;
    for (const auto& s : result) {
      ASSERT_EQ(s["value"].size(), 2u) << p.title;
      if (p.series > 1) {
        seen.insert(s["metric"].value("gpu", ""));
        EXPECT_EQ(s["metric"].value("instance", ""), instance) << p.title;
        EXPECT_EQ(s["metric"].value("device", ""), "nvidia" + s["metric"].value("gpu", ""));
        EXPECT_EQ(s["metric"].value("modelName", ""),
                  kModels.at(std::stoul(s["metric"].value("gpu", "0"))))
            << p.title;
        EXPECT_EQ(s["metric"].value("DCGM_FI_DRIVER_VERSION", ""), "550.90.07") << p.title;
        EXPECT_FALSE(s["metric"].value("UUID", "").empty()) << p.title;
        EXPECT_FALSE(s["metric"].value("pci_bus_id", "").empty()) << p.title;
        EXPECT_FALSE(s["metric"].value("hostname", "").empty()) << p.title;
      }
    }
    if (p.series > 1) {
      EXPECT_EQ(seen.size(), p.series) << p.title;
    }
  }
  // The scenario's GPUs each draw 70 W: the total is at least 8 x 70 W.
  json total =
      PromQuery(prom.port(), "/api/v1/query", "query", "sum(DCGM_FI_DEV_POWER_USAGE" + sel + ")");
  ASSERT_EQ(total["data"]["result"].size(), 1u);
  EXPECT_GE(std::stod(total["data"]["result"][0]["value"][1].get<std::string>()), 8 * 70.0);
  // The agent's own series come through too (build info, per-GPU health).
  json build = PromQuery(prom.port(), "/api/v1/query", "query", "taolie_build_info");
  EXPECT_EQ(build["data"]["result"].size(), 1u) << build.dump();
  json health = PromQuery(prom.port(), "/api/v1/query", "query", "taolie_gpu_health == 1");
  EXPECT_EQ(health["data"]["result"].size(), 8u) << health.dump();
}

}  // namespace
}  // namespace taolie::testing
