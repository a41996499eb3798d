// Adoption from a container's labels after the database was lost (issue 17 item 3): a price
// the agent did not write is never taken, and labels that disagree with what Docker reports
// about the container are not trusted.
#include "engine/adoption.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/container_spec.h"

namespace taolie::engine {
namespace {

config::PortsConfig Ports() {
  config::PortsConfig p;
  p.ssh = 22022;
  p.rental_port_1 = 28888;
  p.rental_port_2 = 29999;
  return p;
}

// A running container as the agent creates it: every label, DEPLOYMENT_ID, its GPU.
docker::ContainerInfo Rental() {
  docker::ContainerInfo c;
  c.id = "c1";
  c.name = "deployment-d1";
  c.image = "registry.local/sshd:1";
  c.state = "running";
  c.running = true;
  c.labels = {{kLabelManaged, "true"},
              {kLabelAgent, "agent-1"},
              {kLabelDeployment, "d1"},
              {kLabelCommand, "cmd-1"},
              {kLabelGpus, "GPU-a"},
              {kLabelDuration, "60"},
              {kLabelExpires, "2023-11-14T22:13:20.000000Z"},
              {kLabelPrice, ""}};
  c.env = {"DEPLOYMENT_ID=d1", "SSH_USERNAME=gpu-user", "NVIDIA_VISIBLE_DEVICES=GPU-a"};
  c.device_request_ids = {"GPU-a"};
  c.ports = {{22, "tcp", "127.0.0.1", 22022}};
  return c;
}

TEST(Adoption, ARentalAsTheAgentMadeItIsAdopted) {
  auto d = DeploymentFromContainer(Rental(), Ports());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->id, "d1");
  EXPECT_EQ(d->command_id, "cmd-1");
  EXPECT_EQ(d->gpu_uuids, std::vector<std::string>{"GPU-a"});
  EXPECT_EQ(d->duration_minutes, 60);
  EXPECT_FALSE(d->price_per_hour.has_value()) << "an empty price label is no price";
  ASSERT_EQ(d->ports.size(), 1u);
  EXPECT_EQ(d->ports[0].role, "ssh");
}

struct PriceCase {
  const char* name;
  std::optional<std::string> label;  // nullopt: no label (a container of an older agent)
  std::optional<double> price;
};

TEST(Adoption, APriceIsTakenOnlyWhenItIsOneTheAgentWrites) {
  const PriceCase cases[] = {
      {"empty", "", std::nullopt},
      {"absent", std::nullopt, std::nullopt},
      {"priced", "1.25", 1.25},
      {"zero", "0", 0.0},
      {"negative", "-1", std::nullopt},
      {"text", "free", std::nullopt},
      {"trailing", "1.5 EUR", std::nullopt},
      {"leading_space", " 1.5", std::nullopt},
      {"infinite", "inf", std::nullopt},
      {"nan", "nan", std::nullopt},
      {"overflow", "1e999", std::nullopt},
  };
  for (const auto& c : cases) {
    auto info = Rental();
    if (c.label) {
      info.labels[kLabelPrice] = *c.label;
    } else {
      info.labels.erase(kLabelPrice);
    }
    auto d = DeploymentFromContainer(info, Ports());
    ASSERT_TRUE(d.ok()) << c.name << ": " << d.error().ToString();
    EXPECT_EQ(d->price_per_hour, c.price) << c.name;
    EXPECT_EQ(PriceFromLabel(c.label.value_or("")), c.price) << c.name;
  }
}

struct RefuseCase {
  const char* name;
  std::function<void(docker::ContainerInfo&)> change;
  std::string reason_contains;
};

TEST(Adoption, LabelsThatDisagreeWithTheContainerAreNotTrusted) {
  const RefuseCase cases[] = {
      {"no_deadline", [](auto& c) { c.labels[kLabelExpires] = ""; }, "no valid expires_at label"},
      {"no_duration", [](auto& c) { c.labels[kLabelDuration] = ""; }, "no valid duration label"},
      {"no_command", [](auto& c) { c.labels[kLabelCommand] = ""; }, "no command id label"},
      {"gpu_not_held", [](auto& c) { c.device_request_ids.clear(); },
       "gpus label 'GPU-a' is not the GPUs the container holds"},
      {"other_gpu_held", [](auto& c) { c.device_request_ids = {"GPU-b"}; },
       "is not the GPUs the container holds"},
      {"gpu_unlabelled", [](auto& c) { c.labels[kLabelGpus] = ""; },
       "gpus label '' is not the GPUs"},
      {"privileged", [](auto& c) { c.privileged = true; }, "container is privileged"},
      {"env_other_deployment",
       [](auto& c) {
         c.env = {"DEPLOYMENT_ID=d2", "NVIDIA_VISIBLE_DEVICES=GPU-a"};
       },
       "env DEPLOYMENT_ID is not its deployment"},
      {"env_missing", [](auto& c) { c.env.clear(); }, "env DEPLOYMENT_ID"},
      {"wrong_name", [](auto& c) { c.name = "my-own-container"; }, "is not deployment-d1"},
      {"stopped",
       [](auto& c) {
         c.running = false;
         c.state = "exited";
       },
       "container is exited"},
  };
  for (const auto& c : cases) {
    auto info = Rental();
    c.change(info);
    auto d = DeploymentFromContainer(info, Ports());
    ASSERT_FALSE(d.ok()) << c.name;
    EXPECT_NE(d.error().message.find(c.reason_contains), std::string::npos)
        << c.name << ": got '" << d.error().message << "'";
  }
}

TEST(Adoption, GpusInAnotherOrderAreTheSameGpus) {
  auto info = Rental();
  info.labels[kLabelGpus] = "GPU-a,GPU-b";
  info.device_request_ids = {"GPU-b", "GPU-a"};
  auto d = DeploymentFromContainer(info, Ports());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->gpu_uuids, (std::vector<std::string>{"GPU-a", "GPU-b"}));
}

}  // namespace
}  // namespace taolie::engine
