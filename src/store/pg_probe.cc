#include "store/pg_probe.h"

#include <libpq-fe.h>

#include <memory>

namespace taolie::store {
namespace {

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
using Res = std::unique_ptr<PGresult, ResultClearer>;

// One value of a one-row query; nullopt when there is no row or the value is NULL.
Result<std::optional<std::string>> Scalar(PGconn* conn, const char* sql) {
  Res r(PQexec(conn, sql));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return MakeError(ErrorCode::kUnavailable, Trimmed(PQerrorMessage(conn)));
  }
  if (PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) return std::optional<std::string>();
  return std::optional<std::string>(PQgetvalue(r.get(), 0, 0));
}

}  // namespace

Result<PgProbeResult> ProbePostgres(const std::string& conninfo, int statement_timeout_ms) {
  const std::string options =
      "-c statement_timeout=" + std::to_string(statement_timeout_ms < 0 ? 0 : statement_timeout_ms);
  // Earlier keywords are defaults the expanded conninfo may override; later ones override it.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", "options", nullptr};
  const char* values[] = {"5", "taolie-host-agent-doctor", conninfo.c_str(), options.c_str(),
                          nullptr};
  Conn conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (!conn) return MakeError(ErrorCode::kInternal, "libpq: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return MakeError(ErrorCode::kUnavailable, Trimmed(PQerrorMessage(conn.get())));
  }
  PgProbeResult out;
  auto version = Scalar(conn.get(), "SELECT current_setting('server_version')");
  if (!version.ok()) return version.error();
  out.server_version = version->value_or("");
  // to_regclass: NULL (not an error) when the agent has never run against this database.
  auto table = Scalar(conn.get(), "SELECT to_regclass('agent_state')::text");
  if (!table.ok()) return table.error();
  if (table->has_value()) {
    auto id = Scalar(conn.get(), "SELECT value FROM agent_state WHERE key = 'agent_id'");
    if (!id.ok()) return id.error();
    out.agent_id = *id;
  }
  return out;
}

}  // namespace taolie::store
