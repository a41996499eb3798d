#include "store/conninfo.h"

#include "common/net_address.h"

namespace taolie::store {
namespace {

// A conninfo value in single quotes, with ' and \ escaped.
std::string Quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

}  // namespace

bool UsesManagedDatabase(const config::DatabaseConfig& db) {
  return db.mode == "managed" || (db.mode.empty() && db.host.empty());
}

bool IsLocalDatabaseHost(std::string_view host) {
  if (host.empty() || host.front() == '/' || host.front() == '@') return true;
  return IsLoopbackHost(host);
}

std::string EffectiveSslMode(const config::DatabaseConfig& db) {
  if (!db.sslmode.empty()) return db.sslmode;
  return IsLocalDatabaseHost(db.host) ? "prefer" : "require";
}

std::string ExternalConnInfo(const config::DatabaseConfig& db) {
  std::string s = "host=" + Quote(db.host) + " port=" + std::to_string(db.port) +
                  " dbname=" + Quote(db.name) + " user=" + Quote(db.user) +
                  " password=" + Quote(db.password) +
                  " connect_timeout=" + std::to_string(db.connect_timeout) +
                  " sslmode=" + Quote(EffectiveSslMode(db));
  if (!db.sslrootcert.empty()) s += " sslrootcert=" + Quote(db.sslrootcert);
  // A silent link fails the call instead of blocking the store (docs/configuration.md).
  s += " keepalives=1 keepalives_idle=" + std::to_string(db.keepalives_idle) +
       " keepalives_interval=" + std::to_string(db.keepalives_interval) +
       " keepalives_count=" + std::to_string(db.keepalives_count) +
       " tcp_user_timeout=" + std::to_string(db.tcp_user_timeout_ms);
  return s + " application_name=taolie-host-agent";
}

}  // namespace taolie::store
