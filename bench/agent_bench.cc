// Benchmarks of the real agent binary against the simulator, the private dockerd and a
// registry that never answers (issue 6, item 10). They print figures next to a baseline
// measured in the same run; they do not pass or fail on timing (only on broken invariants,
// such as samples lost or reordered). Run by scripts/bench.sh (`ctest -C bench -L bench`);
// never part of the default test run.
//
// Environment (all optional):
//   TAOLIE_BENCH_WINDOW_SECONDS  length of each jitter window (default 30)
//   TAOLIE_BENCH_SAMPLES         buffered metric samples to deliver (default 10000)
//   TAOLIE_BENCH_REPORT          file the figures are appended to (scripts/bench.sh prints it)
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "agent_status.h"
#include "e2e/agent_harness.h"
#include "host/linux_host_probe.h"
#include "stalling_registry.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

// The harness's intervals (tests/e2e/agent_harness.h writes them into the agent's config).
constexpr double kHeartbeatNominal = 2.0;
constexpr double kPollNominal = 1.0;
constexpr int kSlowPulls = 8;

int EnvInt(const char* name, int fallback) {
  const std::string v = EnvOr(name);
  return v.empty() ? fallback : std::max(1, std::atoi(v.c_str()));
}

// Prints a figure line and appends it to $TAOLIE_BENCH_REPORT.
void Report(const std::string& line) {
  std::cout << line << "\n" << std::flush;
  if (const std::string path = EnvOr("TAOLIE_BENCH_REPORT"); !path.empty()) {
    std::ofstream(path, std::ios::app) << line << "\n";
  }
}

std::string Fmt(const char* format, double a, double b = 0, double c = 0, double d = 0,
                double e = 0, double f = 0) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), format, a, b, c, d, e, f);
  return buf;
}

double Percentile(std::vector<double> v, double p) {  // nearest rank
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double Ratio(double a, double b) { return b > 0 ? a / b : NAN; }

// Interval deviations from nominal, in ms, of the requests accepted inside a window.
struct Jitter {
  std::vector<double> dev_ms;  // |interval - nominal|
  double mean() const { return Mean(dev_ms); }
  double p50() const { return Percentile(dev_ms, 50); }
  double p99() const { return Percentile(dev_ms, 99); }
  double max() const {
    return dev_ms.empty() ? NAN : *std::max_element(dev_ms.begin(), dev_ms.end());
  }
};

Jitter MeasureJitter(const std::vector<sim::Simulator::Request>& requests, const std::string& path,
                     const std::string& method, double nominal_s, SystemTime from, SystemTime to) {
  std::vector<SystemTime> at;
  for (const auto& r : requests) {
    if (r.path == path && r.method == method && r.status == 200 && r.at >= from && r.at <= to)
      at.push_back(r.at);
  }
  Jitter j;
  for (size_t i = 1; i < at.size(); ++i) {
    j.dev_ms.push_back(std::fabs(Seconds(at[i] - at[i - 1]).count() - nominal_s) * 1000.0);
  }
  return j;
}

std::string JitterRow(const std::string& name, const Jitter& j) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "  %-24s %4zu %8.1f %8.1f %8.1f %8.1f", name.c_str(),
                j.dev_ms.size(), j.mean(), j.p50(), j.p99(), j.max());
  return buf;
}

class AgentBench : public AgentE2eTest {
 protected:
  std::map<std::string, std::string> AgentStates() {
    return ActiveDeploymentStates(agent_->status_port());
  }
  int Pulling() {
    int n = 0;
    for (const auto& [id, state] : AgentStates()) n += state == "pulling" ? 1 : 0;
    return n;
  }
  // Seconds from a terminate made available to its `terminated` event accepted; NAN if none.
  double TerminateLatency(const std::string& dep) {
    const std::string path = "/api/deployments/" + dep + "/terminated";
    const SystemTime made_available = std::chrono::system_clock::now();
    sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", dep}}.dump());
    std::optional<SystemTime> accepted;
    sim::Simulator::WaitFor(
        [&] {
          for (const auto& r : sim_->Requests(path)) {
            if (r.status == 200) accepted = r.at;
          }
          return accepted.has_value();
        },
        60s);
    if (!accepted) {
      ADD_FAILURE() << dep << ": no terminated event within 60 s";
      return NAN;
    }
    return Seconds(*accepted - made_available).count();
  }
  std::vector<sim::Simulator::Request> AgentRequests() {
    return sim_->Requests("/api/host-agents/" + agent_id_ + "/");
  }
};

