#include "host/linux_host_probe.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace taolie::host {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  fs::rename(tmp, p);
}

std::string NetDev(uint64_t eth_rx, uint64_t eth_tx) {
  return "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
         "    lo: 999999 1 0 0 0 0 0 0 999999 1 0 0 0 0 0 0\n"
         "  eth0: " +
         std::to_string(eth_rx) + " 1 0 0 0 0 0 0 " + std::to_string(eth_tx) +
         " 1 0 0 0 0 0 0\n"
         "  eth1: 5000 1 0 0 0 0 0 0 7000 1 0 0 0 0 0 0\n";
}

// A fake /proc and /sys: 2 sockets x 2 cores, 16 GiB, storage on an HDD partition (8:1 = sda1).
class LinuxHostProbeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "taolie-host-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = fs::canonical(tmpl);
    proc_ = root_ / "proc";
    sys_ = root_ / "sys";
    storage_ = root_ / "storage";
    fs::create_directories(storage_);

    std::string cpuinfo;
    for (int i = 0; i < 4; ++i) {
      cpuinfo += "processor\t: " + std::to_string(i) + "\nmodel name\t: Test CPU 9000\n" +
                 "physical id\t: " + std::to_string(i / 2) +
                 "\ncore id\t\t: " + std::to_string(i % 2) + "\n\n";
    }
    Write(proc_ / "cpuinfo", cpuinfo);
    Write(proc_ / "meminfo",
          "MemTotal:       16777216 kB\nMemFree:  1000 kB\nMemAvailable:   12582912 kB\n");
    Write(proc_ / "stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 1 1 1\nbtime 1700000000\n");
    Write(proc_ / "uptime", "3600.50 7000.00\n");
    Write(proc_ / "net/dev", NetDev(1'000'000, 2'000'000));
    Write(proc_ / "net/route",
          "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
          "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n");
    Write(proc_ / "self/mountinfo",
          "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n"
          "40 22 8:1 / " +
              storage_.string() + " rw,relatime - ext4 /dev/sda1 rw\n");
    fs::path sda = sys_ / "devices/pci0000:00/0000:00:1f.2/block/sda";
    Write(sda / "sda1/partition", "1\n");
    Write(sda / "queue/rotational", "1\n");
    fs::create_directories(sys_ / "dev/block");
    fs::create_symlink("../../devices/pci0000:00/0000:00:1f.2/block/sda/sda1",
                       sys_ / "dev/block/8:1");
    Write(sys_ / "class/net/eth0/speed", "1000\n");
    Write(root_ / "os-release", "NAME=Test\nPRETTY_NAME=\"Test Linux 1 (fixture)\"\n");
    Write(root_ / "hostname", "gpu-host-07\n");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  LinuxHostProbe::Options Opts() {
    LinuxHostProbe::Options o;
    o.proc_root = proc_.string();
    o.sys_root = sys_.string();
    o.storage_path = storage_.string();
    o.os_release = (root_ / "os-release").string();
    o.hostname_file = (root_ / "hostname").string();
    o.steady_now = [this] { return now_; };
    return o;
  }

  fs::path root_, proc_, sys_, storage_;
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

TEST_F(LinuxHostProbeFixture, FactsFromFixtureTree) {
  auto probe = LinuxHostProbe::Create(Opts());
  auto f = probe->Facts();
  ASSERT_TRUE(f.ok()) << f.error().ToString();
  EXPECT_EQ(f->hostname, "gpu-host-07");
  EXPECT_EQ(f->os, "Test Linux 1 (fixture)");
  EXPECT_FALSE(f->kernel.empty());
  EXPECT_EQ(f->cpu_model, "Test CPU 9000");
  EXPECT_EQ(f->cpu_sockets, 2);
  EXPECT_EQ(f->cpu_cores, 4);
  EXPECT_EQ(f->cpu_logical, 4);
  EXPECT_EQ(f->ram_total_bytes, 16ull << 30);
  EXPECT_GT(f->storage_total_bytes, 0u);
  EXPECT_LE(f->storage_available_bytes, f->storage_total_bytes);
  EXPECT_EQ(f->storage_type, "HDD");
  EXPECT_DOUBLE_EQ(f->uptime_seconds, 3600.5);
  EXPECT_EQ(f->boot_time_unix, 1700000000);
}

TEST(WslDetection, FromTheKernelsReleaseOrVersion) {
  EXPECT_TRUE(IsWslKernel("5.15.153.1-microsoft-standard-WSL2\n", ""));
  EXPECT_TRUE(IsWslKernel("4.4.0-19041-Microsoft\n", ""));  // WSL1's (reported; not supported)
  EXPECT_TRUE(IsWslKernel("", "Linux version 5.15.90.1-microsoft-standard-WSL2 (gcc ...)"));
  EXPECT_FALSE(IsWslKernel("6.1.0-18-amd64\n", "Linux version 6.1.0-18-amd64 (debian-kernel)"));
  EXPECT_FALSE(IsWslKernel("", ""));
}

