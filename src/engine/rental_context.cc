#include "engine/rental_context.h"

namespace taolie::engine {

std::shared_ptr<std::stop_source> DeployCancels::Register(const std::string& deployment_id,
                                                          const std::string& command_id) {
  std::lock_guard l(mu_);
  auto it = by_id_.find(deployment_id);
  std::shared_ptr<std::stop_source> src =
      it != by_id_.end() ? it->second : std::make_shared<std::stop_source>();
  by_id_[deployment_id] = src;
  by_id_[command_id] = src;
  return src;
}

bool DeployCancels::Cancel(const std::string& id) {
  std::lock_guard l(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  it->second->request_stop();
  return true;
}

void DeployCancels::Remove(const std::string& deployment_id, const std::string& command_id) {
  std::lock_guard l(mu_);
  by_id_.erase(deployment_id);
  by_id_.erase(command_id);
}

void RentalContext::FinishCommand(const store::CommandRecord& cmd, const std::string& result,
                                  const std::string& error, const std::string& deployment_id,
                                  std::vector<store::OutboxEvent> extra) const {
  RecordCommandResult(
      deps.store, events, [this] { rt.NotifyOutbox(); }, cmd, result, error, deployment_id,
      std::move(extra));
}

void RentalContext::FinishPendingCommand(const std::string& command_id, const std::string& result,
                                         const std::string& error,
                                         const std::string& deployment_id) const {
  auto cmd = deps.store.GetCommand(command_id);
  if (cmd.ok() && cmd->has_value() && (*cmd)->state == store::CommandState::kPending) {
    FinishCommand(**cmd, result, error, deployment_id);
  }
}

}  // namespace taolie::engine
