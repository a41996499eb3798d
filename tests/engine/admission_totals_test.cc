// Admission counts totals over the rentals already here: their number, the memory and CPUs
// committed to them, free disk; and each rental's disk quota.
#include <gtest/gtest.h>

#include "engine/admission.h"

namespace taolie::engine {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr uint64_t kRam = uint64_t{64} << 30;

struct Host {
  config::DeploymentConfig cfg;
  AdmissionInput in;
  Host() {
    in.gpus = {{"GPU-a", true, domain::GpuHealthState::kHealthy, ""}};
    in.capacity = rules::HostCapacity{kRam, 16, 0};
    in.deployment = &cfg;
    in.named = rules::NamedPorts{22022, 0, 0};
    in.range = rules::PortRangeSpec{40000, 40099};
  }
  // Admits `s` and, when admitted, counts it as the host's next running rental.
  Result<AdmissionPlan> Deploy(const rules::DeploySpec& s) {
    in.spec = &s;
    auto plan = Admit(in);
    if (plan.ok()) {
      in.committed.rentals++;
      in.committed.memory_bytes += plan->limits.memory_bytes;
      in.committed.nano_cpus += plan->limits.nano_cpus;
    }
    return plan;
  }
};

rules::DeploySpec CpuOnly() {
  rules::DeploySpec s;
  s.deployment_id = "d";
  s.gpu_count = 0;
  s.ports = {{22, 22}};
  return s;
}

rules::DeploySpec Small() {  // a small request: neither memory nor CPUs run out in these tests
  rules::DeploySpec s = CpuOnly();
  s.memory_limit_mb = 512;
  s.cpu_limit = 0.5;
  return s;
}

TEST(AdmissionTotals, TheThirdOfThreeRentalsAsking45PercentOfRamIsRefused) {
  Host h;
  ASSERT_DOUBLE_EQ(h.cfg.max_committed_share, 0.9);
  rules::DeploySpec s = CpuOnly();
  s.memory_limit_mb = static_cast<int64_t>(kRam * 45 / 100) / kMiB;
  s.cpu_limit = 1;
  ASSERT_TRUE(h.Deploy(s).ok());
  ASSERT_TRUE(h.Deploy(s).ok());
  auto third = h.Deploy(s);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(third.error().message,
            "memory: 29491 MiB (45% of RAM) requested but 58982 MiB (90% of RAM) is already "
            "committed to rentals (at most 90% may be)");
  EXPECT_EQ(h.in.committed.rentals, 2);
  // Once one ends, the next fits again.
  h.in.committed.rentals--;
  h.in.committed.memory_bytes -= *s.memory_limit_mb * kMiB;
  EXPECT_TRUE(h.Deploy(s).ok());
}

TEST(AdmissionTotals, CpuRequestsCountToo) {
  Host h;
  rules::DeploySpec s = CpuOnly();
  s.memory_limit_mb = 1024;
  s.cpu_limit = 7;
  ASSERT_TRUE(h.Deploy(s).ok());
  ASSERT_TRUE(h.Deploy(s).ok());  // 14 of 14.4 CPUs
  auto third = h.Deploy(s);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().message,
            "cpu: 7.00 CPUs (44% of the host's) requested but 14.00 CPUs (88% of the host's) is "
            "already committed to rentals (at most 90% may be)");
}

TEST(AdmissionTotals, DefaultSizesAreCutToWhatIsLeftThenRefused) {
  // A CPU-only rental on a host without GPUs is sized 85% of RAM and every CPU by default:
  // the first gets 85% and 90% of the CPUs (the share), the next nothing is left for.
  Host h;
  h.in.gpus.clear();
  rules::DeploySpec s = CpuOnly();
  auto first = h.Deploy(s);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->limits.memory_bytes, static_cast<int64_t>(kRam * 85 / 100) / kMiB * kMiB);
  EXPECT_EQ(first->limits.nano_cpus, int64_t{14'400'000'000});
  auto second = h.Deploy(s);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("cpu: 16.00 CPUs (100% of the host's) by default but"),
            std::string::npos)
      << second.error().message;

  // With CPU requests, the memory default of the second is cut to the 5% left.
  Host m;
  m.in.gpus.clear();
  s.cpu_limit = 0.5;
  first = m.Deploy(s);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto cut = m.Deploy(s);
  ASSERT_TRUE(cut.ok()) << cut.error().message;
  EXPECT_EQ(cut->limits.memory_bytes,
            static_cast<int64_t>(kRam * 9 / 10) / kMiB * kMiB - first->limits.memory_bytes);
  EXPECT_LE(cut->limits.shm_bytes, cut->limits.memory_bytes);
  auto none_left = m.Deploy(s);
  ASSERT_FALSE(none_left.ok());
  EXPECT_NE(none_left.error().message.find("memory: "), std::string::npos);
}

TEST(AdmissionTotals, MaxDeploymentsCountsRentals) {
  Host h;
  h.cfg.max_deployments = 2;
  rules::DeploySpec s = Small();
  ASSERT_TRUE(h.Deploy(s).ok());
  ASSERT_TRUE(h.Deploy(s).ok());
  auto third = h.Deploy(s);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().message,
            "max_deployments: 2 rental(s) already run here, the most this host takes is 2");
  h.cfg.max_deployments = 0;  // no limit
  EXPECT_TRUE(h.Deploy(s).ok());
}

