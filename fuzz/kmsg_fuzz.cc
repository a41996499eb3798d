// /dev/kmsg records and the driver's XID lines in them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "host/kmsg_xid_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)taolie::host::ParseKmsgRecord(text);
  if (auto xid = taolie::host::ParseKmsgXidRecord(text)) {
    // The bus id is always given back in NVML's form, which normalises to itself.
    auto again = taolie::host::NormalizePciBusId(xid->pci_bus_id);
    FUZZ_CHECK(again.has_value() && *again == xid->pci_bus_id);
  }
  (void)taolie::host::ParseNvrmXidMessage(text);
  if (auto bus = taolie::host::NormalizePciBusId(text)) {
    FUZZ_CHECK(taolie::host::NormalizePciBusId(*bus) == bus);
  }
  return 0;
}
