// The pure nvidia-smi CSV parsing behind SmiGpuProbe: table-driven.
#include <gtest/gtest.h>

#include "gpu/smi_gpu_probe.h"

namespace taolie::gpu::smi {
namespace {

TEST(SmiSplitCsvLineTest, Table) {
  struct Case {
    const char* line;
    std::vector<std::string> cells;
  };
  const Case cases[] = {
      {"0, GPU-1, 54", {"0", "GPU-1", "54"}},
      {"0,GPU-1,54", {"0", "GPU-1", "54"}},
      {"  7 ,  [N/A] , ", {"7", "[N/A]", ""}},
      {"", {""}},
      {"\"NVIDIA A100, PCIe\", 3", {"NVIDIA A100, PCIe", "3"}},
      {"\"say \"\"hi\"\"\", 1", {"say \"hi\"", "1"}},
      {"a, , b", {"a", "", "b"}},
  };
  for (const auto& c : cases) EXPECT_EQ(SplitCsvLine(c.line), c.cells) << c.line;
}

TEST(SmiCellTest, AbsentValues) {
  for (const char* absent : {"", "  ", "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]",
                             "[Insufficient Permissions]", "[GPU is lost]", "Not Supported"}) {
    EXPECT_FALSE(Cell(absent).has_value()) << absent;
  }
  EXPECT_EQ(Cell(" 54 ").value_or(""), "54");
  EXPECT_EQ(Cell("Enabled").value_or(""), "Enabled");
  EXPECT_EQ(Cell("0").value_or("x"), "0");  // a zero is a value, not an absence
}

TEST(SmiCellTest, LostMarkers) {
  EXPECT_TRUE(CellSaysLost("[GPU is lost]"));
  EXPECT_TRUE(CellSaysLost(" [GPU requires reset] "));
  EXPECT_FALSE(CellSaysLost("[N/A]"));
  EXPECT_FALSE(CellSaysLost("[Unknown Error]"));
}

TEST(SmiNumbersTest, Table) {
  Row row = {{"a", "70.25"},  {"b", "0x0000000000000004"},
             {"c", "12"},     {"d", "[N/A]"},
             {"e", "12 MiB"}, {"f", "Enabled"},
             {"g", "No"},     {"h", "Disabled"},
             {"i", "Yes"},    {"j", "maybe"},
             {"k", "-1"},     {"l", "0x"}};
  EXPECT_DOUBLE_EQ(Number(row, "a").value_or(0), 70.25);
  EXPECT_EQ(Count(row, "b").value_or(0), 4u);
  EXPECT_EQ(Count(row, "c").value_or(0), 12u);
  EXPECT_FALSE(Count(row, "a").has_value());  // not an integer
  EXPECT_FALSE(Number(row, "d").has_value());
  EXPECT_FALSE(Count(row, "d").has_value());
  EXPECT_FALSE(Number(row, "e").has_value());  // units mean the query lacked nounits
  EXPECT_FALSE(Count(row, "k").has_value());
  EXPECT_FALSE(Count(row, "l").has_value());
  EXPECT_FALSE(Number(row, "missing").has_value());
  EXPECT_EQ(Flag(row, "f"), std::optional<bool>(true));
  EXPECT_EQ(Flag(row, "g"), std::optional<bool>(false));
  EXPECT_EQ(Flag(row, "h"), std::optional<bool>(false));
  EXPECT_EQ(Flag(row, "i"), std::optional<bool>(true));
  EXPECT_FALSE(Flag(row, "j").has_value());
  EXPECT_FALSE(Flag(row, "d").has_value());
}

TEST(SmiParseTableTest, RowsErrorLinesAndCommasInNames) {
  const std::vector<std::string> fields = {"index", "name", "uuid"};
  Table t = ParseTable(
      "0, NVIDIA H100 80GB HBM3, GPU-a\n"
      "Unable to determine the device handle for GPU0000:2A:00.0: Unknown Error\n"
      "2, NVIDIA A100, PCIe, 40GB, GPU-c\n"
      "\n"
      "3, \"Quoted, name\", GPU-d\n",
      fields);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].at("name"), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(t.rows[1].at("name"), "NVIDIA A100, PCIe, 40GB");
  EXPECT_EQ(t.rows[1].at("uuid"), "GPU-c");
  EXPECT_EQ(t.rows[2].at("name"), "Quoted, name");
  ASSERT_EQ(t.other_lines.size(), 1u);
  EXPECT_NE(t.other_lines[0].find("GPU0000:2A:00.0"), std::string::npos);
}

TEST(SmiParseTableTest, WithoutFreeTextFieldExtraCellsAreNotARow) {
  Table t = ParseTable("GPU-a, 42, 7\nGPU-b, 43\n", {"gpu_uuid", "pid"}, "");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].at("gpu_uuid"), "GPU-b");
  EXPECT_EQ(t.other_lines.size(), 1u);
}

