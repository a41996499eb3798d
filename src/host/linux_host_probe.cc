#include "host/linux_host_probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/real_time.h"

namespace taolie::host {

bool IsWslKernel(const std::string& osrelease, const std::string& version) {
  auto has = [](std::string text, const char* what) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text.find(what) != std::string::npos;
  };
  return has(osrelease, "microsoft") || has(osrelease, "wsl") || has(version, "microsoft");
}

namespace fs = std::filesystem;

namespace {

// /proc files are small; bound anyway.
constexpr size_t kMaxProcFileBytes = size_t{4} * 1024 * 1024;

std::string TrimCopy(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool IsVirtualInterface(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  return name == "lo" || starts("veth") || starts("docker") || starts("br-") || starts("virbr");
}

struct FsUsage {
  uint64_t total = 0, available = 0, used = 0;
};

Result<FsUsage> StatFs(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kUnavailable, "statvfs(" + path + "): " + std::strerror(errno));
  }
  FsUsage u;
  const uint64_t frsize = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
  u.total = static_cast<uint64_t>(st.f_blocks) * frsize;
  u.available = static_cast<uint64_t>(st.f_bavail) * frsize;
  u.used = static_cast<uint64_t>(st.f_blocks - st.f_bfree) * frsize;
  return u;
}

}  // namespace

std::string StorageTypeFromRotational(std::string_view rotational) {
  std::string v = TrimCopy(std::string(rotational));
  if (v == "1") return "HDD";
  if (v == "0") return "SSD";
  return "Unknown";
}

LinuxHostProbe::Options WithHostRoot(LinuxHostProbe::Options base, const std::string& host_root) {
  if (host_root.empty()) return base;
  std::string root = host_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root == "/") return base;
  auto under = [&](const std::string& path) {
    return root + (path.empty() || path.front() != '/' ? "/" : "") + path;
  };
  base.proc_root = under(base.proc_root);
  base.sys_root = under(base.sys_root);
  base.os_release = under(base.os_release);
  base.storage_path = under(base.storage_path);
  std::error_code ec;
  const std::string hostname = under("/etc/hostname");
  if (fs::is_regular_file(hostname, ec)) base.hostname_file = hostname;
  return base;
}

LinuxHostProbe::LinuxHostProbe(Options options) : options_(std::move(options)) {
  if (!options_.steady_now) options_.steady_now = [] { return SteadyNow(); };
}

std::unique_ptr<LinuxHostProbe> LinuxHostProbe::Create(Options options) {
  return std::unique_ptr<LinuxHostProbe>(new LinuxHostProbe(std::move(options)));
}

Result<std::string> LinuxHostProbe::Read(const std::string& path) const {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kUnavailable, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::string out;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxProcFileBytes) {
      return MakeError(ErrorCode::kInternal, path + " is unexpectedly large");
    }
  }
  return out;
}

std::string LinuxHostProbe::StoragePath() const {
  std::error_code ec;
  fs::path p = fs::canonical(options_.storage_path, ec);
  if (ec || !fs::is_directory(p, ec)) return "/";
  return p.string();
}

std::string LinuxHostProbe::StorageType(const std::string& path) const {
  // Device numbers of the filesystem: from mountinfo (the agent's own mount view), else stat().
  std::optional<std::pair<unsigned, unsigned>> dev;
  std::string source;
  if (auto text = Read(Proc("self/mountinfo")); text.ok()) {
    if (auto m = FindMountFor(ParseMountInfo(*text), path)) {
      dev = {m->major, m->minor};
      source = m->source;
    }
  }
  if (!dev) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) dev = {major(st.st_dev), minor(st.st_dev)};
  }
  std::error_code ec;
  fs::path block;
  if (dev && dev->first != 0) {
    block = fs::canonical(
        Sys("dev/block/" + std::to_string(dev->first) + ":" + std::to_string(dev->second)), ec);
  }
  if (block.empty() || ec) {
    // Anonymous device numbers (btrfs, ...): try the mount source, e.g. /dev/nvme0n1p2.
    ec.clear();
    block.clear();
    if (source.rfind("/dev/", 0) == 0) {
      block = fs::canonical(Sys("class/block/" + fs::path(source).filename().string()), ec);
    }
    if (block.empty() || ec) return "Unknown";
  }
  if (fs::exists(block / "partition", ec)) block = block.parent_path();  // partition -> disk
  auto rotational = Read((block / "queue" / "rotational").string());
  if (!rotational.ok()) return "Unknown";
  return StorageTypeFromRotational(*rotational);
}

