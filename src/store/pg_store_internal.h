#pragma once
// PgStore's private plumbing, shared by its translation units (pg_store.cc: connection,
// transactions, migrations; pg_store_<role>.cc: one per Store role) and by nothing else: libpq
// stays inside the store library. Values are always bound parameters (Param, NULL as nullopt).
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/result.h"
#include "store/pg_store.h"
#include "store/records.h"

namespace taolie::store {

using Param = std::optional<std::string>;
using Params = std::vector<Param>;

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// ---------- value conversion (pg_store.cc) ----------

std::string Num(double v);
std::string Num(int64_t v);
std::string Num(int v);
std::string Bool(bool v);
Param OptNum(const std::optional<double>& v);
Param OptNum(const std::optional<int64_t>& v);
Param OptBool(const std::optional<bool>& v);
Param OptTime(const std::optional<SystemTime>& t);
// SystemTime{} (the epoch) means "not given": the SQL side uses now().
Param TimeOrNow(SystemTime t);
Param EmptyToNull(const std::string& s);
// PostgreSQL array literal: {"a","b"} with backslash escapes; safe for any element text.
std::string TextArray(const std::vector<std::string>& items);
std::string IntArray(const std::vector<int64_t>& items);
// timestamptz text with TimeZone=UTC, DateStyle=ISO: "2026-01-01 10:00:00.123456+00".
std::optional<SystemTime> ParsePgTime(std::string s);
Error Prefix(std::string_view what, const Error& e);
// "($1, $2), ($3, $4)" for `rows` rows of `casts.size()` columns; casts[i] is appended to
// column i's placeholder (e.g. "::jsonb"). One statement instead of one per row.
std::string ValuesList(size_t rows, const std::vector<const char*>& casts);
Status CheckLimit(int limit);  // InvalidArgument unless positive

// ---------- result rows ----------

class Rows {
 public:
  explicit Rows(PgResultPtr r) : r_(std::move(r)) {}
  int size() const { return PQntuples(r_.get()); }
  bool empty() const { return size() == 0; }
  std::string CommandStatus() const { return PQcmdStatus(r_.get()); }
  int64_t Affected() const {
    const char* n = PQcmdTuples(r_.get());
    return (n != nullptr && *n != '\0') ? std::strtoll(n, nullptr, 10) : 0;
  }
  bool Null(int row, const char* col) const {
    int c = PQfnumber(r_.get(), col);
    return c < 0 || PQgetisnull(r_.get(), row, c) != 0;
  }
  std::string Str(int row, const char* col) const {
    int c = PQfnumber(r_.get(), col);
    if (c < 0 || PQgetisnull(r_.get(), row, c)) return "";
    return std::string(PQgetvalue(r_.get(), row, c),
                       static_cast<size_t>(PQgetlength(r_.get(), row, c)));
  }
  std::optional<std::string> OptStr(int row, const char* col) const {
    if (Null(row, col)) return std::nullopt;
    return Str(row, col);
  }
  int64_t Int(int row, const char* col) const {
    return Null(row, col) ? 0 : std::strtoll(Str(row, col).c_str(), nullptr, 10);
  }
  std::optional<int64_t> OptInt(int row, const char* col) const {
    if (Null(row, col)) return std::nullopt;
    return Int(row, col);
  }
  double Dbl(int row, const char* col) const {
    return Null(row, col) ? 0.0 : std::strtod(Str(row, col).c_str(), nullptr);
  }
  std::optional<double> OptDbl(int row, const char* col) const {
    if (Null(row, col)) return std::nullopt;
    return Dbl(row, col);
  }
  bool Flag(int row, const char* col) const { return Str(row, col) == "t"; }
  std::optional<bool> OptFlag(int row, const char* col) const {
    if (Null(row, col)) return std::nullopt;
    return Flag(row, col);
  }
  std::optional<SystemTime> OptTs(int row, const char* col) const {
    if (Null(row, col)) return std::nullopt;
    auto t = ParsePgTime(Str(row, col));
    if (!t) spdlog::warn("store: unparseable timestamp in column {}", col);
    return t;
  }
  SystemTime Ts(int row, const char* col) const { return OptTs(row, col).value_or(SystemTime{}); }
  // A JSON array of strings (e.g. array_to_json(...)::text); anything else: empty.
  std::vector<std::string> StrArrayFromJson(int row, const char* col) const;

 private:
  PgResultPtr r_;
};

// Maps a failed statement to an ErrorCode; messages carry the server's primary message only
// (the DETAIL line may quote row values).
Error PgError(PGconn* conn, const PGresult* res);

// A transaction in progress: the statements of one Store call.
class Tx {
 public:
  explicit Tx(PGconn* conn) : conn_(conn) {}

  Result<Rows> Exec(const char* sql, const Params& params = {}) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PgResultPtr res(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr,
                                 values.empty() ? nullptr : values.data(), nullptr, nullptr, 0));
    return Check(std::move(res));
  }
  // Parameterless script (several statements), used for migrations only.
  Result<Rows> ExecScript(const std::string& sql) {
    return Check(PgResultPtr(PQexec(conn_, sql.c_str())));
  }

 private:
  Result<Rows> Check(PgResultPtr res) {
    ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Rows(std::move(res));
    return PgError(conn_, res.get());
  }
  PGconn* conn_;
};

// Appends `events` to the outbox in `tx` (the caller's transaction); each needs a path.
Status InsertEvents(Tx& tx, const std::vector<OutboxEvent>& events);

// ---------- connection and transactions ----------

class PgStore::Impl {
 public:
  explicit Impl(PGconn* conn) : conn_(conn) {}
  ~Impl() {
    if (conn_ != nullptr) PQfinish(conn_);
  }

  // Runs `body(Tx&)` (returning Result<T> or Status) inside BEGIN/COMMIT under the mutex.
  template <typename F>
  auto Run(std::string_view what, F&& body) -> std::invoke_result_t<F, Tx&> {
    using R = std::invoke_result_t<F, Tx&>;
    std::lock_guard lock(mu_);
    for (int attempt = 0;; ++attempt) {
      if (PQstatus(conn_) != CONNECTION_OK) {
        PQreset(conn_);
        if (PQstatus(conn_) != CONNECTION_OK) {
          return R(Prefix(what, MakeError(ErrorCode::kUnavailable,
                                          "PostgreSQL unreachable: " + ConnMessage())));
        }
        spdlog::info("store: reconnected to PostgreSQL");
      }
      Tx tx(conn_);
      auto begin = tx.Exec("BEGIN");
      if (!begin.ok()) {
        // Nothing of this call reached the server yet, so one retry on a fresh connection is
        // safe (typical after a server restart or a terminated backend).
        if (attempt == 0 && PQstatus(conn_) != CONNECTION_OK) {
          spdlog::warn("store: connection to PostgreSQL lost; reconnecting");
          continue;
        }
        return R(Prefix(what, begin.error()));
      }
      R result = body(tx);
      if (!result.ok()) {
        if (PQstatus(conn_) == CONNECTION_OK) PgResultPtr(PQexec(conn_, "ROLLBACK"));
        return R(Prefix(what, result.error()));
      }
      auto commit = tx.Exec("COMMIT");
      if (!commit.ok()) return R(Prefix(what, commit.error()));
      if (commit->CommandStatus() != "COMMIT") {
        return R(Prefix(what, MakeError(ErrorCode::kInternal, "transaction was rolled back")));
      }
      return result;
    }
  }

  std::string ConnMessage() const {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return msg;
  }

 private:
  std::mutex mu_;
  PGconn* conn_;
};

}  // namespace taolie::store
