#include "loops/loop_helpers.h"

#include "platform/delivery.h"
#include "platform/messages.h"

namespace taolie::loops {

Status HttpError(const Result<platform::Response>& r, const std::string& what) {
  if (!r.ok()) return MakeError(r.error().code, what + ": " + r.error().message);
  return MakeError(ErrorCode::kUnavailable, what + ": HTTP " + std::to_string(r->status) + " " +
                                                platform::RedactForLog(r->body, 300));
}

bool Cancelled(const Result<platform::Response>& r) {
  return !r.ok() && r.error().code == ErrorCode::kCancelled;
}

std::optional<int64_t> OptInt(const std::optional<uint64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<int64_t>(*v);
}
std::optional<int64_t> OptInt(const std::optional<uint32_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<int64_t>(*v);
}

store::OutboxEvent AckOutboxEvent(const runtime::Runtime& rt, const Clock& clock,
                                  const std::string& command_id, const std::string& result,
                                  const std::string& error, const std::string& deployment_id) {
  store::OutboxEvent e;
  e.kind = domain::EventKind::kAck;
  e.path = platform::AckPath(rt.agent_id(), command_id);
  e.body = platform::BuildAckBody(clock.Now(), rt.ts(), result, error, deployment_id);
  e.created_at = clock.Now();
  return e;
}

}  // namespace taolie::loops