// (a) heartbeat and command-poll jitter and (b) a terminate's latency: the agent idle (the
// baseline) against the agent with 8 deploys pulling from a registry that never answers.
TEST_F(AgentBench, JitterAndTerminateLatencyDuringEightSlowPulls) {
  const auto window = std::chrono::seconds(EnvInt("TAOLIE_BENCH_WINDOW_SECONDS", 30));
  StallingRegistry stall(15min);
  ASSERT_GT(stall.port(), 0);
  HarnessOptions o;
  o.scenario = "eight_gpus.ini";
  o.extra_registries = {"127.0.0.1:" + std::to_string(stall.port())};
  StartAgent(o);

  // Three rentals to terminate in each phase, deployed first (the deploy threads are taken by
  // the slow pulls later).
  constexpr int kRentalsPerPhase = 3;
  std::vector<std::string> idle_rentals, load_rentals;
  for (int i = 0; i < 2 * kRentalsPerPhase; ++i) {
    const std::string id = "bench-rental-" + std::to_string(i);
    (i < kRentalsPerPhase ? idle_rentals : load_rentals).push_back(id);
    sim_->QueueCommand(agent_id_, "deploy",
                       json{{"deployment_id", id},
                            {"image", SshImage()},
                            {"duration_minutes", 60},
                            {"cpu_limit", 0.1},
                            {"memory_limit_mb", 256},
                            {"ports", {{"22", 22}}}}
                           .dump());
  }
  for (const auto& id : idle_rentals) ASSERT_FALSE(WaitEvent(id, "success", 180s).is_null()) << id;
  for (const auto& id : load_rentals) ASSERT_FALSE(WaitEvent(id, "success", 180s).is_null()) << id;
  ASSERT_TRUE(WaitForPolls(3));  // acks delivered, the poll queue holds no new command

  const std::string hb_path = "/api/host-agents/" + agent_id_ + "/heartbeat";
  const std::string poll_path = "/api/host-agents/" + agent_id_ + "/commands";
  auto window_jitter = [&](Jitter* hb, Jitter* poll) {
    // A measurement window of fixed length (what is measured is what happens in it).
    const SystemTime from = std::chrono::system_clock::now();
    std::this_thread::sleep_for(window);
    const SystemTime to = std::chrono::system_clock::now();
    const auto reqs = AgentRequests();
    *hb = MeasureJitter(reqs, hb_path, "POST", kHeartbeatNominal, from, to);
    *poll = MeasureJitter(reqs, poll_path, "GET", kPollNominal, from, to);
  };

  // Baseline: idle.
  Jitter hb_idle, poll_idle;
  window_jitter(&hb_idle, &poll_idle);
  std::vector<double> term_idle;
  for (const auto& id : idle_rentals) term_idle.push_back(TerminateLatency(id));

  // Load: 8 deploys whose images are on the stalling registry (no GPU each, so that all are
  // admitted whatever the order). The agent has 3 deploy threads: 3 pull, 5 wait.
  std::vector<std::string> pulls;
  for (int i = 0; i < kSlowPulls; ++i) {
    const std::string id = "bench-pull-" + std::to_string(i);
    pulls.push_back(id);
    sim_->QueueCommand(agent_id_, "deploy",
                       json{{"deployment_id", id},
                            {"image", stall.Image("bench/img" + std::to_string(i) + ":1")},
                            {"gpu_count", 0},
                            {"duration_minutes", 60},
                            {"cpu_limit", 0.1},  // small: admission's totals take all of them
                            {"memory_limit_mb", 256},
                            {"ports", {{"22", 22}}}}
                           .dump());
  }
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return Pulling() >= 3 && stall.open() >= 1; }, 60s))
      << "pulling " << Pulling() << ", registry connections " << stall.open();
  ASSERT_TRUE(WaitForPolls(3));
  const int pulling_before = Pulling();
  Jitter hb_load, poll_load;
  window_jitter(&hb_load, &poll_load);
  std::vector<double> term_load;
  for (const auto& id : load_rentals) term_load.push_back(TerminateLatency(id));
  const int pulling_after = Pulling();
  int admitted = 0;
  for (const auto& [id, state] : AgentStates()) admitted += id.rfind("bench-pull-", 0) == 0 ? 1 : 0;
  EXPECT_GE(pulling_after, 3) << "the pulls ended before the measurement did";

  Report("== heartbeat and command-poll jitter: |interval - nominal| in ms, " +
         std::to_string(window.count()) + " s windows (heartbeat every " +
         Fmt("%.0f", kHeartbeatNominal) + " s, poll every " + Fmt("%.0f", kPollNominal) + " s) ==");
  Report("  loop / phase                n     mean      p50      p99      max");
  Report(JitterRow("heartbeat, idle", hb_idle));
  Report(JitterRow("heartbeat, 8 slow pulls", hb_load));
  Report(JitterRow("poll, idle", poll_idle));
  Report(JitterRow("poll, 8 slow pulls", poll_load));
  Report(Fmt("  ratio 8 pulls / idle: heartbeat mean %.2f p99 %.2f; poll mean %.2f p99 %.2f",
             Ratio(hb_load.mean(), hb_idle.mean()), Ratio(hb_load.p99(), hb_idle.p99()),
             Ratio(poll_load.mean(), poll_idle.mean()), Ratio(poll_load.p99(), poll_idle.p99())));
  Report("  pulls hanging during the load phase: " + std::to_string(pulling_before) +
         " at its start, " + std::to_string(pulling_after) + " at its end (of " +
         std::to_string(kSlowPulls) + " deploys; " + std::to_string(kSlowPulls - admitted) +
         " waiting for a deploy thread; " + std::to_string(stall.accepted()) +
         " registry connections accepted)");
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += Fmt("%.2f ", x);
    return s;
  };
  Report("== terminate latency: terminate command available -> terminated event accepted, s ==");
  Report("  idle:          " + list(term_idle) + Fmt("(mean %.2f)", Mean(term_idle)));
  Report("  8 slow pulls:  " + list(term_load) + Fmt("(mean %.2f)", Mean(term_load)));
  Report(Fmt("  ratio 8 pulls / idle: %.2f (stop grace period 3 s; poll every 1 s)",
             Ratio(Mean(term_load), Mean(term_idle))));
  EXPECT_EQ(hb_idle.dev_ms.empty() || hb_load.dev_ms.empty(), false) << "no heartbeats seen";
  EXPECT_EQ(poll_idle.dev_ms.empty() || poll_load.dev_ms.empty(), false) << "no polls seen";

  // Clean up: the pulls are cancelled by their terminates.
  for (const auto& id : pulls)
    sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", id}}.dump());
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return AgentStates().empty(); }, 60s))
      << AgentStates().size() << " deployments still active";
}