Result<uint64_t> LinuxHostProbe::FreeBytes(const std::string& path) {
  auto usage = StatFs(path);
  if (!usage.ok()) return usage.error();
  return usage->available;
}

Result<HostProbe::TreeUsage> LinuxHostProbe::TreeBytes(const std::string& path,
                                                       size_t max_entries) {
  struct stat root {};
  if (lstat(path.c_str(), &root) != 0) {
    return MakeError(ErrorCode::kUnavailable, "lstat(" + path + "): " + std::strerror(errno));
  }
  TreeUsage out;
  out.bytes = static_cast<uint64_t>(root.st_blocks) * 512;
  if (!S_ISDIR(root.st_mode)) return out;
  std::error_code ec;
  fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
  if (ec) return MakeError(ErrorCode::kUnavailable, "walk " + path + ": " + ec.message());
  size_t seen = 0;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (++seen > max_entries) {
      out.truncated = true;
      break;
    }
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0) continue;  // gone meanwhile
    if (S_ISDIR(st.st_mode) && st.st_dev != root.st_dev) {
      it.disable_recursion_pending();  // another filesystem mounted inside
      continue;
    }
    out.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return out;
}

Result<HostFacts> LinuxHostProbe::Facts() {
  HostFacts f;
  if (!options_.hostname_file.empty()) {
    auto h = Read(options_.hostname_file);
    if (!h.ok()) return h.error();
    f.hostname = TrimCopy(*h);
  } else {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) {
      return MakeError(ErrorCode::kUnavailable,
                       std::string("gethostname: ") + std::strerror(errno));
    }
    f.hostname = buf;
  }
  if (auto os = Read(options_.os_release); os.ok()) f.os = ParseOsReleasePrettyName(*os);
  if (f.os.empty()) f.os = "Linux";
  // Under WSL2 the host is a Windows PC: say so, with the distribution the agent runs in.
  if (IsWslKernel(Read(Proc("sys/kernel/osrelease")).value_or(""),
                  Read(Proc("version")).value_or(""))) {
    f.os = "Windows (WSL2, " + f.os + ")";
  }
  struct utsname u {};
  if (uname(&u) == 0) f.kernel = u.release;

  auto cpuinfo = Read(Proc("cpuinfo"));
  if (!cpuinfo.ok()) return cpuinfo.error();
  CpuInfo cpu = ParseCpuInfo(*cpuinfo);
  f.cpu_model = cpu.model;
  f.cpu_logical = cpu.logical > 0 ? cpu.logical : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  f.cpu_cores = cpu.cores > 0 ? cpu.cores : f.cpu_logical;
  f.cpu_sockets = cpu.sockets > 0 ? cpu.sockets : 1;

  auto meminfo = Read(Proc("meminfo"));
  if (!meminfo.ok()) return meminfo.error();
  auto mem = ParseMemInfo(*meminfo);
  if (!mem.ok()) return mem.error();
  f.ram_total_bytes = mem->total_bytes;

  const std::string storage = StoragePath();
  auto usage = StatFs(storage);
  if (!usage.ok()) return usage.error();
  f.storage_total_bytes = usage->total;
  f.storage_available_bytes = usage->available;
  f.storage_type = StorageType(storage);

  auto uptime_text = Read(Proc("uptime"));
  if (!uptime_text.ok()) return uptime_text.error();
  auto uptime = ParseUptimeSeconds(*uptime_text);
  if (!uptime.ok()) return uptime.error();
  f.uptime_seconds = *uptime;
  auto stat_text = Read(Proc("stat"));
  if (!stat_text.ok()) return stat_text.error();
  auto stat = ParseProcStat(*stat_text);
  if (!stat.ok()) return stat.error();
  f.boot_time_unix = stat->boot_time;
  return f;
}

