#include "host/proc_parsers.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

namespace taolie::host {

namespace {

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Calls fn(line) for each line of text.
template <typename F>
void ForEachLine(std::string_view text, F fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    fn(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

template <typename T>
bool ParseNumber(std::string_view s, T& out, int base = 10) {
  s = Trim(s);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

// "a\040b" -> "a b" (mountinfo escapes space, tab, newline and backslash in octal).
std::string DecodeOctal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

CpuInfo ParseCpuInfo(std::string_view text) {
  CpuInfo info;
  std::set<std::string> sockets;
  std::set<std::pair<std::string, std::string>> cores;
  std::string physical_id, core_id;
  bool in_processor = false;
  auto finish = [&] {
    if (!in_processor) return;
    if (!physical_id.empty()) sockets.insert(physical_id);
    if (!core_id.empty()) cores.emplace(physical_id, core_id);
    physical_id.clear();
    core_id.clear();
    in_processor = false;
  };
  ForEachLine(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (Trim(line).empty()) finish();
      return;
    }
    std::string_view key = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "processor") {
      finish();
      in_processor = true;
      ++info.logical;
    } else if (key == "physical id") {
      physical_id = std::string(value);
    } else if (key == "core id") {
      core_id = std::string(value);
    } else if (info.model.empty() &&
               (key == "model name" || key == "Processor" || key == "cpu model")) {
      info.model = std::string(value);
    }
  });
  finish();
  info.sockets = sockets.empty() ? (info.logical > 0 ? 1 : 0) : static_cast<int>(sockets.size());
  info.cores = cores.empty() ? info.logical : static_cast<int>(cores.size());
  return info;
}

Result<MemInfo> ParseMemInfo(std::string_view text) {
  std::optional<uint64_t> total, available, free, buffers, cached;
  ForEachLine(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon);
    auto f = Fields(line.substr(colon + 1));
    uint64_t v = 0;
    if (f.empty() || !ParseNumber(f[0], v)) return;
    if (f.size() > 1 && f[1] == "kB") v *= 1024;
    if (key == "MemTotal")
      total = v;
    else if (key == "MemAvailable")
      available = v;
    else if (key == "MemFree")
      free = v;
    else if (key == "Buffers")
      buffers = v;
    else if (key == "Cached")
      cached = v;
  });
  if (!total) return MakeError(ErrorCode::kInvalidArgument, "meminfo: no MemTotal");
  MemInfo m;
  m.total_bytes = *total;
  if (available) {
    m.available_bytes = *available;
  } else {
    m.available_bytes = free.value_or(0) + buffers.value_or(0) + cached.value_or(0);
  }
  m.available_bytes = std::min(m.available_bytes, m.total_bytes);
  return m;
}

Result<ProcStat> ParseProcStat(std::string_view text) {
  ProcStat st;
  bool have_cpu = false;
  ForEachLine(text, [&](std::string_view line) {
    auto f = Fields(line);
    if (f.empty()) return;
    if (f[0] == "cpu" && !have_cpu) {
      uint64_t v[8] = {};
      size_t n = std::min<size_t>(f.size() - 1, 8);
      for (size_t i = 0; i < n; ++i) {
        if (!ParseNumber(f[i + 1], v[i])) return;
      }
      if (n < 4) return;
      for (size_t i = 0; i < n; ++i) st.cpu.total += v[i];
      st.cpu.idle = v[3] + v[4];  // idle + iowait
      have_cpu = true;
    } else if (f[0] == "btime" && f.size() > 1) {
      ParseNumber(f[1], st.boot_time);
    }
  });
  if (!have_cpu) return MakeError(ErrorCode::kInvalidArgument, "stat: no aggregate cpu line");
  return st;
}

double CpuUtilizationPercent(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total) return 0;
  const double total = static_cast<double>(after.total - before.total);
  const double idle = after.idle >= before.idle ? static_cast<double>(after.idle - before.idle) : 0;
  return std::clamp((total - idle) / total * 100.0, 0.0, 100.0);
}