TEST(SmiRejectedFieldTest, Table) {
  EXPECT_EQ(RejectedField("Field \"clocks_event_reasons.active\" is not a valid field to query.\n"),
            "clocks_event_reasons.active");
  EXPECT_EQ(RejectedField("noise\nField \"x.y\" is not a valid field to query.\n\n"), "x.y");
  EXPECT_EQ(RejectedField("NVIDIA-SMI has failed because it couldn't communicate"), "");
  EXPECT_EQ(RejectedField("Field \"unterminated"), "");
}

Row FullRow() {
  return {{"index", "3"},
          {"uuid", "GPU-8c6b1f2e-0000-4000-8000-000000000003"},
          {"pci.bus_id", "00000000:5D:00.0"},
          {"utilization.gpu", "87"},
          {"utilization.memory", "41"},
          {"memory.used", "70000"},
          {"memory.free", "11559"},
          {"memory.total", "81559"},
          {"temperature.gpu", "71"},
          {"power.draw", "612.40"},
          {"enforced.power.limit", "700.00"},
          {"fan.speed", "[N/A]"},
          {"clocks.sm", "1980"},
          {"clocks.mem", "2619"},
          {"pcie.link.gen.gpucurrent", "5"},
          {"pcie.link.gen.max", "5"},
          {"pcie.link.width.current", "8"},
          {"pcie.link.width.max", "16"},
          {"ecc.mode.current", "Enabled"},
          {"ecc.errors.corrected.volatile.total", "12"},
          {"ecc.errors.uncorrected.volatile.total", "0"},
          {"ecc.errors.corrected.aggregate.total", "120"},
          {"ecc.errors.uncorrected.aggregate.total", "1"},
          {"retired_pages.sbe", "[N/A]"},
          {"retired_pages.dbe", "[N/A]"},
          {"retired_pages.pending", "[N/A]"},
          {"clocks_event_reasons.active", "0x0000000000000008"},
          {"persistence_mode", "Enabled"},
          {"reset_status.reset_required", "No"},
          {"reset_status.drain_and_reset_recommended", "No"}};
}

TEST(SmiSampleFromRowTest, EveryFieldMapped) {
  GpuSample s = SampleFromRow(FullRow());
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.uuid, "GPU-8c6b1f2e-0000-4000-8000-000000000003");
  EXPECT_FALSE(s.lost);
  EXPECT_EQ(s.utilization_percent, 87.0);
  EXPECT_EQ(s.memory_utilization_percent, 41.0);
  EXPECT_EQ(s.memory_used_mb, 70000u);
  EXPECT_EQ(s.memory_free_mb, 11559u);
  EXPECT_EQ(s.memory_total_mb, 81559u);
  EXPECT_EQ(s.temperature_c, 71.0);
  EXPECT_DOUBLE_EQ(s.power_draw_watts.value_or(0), 612.4);
  EXPECT_EQ(s.power_limit_watts, 700.0);
  EXPECT_FALSE(s.fan_speed_percent.has_value());
  EXPECT_EQ(s.sm_clock_mhz, 1980u);
  EXPECT_EQ(s.mem_clock_mhz, 2619u);
  EXPECT_EQ(s.pcie_gen, 5u);
  EXPECT_EQ(s.pcie_max_gen, 5u);
  EXPECT_EQ(s.pcie_width, 8u);
  EXPECT_EQ(s.pcie_max_width, 16u);
  EXPECT_EQ(s.ecc_enabled, true);
  EXPECT_EQ(s.ecc_volatile_corrected, 12u);
  EXPECT_EQ(s.ecc_volatile_uncorrected, 0u);
  EXPECT_EQ(s.ecc_aggregate_corrected, 120u);
  EXPECT_EQ(s.ecc_aggregate_uncorrected, 1u);
  EXPECT_FALSE(s.retired_pages_sbe.has_value());
  EXPECT_FALSE(s.retired_pages_pending.has_value());
  EXPECT_EQ(s.throttle_reasons, 8u);  // HW slowdown
  EXPECT_EQ(s.persistence_mode, true);
  EXPECT_EQ(s.recovery_action, 0u);
  // nvidia-smi has no query field for these: absent, never a made-up value.
  EXPECT_FALSE(s.temperature_slowdown_c.has_value());
  EXPECT_FALSE(s.energy_joules.has_value());
  EXPECT_FALSE(s.pcie_replay_count.has_value());
  EXPECT_FALSE(s.power_violation_ns.has_value());
}

