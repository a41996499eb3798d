#include "host/proc_parsers.h"

#include <gtest/gtest.h>

namespace taolie::host {
namespace {

// Two sockets, two cores each, hyper-threaded: 8 logical CPUs.
std::string DualSocketCpuInfo() {
  std::string text;
  int processor = 0;
  for (int thread = 0; thread < 2; ++thread) {
    for (int socket = 0; socket < 2; ++socket) {
      for (int core = 0; core < 2; ++core) {
        text += "processor\t: " + std::to_string(processor++) + "\n";
        text += "vendor_id\t: GenuineIntel\n";
        text += "model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n";
        text += "physical id\t: " + std::to_string(socket) + "\n";
        text += "core id\t\t: " + std::to_string(core) + "\n";
        text += "flags\t\t: fpu vme de pse\n\n";
      }
    }
  }
  return text;
}

TEST(ParseCpuInfoTest, Cases) {
  struct Case {
    std::string name, text, model;
    int sockets, cores, logical;
  };
  const Case cases[] = {
      {"dual socket HT", DualSocketCpuInfo(), "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 2, 4, 8},
      {"no topology (VM / ARM)",
       "processor\t: 0\nProcessor\t: ARMv7 Processor rev 4 (v7l)\n\nprocessor\t: 1\n\n",
       "ARMv7 Processor rev 4 (v7l)", 1, 2, 2},
      {"single core", "processor : 0\nmodel name : AMD EPYC 7763\nphysical id : 0\ncore id : 0\n",
       "AMD EPYC 7763", 1, 1, 1},
      {"empty", "", "", 0, 0, 0},
  };
  for (const Case& c : cases) {
    CpuInfo info = ParseCpuInfo(c.text);
    EXPECT_EQ(info.model, c.model) << c.name;
    EXPECT_EQ(info.sockets, c.sockets) << c.name;
    EXPECT_EQ(info.cores, c.cores) << c.name;
    EXPECT_EQ(info.logical, c.logical) << c.name;
  }
}

TEST(ParseMemInfoTest, Cases) {
  auto m = ParseMemInfo(
      "MemTotal:       16318480 kB\nMemFree:         1000000 kB\n"
      "MemAvailable:    8000000 kB\nBuffers:          100 kB\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->total_bytes, 16318480ull * 1024);
  EXPECT_EQ(m->available_bytes, 8000000ull * 1024);

  // Old kernels without MemAvailable: free + buffers + cached.
  auto old = ParseMemInfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->available_bytes, 150ull * 1024);

  EXPECT_FALSE(ParseMemInfo("MemFree: 1 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("").ok());
}

TEST(ParseProcStatTest, AggregateCpuAndBootTime) {
  auto st = ParseProcStat(
      "cpu  100 5 50 800 40 3 2 0 7 0\n"
      "cpu0 50 2 25 400 20 1 1 0 0 0\n"
      "intr 12345 0 0\nctxt 999\nbtime 1700000000\nprocesses 42\n");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->cpu.total, 100u + 5 + 50 + 800 + 40 + 3 + 2 + 0);  // guest excluded
  EXPECT_EQ(st->cpu.idle, 840u);
  EXPECT_EQ(st->boot_time, 1700000000);
  EXPECT_FALSE(ParseProcStat("cpu0 1 2 3 4\nbtime 5\n").ok());
  EXPECT_FALSE(ParseProcStat("cpu  x y z w\n").ok());
}

TEST(CpuUtilizationTest, Cases) {
  struct Case {
    CpuTimes before, after;
    double expected;
  };
  const Case cases[] = {
      {{800, 1000}, {900, 1400}, 75.0},   // 400 jiffies, 100 idle
      {{800, 1000}, {1200, 1400}, 0.0},   // all idle
      {{800, 1000}, {800, 1200}, 100.0},  // all busy
      {{800, 1000}, {800, 1000}, 0.0},    // no time passed
      {{900, 1000}, {800, 1100}, 100.0},  // idle went backwards: clamp
      {{0, 0}, {800, 1000}, 20.0},        // since boot
  };
  for (const Case& c : cases) {
    EXPECT_DOUBLE_EQ(CpuUtilizationPercent(c.before, c.after), c.expected);
  }
}

TEST(ParseNetDevTest, Counters) {
  const char* text =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
      "drop fifo colls carrier compressed\n"
      "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
      "  eth0:123456789 1000 0 0 0 0 0 0 987654 900 0 0 0 0 0 0\n"
      "docker0: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";
  auto c = ParseNetDev(text);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[1].name, "eth0");
  EXPECT_EQ((*c)[1].rx_bytes, 123456789u);
  EXPECT_EQ((*c)[1].tx_bytes, 987654u);
  EXPECT_EQ((*c)[2].name, "docker0");
  EXPECT_FALSE(ParseNetDev("eth0: 1 2 3\n").ok());
}

TEST(ParseDefaultRouteTest, Cases) {
  const std::string header =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
  EXPECT_EQ(ParseDefaultRouteInterface(
                header + "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                         "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"),
            "eth0");
  // Two default routes: the lower metric wins.
  EXPECT_EQ(ParseDefaultRouteInterface(
                header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                         "enp3s0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"),
            "enp3s0");
  // Down route (flags without RTF_UP) and no default route.
  EXPECT_EQ(ParseDefaultRouteInterface(
                header + "eth0\t00000000\t0101A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0\n"),
            std::nullopt);
  EXPECT_EQ(ParseDefaultRouteInterface(header), std::nullopt);
}

TEST(ParseMountInfoTest, ParsesAndFindsLongestPrefix) {
  const char* text =
      "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
      "23 22 0:21 / /proc rw,nosuid - proc proc rw\n"
      "40 22 8:17 / /var/lib/docker rw,relatime shared:30 master:2 - xfs /dev/sdb1 rw\n"
      "41 22 8:33 /sub /mnt/my\\040disk rw - ext4 /dev/sdc1 rw\n";
  auto mounts = ParseMountInfo(text);
  ASSERT_EQ(mounts.size(), 4u);
  EXPECT_EQ(mounts[0].major, 259u);
  EXPECT_EQ(mounts[0].minor, 2u);
  EXPECT_EQ(mounts[0].fs_type, "ext4");
  EXPECT_EQ(mounts[0].source, "/dev/nvme0n1p2");
  EXPECT_EQ(mounts[2].fs_type, "xfs");  // optional fields skipped
  EXPECT_EQ(mounts[3].mount_point, "/mnt/my disk");
  EXPECT_EQ(mounts[3].root, "/sub");

  struct Case {
    const char* path;
    const char* mount_point;
  };
  const Case cases[] = {
      {"/var/lib/docker", "/var/lib/docker"},
      {"/var/lib/docker/overlay2", "/var/lib/docker"},
      {"/var/lib/dockerx", "/"},  // not a component boundary
      {"/home", "/"},
      {"/mnt/my disk/x", "/mnt/my disk"},
  };
  for (const Case& c : cases) {
    auto m = FindMountFor(mounts, c.path);
    ASSERT_TRUE(m.has_value()) << c.path;
    EXPECT_EQ(m->mount_point, c.mount_point) << c.path;
  }
  EXPECT_FALSE(FindMountFor({}, "/").has_value());
}

TEST(ParseOsReleaseTest, Cases) {
  EXPECT_EQ(ParseOsReleasePrettyName("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 "
                                     "(bookworm)\"\nID=debian\n"),
            "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(ParseOsReleasePrettyName("PRETTY_NAME=Alpine\n"), "Alpine");
  EXPECT_EQ(ParseOsReleasePrettyName("PRETTY_NAME='Ubuntu 22.04.4 LTS'\n"), "Ubuntu 22.04.4 LTS");
  EXPECT_EQ(ParseOsReleasePrettyName("NAME=x\n"), "");
}

TEST(ParseUptimeTest, Cases) {
  auto u = ParseUptimeSeconds("35312.85 120000.12\n");
  ASSERT_TRUE(u.ok());
  EXPECT_DOUBLE_EQ(*u, 35312.85);
  EXPECT_FALSE(ParseUptimeSeconds("").ok());
  EXPECT_FALSE(ParseUptimeSeconds("abc 1").ok());
}

TEST(UnitsTest, BytesPerSecondToMbps) {
  EXPECT_DOUBLE_EQ(BytesPerSecondToMbps(12'500'000), 100.0);
  EXPECT_DOUBLE_EQ(BytesPerSecondToMbps(0), 0.0);
}

}  // namespace
}  // namespace taolie::host
