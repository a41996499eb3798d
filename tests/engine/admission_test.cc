// Admission is pure: a spec and the host's state in, a plan or a refusal out.
#include "engine/admission.h"

#include <gtest/gtest.h>

namespace taolie::engine {
namespace {

using domain::GpuHealthState;

rules::DeploySpec Spec(int gpus) {
  rules::DeploySpec s;
  s.deployment_id = "d1";
  s.gpu_count = gpus;
  s.ports = {{22, 22}, {8888, 8888}};
  return s;
}

struct Host {
  config::DeploymentConfig cfg;
  AdmissionInput in;
  Host() {
    in.gpus = {{"GPU-a", true, GpuHealthState::kHealthy, ""},
               {"GPU-b", true, GpuHealthState::kWarning, ""},
               {"GPU-c", true, GpuHealthState::kUnhealthy, ""},
               {"GPU-d", false, GpuHealthState::kHealthy, ""},
               {"GPU-e", true, GpuHealthState::kHealthy, "other"}};
    in.capacity = rules::HostCapacity{uint64_t{64} << 30, 16, 0};
    in.deployment = &cfg;
    in.named = rules::NamedPorts{22022, 28888, 0};
    in.range = rules::PortRangeSpec{40000, 40009};
  }
};

TEST(Admission, RefusedWhileTheHostCannotIsolateRentals) {
  Host h;
  rules::DeploySpec s = Spec(1);
  h.in.spec = &s;
  h.in.isolation_problem = "firewall: iptables: not installed";
  auto plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(plan.error().message, "host cannot isolate rentals: firewall: iptables: not installed");
  h.in.isolation_problem.clear();
  EXPECT_TRUE(Admit(h.in).ok());
}

TEST(Admission, CountsOnlyPresentFreeRentableGpus) {
  struct Case {
    int want;
    bool ok;
  } cases[] = {{0, true}, {1, true}, {2, true}, {3, false}};
  for (const auto& c : cases) {
    Host h;
    rules::DeploySpec s = Spec(c.want);
    h.in.spec = &s;
    auto plan = Admit(h.in);
    EXPECT_EQ(plan.ok(), c.ok) << c.want;
    if (!plan.ok()) {
      EXPECT_EQ(plan.error().code, ErrorCode::kFailedPrecondition);
      EXPECT_NE(plan.error().message.find("only 2 healthy GPU(s) are free"), std::string::npos);
    } else {
      EXPECT_EQ(plan->gpu_count, c.want);
    }
  }
}

TEST(Admission, NamedGpusMustBeHereFreeAndRentable) {
  struct Case {
    const char* uuid;
    const char* error;  // "" = admitted
  } cases[] = {{"GPU-a", ""},
               {"GPU-b", ""},
               {"GPU-c", "GPU-c is unhealthy"},
               {"GPU-d", "GPU-d is not on this host"},
               {"GPU-e", "GPU-e is rented"},
               {"GPU-z", "GPU-z is not on this host"}};
  for (const auto& c : cases) {
    Host h;
    rules::DeploySpec s = Spec(1);
    s.gpu_uuids = {c.uuid};
    h.in.spec = &s;
    auto plan = Admit(h.in);
    if (std::string(c.error).empty()) {
      ASSERT_TRUE(plan.ok()) << c.uuid << ": " << plan.error().message;
      EXPECT_EQ(plan->gpu_uuids, std::vector<std::string>{c.uuid});
    } else {
      ASSERT_FALSE(plan.ok()) << c.uuid;
      EXPECT_NE(plan.error().message.find(c.error), std::string::npos) << plan.error().message;
    }
  }
}

// A GPU released by an ended rental and not yet idle again is not free (issue 7, item 3).
TEST(Admission, DirtyGpusAreNeitherCountedNorClaimedByName) {
  Host h;
  h.in.gpus[0].dirty = true;  // GPU-a: only GPU-b is free now
  rules::DeploySpec two = Spec(2);
  h.in.spec = &two;
  auto plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("only 1 healthy GPU(s) are free"), std::string::npos)
      << plan.error().message;
  rules::DeploySpec one = Spec(1);
  h.in.spec = &one;
  EXPECT_TRUE(Admit(h.in).ok());
  rules::DeploySpec named = Spec(1);
  named.gpu_uuids = {"GPU-a"};
  h.in.spec = &named;
  plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(plan.error().message,
            "gpu_uuids: GPU-a is dirty: the last rental's processes or memory are still on it");
}

TEST(Admission, PortsSkipWhatTheDatabaseOrTheHostHolds) {
  Host h;
  rules::DeploySpec s = Spec(1);
  h.in.spec = &s;
  h.in.ports_in_db = {22022};                           // another rental's SSH port
  h.in.port_in_use = [](int p) { return p == 40000; };  // something else listens there
  auto plan = Admit(h.in);
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(plan->ports.size(), 2u);
  EXPECT_EQ(plan->ports[0].container_port, 22);
  EXPECT_EQ(plan->ports[0].host_port, 40001);
  EXPECT_EQ(plan->ports[1].host_port, 28888);
  EXPECT_EQ(plan->ports[1].role, "rental_port_1");
}

TEST(Admission, NoFreePortIsARefusal) {
  Host h;
  rules::DeploySpec s = Spec(1);
  h.in.spec = &s;
  h.in.port_in_use = [](int) { return true; };
  auto plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(plan.error().message.find("no free host port"), std::string::npos);
}

TEST(Admission, RequestsAboveTheHostCapAreRefusedNotClamped) {
  Host h;
  rules::DeploySpec s = Spec(1);
  s.memory_limit_mb = 1024 * 1024;  // 1 TiB on a 64 GiB host
  h.in.spec = &s;
  auto plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("memory"), std::string::npos) << plan.error().message;
  s.memory_limit_mb = 4096;
  plan = Admit(h.in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->limits.memory_bytes, int64_t{4096} << 20);
}

TEST(Admission, DeploymentIdentity) {
  domain::Deployment mine;
  mine.id = "d1";
  mine.command_id = "cmd-1";
  EXPECT_TRUE(CheckDeploymentIdentity("cmd-1", "d1", std::nullopt).ok());
  EXPECT_TRUE(CheckDeploymentIdentity("cmd-1", "d1", mine).ok());  // re-delivery or resume
  Status other = CheckDeploymentIdentity("cmd-2", "d1", mine);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(other.error().message.find("already belongs to another command"), std::string::npos);
}

}  // namespace
}  // namespace taolie::engine
