#pragma once
// SmiGpuProbe: GpuProbe over the `nvidia-smi` tool, for hosts where the agent cannot load
// NVML itself (the library is not on the loader's path, a wrong gpu.nvml_library, ...) but the
// tool runs. Every GPU is read with one `--query-gpu=... --format=csv,noheader,nounits` call,
// processes with `--query-compute-apps`, remapped rows with `--query-remapped-rows`. Each call
// runs through a host::CommandRunner (argument vector, never a shell) with a deadline, on a
// watchdog thread so that even a tool stuck in the kernel cannot hold a caller. Thread-safe.
//
// Field names a given nvidia-smi does not know ("Field "x" is not a valid field to query.")
// are dropped (or replaced by their older spelling) once, at the first query; values it prints
// as [N/A], [Not Supported], ... are absent values. XIDs are not available through the tool:
// DrainXids returns none (the kernel-log reader covers them).
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/gpu_probe.h"
#include "host/command_runner.h"

namespace taolie::gpu {

class CallWatchdog;

class SmiGpuProbe final : public GpuProbe {
 public:
  struct Options {
    std::string smi_path = "nvidia-smi";     // an absolute path, or a name the runner looks up
    std::vector<std::string> exclude_uuids;  // GPUs hidden from the agent
    std::chrono::milliseconds call_timeout = std::chrono::seconds(5);  // per nvidia-smi run
  };

  // Never fails: runs the tool once; when it is missing or cannot read the GPUs, Available() is
  // false, UnavailableReason() says why, and the other methods return FailedPrecondition.
  static std::unique_ptr<SmiGpuProbe> Create(
      Options options,
      std::shared_ptr<host::CommandRunner> runner = std::make_shared<host::SubprocessRunner>());

  ~SmiGpuProbe() override;
  SmiGpuProbe(const SmiGpuProbe&) = delete;
  SmiGpuProbe& operator=(const SmiGpuProbe&) = delete;

  bool Available() const override;
  std::string UnavailableReason() const override;
  Result<DriverInfo> Driver() override;
  Result<std::vector<GpuInfo>> ListGpus() override;
  Result<std::vector<GpuSample>> Sample() override;
  Result<std::vector<XidEvent>> DrainXids() override;

  // The --query-gpu fields this nvidia-smi accepted (after the first Sample). For tests.
  std::vector<std::string> SampleFields();

 private:
  SmiGpuProbe(Options options, std::shared_ptr<host::CommandRunner> runner);
  Status CheckAvailable() const;
  // Runs nvidia-smi with `args` on the watchdog (a non-zero exit is not an error here).
  Result<host::CommandOutput> RunTool(const std::string& what, std::vector<std::string> args);
  // The same, with a non-zero exit an Unavailable error carrying the tool's first line.
  Result<std::string> RunToolOk(const std::string& what, std::vector<std::string> args);
  // A --query-gpu run over `fields`; a field the tool rejects is dropped (or replaced by its
  // older spelling) from `fields` and the query repeated, at most once per field.
  Result<std::string> QueryGpus(const std::string& what, std::vector<std::string>* fields);
  bool Excluded(const std::string& uuid) const;
  // Sample's second and third queries: the compute processes of each GPU (a failed query is
  // every sample's error), and its row remapping while the tool answers that query.
  void AddProcesses(std::vector<GpuSample>& samples);
  void AddRemappedRows(std::vector<GpuSample>& samples);

  Options options_;
  std::shared_ptr<host::CommandRunner> runner_;
  std::unique_ptr<CallWatchdog> watchdog_;
  std::string unavailable_reason_;  // fixed after Create

  std::mutex mu_;                           // guards the members below
  std::vector<std::string> sample_fields_;  // negotiated with this nvidia-smi
  std::vector<std::string> info_fields_;
  bool remapped_rows_supported_ = true;   // false once the tool refused the query
  std::map<std::string, GpuInfo> known_;  // by UUID, from the last ListGpus or Sample
};

// Pure parsing of nvidia-smi's CSV output (`--format=csv,noheader,nounits`), exposed for tests.
namespace smi {

// One line split at commas; the blank nvidia-smi writes after each comma is dropped. A value in
// double quotes may hold commas ("" inside is one quote).
std::vector<std::string> SplitCsvLine(std::string_view line);

// The value of one cell, or nullopt for what nvidia-smi prints for an absent value: "",
// "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]", ...
std::optional<std::string> Cell(std::string_view cell);

// True for a cell saying the GPU is gone ("[GPU is lost]", "[GPU requires reset]").
bool CellSaysLost(std::string_view cell);

using Row = std::map<std::string, std::string>;  // field -> raw cell

struct Table {
  std::vector<Row> rows;
  std::vector<std::string> other_lines;  // lines that are not rows (error messages)
};

// Rows of a --query-* output over `fields`. A line with more cells than fields is a value with
// unquoted commas: the excess is given back to `free_text_field` (a name), when the query has
// one; a line that still does not fit is kept in other_lines.
Table ParseTable(std::string_view output, const std::vector<std::string>& fields,
                 std::string_view free_text_field = "name");

// The field named by `Field "x" is not a valid field to query.`, or "".
std::string RejectedField(std::string_view output);

// Numbers as nvidia-smi prints them with nounits ("70.25", "0x0000000000000004", "Enabled").
std::optional<double> Number(const Row& row, const std::string& field);
std::optional<uint64_t> Count(const Row& row, const std::string& field);  // decimal or 0x hex
std::optional<bool> Flag(const Row& row, const std::string& field);  // Enabled/Yes vs Disabled/No

// One GPU's sample / static facts from a --query-gpu row (fields as SmiGpuProbe asks them).
GpuSample SampleFromRow(const Row& row);
GpuInfo InfoFromRow(const Row& row);

// "12.4" from the banner of a plain `nvidia-smi` run ("... CUDA Version: 12.4 ..."), or "".
std::string CudaVersionFromBanner(std::string_view banner);

// The --query-gpu fields a Sample / a scan asks for, in their current spelling; OlderSpelling
// gives the name older drivers know a field by ("" when there is none).
const std::vector<std::string>& SampleQueryFields();
const std::vector<std::string>& InfoQueryFields();
std::string OlderSpelling(const std::string& field);

}  // namespace smi

}  // namespace taolie::gpu
