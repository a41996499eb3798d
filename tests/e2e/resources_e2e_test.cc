// Admission totals and the disk quota (issue 7, item 4), end to end on the real dockerd: the
// third of three rentals each asking 45% of the host's RAM is refused; a rental writing past
// its disk quota is warned and then ended with terminated/failed/disk_quota (measured, where
// the storage driver refuses StorageOpt).
#include <gtest/gtest.h>

#include <fstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

uint64_t HostRamBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

class ResourcesTest : public AgentE2eTest {
 protected:
  json Payload(const std::string& id) {
    return {{"deployment_id", id}, {"image", SshImage()}, {"duration_minutes", 10},
            {"gpu_count", 0},      {"cpu_limit", 0.25},   {"ports", {{"22", 22}}}};
  }
  std::string Docker(const std::string& args) {
    return Shell("docker -H " + docker_host_ + " " + args);
  }
};

TEST_F(ResourcesTest, TheThirdOfThreeRentalsAsking45PercentOfRamIsRefused) {
  StartAgent();
  const uint64_t ram = HostRamBytes();
  ASSERT_GT(ram, 0u);
  const int64_t mb = static_cast<int64_t>(ram * 45 / 100 / (uint64_t{1} << 20));
  std::cout << "# host RAM " << (ram >> 20) << " MiB; each rental asks memory_limit_mb " << mb
            << "\n";
  for (const char* id : {"mem-1", "mem-2", "mem-3"}) {
    json p = Payload(id);
    p["memory_limit_mb"] = mb;
    sim_->QueueCommand(agent_id_, "deploy", p.dump());
  }
  // Admission is serialised: whichever two come first run, the third is refused.
  json failed;
  std::string refused_id;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        for (const char* id : {"mem-1", "mem-2", "mem-3"}) {
          if (auto ev = sim_->Events(id, "failed"); !ev.empty()) {
            failed = json::parse(ev.front());
            refused_id = id;
            return true;
          }
        }
        return false;
      },
      120s));
  std::cout << "# refused " << refused_id << ": " << failed.dump() << "\n";
  EXPECT_EQ(failed["stage"], "validate");
  const std::string error = failed.value("error", "");
  EXPECT_EQ(error.rfind("memory: " + std::to_string(mb) + " MiB (45% of RAM) requested but ", 0),
            0u)
      << error;
  EXPECT_NE(error.find("(90% of RAM) is already committed to rentals (at most 90% may be)"),
            std::string::npos)
      << error;
  for (const char* id : {"mem-1", "mem-2", "mem-3"}) {
    if (id == refused_id) continue;
    EXPECT_FALSE(WaitEvent(id, "success", 120s).is_null()) << id;
    std::string limit = Docker(std::string("inspect -f '{{.HostConfig.Memory}}' deployment-") + id);
    EXPECT_EQ(limit, std::to_string(mb << 20) + "\n") << id;
  }
  EXPECT_TRUE(Containers(refused_id).empty());
}

TEST_F(ResourcesTest, ARentalWritingPastItsDiskQuotaIsWarnedThenEnded) {
  StartAgent();
  json p = Payload("disk-1");
  p["disk_mb"] = 20;
  sim_->QueueCommand(agent_id_, "deploy", p.dump());
  ASSERT_FALSE(WaitEvent("disk-1", "success", 120s).is_null());
  const std::string c = "deployment-disk-1";
  // StorageOpt was tried first. overlay2 needs xfs with pquota for it; on any other backing
  // filesystem dockerd refuses it, the create is made again without, and the quota is measured.
  const std::string backing = Docker("info -f '{{json .DriverStatus}}'");
  const std::string storage_opt = Docker("inspect -f '{{json .HostConfig.StorageOpt}}' " + c);
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  std::cout << "# driver status " << backing << "# HostConfig.StorageOpt " << storage_opt
            << "# status disk_quota " << st["disk_quota"].dump() << "\n";
  if (backing.find("\"extfs\"") != std::string::npos) {
    EXPECT_EQ(st["disk_quota"]["storage_opt"], "refused");
    EXPECT_EQ(storage_opt, "null\n");
  } else if (st["disk_quota"]["storage_opt"] == "supported") {
    EXPECT_NE(storage_opt.find("\"size\":\"20971520\""), std::string::npos) << storage_opt;
  }
  // 18.5 MiB: past 90% of 20 MiB, under 20 MiB.
  std::string out =
      Docker("exec " + c + " sh -c 'dd if=/dev/zero of=/fill1 bs=512K count=37 2>&1; sync'");
  std::cout << "# dd 18.5 MiB: " << out;
  std::string warning;
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [&] {
        warning = Docker("exec " + c + " cat /run/taolie/disk 2>/dev/null");
        return !warning.empty();
      },
      30s))
      << Tail(agent_->Log(), 3000);
  std::cout << "# /run/taolie/disk: " << warning;
  EXPECT_NE(warning.find("of its 20 MiB disk quota"), std::string::npos) << warning;
  EXPECT_TRUE(sim_->Events("disk-1", "terminated").empty());

  out = Docker("exec " + c + " sh -c 'dd if=/dev/zero of=/fill2 bs=1M count=4 2>&1; sync'");
  std::cout << "# dd 4 MiB more: " << out;
  json ended = WaitEvent("disk-1", "terminated", 60s);
  ASSERT_FALSE(ended.is_null()) << Tail(agent_->Log(), 3000);
  std::cout << "# terminated: " << ended.dump() << "\n";
  EXPECT_EQ(ended["status"], "failed");
  EXPECT_EQ(ended["reason"], "disk_quota");
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return Containers("disk-1").empty(); }, 30s));
}

}  // namespace
}  // namespace taolie::testing
