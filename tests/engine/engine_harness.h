#pragma once
// The rental engine on fakes: FakeStore, FakeDocker, fake GPU/host/readiness seams, a strict
// platform and a FakeClock. Tests drive the parts directly (no loop threads) and never sleep.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "engine/rental_engine.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"

namespace taolie::testing {

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    cfg.network.ports.ssh = 22022;
    cfg.network.ports.rental_port_1 = 28888;
    cfg.network.ports.rental_port_2 = 0;
    cfg.network.port_range.first = 40000;
    cfg.network.port_range.last = 40100;
    cfg.deployment.stop_grace_seconds = 30;
    cfg.deployment.readiness_timeout_seconds = 120;
    cfg.deployment.expiry_warning_seconds = 300;
    cfg.deployment.allowed_registries = {"registry.local"};  // the tests' images (no DNS here)
    store.AddGpu("GPU-a");
    store.AddGpu("GPU-b");
  }
  void SetUp() override { Build(); }
  void Build(engine::RentalEngineOptions opts = {1, 1}) {
    engine.reset();
    rt = std::make_unique<runtime::Runtime>("agent-1", "test", TimestampFormat::kRfc3339);
    engine = std::make_unique<engine::RentalEngine>(
        runtime::Deps{cfg, store, docker, gpus, host, api, clock, {}}, *rt, probe, opts);
  }
  void TearDown() override {
    if (engine) engine->Shutdown();
  }

  // Records a command as the poll loop does and returns it.
  store::CommandRecord Command(const std::string& id, const std::string& type,
                               nlohmann::json payload) {
    store::CommandRecord c;
    c.command_id = id;
    c.command_type = type;
    c.payload_json = payload.dump();
    c.received_at = clock.Now();
    EXPECT_TRUE(store.RecordCommand(c).ok());
    return c;
  }
  static nlohmann::json Deploy(const std::string& id, int minutes = 60) {
    return {{"deployment_id", id},
            {"image", "registry.local/sshd:1"},
            {"duration_minutes", minutes},
            {"gpu_count", 1},
            {"ports", {{"22", 22}, {"8888", 8888}}},
            {"price_per_hour", 1.20}};
  }
  // Processes a deploy on the test thread, to its end.
  void DeployNow(const std::string& id, int minutes = 60) {
    auto c = Command("cmd-" + id, "deploy", Deploy(id, minutes));
    engine->commands().Process(c, std::stop_token());
  }
  std::string Result(const std::string& command_id) {
    auto c = store.GetCommand(command_id);
    return c.ok() && c->has_value() ? (*c)->result : "<none>";
  }
  bool Idle() { return engine->work().WaitIdle(std::chrono::seconds(10)); }

  config::Config cfg;
  FakeStore store;
  FakeDocker docker;
  FakeGpuProbe gpus;
  FakeHostProbe host;
  StrictPlatformApi api;
  FakeClock clock;
  FakeReadinessProbe probe;
  std::unique_ptr<runtime::Runtime> rt;
  std::unique_ptr<engine::RentalEngine> engine;
};

}  // namespace taolie::testing
