#include "engine/events.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>

#include "platform/messages.h"

namespace taolie::engine {

store::OutboxEvent EventFactory::Deployment(const std::string& deployment_id,
                                            domain::EventKind kind, std::string body,
                                            bool ext) const {
  store::OutboxEvent e;
  e.deployment_id = deployment_id;
  e.kind = kind;
  e.path = platform::DeploymentEventPath(deployment_id, domain::EventKindName(kind));
  e.body = std::move(body);
  e.ext = ext;
  e.created_at = clock_.Now();
  return e;
}

store::OutboxEvent EventFactory::Failed(const std::string& deployment_id, const std::string& stage,
                                        const std::string& error) const {
  return Deployment(deployment_id, domain::EventKind::kFailed,
                    platform::BuildFailedBody(deployment_id, stage, error, clock_.Now(), ts_),
                    true);
}

store::OutboxEvent EventFactory::Ack(const std::string& command_id, const std::string& result,
                                     const std::string& error,
                                     const std::string& deployment_id) const {
  store::OutboxEvent e;
  e.deployment_id = deployment_id;
  e.kind = domain::EventKind::kAck;
  e.path = platform::AckPath(agent_id_, command_id);
  e.body = platform::BuildAckBody(clock_.Now(), ts_, result, error, deployment_id);
  e.ext = false;
  e.created_at = clock_.Now();
  return e;
}

void RecordCommandResult(store::Store& store, const EventFactory& events,
                         const std::function<void()>& notify_outbox,
                         const store::CommandRecord& cmd, const std::string& result,
                         const std::string& error, const std::string& deployment_id,
                         std::vector<store::OutboxEvent> extra) {
  extra.push_back(events.Ack(cmd.command_id, result, error, deployment_id));
  Status st = store.FinishCommand(cmd.command_id, result, error, deployment_id, extra);
  if (!st.ok()) {
    spdlog::error("command {}: could not record result: {}", cmd.command_id, st.error().ToString());
    return;
  }
  if (notify_outbox) notify_outbox();
}

std::optional<std::string> CommandIdFromAckPath(const std::string& path) {
  const std::string marker = "/commands/";
  auto pos = path.rfind(marker);
  if (pos == std::string::npos || path.size() < 4 ||
      path.compare(path.size() - 4, 4, "/ack") != 0) {
    return std::nullopt;
  }
  std::string enc = path.substr(pos + marker.size(), path.size() - 4 - pos - marker.size());
  std::string out;
  for (size_t i = 0; i < enc.size(); ++i) {
    if (enc[i] == '%' && i + 2 < enc.size() &&
        std::isxdigit(static_cast<unsigned char>(enc[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(enc[i + 2]))) {
      out.push_back(static_cast<char>(std::strtol(enc.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(enc[i]);
    }
  }
  return out;
}

}  // namespace taolie::engine