// POSTs each body to the simulator's metrics endpoint over one keep-alive connection, as the
// agent's client does; returns the seconds it took, or NAN on a failure.
double PostDirectly(const std::string& url, const std::vector<std::string>& bodies) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return NAN;
  curl_slist* headers = curl_slist_append(nullptr, "Authorization: Bearer sim-key");
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // as the agent's client: no 100-continue
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t n, void*) { return size * n; });
  const auto t0 = std::chrono::steady_clock::now();
  bool ok = true;
  for (const auto& b : bodies) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, b.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(b.size()));
    long code = 0;
    ok = ok && curl_easy_perform(curl) == CURLE_OK &&
         curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
  }
  const double s = Seconds(std::chrono::steady_clock::now() - t0).count();
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return ok ? s : NAN;
}

// (c) delivery of buffered metric samples after an outage of the platform's metrics endpoint:
// 100 samples (baseline), then 10 000; and the same payloads POSTed directly (the floor).
TEST_F(AgentBench, BufferedMetricsDeliveryAfterOutage) {
  const int big = EnvInt("TAOLIE_BENCH_SAMPLES", 10000);
  constexpr int kSmall = 100;
  StartAgent();
  const std::string metrics_path = "/api/host-agents/metrics";
  size_t cursor = 0;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        for (const auto& r : sim_->RequestsSince(cursor, metrics_path, &cursor))
          if (r.status == 200) return true;
        return false;
      },
      60s))
      << "no metrics push";
  auto db = OpenAgentDb(agent_->root() + "/data");
  ASSERT_NE(db, nullptr);

  struct Run {
    int samples = 0;
    double insert_s = 0, deliver_s = 0;
    double first_s = NAN;  // from the recovery to the first delivery (the next push round)
    int received = 0, duplicates = 0, out_of_order = 0, live = 0;
    std::vector<std::string> bodies;  // as received, for the direct baseline
    std::vector<double> gaps_ms;      // between consecutive deliveries
  };
  // Outage, buffer `n` samples, recovery; counts what arrives until all `n` did (bounded).
  auto deliver = [&](int run_id, int n, std::chrono::seconds limit) {
    Run run;
    run.samples = n;
    sim_->SetPathFault(metrics_path, 503);
    // The agent has met the outage: a push was refused.
    EXPECT_TRUE(sim::Simulator::WaitFor(
        [&] {
          for (const auto& r : sim_->RequestsSince(cursor, metrics_path, &cursor))
            if (r.status == 503) return true;
          return false;
        },
        30s));
    // Buffered while the platform is down: two GPUs a sample, sequence numbers in the clock
    // fields (the bench's own GPU ids keep them apart from the agent's live samples).
    const SystemTime base = std::chrono::system_clock::now() - std::chrono::milliseconds(n + 1000);
    const auto t_insert = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      domain::MetricSample s;
      s.taken_at = base + std::chrono::milliseconds(i);
      s.host.cpu_utilization = 12.5;
      s.host.ram_used_gb = 3.25;
      s.host.uptime_hours = 100;
      for (int g = 0; g < 2; ++g) {
        domain::GpuMetricRow row;
        row.gpu_uuid = "GPU-bench-" + std::to_string(g);
        row.gpu_index = g;
        row.utilization = 50;
        row.memory_used_mb = 1024;
        row.memory_total_mb = 81559;
        row.temperature_c = 40;
        row.power_draw_watts = 100;
        row.power_limit_watts = 700;
        row.sm_clock_mhz = i;
        row.mem_clock_mhz = run_id;
        s.gpus.push_back(row);
      }
      auto id = db->InsertMetricSample(s);
      if (!id.ok()) {
        ADD_FAILURE() << "insert sample " << i << ": " << id.error().ToString();
        return run;
      }
    }
    run.insert_s = Seconds(std::chrono::steady_clock::now() - t_insert).count();

    sim_->ClearPathFault(metrics_path);
    const auto t0 = std::chrono::steady_clock::now();
    std::set<int64_t> seen;
    std::optional<SystemTime> last_at;
    std::map<std::string, std::string> last_ts;  // per GPU: timestamp of the last sample
    sim::Simulator::WaitFor(
        [&] {
          for (const auto& r : sim_->RequestsSince(cursor, metrics_path, &cursor)) {
            if (r.status != 200) continue;
            json b = json::parse(r.body, nullptr, false);
            if (!b.is_object() || !b.contains("gpus") || b["gpus"].empty()) continue;
            const json& g0 = b["gpus"][0];
            if (g0.value("mem_clock_mhz", json()) != run_id ||
                g0.value("uuid", "").rfind("GPU-bench-", 0) != 0) {
              ++run.live;
              continue;
            }
            if (!seen.insert(g0["sm_clock_mhz"].get<int64_t>()).second) ++run.duplicates;
            const std::string ts = b.value("timestamp", "");
            for (const auto& g : b["gpus"]) {
              std::string& last = last_ts[g.value("uuid", "")];
              if (!last.empty() && ts <= last) ++run.out_of_order;  // fixed-width ISO form
              last = ts;
            }
            if (run.bodies.empty())
              run.first_s = Seconds(std::chrono::steady_clock::now() - t0).count();
            run.bodies.push_back(r.body);
            if (last_at) run.gaps_ms.push_back(Seconds(r.at - *last_at).count() * 1000.0);
            last_at = r.at;
          }
          return static_cast<int>(seen.size()) >= n;
        },
        limit);
    run.deliver_s = Seconds(std::chrono::steady_clock::now() - t0).count();
    run.received = static_cast<int>(seen.size());
    return run;
  };

  Run small = deliver(1, kSmall, 120s);
  Run large = deliver(2, big, 600s);
  EXPECT_EQ(small.received, kSmall);
  EXPECT_EQ(large.received, big) << "samples lost (or not delivered within the bound)";
  EXPECT_EQ(small.out_of_order + large.out_of_order, 0) << "order per GPU not kept";
  // The floor: the same payloads POSTed one by one from here, over one connection.
  const size_t n_direct = std::min<size_t>(large.bodies.size(), 2000);
  const std::vector<std::string> direct_bodies(large.bodies.begin(),
                                               large.bodies.begin() + n_direct);
  const double direct_s = PostDirectly(sim_->base_url() + metrics_path, direct_bodies);

  auto rate = [](const Run& r) { return r.deliver_s > 0 ? r.received / r.deliver_s : NAN; };
  // Once the agent has noticed the recovery: from its first delivery to its last.
  auto stream_rate = [](const Run& r) {
    return r.deliver_s > r.first_s ? (r.received - 1) / (r.deliver_s - r.first_s) : NAN;
  };
  Report("== delivery of buffered metric samples after an outage of the metrics endpoint ==");
  Report("  (one request a sample; metrics_push_interval 2 s in the bench's config)");
  for (const Run* r : {&small, &large}) {
    Report(
        Fmt("  %6.0f samples: buffered in %.2f s; all delivered %.2f s after the recovery = "
            "%.0f samples/s; %.0f duplicates, %.0f out of order per GPU",
            r->samples, r->insert_s, r->deliver_s, rate(*r), r->duplicates, r->out_of_order));
    Report(
        Fmt("          first one after %.2f s, then %.0f samples/s; gap between deliveries "
            "p50 %.1f ms, p99 %.1f ms, max %.0f ms",
            r->first_s, stream_rate(*r), Percentile(r->gaps_ms, 50), Percentile(r->gaps_ms, 99),
            r->gaps_ms.empty() ? NAN : *std::max_element(r->gaps_ms.begin(), r->gaps_ms.end())));
  }
  const double direct_rate = n_direct / direct_s;
  Report(Fmt("  direct POST of %.0f of the same payloads from the bench: %.2f s = %.0f samples/s",
             static_cast<double>(n_direct), direct_s, direct_rate));
  Report(
      Fmt("  ratio %.0f / 100 samples: rate %.2f, after the first delivery %.2f; agent rate / "
          "direct POST rate: %.3f (%.0f samples)",
          big, Ratio(rate(large), rate(small)), Ratio(stream_rate(large), stream_rate(small)),
          Ratio(rate(large), direct_rate), big));
  Report("  live samples the agent took meanwhile and delivered in between: " +
         std::to_string(small.live + large.live));
}

