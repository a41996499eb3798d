// The agent without its database (issue 6, items 6 and 7), end to end: PostgreSQL stopped
// while a rental expires, and the database lost while a rental runs. The agent uses an
// external PostgreSQL (a private cluster this test starts and stops).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "common/time_format.h"
#include "e2e/agent_harness.h"
#include "store/managed_postgres.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class DatabaseTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char tmpl[] = "/tmp/taolie-e2e-pg-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ::chmod(dir_.c_str(), 0755);
  }
  void TearDown() override {
    AgentE2eTest::TearDown();
    pg_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Starts (or restarts) the external PostgreSQL under dir_/<name>.
  void StartPostgres(const std::string& name) {
    store::ManagedPostgres::Options o;
    o.data_dir = dir_ + "/" + name;
    o.durable = false;
    auto pg = store::ManagedPostgres::Start(o);
    ASSERT_TRUE(pg.ok()) << pg.error().ToString();
    pg_ = std::move(*pg);
  }
  std::string DatabaseYaml(const std::string& name) const {
    std::string password = ReadFile(dir_ + "/" + name + "/pg-password");
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
    return "database:\n  mode: external\n  host: " + pg_->SocketDir() +
           "\n  port: 5432\n  name: " + store::ManagedPostgres::kDatabaseName +
           "\n  user: " + store::ManagedPostgres::kSuperuser + "\n  password: \"" + password +
           "\"\n  connect_timeout: 2\n";
  }
  std::unique_ptr<store::PgStore> OpenDb() {
    auto s = store::PgStore::Create(pg_->ConnInfo());
    return s.ok() ? std::move(*s) : nullptr;
  }
  json Status() { return json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false); }

  std::string dir_;
  std::unique_ptr<store::ManagedPostgres> pg_;
};

// PostgreSQL stops 5 s into a one-minute rental: the agent still warns and stops it on time,
// from memory and Docker; when PostgreSQL is back, the ending is written and `terminated`
// arrives, billed to the stop.
TEST_F(DatabaseTest, ARentalExpiresOnTimeWhilePostgresIsDown) {
  StartPostgres("pg");
  HarnessOptions o;
  o.database_yaml = DatabaseYaml("pg");
  StartAgent(o);
  sim_->QueueCommand(agent_id_, "deploy",
                     json{{"deployment_id", "pgdown-1"},
                          {"image", SshImage()},
                          {"duration_minutes", 1},
                          {"ports", {{"22", 22}}}}
                         .dump());
  json ok = WaitEvent("pgdown-1", "success", 120s);
  ASSERT_FALSE(ok.is_null());
  const auto ready = Steady::now();
  const std::string container = ok["container_id"];
  std::this_thread::sleep_for(2s);  // a few monitor rounds remember the rental
  ASSERT_TRUE(pg_->Stop().ok());
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        json st = Status();
        return st.is_object() && st.value("database", "") == "unavailable";
      },
      20s));

  // Stopped on time without the database: not before the minute is up, within grace + slack.
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        auto info = docker_->Inspect(container);
        return info.ok() && !info->running;
      },
      90s))
      << "the rental was not stopped while PostgreSQL was down";
  const auto stopped_after = Steady::now() - ready;
  EXPECT_GT(stopped_after, 50s);
  EXPECT_LT(stopped_after, 60s + 3s + 10s);
  json st = Status();
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["without_database"]["expiries"], 1) << st.dump();
  EXPECT_EQ(st["without_database"]["warnings"], 1) << st.dump();
  EXPECT_TRUE(sim_->Events("pgdown-1", "terminated").empty());  // nothing to tell it from yet

  StartPostgres("pg");  // back, with the same data
  json ended = WaitEvent("pgdown-1", "terminated", 60s);
  ASSERT_FALSE(ended.is_null());
  EXPECT_EQ(ended["status"], "expired") << ended.dump();
  EXPECT_GE(ended["used_minutes"].get<double>(), 0.9) << ended.dump();
  EXPECT_LE(ended["used_minutes"].get<double>(), 1.0) << ended.dump();
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return Containers("pgdown-1").empty(); }, 30s));
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto row = db->GetDeployment("pgdown-1");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->end_status, "expired");
  EXPECT_TRUE((*row)->warned_at.has_value()) << "the warning given without the database is kept";
}