TEST_F(LinuxHostProbeFixture, UnderWslTheOsIsWindowsWithTheDistribution) {
  Write(proc_ / "sys/kernel/osrelease", "5.15.153.1-microsoft-standard-WSL2\n");
  auto probe = LinuxHostProbe::Create(Opts());
  auto f = probe->Facts();
  ASSERT_TRUE(f.ok()) << f.error().ToString();
  EXPECT_EQ(f->os, "Windows (WSL2, Test Linux 1 (fixture))");
}

TEST_F(LinuxHostProbeFixture, StorageTypeSsdAndUnknown) {
  Write(sys_ / "devices/pci0000:00/0000:00:1f.2/block/sda/queue/rotational", "0\n");
  auto probe = LinuxHostProbe::Create(Opts());
  EXPECT_EQ(probe->Facts()->storage_type, "SSD");
  fs::remove(sys_ / "dev/block/8:1");
  // No sysfs entry for the device, and the mount source is not in /sys/class/block either.
  EXPECT_EQ(probe->Facts()->storage_type, "Unknown");
}

TEST_F(LinuxHostProbeFixture, MissingStoragePathFallsBackToRoot) {
  auto o = Opts();
  o.storage_path = (root_ / "does-not-exist").string();
  auto probe = LinuxHostProbe::Create(o);
  EXPECT_EQ(probe->StoragePath(), "/");
  auto f = probe->Facts();
  ASSERT_TRUE(f.ok());
  EXPECT_GT(f->storage_total_bytes, 0u);
}

// An agent in a container sees the host's / at agent.host_root: a fixture host root laid out as
// the compose file mounts it (/host/proc, /host/sys, /host/etc/..., /host/var/lib/docker).
TEST_F(LinuxHostProbeFixture, HostRootReadsTheHostsFilesUnderIt) {
  const fs::path host = root_ / "host";
  fs::create_directories(host);
  fs::rename(proc_, host / "proc");
  fs::rename(sys_, host / "sys");
  Write(host / "etc/os-release", "PRETTY_NAME=\"Host OS 12 (fixture)\"\n");
  Write(host / "etc/hostname", "real-gpu-host\n");
  fs::create_directories(host / "var/lib/docker");
  // The mount of the data root as the agent's own mountinfo shows it (under the host root).
  Write(host / "proc/self/mountinfo",
        "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n"
        "40 22 8:1 / " +
            (host / "var/lib/docker").string() + " ro,relatime - ext4 /dev/sda1 rw\n");

  LinuxHostProbe::Options base;
  base.storage_path = "/var/lib/docker";  // what Docker reports as its data root
  base.steady_now = [this] { return now_; };
  LinuxHostProbe::Options o = WithHostRoot(base, host.string() + "/");
  EXPECT_EQ(o.proc_root, (host / "proc").string());
  EXPECT_EQ(o.sys_root, (host / "sys").string());
  EXPECT_EQ(o.os_release, (host / "etc/os-release").string());
  EXPECT_EQ(o.hostname_file, (host / "etc/hostname").string());
  EXPECT_EQ(o.storage_path, (host / "var/lib/docker").string());

  auto probe = LinuxHostProbe::Create(o);
  EXPECT_EQ(probe->StoragePath(), (host / "var/lib/docker").string());
  auto f = probe->Facts();
  ASSERT_TRUE(f.ok()) << f.error().ToString();
  EXPECT_EQ(f->hostname, "real-gpu-host");
  EXPECT_EQ(f->os, "Host OS 12 (fixture)");
  EXPECT_EQ(f->cpu_cores, 4);
  EXPECT_EQ(f->ram_total_bytes, 16ull << 30);
  EXPECT_EQ(f->storage_type, "HDD");
  EXPECT_EQ(f->boot_time_unix, 1700000000);
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->ram_total_bytes, 16ull << 30);

  // No etc/hostname under the root: gethostname() (the host's, under the host network).
  fs::remove(host / "etc/hostname");
  EXPECT_EQ(WithHostRoot(base, host.string()).hostname_file, "");
  // "" and "/" leave the options as they are.
  EXPECT_EQ(WithHostRoot(base, "").proc_root, "/proc");
  EXPECT_EQ(WithHostRoot(base, "/").storage_path, "/var/lib/docker");
}

