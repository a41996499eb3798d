#include "store/pg_store.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/time_format.h"
#include "store/migrations.h"
#include "store/pg_store_internal.h"

namespace taolie::store {
namespace {

// pg_advisory_xact_lock key serialising migrations between agents sharing one database.
constexpr int64_t kMigrationLockKey = 0x74616f6c69650001;  // "taolie" + 1

}  // namespace

// ---------- value conversion and result rows ----------

std::string Num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}
std::string Num(int64_t v) { return std::to_string(v); }
std::string Num(int v) { return std::to_string(v); }
std::string Bool(bool v) { return v ? "true" : "false"; }

Param OptNum(const std::optional<double>& v) { return v ? Param(Num(*v)) : std::nullopt; }
Param OptNum(const std::optional<int64_t>& v) { return v ? Param(Num(*v)) : std::nullopt; }
Param OptBool(const std::optional<bool>& v) { return v ? Param(Bool(*v)) : std::nullopt; }
Param OptTime(const std::optional<SystemTime>& t) {
  return t ? Param(FormatRfc3339(*t)) : std::nullopt;
}
Param TimeOrNow(SystemTime t) { return t == SystemTime{} ? std::nullopt : Param(FormatRfc3339(t)); }
Param EmptyToNull(const std::string& s) { return s.empty() ? std::nullopt : Param(s); }

std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}
std::string IntArray(const std::vector<int64_t>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(items[i]);
  }
  out += '}';
  return out;
}

std::optional<SystemTime> ParsePgTime(std::string s) {
  if (s.size() >= 3 && s.compare(s.size() - 3, 3, "+00") == 0) s += ":00";
  return ParseTimestamp(s);
}

Error Prefix(std::string_view what, const Error& e) {
  return Error{e.code, std::string(what) + ": " + e.message};
}

std::vector<std::string> Rows::StrArrayFromJson(int row, const char* col) const {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(Str(row, col), nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

Error PgError(PGconn* conn, const PGresult* res) {
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return MakeError(ErrorCode::kUnavailable, "connection to PostgreSQL lost: " + msg);
  }
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string code = state ? state : "";
  std::string msg = primary ? primary : PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  msg += " (SQLSTATE " + (code.empty() ? std::string("?") : code) + ")";
  ErrorCode ec = ErrorCode::kInternal;
  if (code == "57014") {
    ec = ErrorCode::kDeadlineExceeded;  // statement_timeout
  } else if (code == "23505") {
    ec = ErrorCode::kAlreadyExists;
  } else if (code == "23503") {
    ec = ErrorCode::kFailedPrecondition;
  } else if (code.rfind("22", 0) == 0 || code == "23514" || code == "23502") {
    ec = ErrorCode::kInvalidArgument;
  } else if (code.rfind("08", 0) == 0 || code.rfind("53", 0) == 0 || code.rfind("57P", 0) == 0 ||
             code == "40001" || code == "40P01" || code == "55P03") {
    ec = ErrorCode::kUnavailable;
  }
  return MakeError(ec, msg);
}

std::string ValuesList(size_t rows, const std::vector<const char*>& casts) {
  std::string out;
  int n = 0;
  for (size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "(" : ", (";
    for (size_t c = 0; c < casts.size(); ++c) {
      out += (c == 0 ? "$" : ", $") + std::to_string(++n) + casts[c];
    }
    out += ")";
  }
  return out;
}

Status CheckLimit(int limit) {
  if (limit <= 0) return MakeError(ErrorCode::kInvalidArgument, "limit must be positive");
  return OkStatus();
}

// ---------- connection, transactions and migrations ----------

Status InsertEvents(Tx& tx, const std::vector<OutboxEvent>& events) {
  for (const auto& e : events) {
    if (e.path.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "outbox event needs a path");
    }
    auto r = tx.Exec(
        "INSERT INTO outbox (deployment_id, kind, path, body, ext, created_at) "
        "VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()))",
        {e.deployment_id, domain::EventKindName(e.kind), e.path, e.body, Bool(e.ext),
         TimeOrNow(e.created_at)});
    if (!r.ok()) return r.error();
  }
  return OkStatus();
}

PgStore::PgStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgStore::~PgStore() = default;

Result<std::unique_ptr<PgStore>> PgStore::Create(const std::string& conninfo,
                                                 int statement_timeout_ms) {
  if (statement_timeout_ms < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "statement_timeout_ms must be >= 0");
  }
  // Later keywords override the expanded conninfo; earlier ones are defaults it may override.
  std::string options =
      "-c TimeZone=UTC -c DateStyle=ISO -c statement_timeout=" +
      std::to_string(statement_timeout_ms) +
      " -c idle_in_transaction_session_timeout=60000 -c client_min_messages=warning";
  const char* keys[] = {"connect_timeout", "application_name", "dbname",
                        "options",         "client_encoding",  nullptr};
  const char* values[] = {"5",    "taolie-host-agent", conninfo.c_str(), options.c_str(), "UTF8",
                          nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return MakeError(ErrorCode::kInternal, "libpq: out of memory");
  // Server notices (e.g. "already exists, skipping") go to the debug log, not stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char* message) { spdlog::debug("postgres: {}", message); }, nullptr);
  auto impl = std::make_unique<Impl>(conn);
  if (PQstatus(conn) != CONNECTION_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot connect to PostgreSQL: " + impl->ConnMessage());
  }
  std::unique_ptr<PgStore> store(new PgStore(std::move(impl)));

  auto lock_sql = "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")";
  auto init = store->impl_->Run("create schema_migrations", [&](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(tx.Exec(lock_sql.c_str()));
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"));
    return OkStatus();
  });
  if (!init.ok()) return init.error();
  for (const auto& m : Migrations()) {
    bool applied = false;
    auto st = store->impl_->Run("migration " + std::to_string(m.version), [&](Tx& tx) -> Status {
      TAOLIE_RETURN_IF_ERROR(tx.Exec(lock_sql.c_str()));
      auto have = tx.Exec("SELECT 1 FROM schema_migrations WHERE version = $1", {Num(m.version)});
      if (!have.ok()) return have.error();
      if (!have->empty()) return OkStatus();
      TAOLIE_RETURN_IF_ERROR(tx.ExecScript(std::string(m.sql)));
      TAOLIE_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                  {Num(m.version), std::string(m.name)}));
      applied = true;
      return OkStatus();
    });
    if (!st.ok()) return st.error();
    if (applied) spdlog::info("store: applied migration {} ({})", m.version, m.name);
  }
  // A schema a newer agent migrated is not this one's to use (a downgrade): refused, with what
  // to do, before anything reads or writes it.
  const int known = Migrations().empty() ? 0 : Migrations().back().version;
  auto version = store->SchemaVersion();
  if (!version.ok()) return version.error();
  if (*version > known) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "the database's schema is at migration " + std::to_string(*version) +
                         ", newer than this agent knows (" + std::to_string(known) +
                         "): a newer agent used it. Install that version again, or restore the "
                         "backup of the database taken before the upgrade");
  }
  return store;
}

Result<int> PgStore::SchemaVersion() {
  return impl_->Run("schema version", [](Tx& tx) -> Result<int> {
    auto r = tx.Exec("SELECT coalesce(max(version), 0) AS v FROM schema_migrations");
    if (!r.ok()) return r.error();
    return static_cast<int>(r->Int(0, "v"));
  });
}

}  // namespace taolie::store