// The database is lost (SIGKILL, then a new empty cluster) while a rental runs: the restarted
// agent keeps its identity from the container's labels, adopts the rental, never offers its
// GPU, and ends it on its deadline with `terminated`.
TEST_F(DatabaseTest, AfterTheDatabaseIsLostTheRentalIsAdoptedAndEndsOnTime) {
  StartPostgres("first");
  HarnessOptions o;
  o.database_yaml = DatabaseYaml("first");
  StartAgent(o);
  const std::string first_id = agent_id_;
  sim_->QueueCommand(agent_id_, "deploy",
                     json{{"deployment_id", "lost-1"},
                          {"image", SshImage()},
                          {"duration_minutes", 2},
                          {"gpu_count", 1},
                          {"price_per_hour", 6.0},
                          {"ports", {{"22", 22}}}}
                         .dump());
  json ok = WaitEvent("lost-1", "success", 120s);
  ASSERT_FALSE(ok.is_null());
  const auto ready = Steady::now();
  agent_->Kill();
  ASSERT_TRUE(pg_->Stop().ok());
  pg_.reset();
  std::filesystem::remove_all(dir_ + "/first");
  StartPostgres("second");  // empty: no agent id, no rows
  agent_->set_database_yaml(DatabaseYaml("second"));
  const int heartbeats = sim_->CountHeartbeats();
  agent_->Start();

  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        auto row = db->GetDeployment("lost-1");
        return row.ok() && row->has_value() && (*row)->state == domain::DeploymentState::kRunning;
      },
      60s))
      << "the running rental was not adopted\n"
      << Tail(agent_->Log(), 4000);
  EXPECT_EQ(db->GetState("agent_id")->value_or(""), first_id) << "identity not kept";
  auto gpus = db->ListGpus();
  ASSERT_TRUE(gpus.ok());
  int claimed = 0;
  for (const auto& g : *gpus) claimed += g.deployment_id == "lost-1" ? 1 : 0;
  EXPECT_EQ(claimed, 1);
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->CountHeartbeats() > heartbeats; }, 30s));
  EXPECT_EQ(sim_->LatestRegistration().has_value() &&
                json::parse(*sim_->LatestRegistration()).value("host_agent_id", "") == first_id,
            true);

  // Its GPU is not offered: a deploy that needs both GPUs fails.
  sim_->QueueCommand(first_id, "deploy",
                     json{{"deployment_id", "lost-2"},
                          {"image", SshImage()},
                          {"gpu_count", 2},
                          {"ports", {{"22", 22}}}}
                         .dump());
  json refused = WaitEvent("lost-2", "failed", 60s);
  ASSERT_FALSE(refused.is_null());

  // Still the renter's until its deadline; then `terminated`, billed about two minutes.
  auto info = docker_->Inspect(ok["container_id"]);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->running);
  json ended = WaitEvent("lost-1", "terminated", 150s);
  ASSERT_FALSE(ended.is_null());
  const auto ended_after = Steady::now() - ready;
  EXPECT_GT(ended_after, 110s);
  EXPECT_LT(ended_after, 120s + 3s + 15s);
  EXPECT_EQ(ended["status"], "expired") << ended.dump();
  EXPECT_GE(ended["used_minutes"].get<double>(), 1.9) << ended.dump();
  EXPECT_LE(ended["used_minutes"].get<double>(), 2.0) << ended.dump();
  EXPECT_NEAR(ended.value("usage_amount", 0.0), 0.2, 0.011) << ended.dump();
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return Containers("lost-1").empty(); }, 30s));
}

