#pragma once
// StateStore: the agent's own facts that outlive a run (agent_state, key/value: the agent id,
// the platform's GPU id, the drain flag) and whatever belongs to no table: the database's
// liveness. Every method is one transaction.
#include <optional>
#include <string>

#include "common/result.h"

namespace taolie::store {

class StateStore {
 public:
  virtual ~StateStore() = default;

  virtual Result<std::optional<std::string>> GetState(const std::string& key) = 0;
  virtual Status SetState(const std::string& key, const std::string& value) = 0;

  // Cheap liveness check (SELECT 1), reconnecting if needed.
  virtual Status Ping() = 0;
};

}  // namespace taolie::store