// The disk quota's measurement (issue 7, item 4): one round is one GET /containers/json?size=true
// for every rental; its cost for N containers that each wrote 8 MiB, against a plain list call
// of the same containers (the baseline), same run, same dockerd.
TEST_F(AgentBench, DiskQuotaMeasurementRound) {
  const int n = EnvInt("TAOLIE_BENCH_DISK_CONTAINERS", 8);
  const int rounds = 5;
  const std::map<std::string, std::string> labels = {{"taolie.managed", "true"},
                                                     {"taolie.bench", "disk"}};
  const std::string image = registry_ + "/taolie-test/busybox:1";
  ASSERT_TRUE(docker_->Pull(image, {}, {}).ok());
  for (int i = 0; i < n; ++i) {
    docker::ContainerSpec c;
    c.name = "taolie-bench-disk-" + std::to_string(i);
    c.image = image;
    c.labels = labels;
    c.cmd = std::vector<std::string>{
        "sh", "-c", "dd if=/dev/zero of=/fill bs=1M count=8 2>/dev/null; sleep 600"};
    auto id = docker_->Create(c);
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    ASSERT_TRUE(docker_->Start(*id).ok());
  }
  // Every container has written its 8 MiB (bounded wait).
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        auto sizes = docker_->WritableLayerSizes(labels);
        if (!sizes.ok() || static_cast<int>(sizes->size()) != n) return false;
        for (const auto& [id, bytes] : *sizes) {
          if (bytes < (int64_t{8} << 20)) return false;
        }
        return true;
      },
      60s));
  std::vector<double> list_ms, sizes_ms;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(docker_->List(labels).ok());
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_TRUE(docker_->WritableLayerSizes(labels).ok());
    auto t2 = std::chrono::steady_clock::now();
    list_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    sizes_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  // The rentals' bind volumes are walked too (host::HostProbe::TreeBytes): one volume of
  // `files` small files, timed the same way.
  const int files = EnvInt("TAOLIE_BENCH_VOLUME_FILES", 20000);
  char tmpl[] = "/tmp/taolie-bench-volume-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string vol = tmpl;
  struct Cleanup {
    std::string path;
    ~Cleanup() { std::filesystem::remove_all(path); }
  } cleanup{vol};
  for (int i = 0; i < files; ++i) {
    const std::string sub = vol + "/d" + std::to_string(i / 1000);
    if (i % 1000 == 0) {
      ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
    }
    std::ofstream(sub + "/f" + std::to_string(i)) << "x";
  }
  auto probe = host::LinuxHostProbe::Create({});
  std::vector<double> walk_ms;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto tree = probe->TreeBytes(vol, 200000);
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_TRUE(tree.ok()) << tree.error().message;
    ASSERT_FALSE(tree->truncated);
    walk_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  Report("== disk quota measurement: one round for all rentals ==");
  Report(Fmt("  %.0f containers, 8 MiB written each, %.0f rounds", n, rounds));
  Report(Fmt("  list (baseline):         p50 %.1f ms, max %.1f ms", Percentile(list_ms, 50),
             *std::max_element(list_ms.begin(), list_ms.end())));
  Report(Fmt("  list with sizes (round): p50 %.1f ms, max %.1f ms; ratio p50 %.1f",
             Percentile(sizes_ms, 50), *std::max_element(sizes_ms.begin(), sizes_ms.end()),
             Ratio(Percentile(sizes_ms, 50), Percentile(list_ms, 50))));
  Report(Fmt("  one volume of %.0f files walked: p50 %.1f ms, max %.1f ms; ratio p50 %.1f", files,
             Percentile(walk_ms, 50), *std::max_element(walk_ms.begin(), walk_ms.end()),
             Ratio(Percentile(walk_ms, 50), Percentile(list_ms, 50))));
}

}  // namespace
}  // namespace taolie::testing