// Issue 17 items 2 and 3: an image that switches the NVIDIA toolkit's device features on
// (ENV NVIDIA_MOFED=enabled NVIDIA_GDS=enabled) and carries the agent's labels (LABEL
// taolie.price_per_hour=1000000, a far taolie.expires_at). Its unpriced rental runs with every
// switch off and the agent's own labels; a payload that sets a switch is refused; and after the
// database is lost the adopted rental has no price, so it ends without a bill.
TEST_F(DatabaseTest, AnImagesToolkitSwitchesAndLabelsNeverReachTheRentalNorItsAdoption) {
  StartPostgres("first");
  HarnessOptions o;
  o.database_yaml = DatabaseYaml("first");
  StartAgent(o);
  const std::string image = registry_ + "/taolie-test/sshd-forged:1";

  const std::string refused_cmd =
      sim_->QueueCommand(agent_id_, "deploy",
                         json{{"deployment_id", "forged-0"},
                              {"image", image},
                              {"gpu_count", 0},
                              {"environment", {{"NVIDIA_GDS", "enabled"}}}}
                             .dump());
  json refused = Ack(refused_cmd, 60s);
  ASSERT_TRUE(refused.is_object()) << "deploy not acked";
  EXPECT_EQ(refused["result"], "rejected") << refused.dump();
  EXPECT_NE(refused.value("error", "").find("'NVIDIA_GDS' is not allowed"), std::string::npos)
      << refused.dump();
  EXPECT_TRUE(Containers("forged-0").empty());

  sim_->QueueCommand(agent_id_, "deploy",
                     json{{"deployment_id", "forged-1"},
                          {"image", image},
                          {"duration_minutes", 30},
                          {"gpu_count", 1},
                          {"ports", {{"22", 22}}}}
                         .dump());
  json ok = WaitEvent("forged-1", "success", 120s);
  ASSERT_FALSE(ok.is_null()) << Tail(agent_->Log(), 4000);
  auto info = docker_->Inspect(ok["container_id"]);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  const auto& env = info->env;
  auto has = [&](const std::string& e) {
    return std::find(env.begin(), env.end(), e) != env.end();
  };
  for (const char* want :
       {"NVIDIA_MOFED=disabled", "NVIDIA_GDS=disabled", "NVIDIA_NVSWITCH=disabled",
        "NVIDIA_GDRCOPY=disabled", "NVIDIA_IMEX_CHANNELS="}) {
    EXPECT_TRUE(has(want)) << want << " not in the container's env";
  }
  EXPECT_FALSE(has("NVIDIA_MOFED=enabled"));
  EXPECT_FALSE(has("NVIDIA_GDS=enabled"));
  // What the container's processes see (the runtime's env), not only the create request.
  auto seen = docker_->Exec(info->id, {"sh", "-c", "echo \"$NVIDIA_MOFED/$NVIDIA_GDS\""}, 10s);
  ASSERT_TRUE(seen.ok()) << seen.error().ToString();
  EXPECT_EQ(seen->output.substr(0, seen->output.find('\n')), "disabled/disabled");
  ASSERT_EQ(info->labels.count("taolie.price_per_hour"), 1u);
  EXPECT_EQ(info->labels.at("taolie.price_per_hour"), "") << "the image's price survived";
  const auto deadline = ParseTimestamp(ok["expires_at"].get<std::string>());
  ASSERT_TRUE(deadline.has_value()) << ok.dump();
  // The label is written at create; the rental's clock starts at readiness, seconds later.
  const auto labelled = ParseTimestamp(info->labels.at("taolie.expires_at"));
  ASSERT_TRUE(labelled.has_value()) << info->labels.at("taolie.expires_at");
  EXPECT_LT(std::chrono::abs(*deadline - *labelled), std::chrono::minutes(2))
      << "not the agent's deadline: " << info->labels.at("taolie.expires_at");

  // The database is lost; the restarted agent adopts the rental from its labels, without a
  // price.
  agent_->Kill();
  ASSERT_TRUE(pg_->Stop().ok());
  pg_.reset();
  std::filesystem::remove_all(dir_ + "/first");
  StartPostgres("second");
  agent_->set_database_yaml(DatabaseYaml("second"));
  agent_->Start();
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  std::optional<domain::Deployment> adopted;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        auto row = db->GetDeployment("forged-1");
        if (!row.ok() || !row->has_value()) return false;
        adopted = **row;
        return adopted->state == domain::DeploymentState::kRunning;
      },
      60s))
      << "the running rental was not adopted\n"
      << Tail(agent_->Log(), 4000);
  EXPECT_FALSE(adopted->price_per_hour.has_value()) << *adopted->price_per_hour;
  EXPECT_EQ(adopted->expires_at, labelled) << "the deadline is the agent's label";

  sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", "forged-1"}}.dump());
  json ended = WaitEvent("forged-1", "terminated", 60s);
  ASSERT_FALSE(ended.is_null()) << Tail(agent_->Log(), 4000);
  EXPECT_EQ(ended["status"], "terminated") << ended.dump();
  EXPECT_FALSE(ended.contains("price_per_hour")) << ended.dump();
  EXPECT_FALSE(ended.contains("usage_amount")) << ended.dump();
}

}  // namespace
}  // namespace taolie::testing