std::vector<std::string> LinuxHostProbe::InterfacesLocked(
    const std::vector<NetDevCounters>& counters) const {
  if (!options_.interface.empty()) return {options_.interface};
  if (auto route = Read(Proc("net/route")); route.ok()) {
    if (auto iface = ParseDefaultRouteInterface(*route)) {
      bool present = std::any_of(counters.begin(), counters.end(),
                                 [&](const NetDevCounters& c) { return c.name == *iface; });
      if (present) return {*iface};
    }
  }
  std::vector<std::string> all;
  for (const auto& c : counters) {
    if (!IsVirtualInterface(c.name)) all.push_back(c.name);
  }
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<std::string> LinuxHostProbe::CountedInterfaces() {
  auto text = Read(Proc("net/dev"));
  if (!text.ok()) return {};
  auto counters = ParseNetDev(*text);
  if (!counters.ok()) return {};
  return InterfacesLocked(*counters);
}

std::optional<double> LinuxHostProbe::LinkSpeedMbps(
    const std::vector<std::string>& interfaces) const {
  double total = 0;
  for (const auto& name : interfaces) {
    auto text = Read(Sys("class/net/" + name + "/speed"));  // EINVAL when the link is down
    if (!text.ok()) continue;
    long speed = 0;
    try {
      speed = std::stol(*text);
    } catch (...) {
      continue;
    }
    if (speed > 0) total += static_cast<double>(speed);
  }
  if (total <= 0) return std::nullopt;
  return total;
}

Result<HostSample> LinuxHostProbe::Sample() {
  std::lock_guard lock(mu_);
  HostSample s;

  auto stat_text = Read(Proc("stat"));
  if (!stat_text.ok()) return stat_text.error();
  auto stat = ParseProcStat(*stat_text);
  if (!stat.ok()) return stat.error();
  // First call: the average since boot; later calls: since the previous call.
  s.cpu_utilization_percent = CpuUtilizationPercent(prev_cpu_.value_or(CpuTimes{}), stat->cpu);
  prev_cpu_ = stat->cpu;

  auto meminfo = Read(Proc("meminfo"));
  if (!meminfo.ok()) return meminfo.error();
  auto mem = ParseMemInfo(*meminfo);
  if (!mem.ok()) return mem.error();
  s.ram_total_bytes = mem->total_bytes;
  s.ram_used_bytes = mem->total_bytes - mem->available_bytes;

  auto usage = StatFs(StoragePath());
  if (!usage.ok()) return usage.error();
  s.storage_total_bytes = usage->total;
  s.storage_available_bytes = usage->available;
  s.storage_used_bytes = usage->used;

  if (auto uptime_text = Read(Proc("uptime")); uptime_text.ok()) {
    s.uptime_seconds = ParseUptimeSeconds(*uptime_text).value_or(0);
  }

  auto net_text = Read(Proc("net/dev"));
  if (!net_text.ok()) return net_text.error();
  auto counters = ParseNetDev(*net_text);
  if (!counters.ok()) return counters.error();
  std::vector<std::string> interfaces = InterfacesLocked(*counters);
  uint64_t rx = 0, tx = 0;
  for (const auto& c : *counters) {
    if (std::find(interfaces.begin(), interfaces.end(), c.name) != interfaces.end()) {
      rx += c.rx_bytes;
      tx += c.tx_bytes;
    }
  }
  const auto now = options_.steady_now();
  if (prev_rx_ && prev_tx_ && interfaces == prev_interfaces_) {
    const double elapsed = std::chrono::duration<double>(now - prev_net_at_).count();
    if (elapsed > 0) {
      // A counter that went backwards (interface reset) counts as no traffic.
      const uint64_t drx = rx >= *prev_rx_ ? rx - *prev_rx_ : 0;
      const uint64_t dtx = tx >= *prev_tx_ ? tx - *prev_tx_ : 0;
      s.download_mbps = BytesPerSecondToMbps(static_cast<double>(drx) / elapsed);
      s.upload_mbps = BytesPerSecondToMbps(static_cast<double>(dtx) / elapsed);
      if (auto speed = LinkSpeedMbps(interfaces)) {
        s.network_utilization_percent =
            std::clamp(std::max(s.download_mbps, s.upload_mbps) / *speed * 100.0, 0.0, 100.0);
      }
    }
  }
  prev_rx_ = rx;
  prev_tx_ = tx;
  prev_net_at_ = now;
  prev_interfaces_ = std::move(interfaces);
  return s;
}

bool LinuxHostProbe::PortInUse(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  bool taken =
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return taken;
}

bool LinuxHostProbe::ProcessInContainer(uint32_t pid, const std::string& container_id) {
  if (container_id.empty()) return false;
  auto cgroup = Read(Proc(std::to_string(pid) + "/cgroup"));
  return cgroup.ok() && cgroup->find(container_id) != std::string::npos;
}

std::string LinuxHostProbe::BootId() {
  auto id = Read(Proc("sys/kernel/random/boot_id"));
  if (!id.ok()) return "";
  std::string v = *id;
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

}  // namespace taolie::host
