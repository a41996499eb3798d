#pragma once
// A read-only look at a PostgreSQL server (for `taolie-host-agent doctor`): one connection, no
// migrations, nothing written. libpq stays inside the store library.
#include <optional>
#include <string>

#include "common/result.h"

namespace taolie::store {

struct PgProbeResult {
  std::string server_version;           // e.g. "15.8"
  std::optional<std::string> agent_id;  // agent_state's agent_id, when the agent's tables exist
};

// Connects with `conninfo` (its connect_timeout bounds the connection; 5 s when absent), reads
// the server version and the agent id the agent keeps, with a statement timeout of
// `statement_timeout_ms`, and disconnects. Unavailable with libpq's message (which never holds
// the password) when the server cannot be reached or refuses the login.
Result<PgProbeResult> ProbePostgres(const std::string& conninfo, int statement_timeout_ms = 5000);

}  // namespace taolie::store
