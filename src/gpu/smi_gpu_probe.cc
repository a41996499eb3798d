#include "gpu/smi_gpu_probe.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>

#include "gpu/call_watchdog.h"

namespace taolie::gpu {
namespace smi {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const std::string* Find(const Row& row, const std::string& field) {
  auto it = row.find(field);
  if (it == row.end()) {
    // The row may have been read with the field's older spelling.
    it = row.find(OlderSpelling(field));
    if (it == row.end()) return nullptr;
  }
  return &it->second;
}

std::optional<std::string> Text(const Row& row, const std::string& field) {
  const std::string* raw = Find(row, field);
  if (raw == nullptr) return std::nullopt;
  return Cell(*raw);
}

template <typename T>
std::optional<T> Narrow(std::optional<uint64_t> v) {
  if (!v) return std::nullopt;
  return static_cast<T>(*v);
}

}  // namespace

std::vector<std::string> SplitCsvLine(std::string_view line) {
  std::vector<std::string> cells;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"' && Trim(cur).empty()) {
      cur.clear();
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back(Trim(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  cells.emplace_back(quoted ? cur : std::string(Trim(cur)));
  return cells;
}

std::optional<std::string> Cell(std::string_view cell) {
  std::string_view v = Trim(cell);
  if (v.empty()) return std::nullopt;
  if (v.front() == '[' && v.back() == ']') return std::nullopt;  // [N/A], [Not Supported], ...
  const std::string low = Lower(v);
  if (low == "n/a" || low == "not supported" || low == "unknown error") return std::nullopt;
  return std::string(v);
}

bool CellSaysLost(std::string_view cell) {
  const std::string low = Lower(Trim(cell));
  return low == "[gpu is lost]" || low == "[gpu requires reset]";
}

Table ParseTable(std::string_view output, const std::vector<std::string>& fields,
                 std::string_view free_text_field) {
  Table t;
  const auto free_it = std::find(fields.begin(), fields.end(), free_text_field);
  size_t start = 0;
  while (start <= output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = Trim(output.substr(start, end - start));
    start = end + 1;
    if (line.empty()) continue;
    std::vector<std::string> cells = SplitCsvLine(line);
    if (cells.size() > fields.size() && free_it != fields.end()) {
      // A name with commas, printed unquoted: the cells past the expected count belong to it.
      const size_t at = static_cast<size_t>(free_it - fields.begin());
      const size_t extra = cells.size() - fields.size();
      std::string joined = cells[at];
      for (size_t i = 1; i <= extra; ++i) joined += ", " + cells[at + i];
      cells[at] = joined;
      cells.erase(cells.begin() + static_cast<std::ptrdiff_t>(at + 1),
                  cells.begin() + static_cast<std::ptrdiff_t>(at + 1 + extra));
    }
    if (cells.size() != fields.size()) {
      t.other_lines.emplace_back(line);
      continue;
    }
    Row row;
    for (size_t i = 0; i < fields.size(); ++i) row[fields[i]] = cells[i];
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string RejectedField(std::string_view output) {
  constexpr std::string_view kHead = "Field \"";
  constexpr std::string_view kTail = "\" is not a valid field to query";
  size_t at = output.find(kHead);
  if (at == std::string_view::npos) return "";
  at += kHead.size();
  size_t end = output.find(kTail, at);
  if (end == std::string_view::npos) return "";
  return std::string(output.substr(at, end - at));
}

std::optional<double> Number(const Row& row, const std::string& field) {
  auto v = Text(row, field);
  if (!v) return std::nullopt;
  const char* begin = v->c_str();
  char* end = nullptr;
  double d = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::nullopt;
  return d;
}

std::optional<uint64_t> Count(const Row& row, const std::string& field) {
  auto v = Text(row, field);
  if (!v) return std::nullopt;
  std::string_view s = *v;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t out = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return out;
}

std::optional<bool> Flag(const Row& row, const std::string& field) {
  auto v = Text(row, field);
  if (!v) return std::nullopt;
  const std::string low = Lower(*v);
  if (low == "enabled" || low == "yes" || low == "active") return true;
  if (low == "disabled" || low == "no" || low == "not active") return false;
  return std::nullopt;
}

GpuSample SampleFromRow(const Row& row) {
  GpuSample s;
  s.index = static_cast<int>(Count(row, "index").value_or(0));
  s.uuid = Text(row, "uuid").value_or("");
  for (const auto& [field, raw] : row) {
    if (CellSaysLost(raw)) {
      s.lost = true;
      s.error = "nvidia-smi: " + std::string(Trim(raw)) + " (" + field + ")";
      break;
    }
  }
  s.utilization_percent = Number(row, "utilization.gpu");
  s.memory_utilization_percent = Number(row, "utilization.memory");
  s.memory_used_mb = Count(row, "memory.used");
  s.memory_free_mb = Count(row, "memory.free");
  s.memory_total_mb = Count(row, "memory.total");
  s.temperature_c = Number(row, "temperature.gpu");
  s.power_draw_watts = Number(row, "power.draw");
  s.power_limit_watts = Number(row, "enforced.power.limit");
  s.fan_speed_percent = Number(row, "fan.speed");
  s.sm_clock_mhz = Narrow<uint32_t>(Count(row, "clocks.sm"));
  s.mem_clock_mhz = Narrow<uint32_t>(Count(row, "clocks.mem"));
  s.pcie_gen = Narrow<uint32_t>(Count(row, "pcie.link.gen.gpucurrent"));
  s.pcie_max_gen = Narrow<uint32_t>(Count(row, "pcie.link.gen.max"));
  s.pcie_width = Narrow<uint32_t>(Count(row, "pcie.link.width.current"));
  s.pcie_max_width = Narrow<uint32_t>(Count(row, "pcie.link.width.max"));
  s.ecc_enabled = Flag(row, "ecc.mode.current");
  s.ecc_volatile_corrected = Count(row, "ecc.errors.corrected.volatile.total");
  s.ecc_volatile_uncorrected = Count(row, "ecc.errors.uncorrected.volatile.total");
  s.ecc_aggregate_corrected = Count(row, "ecc.errors.corrected.aggregate.total");
  s.ecc_aggregate_uncorrected = Count(row, "ecc.errors.uncorrected.aggregate.total");
  s.retired_pages_sbe = Count(row, "retired_pages.sbe");
  s.retired_pages_dbe = Count(row, "retired_pages.dbe");
  s.retired_pages_pending = Flag(row, "retired_pages.pending");
  s.throttle_reasons = Narrow<uint32_t>(Count(row, "clocks_event_reasons.active"));
  s.persistence_mode = Flag(row, "persistence_mode");
  // The driver's recovery action as NVML numbers it: reset (1), or drain and reset (4).
  auto reset = Flag(row, "reset_status.reset_required");
  auto drain = Flag(row, "reset_status.drain_and_reset_recommended");
  if (drain.value_or(false)) {
    s.recovery_action = 4;
  } else if (reset.value_or(false)) {
    s.recovery_action = 1;
  } else if (reset || drain) {
    s.recovery_action = 0;
  }
  return s;
}

GpuInfo InfoFromRow(const Row& row) {
  GpuInfo g;
  g.index = static_cast<int>(Count(row, "index").value_or(0));
  g.uuid = Text(row, "uuid").value_or("");
  g.name = Text(row, "name").value_or("");
  g.pci_bus_id = Text(row, "pci.bus_id").value_or("");
  g.memory_total_mb = Count(row, "memory.total").value_or(0);
  g.compute_capability = Text(row, "compute_cap").value_or("");
  g.power_limit_watts = Number(row, "enforced.power.limit");
  auto mig = Flag(row, "mig.mode.current");
  g.mig_mode = !mig ? "unsupported" : (*mig ? "enabled" : "disabled");
  g.serial = Text(row, "serial").value_or("");
  g.vbios_version = Text(row, "vbios_version").value_or("");
  g.inforom_image_version = Text(row, "inforom.img").value_or("");
  return g;
}

std::string CudaVersionFromBanner(std::string_view banner) {
  constexpr std::string_view kKey = "CUDA Version:";
  size_t at = banner.find(kKey);
  if (at == std::string_view::npos) return "";
  at += kKey.size();
  while (at < banner.size() && banner[at] == ' ') ++at;
  size_t end = at;
  while (end < banner.size() &&
         (std::isdigit(static_cast<unsigned char>(banner[end])) || banner[end] == '.')) {
    ++end;
  }
  std::string v(banner.substr(at, end - at));
  if (v.empty() || !std::isdigit(static_cast<unsigned char>(v.front()))) return "";
  return v;
}

const std::vector<std::string>& SampleQueryFields() {
  static const std::vector<std::string> kFields = {
      "index",
      "uuid",
      "pci.bus_id",
      "utilization.gpu",
      "utilization.memory",
      "memory.used",
      "memory.free",
      "memory.total",
      "temperature.gpu",
      "power.draw",
      "enforced.power.limit",
      "fan.speed",
      "clocks.sm",
      "clocks.mem",
      "pcie.link.gen.gpucurrent",
      "pcie.link.gen.max",
      "pcie.link.width.current",
      "pcie.link.width.max",
      "ecc.mode.current",
      "ecc.errors.corrected.volatile.total",
      "ecc.errors.uncorrected.volatile.total",
      "ecc.errors.corrected.aggregate.total",
      "ecc.errors.uncorrected.aggregate.total",
      "retired_pages.sbe",
      "retired_pages.dbe",
      "retired_pages.pending",
      "clocks_event_reasons.active",
      "persistence_mode",
      "reset_status.reset_required",
      "reset_status.drain_and_reset_recommended",
  };
  return kFields;
}

const std::vector<std::string>& InfoQueryFields() {
  static const std::vector<std::string> kFields = {
      "index",
      "uuid",
      "name",
      "pci.bus_id",
      "memory.total",
      "compute_cap",
      "serial",
      "vbios_version",
      "inforom.img",
      "enforced.power.limit",
      "mig.mode.current",
  };
  return kFields;
}

std::string OlderSpelling(const std::string& field) {
  // Drivers before r530 name the clock-event reasons "throttle reasons" and know only
  // pcie.link.gen.current.
  if (field == "clocks_event_reasons.active") return "clocks_throttle_reasons.active";
  if (field == "pcie.link.gen.gpucurrent") return "pcie.link.gen.current";
  return "";
}

}  // namespace smi

namespace {

constexpr char kIdentityFields[] = "index,uuid";
// The watchdog waits a little longer than the runner's own deadline, which kills the tool: it
// only fires when the tool cannot be reaped (stuck in the kernel).
constexpr std::chrono::milliseconds kWatchdogGrace{1000};

std::string FirstLine(std::string_view s) {
  size_t end = s.find('\n');
  std::string line(s.substr(0, end));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

Error ExitError(const std::string& what, const host::CommandOutput& out) {
  return MakeError(ErrorCode::kUnavailable, "nvidia-smi " + what + " exited " +
                                                std::to_string(out.exit_code) + ": " +
                                                FirstLine(out.output));
}

// nvidia-smi names a GPU in its messages by the bus id without the first four digits of the
// 8-digit domain ("GPU0000:41:00.0" for 00000000:41:00.0).
bool NamesBusId(const std::string& line, const std::string& bus_id) {
  return bus_id.size() > 4 && line.find(bus_id.substr(4)) != std::string::npos;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

SmiGpuProbe::SmiGpuProbe(Options options, std::shared_ptr<host::CommandRunner> runner)
    : options_(std::move(options)),
      runner_(std::move(runner)),
      watchdog_(std::make_unique<CallWatchdog>("nvidia-smi")),
      sample_fields_(smi::SampleQueryFields()),
      info_fields_(smi::InfoQueryFields()) {}

SmiGpuProbe::~SmiGpuProbe() = default;

std::unique_ptr<SmiGpuProbe> SmiGpuProbe::Create(Options options,
                                                 std::shared_ptr<host::CommandRunner> runner) {
  std::unique_ptr<SmiGpuProbe> probe(new SmiGpuProbe(std::move(options), std::move(runner)));
  auto out = probe->RunToolOk("identity query", {std::string("--query-gpu=") + kIdentityFields,
                                                 "--format=csv,noheader,nounits"});
  if (!out.ok()) {
    probe->unavailable_reason_ = out.error().message;
  } else if (smi::ParseTable(*out, {"index", "uuid"}).rows.empty()) {
    probe->unavailable_reason_ = probe->options_.smi_path + " reported no GPU";
  } else {
    spdlog::info("nvidia-smi: using {}", probe->options_.smi_path);
  }
  return probe;
}

bool SmiGpuProbe::Available() const { return unavailable_reason_.empty(); }

std::string SmiGpuProbe::UnavailableReason() const { return unavailable_reason_; }

Status SmiGpuProbe::CheckAvailable() const {
  if (Available()) return OkStatus();
  return MakeError(ErrorCode::kFailedPrecondition,
                   "nvidia-smi unavailable: " + unavailable_reason_);
}

bool SmiGpuProbe::Excluded(const std::string& uuid) const {
  return std::find(options_.exclude_uuids.begin(), options_.exclude_uuids.end(), uuid) !=
         options_.exclude_uuids.end();
}

Result<host::CommandOutput> SmiGpuProbe::RunTool(const std::string& what,
                                                 std::vector<std::string> args) {
  std::vector<std::string> argv{options_.smi_path};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto timeout = options_.call_timeout;
  auto out = watchdog_->Run<host::CommandOutput>(
      what, timeout + kWatchdogGrace,
      [runner = runner_, argv = std::move(argv), timeout]() -> Result<host::CommandOutput> {
        return runner->Run(argv, "", timeout);
      });
  if (!out.ok()) {
    return MakeError(out.error().code, "nvidia-smi " + what + ": " + out.error().message);
  }
  return out;
}

Result<std::string> SmiGpuProbe::RunToolOk(const std::string& what, std::vector<std::string> args) {
  auto out = RunTool(what, std::move(args));
  if (!out.ok()) return out.error();
  if (out->exit_code != 0) return ExitError(what, *out);
  return std::move(out->output);
}

Result<std::string> SmiGpuProbe::QueryGpus(const std::string& what,
                                           std::vector<std::string>* fields) {
  const size_t max_tries = fields->size() + 1;
  for (size_t attempt = 0; attempt < max_tries; ++attempt) {
    auto out = RunTool(what, {"--query-gpu=" + Join(*fields), "--format=csv,noheader,nounits"});
    if (!out.ok()) return out.error();
    if (out->exit_code == 0) return std::move(out->output);
    const std::string rejected = smi::RejectedField(out->output);
    auto it = std::find(fields->begin(), fields->end(), rejected);
    if (rejected.empty() || it == fields->end() || rejected == "index" || rejected == "uuid") {
      // A GPU it cannot read makes nvidia-smi exit non-zero after the rows of the others:
      // those rows are still good.
      if (!smi::ParseTable(out->output, *fields).rows.empty()) return std::move(out->output);
      return ExitError(what, *out);
    }
    const std::string older = smi::OlderSpelling(rejected);
    spdlog::info("nvidia-smi does not know the field {}{}", rejected,
                 older.empty() ? ": not read" : ": reading " + older);
    if (older.empty()) {
      fields->erase(it);
    } else {
      *it = older;
    }
  }
  return MakeError(ErrorCode::kInternal, "nvidia-smi " + what + ": no accepted field list");
}

Result<DriverInfo> SmiGpuProbe::Driver() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  auto out = RunToolOk("driver query", {"--query-gpu=driver_version", "--format=csv,noheader"});
  if (!out.ok()) return out.error();
  DriverInfo d;
  d.driver_version = smi::Cell(FirstLine(*out)).value_or("");
  // The CUDA version is only in the banner of a plain run; without it the field stays empty.
  if (auto banner = RunToolOk("banner", {}); banner.ok()) {
    d.cuda_version = smi::CudaVersionFromBanner(*banner);
  }
  return d;
}

Result<std::vector<GpuInfo>> SmiGpuProbe::ListGpus() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  std::vector<std::string> fields;
  {
    std::lock_guard lock(mu_);
    fields = info_fields_;
  }
  auto out = QueryGpus("device scan", &fields);
  if (!out.ok()) return out.error();
  smi::Table t = smi::ParseTable(*out, fields);
  for (const auto& line : t.other_lines) spdlog::warn("nvidia-smi device scan: {}", line);
  std::vector<GpuInfo> list;
  for (const auto& row : t.rows) {
    GpuInfo g = smi::InfoFromRow(row);
    if (g.uuid.empty() || Excluded(g.uuid)) continue;
    list.push_back(std::move(g));
  }
  std::lock_guard lock(mu_);
  // A GPU seen before that the tool now names in an error line of its own ("Unable to determine
  // the device handle for GPU0000:41:00.0") is still there, fallen off the bus: it stays listed
  // (as NVML keeps its handle), so the Sample reports it lost instead of it vanishing.
  for (const auto& [known_uuid, info] : known_) {
    const std::string& uuid = known_uuid;  // a structured binding cannot be captured (clang)
    if (std::any_of(list.begin(), list.end(), [&](const GpuInfo& g) { return g.uuid == uuid; })) {
      continue;
    }
    for (const auto& line : t.other_lines) {
      if (NamesBusId(line, info.pci_bus_id)) {
        list.push_back(info);
        break;
      }
    }
  }
  std::sort(list.begin(), list.end(),
            [](const GpuInfo& a, const GpuInfo& b) { return a.index < b.index; });
  info_fields_ = fields;
  known_.clear();
  for (const auto& g : list) known_[g.uuid] = g;
  return list;
}

Result<std::vector<GpuSample>> SmiGpuProbe::Sample() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  std::vector<std::string> fields;
  bool remapped = false;
  std::map<std::string, GpuInfo> known;
  {
    std::lock_guard lock(mu_);
    fields = sample_fields_;
    remapped = remapped_rows_supported_;
    known = known_;
  }
  auto out = QueryGpus("sample", &fields);
  if (!out.ok()) return out.error();
  {
    std::lock_guard lock(mu_);
    sample_fields_ = fields;
  }
  smi::Table t = smi::ParseTable(*out, fields);
  std::vector<GpuSample> samples;
  std::set<std::string> seen;
  for (const auto& row : t.rows) {
    GpuSample s = smi::SampleFromRow(row);
    if (s.uuid.empty() || Excluded(s.uuid)) continue;
    seen.insert(s.uuid);
    samples.push_back(std::move(s));
  }
  // A GPU nvidia-smi could not read is named by a line of its own ("Unable to determine the
  // device handle for GPU0000:3A:00.0: Unknown Error"); one known GPU missing from the rows is
  // lost, with that line as its error when it names the GPU's bus id.
  for (const auto& [uuid, info] : known) {
    if (seen.count(uuid) != 0) continue;
    GpuSample s;
    s.index = info.index;
    s.uuid = uuid;
    s.lost = true;
    s.error = "not reported by nvidia-smi";
    for (const auto& line : t.other_lines) {
      if (NamesBusId(line, info.pci_bus_id)) {
        s.error = "nvidia-smi: " + line;
      }
    }
    samples.push_back(std::move(s));
  }

  AddProcesses(samples);
  if (remapped) AddRemappedRows(samples);
  return samples;
}

// Processes: one row per compute process, keyed by the GPU's UUID.
void SmiGpuProbe::AddProcesses(std::vector<GpuSample>& samples) {
  if (auto apps = RunToolOk("process query",
                            {"--query-compute-apps=gpu_uuid,pid", "--format=csv,noheader,nounits"});
      apps.ok()) {
    smi::Table pt = smi::ParseTable(*apps, {"gpu_uuid", "pid"}, "");
    for (auto& s : samples) {
      for (const auto& row : pt.rows) {
        if (row.at("gpu_uuid") != s.uuid) continue;
        if (auto pid = smi::Count(row, "pid"))
          s.process_pids.push_back(static_cast<uint32_t>(*pid));
      }
    }
  } else {
    for (auto& s : samples) {
      if (s.error.empty()) s.error = apps.error().message;
    }
  }
}

// Row remapping (A100 and later); a tool or card that refuses the query is not asked again.
void SmiGpuProbe::AddRemappedRows(std::vector<GpuSample>& samples) {
  const std::vector<std::string> rf = {"gpu_uuid", "remapped_rows.correctable",
                                       "remapped_rows.uncorrectable", "remapped_rows.pending",
                                       "remapped_rows.failure"};
  auto rows = RunToolOk("remapped rows query",
                        {"--query-remapped-rows=" + Join(rf), "--format=csv,noheader,nounits"});
  if (rows.ok()) {
    smi::Table rt = smi::ParseTable(*rows, rf, "");
    for (auto& s : samples) {
      for (const auto& row : rt.rows) {
        if (row.at("gpu_uuid") != s.uuid) continue;
        s.remapped_rows_correctable = smi::Count(row, "remapped_rows.correctable");
        s.remapped_rows_uncorrectable = smi::Count(row, "remapped_rows.uncorrectable");
        s.remapped_rows_pending = smi::Flag(row, "remapped_rows.pending");
        s.remapped_rows_failure = smi::Flag(row, "remapped_rows.failure");
      }
    }
  } else if (rows.error().code == ErrorCode::kUnavailable) {
    spdlog::info("nvidia-smi: remapped rows not read ({})", rows.error().message);
    std::lock_guard lock(mu_);
    remapped_rows_supported_ = false;
  }
}

Result<std::vector<XidEvent>> SmiGpuProbe::DrainXids() {
  TAOLIE_RETURN_IF_ERROR(CheckAvailable());
  return std::vector<XidEvent>{};
}

std::vector<std::string> SmiGpuProbe::SampleFields() {
  std::lock_guard lock(mu_);
  return sample_fields_;
}

}  // namespace taolie::gpu
