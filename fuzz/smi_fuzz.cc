// nvidia-smi's CSV output (--query-gpu ... --format=csv,noheader,nounits) and its banner.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "gpu/smi_gpu_probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace smi = taolie::gpu::smi;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto* fields : {&smi::SampleQueryFields(), &smi::InfoQueryFields()}) {
    const smi::Table table = smi::ParseTable(text, *fields);
    for (const auto& row : table.rows) {
      FUZZ_CHECK(row.size() == fields->size());
      (void)smi::SampleFromRow(row);
      (void)smi::InfoFromRow(row);
    }
  }
  (void)smi::SplitCsvLine(text);
  (void)smi::RejectedField(text);
  (void)smi::CudaVersionFromBanner(text);
  return 0;
}
