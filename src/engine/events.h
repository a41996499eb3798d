#pragma once
// Builds the outbox rows the rental engine writes: deployment events and command acks, and
// records a command's result (its ack goes into the outbox in the same transaction).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time_format.h"
#include "domain/enums.h"
#include "store/store.h"

namespace taolie::engine {

class EventFactory {
 public:
  EventFactory(const Clock& clock, std::string agent_id, TimestampFormat ts)
      : clock_(clock), agent_id_(std::move(agent_id)), ts_(ts) {}

  store::OutboxEvent Deployment(const std::string& deployment_id, domain::EventKind kind,
                                std::string body, bool ext) const;
  // `failed` (ext) for a deployment that never became ready.
  store::OutboxEvent Failed(const std::string& deployment_id, const std::string& stage,
                            const std::string& error) const;
  store::OutboxEvent Ack(const std::string& command_id, const std::string& result,
                         const std::string& error, const std::string& deployment_id) const;
  TimestampFormat ts() const { return ts_; }

 private:
  const Clock& clock_;
  const std::string agent_id_;
  const TimestampFormat ts_;
};

// Marks the command done with its result and queues its ack (plus `extra` events) in one
// transaction, then wakes the outbox. On a store error the command stays pending (the next
// poll or reconcile processes it again, idempotently) and the error is logged.
void RecordCommandResult(store::Store& store, const EventFactory& events,
                         const std::function<void()>& notify_outbox,
                         const store::CommandRecord& cmd, const std::string& result,
                         const std::string& error, const std::string& deployment_id,
                         std::vector<store::OutboxEvent> extra = {});

// Parses "/api/host-agents/<agent>/commands/<command>/ack" back to the command id.
std::optional<std::string> CommandIdFromAckPath(const std::string& path);

}  // namespace taolie::engine
