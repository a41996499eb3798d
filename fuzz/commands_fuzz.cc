// The command poll: the whole reply body as the platform sends it, then its logging mask.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/json_bounds.h"
#include "fuzz_check.h"
#include "platform/delivery.h"
#include "platform/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto parsed = taolie::platform::ParseCommands(body);
  if (parsed.ok()) {
    for (const auto& c : parsed->commands) {
      // Every command handed on can be recorded and acknowledged, and its payload is bounded.
      FUZZ_CHECK(taolie::platform::IsAcknowledgeableCommandId(c.command_id));
      FUZZ_CHECK(taolie::CheckJsonBounds(c.payload_json).ok());
    }
  }
  // The scanner agrees with nlohmann's acceptor on where a valid text's value ends (nlohmann
  // reads a NUL byte as the end of the input).
  if (nlohmann::json::accept(body)) {
    auto span = taolie::ScanJsonValue(body);
    FUZZ_CHECK(span.ok());
    const size_t rest = body.find_first_not_of(" \t\r\n", span->end);
    FUZZ_CHECK(rest == std::string::npos || body[rest] == '\0');
  }
  const std::string masked = taolie::platform::RedactForLog(body, 300);
  FUZZ_CHECK(masked.size() <= 300 + 40);
  // A secret value is never logged as it was sent.
  const std::string secret = nlohmann::json{{"password", body.substr(0, 64)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  FUZZ_CHECK(taolie::platform::RedactForLog(secret, 1000) == R"({"password":"***"})");
  return 0;
}