TEST(AdmissionTotals, NoNewRentalWhileFreeDiskIsUnderTheMinimum) {
  Host h;
  h.cfg.min_free_disk_gb = 10;
  rules::DeploySpec s = Small();
  h.in.spec = &s;
  EXPECT_TRUE(Admit(h.in).ok());  // nothing known: nothing checked
  h.in.free_disk.docker_root_bytes = uint64_t{9} << 30;
  auto refused = Admit(h.in);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message,
            "disk: 9.0 GiB free on Docker's data root, under deployment.min_free_disk_gb 10");
  h.in.free_disk.docker_root_bytes = uint64_t{10} << 30;
  EXPECT_TRUE(Admit(h.in).ok());
  h.in.free_disk.database_bytes = uint64_t{1} << 29;
  refused = Admit(h.in);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message,
            "disk: 0.5 GiB free on the database's filesystem, under deployment.min_free_disk_gb "
            "10");
  h.cfg.min_free_disk_gb = 0;  // off
  EXPECT_TRUE(Admit(h.in).ok());
}

domain::Deployment Row(const rules::DeploySpec& s, domain::DeploymentState state) {
  domain::Deployment d;
  d.id = s.deployment_id;
  d.state = state;
  d.spec_json = rules::SpecToJson(s);
  return d;
}

TEST(AdmissionTotals, SumCommittedReadsWhatAdmissionGranted) {
  config::DeploymentConfig cfg;
  rules::HostCapacity host{kRam, 16, 1};
  rules::DeploySpec granted = CpuOnly();
  granted.admitted_memory_bytes = 1000 * kMiB;
  granted.admitted_nano_cpus = 2'000'000'000;
  rules::DeploySpec before = CpuOnly();  // a row from before admission recorded its grant
  before.memory_limit_mb = 2048;
  before.cpu_limit = 3;
  auto sum = SumCommitted({Row(granted, domain::DeploymentState::kRunning),
                           Row(before, domain::DeploymentState::kPulling),
                           Row(granted, domain::DeploymentState::kEnded)},
                          cfg, host);
  EXPECT_EQ(sum.rentals, 2);
  EXPECT_EQ(sum.memory_bytes, 3048 * kMiB);
  EXPECT_EQ(sum.nano_cpus, int64_t{5'000'000'000});
}

TEST(AdmissionTotals, AdmittedLimitsReplaceTheDefaultsComputedAgain) {
  rules::DeploySpec s = CpuOnly();
  rules::ResourceLimits computed{int64_t{8} << 30, 16'000'000'000, int64_t{1} << 30, 4096};
  EXPECT_EQ(AdmittedLimits(s, computed).memory_bytes, computed.memory_bytes);  // nothing recorded
  s.admitted_memory_bytes = 512 * kMiB;
  s.admitted_nano_cpus = 500'000'000;
  rules::ResourceLimits l = AdmittedLimits(s, computed);
  EXPECT_EQ(l.memory_bytes, 512 * kMiB);
  EXPECT_EQ(l.nano_cpus, 500'000'000);
  EXPECT_EQ(l.shm_bytes, 512 * kMiB);  // shm is charged to memory
  EXPECT_EQ(l.pids_limit, 4096);
}

TEST(AdmissionTotals, DiskQuotaFromConfigOrFromTheDisk) {
  config::DeploymentConfig cfg;
  const uint64_t disk = uint64_t{1000} << 30;
  EXPECT_EQ(HostDiskQuotaMb(cfg, disk, 0), 800 * 1024);
  EXPECT_EQ(HostDiskQuotaMb(cfg, disk, 4), 200 * 1024);
  EXPECT_EQ(HostDiskQuotaMb(cfg, 0, 4), 0);
  cfg.disk_quota_mb = 5000;
  EXPECT_EQ(HostDiskQuotaMb(cfg, disk, 4), 5000);
}

TEST(AdmissionTotals, DiskMbIsWithinTheHostQuota) {
  Host h;
  h.in.host_disk_quota_mb = 1000;
  rules::DeploySpec s = CpuOnly();
  s.cpu_limit = 1;
  h.in.spec = &s;
  auto plan = Admit(h.in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->disk_quota_mb, 1000);
  s.disk_mb = 20;
  plan = Admit(h.in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->disk_quota_mb, 20);
  s.disk_mb = 1001;
  plan = Admit(h.in);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().message, "disk_mb: 1001 exceeds this host's disk quota of 1000 MiB");
}

TEST(AdmissionTotals, PayloadDiskMbIsValidatedAndKept) {
  rules::ValidationLimits limits;
  limits.max_disk_mb = 100;
  auto ok = rules::ParseDeployPayload("c1", R"({"image":"ubuntu:22.04","disk_mb":20})", limits);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->disk_mb, 20);
  for (const char* bad : {R"({"disk_mb":0})", R"({"disk_mb":-5})", R"({"disk_mb":1.5})"}) {
    auto r = rules::ParseDeployPayload("c1", bad, limits);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message.rfind("disk_mb: ", 0), 0u) << r.error().message;
  }
  auto over = rules::ParseDeployPayload("c1", R"({"disk_mb":101})", limits);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().message, "disk_mb: 101 exceeds this host's disk quota of 100 MiB");

  rules::DeploySpec s = *ok;
  s.admitted_memory_bytes = 123 * kMiB;
  s.admitted_nano_cpus = 1'500'000'000;
  s.admitted_disk_mb = 20;
  auto back = rules::SpecFromJson(rules::SpecToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->disk_mb, 20);
  EXPECT_EQ(back->admitted_memory_bytes, 123 * kMiB);
  EXPECT_EQ(back->admitted_nano_cpus, 1'500'000'000);
  EXPECT_EQ(back->admitted_disk_mb, 20);
}

}  // namespace
}  // namespace taolie::engine
