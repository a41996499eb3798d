// PgStore, StateStore role: agent_state and liveness.
#include "store/pg_store.h"
#include "store/pg_store_internal.h"

namespace taolie::store {

Status PgStore::Ping() {
  return impl_->Run("ping", [](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(tx.Exec("SELECT 1"));
    return OkStatus();
  });
}
Result<std::optional<std::string>> PgStore::GetState(const std::string& key) {
  return impl_->Run("get state", [&](Tx& tx) -> Result<std::optional<std::string>> {
    auto r = tx.Exec("SELECT value FROM agent_state WHERE key = $1", {key});
    if (!r.ok()) return r.error();
    if (r->empty()) return std::optional<std::string>();
    return std::optional<std::string>(r->Str(0, "value"));
  });
}

Status PgStore::SetState(const std::string& key, const std::string& value) {
  return impl_->Run("set state", [&](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO agent_state (key, value, updated_at) VALUES ($1, $2, now()) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                {key, value}));
    return OkStatus();
  });
}
}  // namespace taolie::store