TEST(SmiSampleFromRowTest, OlderSpellingsAndRecoveryAction) {
  Row row = FullRow();
  row.erase("clocks_event_reasons.active");
  row["clocks_throttle_reasons.active"] = "0x0000000000000001";
  row.erase("pcie.link.gen.gpucurrent");
  row["pcie.link.gen.current"] = "3";
  row["reset_status.reset_required"] = "Yes";
  GpuSample s = SampleFromRow(row);
  EXPECT_EQ(s.throttle_reasons, 1u);
  EXPECT_EQ(s.pcie_gen, 3u);
  EXPECT_EQ(s.recovery_action, 1u);
  row["reset_status.drain_and_reset_recommended"] = "Yes";
  EXPECT_EQ(SampleFromRow(row).recovery_action, 4u);
  row.erase("reset_status.reset_required");
  row.erase("reset_status.drain_and_reset_recommended");
  EXPECT_FALSE(SampleFromRow(row).recovery_action.has_value());  // an older tool: not known
}

TEST(SmiSampleFromRowTest, LostCellMarksTheGpuLost) {
  Row row = FullRow();
  row["temperature.gpu"] = "[GPU is lost]";
  GpuSample s = SampleFromRow(row);
  EXPECT_TRUE(s.lost);
  EXPECT_NE(s.error.find("GPU is lost"), std::string::npos);
  EXPECT_FALSE(s.temperature_c.has_value());
}

TEST(SmiInfoFromRowTest, Table) {
  Row row = {{"index", "1"},
             {"uuid", "GPU-b"},
             {"name", "NVIDIA A100-SXM4-80GB"},
             {"pci.bus_id", "00000000:41:00.0"},
             {"memory.total", "81920"},
             {"compute_cap", "8.0"},
             {"serial", "1324021001234"},
             {"vbios_version", "92.00.45.00.06"},
             {"inforom.img", "G503.0201.00.03"},
             {"enforced.power.limit", "400.00"},
             {"mig.mode.current", "Disabled"}};
  GpuInfo g = InfoFromRow(row);
  EXPECT_EQ(g.index, 1);
  EXPECT_EQ(g.uuid, "GPU-b");
  EXPECT_EQ(g.name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(g.pci_bus_id, "00000000:41:00.0");
  EXPECT_EQ(g.memory_total_mb, 81920u);
  EXPECT_EQ(g.compute_capability, "8.0");
  EXPECT_EQ(g.serial, "1324021001234");
  EXPECT_EQ(g.vbios_version, "92.00.45.00.06");
  EXPECT_EQ(g.inforom_image_version, "G503.0201.00.03");
  EXPECT_EQ(g.power_limit_watts, 400.0);
  EXPECT_EQ(g.mig_mode, "disabled");
  EXPECT_FALSE(g.fan_count.has_value());
  row["mig.mode.current"] = "[N/A]";
  row["serial"] = "[N/A]";
  row.erase("compute_cap");  // an older nvidia-smi without the field
  g = InfoFromRow(row);
  EXPECT_EQ(g.mig_mode, "unsupported");
  EXPECT_EQ(g.serial, "");
  EXPECT_EQ(g.compute_capability, "");
  row["mig.mode.current"] = "Enabled";
  EXPECT_EQ(InfoFromRow(row).mig_mode, "enabled");
}

TEST(SmiCudaVersionFromBannerTest, Table) {
  EXPECT_EQ(CudaVersionFromBanner(
                "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"),
            "12.4");
  EXPECT_EQ(CudaVersionFromBanner("CUDA Version: N/A"), "");
  EXPECT_EQ(CudaVersionFromBanner("no banner"), "");
}

TEST(SmiFieldsTest, OlderSpellings) {
  EXPECT_EQ(OlderSpelling("clocks_event_reasons.active"), "clocks_throttle_reasons.active");
  EXPECT_EQ(OlderSpelling("pcie.link.gen.gpucurrent"), "pcie.link.gen.current");
  EXPECT_EQ(OlderSpelling("temperature.gpu"), "");
  // Every field a Sample asks for is one SampleFromRow reads (no field asked for nothing).
  Row row;
  for (const auto& f : SampleQueryFields()) row[f] = "1";
  GpuSample s = SampleFromRow(row);
  EXPECT_TRUE(s.utilization_percent && s.memory_utilization_percent && s.memory_used_mb &&
              s.memory_free_mb && s.memory_total_mb && s.temperature_c && s.power_draw_watts &&
              s.power_limit_watts && s.fan_speed_percent && s.sm_clock_mhz && s.mem_clock_mhz &&
              s.pcie_gen && s.pcie_max_gen && s.pcie_width && s.pcie_max_width &&
              s.ecc_volatile_corrected && s.ecc_volatile_uncorrected && s.ecc_aggregate_corrected &&
              s.ecc_aggregate_uncorrected && s.retired_pages_sbe && s.retired_pages_dbe &&
              s.throttle_reasons);
}

}  // namespace
}  // namespace taolie::gpu::smi