TEST_F(LinuxHostProbeFixture, SampleRatesFromDeltas) {
  auto probe = LinuxHostProbe::Create(Opts());
  EXPECT_EQ(probe->CountedInterfaces(), std::vector<std::string>{"eth0"});  // default route
  auto first = probe->Sample();
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_DOUBLE_EQ(first->cpu_utilization_percent, 20.0);  // since boot: 200 busy of 1000
  EXPECT_EQ(first->upload_mbps, 0.0);                      // no previous reading
  EXPECT_EQ(first->ram_total_bytes, 16ull << 30);
  EXPECT_EQ(first->ram_used_bytes, 4ull << 30);
  EXPECT_DOUBLE_EQ(first->uptime_seconds, 3600.5);
  EXPECT_GT(first->storage_total_bytes, 0u);

  // 2 s later: 300 busy + 100 idle jiffies; eth0 received 25 MB and sent 2.5 MB.
  Write(proc_ / "stat", "cpu  400 0 100 800 100 0 0 0 0 0\nbtime 1700000000\n");
  Write(proc_ / "net/dev", NetDev(26'000'000, 4'500'000));
  now_ += std::chrono::seconds(2);
  auto second = probe->Sample();
  ASSERT_TRUE(second.ok());
  EXPECT_DOUBLE_EQ(second->cpu_utilization_percent, 75.0);
  EXPECT_DOUBLE_EQ(second->download_mbps, 100.0);
  EXPECT_DOUBLE_EQ(second->upload_mbps, 10.0);
  EXPECT_DOUBLE_EQ(second->network_utilization_percent, 10.0);  // of 1000 Mb/s

  // Counters reset (interface re-created): no negative or huge rates.
  Write(proc_ / "net/dev", NetDev(10, 10));
  now_ += std::chrono::seconds(1);
  auto third = probe->Sample();
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->download_mbps, 0.0);
  EXPECT_EQ(third->upload_mbps, 0.0);
}

TEST_F(LinuxHostProbeFixture, InterfaceChoice) {
  auto o = Opts();
  o.interface = "eth1";
  EXPECT_EQ(LinuxHostProbe::Create(o)->CountedInterfaces(), std::vector<std::string>{"eth1"});
  fs::remove(proc_ / "net/route");  // no default route: all non-loopback interfaces
  EXPECT_EQ(LinuxHostProbe::Create(Opts())->CountedInterfaces(),
            (std::vector<std::string>{"eth0", "eth1"}));

  auto probe = LinuxHostProbe::Create(Opts());
  ASSERT_TRUE(probe->Sample().ok());
  Write(proc_ / "net/dev", NetDev(1'000'000 + 1'250'000, 2'000'000));
  now_ += std::chrono::seconds(1);
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->download_mbps, 10.0);
  // eth1 has no speed file: the known total (eth0, 1000) is used.
  EXPECT_DOUBLE_EQ(s->network_utilization_percent, 1.0);
}

TEST_F(LinuxHostProbeFixture, BrokenProcIsAnError) {
  fs::remove(proc_ / "meminfo");
  auto probe = LinuxHostProbe::Create(Opts());
  auto f = probe->Facts();
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("meminfo"), std::string::npos);
  EXPECT_FALSE(probe->Sample().ok());
}

TEST(LinuxHostProbeRealTest, ReadsThisMachine) {
  LinuxHostProbe::Options o;
  o.storage_path = "/";
  auto probe = LinuxHostProbe::Create(o);
  auto f = probe->Facts();
  ASSERT_TRUE(f.ok()) << f.error().ToString();
  EXPECT_FALSE(f->hostname.empty());
  EXPECT_FALSE(f->kernel.empty());
  EXPECT_GE(f->cpu_logical, 1);
  EXPECT_GE(f->cpu_cores, 1);
  EXPECT_LE(f->cpu_cores, f->cpu_logical);
  EXPECT_GE(f->cpu_sockets, 1);
  EXPECT_GT(f->ram_total_bytes, 0u);
  EXPECT_GT(f->storage_total_bytes, 0u);
  EXPECT_TRUE(f->storage_type == "SSD" || f->storage_type == "HDD" || f->storage_type == "Unknown");
  EXPECT_GT(f->boot_time_unix, 1'000'000'000);
  EXPECT_GT(f->uptime_seconds, 0);
  for (int i = 0; i < 2; ++i) {
    auto s = probe->Sample();
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    EXPECT_GE(s->cpu_utilization_percent, 0.0);
    EXPECT_LE(s->cpu_utilization_percent, 100.0);
    EXPECT_LE(s->ram_used_bytes, s->ram_total_bytes);
    EXPECT_GE(s->download_mbps, 0.0);
  }
}

TEST(StorageTypeTest, FromRotational) {
  EXPECT_EQ(StorageTypeFromRotational("1\n"), "HDD");
  EXPECT_EQ(StorageTypeFromRotational("0"), "SSD");
  EXPECT_EQ(StorageTypeFromRotational(""), "Unknown");
}

}  // namespace
}  // namespace taolie::host
