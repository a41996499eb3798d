// The progress stream of POST /images/create: one JSON object per line.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "docker/engine_api.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    if (auto parsed = taolie::docker::ParsePullLine(line); parsed.ok() && parsed->error) {
      FUZZ_CHECK(!parsed->error->empty());
    }
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  return 0;
}