Result<std::vector<NetDevCounters>> ParseNetDev(std::string_view text) {
  std::vector<NetDevCounters> out;
  bool bad = false;
  ForEachLine(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;  // header lines
    std::string_view name = Trim(line.substr(0, colon));
    if (name.empty() || name.find('|') != std::string_view::npos) return;
    auto f = Fields(line.substr(colon + 1));
    NetDevCounters c;
    c.name = std::string(name);
    if (f.size() < 9 || !ParseNumber(f[0], c.rx_bytes) || !ParseNumber(f[8], c.tx_bytes)) {
      bad = true;
      return;
    }
    out.push_back(std::move(c));
  });
  if (bad) return MakeError(ErrorCode::kInvalidArgument, "net/dev: malformed interface line");
  return out;
}

std::optional<std::string> ParseDefaultRouteInterface(std::string_view text) {
  std::optional<std::string> best;
  uint64_t best_metric = 0;
  ForEachLine(text, [&](std::string_view line) {
    auto f = Fields(line);
    if (f.size() < 8 || f[0] == "Iface") return;
    uint32_t flags = 0;
    uint64_t metric = 0;
    if (f[1] != "00000000" || f[7] != "00000000") return;  // destination and mask 0.0.0.0
    if (!ParseNumber(f[3], flags, 16) || (flags & 0x1) == 0) return;  // RTF_UP
    if (!ParseNumber(f[6], metric)) return;
    if (!best || metric < best_metric) {
      best = std::string(f[0]);
      best_metric = metric;
    }
  });
  return best;
}

std::vector<MountInfo> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> out;
  ForEachLine(text, [&](std::string_view line) {
    auto f = Fields(line);
    if (f.size() < 7) return;
    MountInfo m;
    std::string_view dev = f[2];
    size_t colon = dev.find(':');
    if (colon == std::string_view::npos || !ParseNumber(dev.substr(0, colon), m.major) ||
        !ParseNumber(dev.substr(colon + 1), m.minor)) {
      return;
    }
    m.root = DecodeOctal(f[3]);
    m.mount_point = DecodeOctal(f[4]);
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    if (sep + 1 < f.size()) m.fs_type = std::string(f[sep + 1]);
    if (sep + 2 < f.size()) m.source = DecodeOctal(f[sep + 2]);
    out.push_back(std::move(m));
  });
  return out;
}

std::optional<MountInfo> FindMountFor(const std::vector<MountInfo>& mounts, std::string_view path) {
  std::optional<MountInfo> best;
  for (const MountInfo& m : mounts) {
    std::string_view mp = m.mount_point;
    bool covers = false;
    if (mp == "/") {
      covers = !path.empty() && path[0] == '/';
    } else if (path.substr(0, mp.size()) == mp) {
      covers = path.size() == mp.size() || path[mp.size()] == '/';
    }
    if (covers && (!best || mp.size() >= best->mount_point.size())) best = m;
  }
  return best;
}

std::string ParseOsReleasePrettyName(std::string_view text) {
  std::string result;
  ForEachLine(text, [&](std::string_view line) {
    line = Trim(line);
    constexpr std::string_view kKey = "PRETTY_NAME=";
    if (line.substr(0, kKey.size()) != kKey) return;
    std::string_view v = line.substr(kKey.size());
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    result.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;  // shell-style escapes
      result.push_back(v[i]);
    }
  });
  return result;
}

Result<double> ParseUptimeSeconds(std::string_view text) {
  auto f = Fields(Trim(text));
  if (f.empty()) return MakeError(ErrorCode::kInvalidArgument, "uptime: empty");
  double v = 0;
  auto [p, ec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), v);
  if (ec != std::errc() || p != f[0].data() + f[0].size() || v < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "uptime: not a number");
  }
  return v;
}

double BytesPerSecondToMbps(double bytes_per_second) { return bytes_per_second * 8.0 / 1e6; }

}  // namespace taolie::host
