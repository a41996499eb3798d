#pragma once
// libpq connection strings for an external database (`database.mode: external`).
#include <string>
#include <string_view>

#include "config/config.h"

namespace taolie::store {

// True when the agent runs its own cluster under data_dir: database.mode "managed", or no mode
// and no host.
bool UsesManagedDatabase(const config::DatabaseConfig& db);

// True for a host the connection never leaves this machine for: "" (libpq's default socket),
// a socket directory (starts with '/' or '@'), localhost or a loopback address.
bool IsLocalDatabaseHost(std::string_view host);

// database.sslmode as libpq gets it: the configured mode, or "" = `require` for a host that
// is not local and `prefer` for a local one.
std::string EffectiveSslMode(const config::DatabaseConfig& db);

// host, port, dbname, user, password, connect_timeout, sslmode (effective), sslrootcert (when
// set), keepalives=1 with keepalives_idle/_interval/_count and tcp_user_timeout (the config's
// values, which always win) and application_name, each value quoted. Holds the password: never
// log it.
std::string ExternalConnInfo(const config::DatabaseConfig& db);

}  // namespace taolie::store
