#pragma once
// What several loops share: reading the platform's replies, and the ack event of a command.
#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "platform/platform_api.h"
#include "runtime/runtime.h"
#include "store/records.h"

namespace taolie::loops {

inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// A failed platform call as an error: the transport's error, or the HTTP status and the
// body (redacted, cut to 300 bytes).
Status HttpError(const Result<platform::Response>& r, const std::string& what);
// Whether the call ended because the loop is stopping.
bool Cancelled(const Result<platform::Response>& r);
std::optional<int64_t> OptInt(const std::optional<uint64_t>& v);
std::optional<int64_t> OptInt(const std::optional<uint32_t>& v);
// The outbox event that acknowledges a command to the platform.
store::OutboxEvent AckOutboxEvent(const runtime::Runtime& rt, const Clock& clock,
                                  const std::string& command_id, const std::string& result,
                                  const std::string& error, const std::string& deployment_id);

}  // namespace taolie::loops
