#include "store/pg_store.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/time_format.h"
#include "store/migrations.h"
#include "store/secret_scrub.h"
#include "store/transitions.h"

namespace taolie::store {
namespace {

// pg_advisory_xact_lock key serialising migrations between agents sharing one database.
constexpr int64_t kMigrationLockKey = 0x74616f6c69650001;  // "taolie" + 1

using Param = std::optional<std::string>;
using Params = std::vector<Param>;

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// ---------- value conversion ----------

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
// SystemTime{} (the epoch) means "not given": the SQL side uses now().
Param TimeOrNow(SystemTime t) { return t == SystemTime{} ? std::nullopt : Param(FormatRfc3339(t)); }
Param EmptyToNull(const std::string& s) { return s.empty() ? std::nullopt : Param(s); }

// PostgreSQL array literal: {"a","b"} with backslash escapes; safe for any element text.
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

// timestamptz text with TimeZone=UTC, DateStyle=ISO: "2026-01-01 10:00:00.123456+00".
std::optional<SystemTime> ParsePgTime(std::string s) {
  if (s.size() >= 3 && s.compare(s.size() - 3, 3, "+00") == 0) s += ":00";
  return ParseTimestamp(s);
}

Error Prefix(std::string_view what, const Error& e) {
  return Error{e.code, std::string(what) + ": " + e.message};
}

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
  std::vector<std::string> StrArrayFromJson(int row, const char* col) const {
    std::vector<std::string> out;
    auto j = nlohmann::json::parse(Str(row, col), nullptr, /*allow_exceptions=*/false);
    if (!j.is_array()) return out;
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
    return out;
  }

 private:
  PgResultPtr r_;
};

// Maps a failed statement to an ErrorCode; messages carry the server's primary message only
// (the DETAIL line may quote row values).
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

// "($1, $2), ($3, $4)" for `rows` rows of `casts.size()` columns; casts[i] is appended to
// column i's placeholder (e.g. "::jsonb"). One statement instead of one per row.
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

// gpu_metrics' optional columns, by type, with the GpuMetricRow member each one holds.
template <typename T>
struct GpuColumn {
  const char* name;
  std::optional<T> GpuMetricRow::*member;
};
constexpr GpuColumn<double> kGpuDoubleColumns[] = {
    {"utilization", &GpuMetricRow::utilization},
    {"temperature_c", &GpuMetricRow::temperature_c},
    {"power_draw_watts", &GpuMetricRow::power_draw_watts},
    {"power_limit_watts", &GpuMetricRow::power_limit_watts},
    {"fan_speed_percent", &GpuMetricRow::fan_speed_percent},
    {"memory_utilization", &GpuMetricRow::memory_utilization},
    {"energy_joules", &GpuMetricRow::energy_joules},
};
constexpr GpuColumn<int64_t> kGpuIntColumns[] = {
    {"memory_used_mb", &GpuMetricRow::memory_used_mb},
    {"memory_total_mb", &GpuMetricRow::memory_total_mb},
    {"sm_clock_mhz", &GpuMetricRow::sm_clock_mhz},
    {"mem_clock_mhz", &GpuMetricRow::mem_clock_mhz},
    {"memory_free_mb", &GpuMetricRow::memory_free_mb},
    {"pcie_gen", &GpuMetricRow::pcie_gen},
    {"pcie_width", &GpuMetricRow::pcie_width},
    {"pcie_replay_count", &GpuMetricRow::pcie_replay_count},
    {"throttle_reasons", &GpuMetricRow::throttle_reasons},
    {"ecc_volatile_corrected", &GpuMetricRow::ecc_volatile_corrected},
    {"ecc_volatile_uncorrected", &GpuMetricRow::ecc_volatile_uncorrected},
    {"ecc_aggregate_corrected", &GpuMetricRow::ecc_aggregate_corrected},
    {"ecc_aggregate_uncorrected", &GpuMetricRow::ecc_aggregate_uncorrected},
    {"retired_pages_sbe", &GpuMetricRow::retired_pages_sbe},
    {"retired_pages_dbe", &GpuMetricRow::retired_pages_dbe},
    {"remapped_rows_correctable", &GpuMetricRow::remapped_rows_correctable},
    {"remapped_rows_uncorrectable", &GpuMetricRow::remapped_rows_uncorrectable},
    {"power_violation_ns", &GpuMetricRow::power_violation_ns},
    {"thermal_violation_ns", &GpuMetricRow::thermal_violation_ns},
};
constexpr GpuColumn<bool> kGpuBoolColumns[] = {
    {"retired_pages_pending", &GpuMetricRow::retired_pages_pending},
    {"remapped_rows_pending", &GpuMetricRow::remapped_rows_pending},
    {"remapped_rows_failure", &GpuMetricRow::remapped_rows_failure},
};

// deployment_id, taken_at, process_count, then the optional columns in table order.
std::string GpuMetricColumnList() {
  std::string out = "deployment_id, taken_at, process_count";
  for (const auto& c : kGpuDoubleColumns) out += std::string(", ") + c.name;
  for (const auto& c : kGpuIntColumns) out += std::string(", ") + c.name;
  for (const auto& c : kGpuBoolColumns) out += std::string(", ") + c.name;
  return out;
}
// Casts for one gpu_metrics row of the insert (sample_id, gpu_uuid, gpu_index + the list).
std::vector<const char*> GpuMetricCasts() {
  return std::vector<const char*>(
      6 + std::size(kGpuDoubleColumns) + std::size(kGpuIntColumns) + std::size(kGpuBoolColumns),
      "");
}

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

// ---------- row mapping ----------

constexpr const char* kDeploymentColumns =
    "id, coalesce(command_id, '') AS command_id, user_id, template_id, image, state, spec_json, "
    "container_id, container_name, array_to_json(gpu_uuids)::text AS gpu_uuids, "
    "duration_minutes, price_per_hour, ssh_username, ssh_password, jupyter_token, created_at, "
    "started_at, expires_at, warned_at, ended_at, end_status, end_reason, error_stage, error, "
    "updated_at, clock_boot_id, clock_mono_ns, clock_wall, elapsed_ms, ready_elapsed_ms";

Deployment ToDeployment(const Rows& r, int i) {
  Deployment d;
  d.id = r.Str(i, "id");
  d.command_id = r.Str(i, "command_id");
  d.user_id = r.Str(i, "user_id");
  d.template_id = r.Str(i, "template_id");
  d.image = r.Str(i, "image");
  d.state = domain::ParseDeploymentState(r.Str(i, "state")).value_or(DeploymentState::kAccepted);
  d.spec_json = r.Str(i, "spec_json");
  d.container_id = r.Str(i, "container_id");
  d.container_name = r.Str(i, "container_name");
  d.gpu_uuids = r.StrArrayFromJson(i, "gpu_uuids");
  d.duration_minutes = static_cast<int>(r.Int(i, "duration_minutes"));
  d.clock_boot_id = r.Str(i, "clock_boot_id");
  d.clock_mono_ns = r.Int(i, "clock_mono_ns");
  d.clock_wall = r.Ts(i, "clock_wall");
  d.elapsed_ms = r.Int(i, "elapsed_ms");
  d.ready_elapsed_ms = r.OptInt(i, "ready_elapsed_ms");
  d.price_per_hour = r.OptDbl(i, "price_per_hour");
  d.ssh_username = r.Str(i, "ssh_username");
  d.ssh_password = r.OptStr(i, "ssh_password");
  d.jupyter_token = r.Str(i, "jupyter_token");
  d.created_at = r.Ts(i, "created_at");
  d.started_at = r.OptTs(i, "started_at");
  d.expires_at = r.OptTs(i, "expires_at");
  d.warned_at = r.OptTs(i, "warned_at");
  d.ended_at = r.OptTs(i, "ended_at");
  d.end_status = r.Str(i, "end_status");
  d.end_reason = r.Str(i, "end_reason");
  d.error_stage = r.Str(i, "error_stage");
  d.error = r.Str(i, "error");
  d.updated_at = r.Ts(i, "updated_at");
  return d;
}

constexpr const char* kCommandColumns =
    "command_id, command_type, payload, state, result, error, deployment_id, times_seen, "
    "received_at, processed_at, acked_at, registry_auth_withheld";

CommandRecord ToCommand(const Rows& r, int i) {
  CommandRecord c;
  c.command_id = r.Str(i, "command_id");
  c.command_type = r.Str(i, "command_type");
  c.payload_json = r.Str(i, "payload");
  c.state = r.Str(i, "state") == "done" ? CommandState::kDone : CommandState::kPending;
  c.result = r.Str(i, "result");
  c.error = r.Str(i, "error");
  c.deployment_id = r.Str(i, "deployment_id");
  c.times_seen = static_cast<int>(r.Int(i, "times_seen"));
  c.received_at = r.Ts(i, "received_at");
  c.processed_at = r.OptTs(i, "processed_at");
  c.acked_at = r.OptTs(i, "acked_at");
  c.registry_auth_withheld = r.Flag(i, "registry_auth_withheld");
  return c;
}

constexpr const char* kGpuColumns =
    "uuid, index, name, memory_total_mb, pci_bus_id, health, present, "
    "coalesce(deployment_id, '') AS deployment_id, dirty_since, dirty_after, "
    "quarantined_since, quarantine_reason, needs_reset, reset_at";

GpuRecord ToGpu(const Rows& r, int i) {
  GpuRecord g;
  g.uuid = r.Str(i, "uuid");
  g.index = static_cast<int>(r.Int(i, "index"));
  g.name = r.Str(i, "name");
  g.memory_total_mb = static_cast<uint64_t>(r.Int(i, "memory_total_mb"));
  g.pci_bus_id = r.Str(i, "pci_bus_id");
  g.health = domain::ParseGpuHealthState(r.Str(i, "health")).value_or(GpuHealthState::kUnhealthy);
  g.present = r.Flag(i, "present");
  g.deployment_id = r.Str(i, "deployment_id");
  g.dirty_since = r.OptTs(i, "dirty_since");
  g.dirty_after = r.Str(i, "dirty_after");
  g.quarantined_since = r.OptTs(i, "quarantined_since");
  g.quarantine_reason = r.Str(i, "quarantine_reason");
  g.needs_reset = r.Flag(i, "needs_reset");
  g.reset_at = r.OptTs(i, "reset_at");
  return g;
}

constexpr const char* kEventColumns =
    "id, deployment_id, kind, path, body, ext, created_at, attempts, last_error";

OutboxEvent ToEvent(const Rows& r, int i) {
  OutboxEvent e;
  e.id = r.Int(i, "id");
  e.deployment_id = r.Str(i, "deployment_id");
  e.kind = domain::ParseEventKind(r.Str(i, "kind")).value_or(EventKind::kAck);
  e.path = r.Str(i, "path");
  e.body = r.Str(i, "body");
  e.ext = r.Flag(i, "ext");
  e.created_at = r.Ts(i, "created_at");
  e.attempts = static_cast<int>(r.Int(i, "attempts"));
  e.last_error = r.Str(i, "last_error");
  return e;
}

constexpr const char* kHealthColumns =
    "id, checked_at, is_healthy, status, temperature_ok, power_ok, network_ok, storage_ok, "
    "gpu_performance_score, system_stability_score, coalesce(details::text, '') AS details";

HealthReport ToHealth(const Rows& r, int i) {
  HealthReport h;
  h.id = r.Int(i, "id");
  h.checked_at = r.Ts(i, "checked_at");
  h.is_healthy = r.Flag(i, "is_healthy");
  h.status = r.Str(i, "status");
  h.temperature_ok = r.Flag(i, "temperature_ok");
  h.power_ok = r.Flag(i, "power_ok");
  h.network_ok = r.Flag(i, "network_ok");
  h.storage_ok = r.Flag(i, "storage_ok");
  h.gpu_performance_score = r.Dbl(i, "gpu_performance_score");
  h.system_stability_score = r.Dbl(i, "system_stability_score");
  h.details_json = r.Str(i, "details");
  return h;
}

Status CheckLimit(int limit) {
  if (limit <= 0) return MakeError(ErrorCode::kInvalidArgument, "limit must be positive");
  return OkStatus();
}

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

// Loads deployments matching `where` (a constant SQL fragment with $n placeholders) and their
// port allocations.
Result<std::vector<Deployment>> LoadDeployments(Tx& tx, const std::string& tail,
                                                const Params& params) {
  std::string sql = std::string("SELECT ") + kDeploymentColumns + " FROM deployments " + tail;
  auto rows = tx.Exec(sql.c_str(), params);
  if (!rows.ok()) return rows.error();
  std::vector<Deployment> out;
  std::vector<std::string> ids;
  for (int i = 0; i < rows->size(); ++i) {
    out.push_back(ToDeployment(*rows, i));
    ids.push_back(out.back().id);
  }
  if (out.empty()) return out;
  auto ports = tx.Exec(
      "SELECT deployment_id, host_port, container_port, role FROM port_allocations "
      "WHERE deployment_id = ANY($1::text[]) ORDER BY deployment_id, position, host_port",
      {TextArray(ids)});
  if (!ports.ok()) return ports.error();
  std::map<std::string, std::vector<PortAllocation>> by_id;
  for (int i = 0; i < ports->size(); ++i) {
    PortAllocation p;
    p.host_port = static_cast<int>(ports->Int(i, "host_port"));
    p.container_port = static_cast<int>(ports->Int(i, "container_port"));
    p.role = ports->Str(i, "role");
    by_id[ports->Str(i, "deployment_id")].push_back(std::move(p));
  }
  for (auto& d : out) {
    auto it = by_id.find(d.id);
    if (it != by_id.end()) d.ports = it->second;
  }
  return out;
}

Result<std::optional<Deployment>> LoadOneDeployment(Tx& tx, const std::string& tail,
                                                    const Params& params) {
  auto list = LoadDeployments(tx, tail, params);
  if (!list.ok()) return list.error();
  if (list->empty()) return std::optional<Deployment>();
  return std::optional<Deployment>(std::move(list->front()));
}

// Claims GPUs for deployment `id`; returns the claimed UUIDs or FailedPrecondition.
Result<std::vector<std::string>> ClaimGpus(Tx& tx, const std::string& id, const GpuClaim& claim) {
  std::vector<std::string> claimed;
  if (claim.uuids.empty()) {
    if (claim.count < 0) return MakeError(ErrorCode::kInvalidArgument, "GPU count is negative");
    if (claim.count == 0) return claimed;
    auto r = tx.Exec(
        "UPDATE gpu_status SET deployment_id = $1, claimed_at = now(), updated_at = now() "
        "WHERE uuid IN (SELECT uuid FROM gpu_status WHERE deployment_id IS NULL AND present "
        "  AND health IN ('healthy', 'warning') AND dirty_since IS NULL "
        "  AND quarantined_since IS NULL "
        "  ORDER BY index, uuid LIMIT $2 "
        "  FOR UPDATE SKIP LOCKED) "
        "RETURNING uuid, index",
        {id, Num(claim.count)});
    if (!r.ok()) return r.error();
    if (r->size() < claim.count) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "need " + std::to_string(claim.count) + " free GPU(s), only " +
                           std::to_string(r->size()) + " available");
    }
    std::vector<std::pair<int64_t, std::string>> by_index;
    for (int i = 0; i < r->size(); ++i)
      by_index.emplace_back(r->Int(i, "index"), r->Str(i, "uuid"));
    std::sort(by_index.begin(), by_index.end());
    for (auto& [index, uuid] : by_index) claimed.push_back(std::move(uuid));
    return claimed;
  }
  std::set<std::string> unique(claim.uuids.begin(), claim.uuids.end());
  if (unique.size() != claim.uuids.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "GPU UUID named twice");
  }
  if (claim.in_use) {
    // GPUs a running container already holds: claimed whatever their health, so that they are
    // never offered while it runs. One that another deployment holds is a conflict.
    auto r = tx.Exec(
        "UPDATE gpu_status SET deployment_id = $1, claimed_at = now(), updated_at = now() "
        "WHERE uuid = ANY($2::text[]) AND (deployment_id IS NULL OR deployment_id = $1) "
        "RETURNING uuid",
        {id, TextArray(claim.uuids)});
    if (!r.ok()) return r.error();
    auto taken = tx.Exec(
        "SELECT uuid, deployment_id FROM gpu_status WHERE uuid = ANY($2::text[]) "
        "AND deployment_id <> $1",
        {id, TextArray(claim.uuids)});
    if (!taken.ok()) return taken.error();
    if (!taken->empty()) {
      return MakeError(ErrorCode::kFailedPrecondition, "GPU " + taken->Str(0, "uuid") +
                                                           " is claimed by deployment " +
                                                           taken->Str(0, "deployment_id"));
    }
    for (int i = 0; i < r->size(); ++i) claimed.push_back(r->Str(i, "uuid"));
    std::sort(claimed.begin(), claimed.end());
    return claimed;
  }
  auto r = tx.Exec(
      "UPDATE gpu_status SET deployment_id = $1, claimed_at = now(), updated_at = now() "
      "WHERE uuid = ANY($2::text[]) AND deployment_id IS NULL AND present "
      "  AND health IN ('healthy', 'warning') AND dirty_since IS NULL "
      "  AND quarantined_since IS NULL "
      "RETURNING uuid",
      {id, TextArray(claim.uuids)});
  if (!r.ok()) return r.error();
  std::set<std::string> got;
  for (int i = 0; i < r->size(); ++i) got.insert(r->Str(i, "uuid"));
  std::string missing;
  for (const auto& uuid : claim.uuids) {
    if (got.count(uuid)) continue;
    auto why = tx.Exec(
        "SELECT health, present, coalesce(deployment_id, '') AS deployment_id, "
        "  dirty_since IS NOT NULL AS dirty, dirty_after, "
        "  quarantined_since IS NOT NULL AS quarantined, quarantine_reason "
        "FROM gpu_status WHERE uuid = $1",
        {uuid});
    if (!why.ok()) return why.error();
    std::string reason;
    if (why->empty()) {
      reason = "unknown";
    } else if (!why->Str(0, "deployment_id").empty()) {
      reason = "claimed by deployment " + why->Str(0, "deployment_id");
    } else if (!why->Flag(0, "present")) {
      reason = "not present";
    } else if (why->Flag(0, "quarantined")) {
      reason = "quarantined: " + why->Str(0, "quarantine_reason");
    } else if (why->Flag(0, "dirty")) {
      reason = "dirty since deployment " + why->Str(0, "dirty_after") + " ended";
    } else {
      reason = "health " + why->Str(0, "health");
    }
    if (!missing.empty()) missing += "; ";
    missing += uuid + " (" + reason + ")";
  }
  if (!missing.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition, "GPU(s) not available: " + missing);
  }
  return claim.uuids;
}

}  // namespace

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

Status PgStore::Ping() {
  return impl_->Run("ping", [](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(tx.Exec("SELECT 1"));
    return OkStatus();
  });
}

// ---------- agent state ----------

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

// ---------- GPUs ----------

Status PgStore::SyncGpus(const std::vector<GpuRecord>& present) {
  return impl_->Run("sync GPUs", [&](Tx& tx) -> Status {
    std::vector<std::string> uuids;
    for (const auto& g : present) {
      if (g.uuid.empty()) return MakeError(ErrorCode::kInvalidArgument, "GPU without UUID");
      uuids.push_back(g.uuid);
      // A GPU marked lost that shows up again takes the scan's health; other health values
      // belong to the health loop and survive re-scans, as do claims.
      TAOLIE_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO gpu_status (uuid, index, name, memory_total_mb, pci_bus_id, health, "
                  "  present, updated_at) VALUES ($1, $2, $3, $4, $5, $6, true, now()) "
                  "ON CONFLICT (uuid) DO UPDATE SET index = EXCLUDED.index, name = EXCLUDED.name, "
                  "  memory_total_mb = EXCLUDED.memory_total_mb, pci_bus_id = EXCLUDED.pci_bus_id, "
                  "  health = CASE WHEN gpu_status.health = 'lost' THEN EXCLUDED.health "
                  "                ELSE gpu_status.health END, "
                  "  present = true, updated_at = now()",
                  {g.uuid, Num(g.index), g.name, Num(static_cast<int64_t>(g.memory_total_mb)),
                   g.pci_bus_id, domain::GpuHealthStateName(g.health)}));
    }
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE gpu_status SET present = false, updated_at = now() "
                "WHERE present AND NOT (uuid = ANY($1::text[]))",
                {TextArray(uuids)}));
    return OkStatus();
  });
}

Result<std::vector<GpuRecord>> PgStore::ListGpus() {
  return impl_->Run("list GPUs", [&](Tx& tx) -> Result<std::vector<GpuRecord>> {
    auto r = tx.Exec(
        (std::string("SELECT ") + kGpuColumns + " FROM gpu_status ORDER BY index, uuid").c_str());
    if (!r.ok()) return r.error();
    std::vector<GpuRecord> out;
    for (int i = 0; i < r->size(); ++i) out.push_back(ToGpu(*r, i));
    return out;
  });
}

Status PgStore::SetGpuHealth(const std::string& uuid, GpuHealthState health) {
  return impl_->Run("set GPU health", [&](Tx& tx) -> Status {
    auto r = tx.Exec("UPDATE gpu_status SET health = $2, updated_at = now() WHERE uuid = $1",
                     {uuid, domain::GpuHealthStateName(health)});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) return MakeError(ErrorCode::kNotFound, "GPU " + uuid + " unknown");
    return OkStatus();
  });
}

Status PgStore::MarkGpuClean(const std::string& uuid) {
  return impl_->Run("mark GPU clean", [&](Tx& tx) -> Status {
    auto r = tx.Exec(
        "UPDATE gpu_status SET dirty_since = NULL, dirty_after = '', updated_at = now() "
        "WHERE uuid = $1",
        {uuid});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) return MakeError(ErrorCode::kNotFound, "GPU " + uuid + " unknown");
    return OkStatus();
  });
}

namespace {

// One UPDATE of one GPU's row ($1 is its uuid); NotFound when there is no such GPU.
Status UpdateGpuRow(Tx& tx, const std::string& uuid, const std::string& set, Params params) {
  params.insert(params.begin(), uuid);
  const std::string sql = "UPDATE gpu_status SET " + set + ", updated_at = now() WHERE uuid = $1";
  auto r = tx.Exec(sql.c_str(), params);
  if (!r.ok()) return r.error();
  if (r->Affected() == 0) return MakeError(ErrorCode::kNotFound, "GPU " + uuid + " unknown");
  return OkStatus();
}

}  // namespace

Status PgStore::QuarantineGpu(const std::string& uuid, const std::string& reason, bool needs_reset,
                              const std::vector<OutboxEvent>& events) {
  return impl_->Run("quarantine GPU", [&](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(
        UpdateGpuRow(tx, uuid,
                     "quarantined_since = coalesce(quarantined_since, now()), "
                     "quarantine_reason = $2, needs_reset = needs_reset OR $3::boolean",
                     {reason, std::string(needs_reset ? "true" : "false")}));
    return InsertEvents(tx, events);
  });
}

Status PgStore::ReleaseGpu(const std::string& uuid) {
  return impl_->Run("release GPU", [&](Tx& tx) -> Status {
    return UpdateGpuRow(
        tx, uuid, "quarantined_since = NULL, quarantine_reason = '', needs_reset = false", {});
  });
}

Status PgStore::MarkGpuReset(const std::string& uuid) {
  return impl_->Run("mark GPU reset", [&](Tx& tx) -> Status {
    return UpdateGpuRow(tx, uuid, "needs_reset = false, reset_at = now()", {});
  });
}

// ---------- commands ----------

Result<bool> PgStore::RecordCommand(const CommandRecord& c) {
  return impl_->Run("record command", [&](Tx& tx) -> Result<bool> {
    if (c.command_id.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty command_id");
    // The registry credentials are never written: they serve the pull from memory only.
    bool withheld = false;
    const std::string payload = PayloadWithoutRegistryAuth(c.payload_json, &withheld);
    auto ins = tx.Exec(
        "INSERT INTO command_queue (command_id, command_type, payload, received_at, "
        "  registry_auth_withheld) "
        "VALUES ($1, $2, $3, coalesce($4::timestamptz, now()), $5) "
        "ON CONFLICT (command_id) DO NOTHING",
        {c.command_id, c.command_type, payload, TimeOrNow(c.received_at), Bool(withheld)});
    if (!ins.ok()) return ins.error();
    if (ins->Affected() == 1) return true;
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE command_queue SET times_seen = times_seen + 1, last_seen_at = now() "
                "WHERE command_id = $1",
                {c.command_id}));
    return false;
  });
}

Result<std::optional<CommandRecord>> PgStore::GetCommand(const std::string& command_id) {
  return impl_->Run("get command", [&](Tx& tx) -> Result<std::optional<CommandRecord>> {
    auto r = tx.Exec(
        (std::string("SELECT ") + kCommandColumns + " FROM command_queue WHERE command_id = $1")
            .c_str(),
        {command_id});
    if (!r.ok()) return r.error();
    if (r->empty()) return std::optional<CommandRecord>();
    return std::optional<CommandRecord>(ToCommand(*r, 0));
  });
}

Result<std::vector<CommandRecord>> PgStore::PendingCommands(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("pending commands", [&](Tx& tx) -> Result<std::vector<CommandRecord>> {
    auto r = tx.Exec((std::string("SELECT ") + kCommandColumns +
                      " FROM command_queue WHERE state = 'pending' "
                      "ORDER BY received_at, seq LIMIT $1")
                         .c_str(),
                     {Num(limit)});
    if (!r.ok()) return r.error();
    std::vector<CommandRecord> out;
    for (int i = 0; i < r->size(); ++i) out.push_back(ToCommand(*r, i));
    return out;
  });
}

Status PgStore::FinishCommand(const std::string& command_id, const std::string& result,
                              const std::string& error, const std::string& deployment_id,
                              const std::vector<OutboxEvent>& events) {
  return impl_->Run("finish command", [&](Tx& tx) -> Status {
    auto cur =
        tx.Exec("SELECT payload FROM command_queue WHERE command_id = $1 FOR UPDATE", {command_id});
    if (!cur.ok()) return cur.error();
    if (cur->empty()) return MakeError(ErrorCode::kNotFound, "command " + command_id + " unknown");
    // A done command's payload is a record only: the renter's environment values go (the
    // rental's own copy is its spec, kept until it ends).
    TAOLIE_RETURN_IF_ERROR(tx.Exec(
        "UPDATE command_queue SET state = 'done', result = $2, error = $3, deployment_id = $4, "
        "processed_at = now(), payload = $5 WHERE command_id = $1",
        {command_id, result, error, deployment_id,
         PayloadWithoutEnvValues(cur->Str(0, "payload"))}));
    return InsertEvents(tx, events);
  });
}

Status PgStore::MarkCommandAcked(const std::string& command_id) {
  return impl_->Run("mark command acked", [&](Tx& tx) -> Status {
    auto r =
        tx.Exec("UPDATE command_queue SET acked_at = now() WHERE command_id = $1", {command_id});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) {
      return MakeError(ErrorCode::kNotFound, "command " + command_id + " unknown");
    }
    return OkStatus();
  });
}

// ---------- deployments ----------

namespace {

// Inserts `d` in `state`, claims its GPUs and inserts its port allocations and `events`.
Result<Deployment> InsertDeployment(Tx& tx, const Deployment& d, DeploymentState state,
                                    const GpuClaim& claim, const std::vector<OutboxEvent>& events) {
  if (d.id.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty deployment id");
  auto ins = tx.Exec(
      "INSERT INTO deployments (id, command_id, user_id, template_id, image, state, spec_json, "
      "  container_id, container_name, duration_minutes, price_per_hour, ssh_username, "
      "  ssh_password, jupyter_token, created_at, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $15, $6, $7, $8, $9, $10, $11, $12, $13, "
      "  coalesce($14::timestamptz, now()), now()) "
      "ON CONFLICT DO NOTHING RETURNING created_at, updated_at",
      {d.id, EmptyToNull(d.command_id), d.user_id, d.template_id, d.image, d.spec_json,
       d.container_id, d.container_name, Num(d.duration_minutes), OptNum(d.price_per_hour),
       d.ssh_username, d.ssh_password, d.jupyter_token, TimeOrNow(d.created_at),
       std::string(domain::DeploymentStateName(state))});
  if (!ins.ok()) return ins.error();
  if (ins->empty()) {
    auto same_id = tx.Exec("SELECT 1 FROM deployments WHERE id = $1", {d.id});
    if (!same_id.ok()) return same_id.error();
    if (!same_id->empty()) {
      return MakeError(ErrorCode::kAlreadyExists, "deployment " + d.id + " already exists");
    }
    return MakeError(ErrorCode::kAlreadyExists,
                     "command " + d.command_id + " already has a deployment");
  }
  Deployment out = d;
  out.state = state;
  out.created_at = ins->Ts(0, "created_at");
  out.updated_at = ins->Ts(0, "updated_at");

  auto gpus = ClaimGpus(tx, d.id, claim);
  if (!gpus.ok()) return gpus.error();
  out.gpu_uuids = *gpus;
  TAOLIE_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET gpu_uuids = $2::text[] WHERE id = $1",
                                 {d.id, TextArray(out.gpu_uuids)}));

  for (size_t i = 0; i < d.ports.size(); ++i) {
    const auto& p = d.ports[i];
    auto r = tx.Exec(
        "INSERT INTO port_allocations (host_port, deployment_id, container_port, role, "
        "  position) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host_port) DO NOTHING",
        {Num(p.host_port), d.id, Num(p.container_port), p.role, Num(static_cast<int>(i))});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "port " + std::to_string(p.host_port) + " already allocated");
    }
  }
  TAOLIE_RETURN_IF_ERROR(InsertEvents(tx, events));
  return out;
}

}  // namespace

Result<Deployment> PgStore::CreateDeployment(const Deployment& d, const GpuClaim& claim,
                                             const std::vector<OutboxEvent>& events) {
  return impl_->Run("create deployment", [&](Tx& tx) {
    return InsertDeployment(tx, d, DeploymentState::kAccepted, claim, events);
  });
}

Result<Deployment> PgStore::AdoptDeployment(const Deployment& d) {
  return impl_->Run("adopt deployment", [&](Tx& tx) -> Result<Deployment> {
    GpuClaim claim;
    claim.uuids = d.gpu_uuids;
    claim.in_use = true;
    auto out = InsertDeployment(tx, d, d.state, claim, {});
    if (!out.ok()) return out.error();
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE deployments SET started_at = $2, expires_at = $3, warned_at = $4, "
                "  ready_elapsed_ms = $5::bigint WHERE id = $1",
                {d.id, OptTime(d.started_at), OptTime(d.expires_at), OptTime(d.warned_at),
                 OptNum(d.ready_elapsed_ms)}));
    out->started_at = d.started_at;
    out->expires_at = d.expires_at;
    out->warned_at = d.warned_at;
    out->ready_elapsed_ms = d.ready_elapsed_ms;
    return out;
  });
}

Status PgStore::UpdateDeployment(const Deployment& d, const std::vector<OutboxEvent>& events) {
  return impl_->Run("update deployment", [&](Tx& tx) -> Status {
    auto cur = tx.Exec(
        "SELECT state, (warned_at IS NOT NULL) AS warned, spec_json, "
        "  coalesce(command_id, '') AS command_id FROM deployments WHERE id = $1 FOR UPDATE",
        {d.id});
    if (!cur.ok()) return cur.error();
    if (cur->empty()) return MakeError(ErrorCode::kNotFound, "deployment " + d.id + " unknown");
    auto from = domain::ParseDeploymentState(cur->Str(0, "state"));
    domain::Deployment current;
    current.id = d.id;
    current.state = from.value_or(DeploymentState::kAccepted);
    if (cur->Flag(0, "warned")) current.warned_at = SystemTime{};
    TAOLIE_RETURN_IF_ERROR(CheckEventsForTransition(current, d, events));
    if (from && static_cast<int>(d.state) < static_cast<int>(*from)) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "deployment " + d.id + " cannot move back from " +
                           domain::DeploymentStateName(*from) + " to " +
                           domain::DeploymentStateName(d.state));
    }
    const bool ended = d.state == DeploymentState::kEnded;
    TAOLIE_RETURN_IF_ERROR(tx.Exec(
        "UPDATE deployments SET state = $2, container_id = $3, container_name = $4, "
        "  duration_minutes = $5, ssh_username = $6, "
        // A stale copy never restores a scrubbed password nor moves the start or warning.
        "  ssh_password = CASE WHEN ssh_password IS NULL THEN NULL ELSE $7 END, "
        "  jupyter_token = CASE WHEN ssh_password IS NULL THEN jupyter_token ELSE $8 END, "
        "  started_at = coalesce(started_at, $9), expires_at = $10, "
        "  warned_at = coalesce(warned_at, $11), "
        "  ended_at = coalesce($12::timestamptz, ended_at, "
        "                     CASE WHEN $2::text = 'ended' THEN now() END), "
        "  end_status = $13, end_reason = $14, error_stage = $15, error = $16, "
        // The rental's clock only moves forward: a stale copy's older checkpoint is ignored.
        "  clock_boot_id = CASE WHEN $20::bigint >= elapsed_ms THEN $17::text ELSE clock_boot_id "
        "END, "
        "  clock_mono_ns = CASE WHEN $20::bigint >= elapsed_ms THEN $18::bigint ELSE clock_mono_ns "
        "END, "
        "  clock_wall = CASE WHEN $20::bigint >= elapsed_ms THEN $19::timestamptz ELSE clock_wall "
        "END, "
        "  elapsed_ms = greatest(elapsed_ms, $20::bigint), "
        "  ready_elapsed_ms = coalesce(ready_elapsed_ms, $21::bigint), "
        "  updated_at = now() "
        "WHERE id = $1",
        {d.id,
         std::string(domain::DeploymentStateName(d.state)),
         d.container_id,
         d.container_name,
         Num(d.duration_minutes),
         d.ssh_username,
         d.ssh_password,
         d.jupyter_token,
         OptTime(d.started_at),
         OptTime(d.expires_at),
         OptTime(d.warned_at),
         OptTime(d.ended_at),
         d.end_status,
         d.end_reason,
         d.error_stage,
         d.error,
         d.clock_boot_id,
         Num(d.clock_mono_ns),
         OptTime(d.clock_boot_id.empty() ? std::nullopt : std::optional(d.clock_wall)),
         Num(d.elapsed_ms),
         OptNum(d.ready_elapsed_ms)}));
    if (ended) {
      // The rental is over: its environment values are not kept (names stay), here and in
      // its command, in the transaction that ends it.
      TAOLIE_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET spec_json = $2 WHERE id = $1",
                                     {d.id, SpecWithoutEnvValues(cur->Str(0, "spec_json"))}));
      if (const std::string cmd = cur->Str(0, "command_id"); !cmd.empty()) {
        auto p =
            tx.Exec("SELECT payload FROM command_queue WHERE command_id = $1 FOR UPDATE", {cmd});
        if (!p.ok()) return p.error();
        if (!p->empty()) {
          TAOLIE_RETURN_IF_ERROR(
              tx.Exec("UPDATE command_queue SET payload = $2 WHERE command_id = $1",
                      {cmd, PayloadWithoutEnvValues(p->Str(0, "payload"))}));
        }
      }
      TAOLIE_RETURN_IF_ERROR(tx.Exec(
          "UPDATE gpu_status SET deployment_id = NULL, claimed_at = NULL, updated_at = now(), "
          "  dirty_since = now(), dirty_after = $1 "  // idle again only once NVML says so
          "WHERE deployment_id = $1",
          {d.id}));
      TAOLIE_RETURN_IF_ERROR(
          tx.Exec("DELETE FROM port_allocations WHERE deployment_id = $1", {d.id}));
    }
    return InsertEvents(tx, events);
  });
}

Status PgStore::SaveDeploymentClock(const Deployment& d) {
  return impl_->Run("save deployment clock", [&](Tx& tx) -> Status {
    auto r = tx.Exec(
        "UPDATE deployments SET clock_boot_id = $2, clock_mono_ns = $3::bigint, "
        "  clock_wall = $4::timestamptz, elapsed_ms = $5::bigint, updated_at = now() "
        "WHERE id = $1 AND elapsed_ms <= $5::bigint",
        {d.id, d.clock_boot_id, Num(d.clock_mono_ns), OptTime(d.clock_wall), Num(d.elapsed_ms)});
    if (!r.ok()) return r.error();
    return OkStatus();
  });
}

Result<std::optional<Deployment>> PgStore::GetDeployment(const std::string& id) {
  return impl_->Run("get deployment",
                    [&](Tx& tx) { return LoadOneDeployment(tx, "WHERE id = $1", {id}); });
}

Result<std::optional<Deployment>> PgStore::FindDeploymentByCommand(const std::string& command_id) {
  return impl_->Run("find deployment by command", [&](Tx& tx) {
    return LoadOneDeployment(tx, "WHERE command_id = $1", {command_id});
  });
}

Result<std::vector<Deployment>> PgStore::ActiveDeployments() {
  return impl_->Run("active deployments", [&](Tx& tx) {
    return LoadDeployments(tx, "WHERE state <> 'ended' ORDER BY created_at, id", {});
  });
}

Result<std::vector<Deployment>> PgStore::RecentDeployments(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("recent deployments", [&](Tx& tx) {
    return LoadDeployments(tx, "ORDER BY created_at DESC, id DESC LIMIT $1", {Num(limit)});
  });
}

Result<std::vector<PortAllocation>> PgStore::AllocatedPorts() {
  return impl_->Run("allocated ports", [&](Tx& tx) -> Result<std::vector<PortAllocation>> {
    auto r =
        tx.Exec("SELECT host_port, container_port, role FROM port_allocations ORDER BY host_port");
    if (!r.ok()) return r.error();
    std::vector<PortAllocation> out;
    for (int i = 0; i < r->size(); ++i) {
      out.push_back(PortAllocation{static_cast<int>(r->Int(i, "host_port")),
                                   static_cast<int>(r->Int(i, "container_port")),
                                   r->Str(i, "role")});
    }
    return out;
  });
}

Result<std::map<std::string, SystemTime>> PgStore::ImageLastUse() {
  return impl_->Run("image last use", [&](Tx& tx) -> Result<std::map<std::string, SystemTime>> {
    auto r = tx.Exec("SELECT image, max(created_at) AS last_use FROM deployments GROUP BY image");
    if (!r.ok()) return r.error();
    std::map<std::string, SystemTime> out;
    for (int i = 0; i < r->size(); ++i) out[r->Str(i, "image")] = r->Ts(i, "last_use");
    return out;
  });
}

Status PgStore::ScrubSecrets(const std::string& deployment_id) {
  return impl_->Run("scrub secrets", [&](Tx& tx) -> Status {
    auto r = tx.Exec(
        "UPDATE deployments SET ssh_password = NULL, jupyter_token = '', updated_at = now() "
        "WHERE id = $1",
        {deployment_id});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) {
      return MakeError(ErrorCode::kNotFound, "deployment " + deployment_id + " unknown");
    }
    return OkStatus();
  });
}

// ---------- outbox ----------

Status PgStore::AppendEvents(const std::vector<OutboxEvent>& events) {
  return impl_->Run("append events", [&](Tx& tx) { return InsertEvents(tx, events); });
}

Result<std::vector<OutboxEvent>> PgStore::PendingEvents(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("pending events", [&](Tx& tx) -> Result<std::vector<OutboxEvent>> {
    auto r = tx.Exec((std::string("SELECT ") + kEventColumns +
                      " FROM outbox WHERE done_at IS NULL ORDER BY id LIMIT $1")
                         .c_str(),
                     {Num(limit)});
    if (!r.ok()) return r.error();
    std::vector<OutboxEvent> out;
    for (int i = 0; i < r->size(); ++i) out.push_back(ToEvent(*r, i));
    return out;
  });
}

Result<int64_t> PgStore::CountPendingEvents() {
  return impl_->Run("count pending events", [&](Tx& tx) -> Result<int64_t> {
    // Answered from the partial index outbox_pending_idx.
    auto r = tx.Exec("SELECT count(*) AS n FROM outbox WHERE done_at IS NULL");
    if (!r.ok()) return r.error();
    return r->Int(0, "n");
  });
}

Result<std::vector<OutboxHead>> PgStore::OutboxHeads(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("outbox heads", [&](Tx& tx) -> Result<std::vector<OutboxHead>> {
    // grp: the ordering group (store.h, OutboxHead). DISTINCT ON keeps each group's lowest id.
    auto r = tx.Exec(
        (std::string("SELECT ") + kEventColumns +
         ", next_attempt_at, first_failed_at, end_pending FROM ("
         "  SELECT DISTINCT ON (grp) p.*, "
         "    p.deployment_id <> '' AND p.kind <> 'ack' AND EXISTS ("
         "      SELECT 1 FROM outbox l WHERE l.done_at IS NULL AND l.deployment_id = "
         "        p.deployment_id AND l.id > p.id AND l.kind IN ('terminated', 'failed')"
         "    ) AS end_pending "
         "  FROM (SELECT *, CASE WHEN kind = 'ack' OR deployment_id = '' "
         "          THEN 'event:' || id::text ELSE 'deployment:' || deployment_id END AS grp "
         "        FROM outbox WHERE done_at IS NULL) p "
         "  ORDER BY grp, id"
         ") h ORDER BY next_attempt_at NULLS FIRST, id LIMIT $1")
            .c_str(),
        {Num(limit)});
    if (!r.ok()) return r.error();
    std::vector<OutboxHead> out;
    for (int i = 0; i < r->size(); ++i) {
      OutboxHead h;
      h.event = ToEvent(*r, i);
      h.next_attempt_at = r->OptTs(i, "next_attempt_at");
      h.first_failed_at = r->OptTs(i, "first_failed_at");
      h.end_pending = r->Flag(i, "end_pending");
      out.push_back(std::move(h));
    }
    return out;
  });
}

Status PgStore::MarkEventDone(int64_t id, const std::string& outcome,
                              const std::string& scrubbed_body) {
  if (outcome != "delivered" && outcome != "unsupported" && outcome != "rejected" &&
      outcome != "superseded" && outcome != "failed") {
    return MakeError(ErrorCode::kInvalidArgument, "mark event done: bad outcome " + outcome);
  }
  return impl_->Run("mark event done", [&](Tx& tx) -> Status {
    auto r = tx.Exec(
        "UPDATE outbox SET done_at = now(), outcome = $2, "
        "  body = CASE WHEN $3::text <> '' THEN $3::text ELSE body END "
        "WHERE id = $1 RETURNING kind, deployment_id",
        {Num(id), outcome, scrubbed_body});
    if (!r.ok()) return r.error();
    if (r->empty()) {
      return MakeError(ErrorCode::kNotFound, "event " + std::to_string(id) + " unknown");
    }
    // `success` delivered or refused: the platform has the access details (or never will from
    // this event), so the deployment's copy goes with the event's, in this one transaction.
    if (r->Str(0, "kind") == "success" && outcome != "failed") {
      TAOLIE_RETURN_IF_ERROR(tx.Exec(
          "UPDATE deployments SET ssh_password = NULL, jupyter_token = '', updated_at = now() "
          "WHERE id = $1 AND (ssh_password IS NOT NULL OR jupyter_token <> '')",
          {r->Str(0, "deployment_id")}));
    }
    return OkStatus();
  });
}

Result<bool> PgStore::RequeueAck(const OutboxEvent& ack) {
  if (ack.kind != EventKind::kAck || ack.path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "requeue ack: not an ack event");
  }
  return impl_->Run("requeue ack", [&](Tx& tx) -> Result<bool> {
    auto r = tx.Exec(
        "SELECT id, done_at IS NULL AS pending FROM outbox WHERE kind = 'ack' AND path = $1 "
        "ORDER BY id DESC LIMIT 1 FOR UPDATE",
        {ack.path});
    if (!r.ok()) return r.error();
    if (r->empty()) {  // pruned: one row again
      TAOLIE_RETURN_IF_ERROR(InsertEvents(tx, {ack}));
      return true;
    }
    if (r->Flag(0, "pending")) return false;  // on its way already
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE outbox SET done_at = NULL, outcome = NULL, body = $2, attempts = 0, "
                "  last_error = '', last_attempt_at = NULL, first_failed_at = NULL, "
                "  next_attempt_at = NULL WHERE id = $1",
                {r->Str(0, "id"), ack.body}));
    return true;
  });
}

Status PgStore::MarkEventAttempt(int64_t id, const std::string& error, SystemTime at,
                                 SystemTime next_attempt_at) {
  return impl_->Run("mark event attempt", [&](Tx& tx) -> Status {
    auto r = tx.Exec(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, last_attempt_at = $3, "
        "  first_failed_at = coalesce(first_failed_at, $3), next_attempt_at = $4 "
        "WHERE id = $1",
        {Num(id), error, FormatRfc3339(at), FormatRfc3339(next_attempt_at)});
    if (!r.ok()) return r.error();
    if (r->Affected() == 0) {
      return MakeError(ErrorCode::kNotFound, "event " + std::to_string(id) + " unknown");
    }
    return OkStatus();
  });
}

// ---------- metrics and health ----------

Status PgStore::RecordXids(const std::vector<XidRecord>& xids,
                           const std::optional<KmsgCursorRow>& cursor) {
  return impl_->Run("record XIDs", [&](Tx& tx) -> Status {
    if (!xids.empty()) {
      Params params;
      for (const auto& x : xids) {
        Params row{x.gpu_uuid,
                   x.pci_bus_id,
                   Num(static_cast<int64_t>(x.xid)),
                   x.source,
                   FormatRfc3339(x.at),
                   x.severity,
                   x.action,
                   x.message,
                   x.pid ? Param(Num(static_cast<int64_t>(*x.pid))) : std::nullopt,
                   x.process_name};
        params.insert(params.end(), row.begin(), row.end());
      }
      const std::string sql =
          "INSERT INTO xid_events (gpu_uuid, pci_bus_id, xid, source, at, severity, action, "
          "  message, pid, process_name, deployment_id) "
          "SELECT v.u, v.b, v.x, v.s, v.t, v.sev, v.act, v.m, v.p, v.pn, "
          "  coalesce((SELECT g.deployment_id FROM gpu_status g WHERE g.uuid = v.u), '') "
          "FROM (VALUES " +
          ValuesList(xids.size(),
                     {"", "", "::bigint", "", "::timestamptz", "", "", "", "::bigint", ""}) +
          ") AS v (u, b, x, s, t, sev, act, m, p, pn)";
      TAOLIE_RETURN_IF_ERROR(tx.Exec(sql.c_str(), params));
    }
    if (cursor) {
      TAOLIE_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO kmsg_cursor (only_row, boot_id, next_seq) VALUES (true, $1, $2) "
                  "ON CONFLICT (only_row) DO UPDATE SET boot_id = excluded.boot_id, "
                  "  next_seq = excluded.next_seq, updated_at = now()",
                  {cursor->boot_id, Num(static_cast<int64_t>(cursor->next_seq))}));
    }
    return OkStatus();
  });
}

Result<std::optional<KmsgCursorRow>> PgStore::KmsgCursor() {
  return impl_->Run("kmsg cursor", [&](Tx& tx) -> Result<std::optional<KmsgCursorRow>> {
    auto r = tx.Exec("SELECT boot_id, next_seq FROM kmsg_cursor");
    if (!r.ok()) return r.error();
    if (r->size() == 0) return std::optional<KmsgCursorRow>{};
    KmsgCursorRow c;
    c.boot_id = r->Str(0, "boot_id");
    c.next_seq = static_cast<uint64_t>(r->Int(0, "next_seq"));
    return std::optional<KmsgCursorRow>{c};
  });
}

Result<std::vector<XidRecord>> PgStore::XidsSince(SystemTime since) {
  return impl_->Run("XIDs since", [&](Tx& tx) -> Result<std::vector<XidRecord>> {
    auto r = tx.Exec(
        "SELECT gpu_uuid, pci_bus_id, xid, source, at, severity, action, message, pid, "
        "  process_name, deployment_id FROM xid_events WHERE at >= $1::timestamptz "
        "ORDER BY at, id LIMIT 10000",
        {FormatRfc3339(since)});
    if (!r.ok()) return r.error();
    std::vector<XidRecord> out;
    for (int i = 0; i < r->size(); ++i) {
      XidRecord x;
      x.gpu_uuid = r->Str(i, "gpu_uuid");
      x.pci_bus_id = r->Str(i, "pci_bus_id");
      x.xid = static_cast<uint64_t>(r->Int(i, "xid"));
      x.source = r->Str(i, "source");
      x.at = r->Ts(i, "at");
      x.severity = r->Str(i, "severity");
      x.action = r->Str(i, "action");
      x.message = r->Str(i, "message");
      if (auto p = r->OptInt(i, "pid")) x.pid = static_cast<uint32_t>(*p);
      x.process_name = r->Str(i, "process_name");
      x.deployment_id = r->Str(i, "deployment_id");
      out.push_back(std::move(x));
    }
    return out;
  });
}

namespace {

// Running totals per (rental, GPU): one upsert for the round's rented GPUs. The energy total
// grows by the counter's rise since the rental's previous sample; a counter that went back (the
// driver reloaded) adds nothing for that interval.
Status AddRentalMetering(Tx& tx, const std::vector<GpuMetricRow>& gpus,
                         const std::string& taken_at) {
  Params params;
  size_t rows = 0;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& g : gpus) {
    if (g.deployment_id.empty() || !seen.emplace(g.deployment_id, g.gpu_uuid).second) continue;
    Params row{g.deployment_id, g.gpu_uuid, OptNum(g.utilization), OptNum(g.energy_joules),
               taken_at};
    params.insert(params.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows > 0) {
    const std::string sql =
        "INSERT INTO rental_metering AS m (deployment_id, gpu_uuid, samples, util_samples, "
        "  util_sum, last_energy_joules, last_at) "
        "SELECT v.d, v.g, 1, CASE WHEN v.u IS NULL THEN 0 ELSE 1 END, coalesce(v.u, 0), v.e, v.t "
        "FROM (VALUES " +
        ValuesList(rows, {"", "", "::float8", "::float8", "::timestamptz"}) +
        ") AS v (d, g, u, e, t) "
        "ON CONFLICT (deployment_id, gpu_uuid) DO UPDATE SET "
        "  samples = m.samples + 1, "
        "  util_samples = m.util_samples + excluded.util_samples, "
        "  util_sum = m.util_sum + excluded.util_sum, "
        "  energy_joules = CASE "
        "    WHEN excluded.last_energy_joules IS NULL OR m.last_energy_joules IS NULL "
        "      THEN m.energy_joules "
        "    ELSE coalesce(m.energy_joules, 0) + "
        "         greatest(excluded.last_energy_joules - m.last_energy_joules, 0) END, "
        "  last_energy_joules = coalesce(excluded.last_energy_joules, m.last_energy_joules), "
        "  last_at = excluded.last_at";
    TAOLIE_RETURN_IF_ERROR(tx.Exec(sql.c_str(), params));
  }
  return OkStatus();
}

}  // namespace

Result<int64_t> PgStore::InsertMetricSample(const MetricSample& s) {
  return impl_->Run("insert metric sample", [&](Tx& tx) -> Result<int64_t> {
    const auto& h = s.host;
    auto r = tx.Exec(
        "INSERT INTO metric_samples (taken_at, cpu_utilization, ram_used_gb, storage_used_gb, "
        "  network_utilization, upload_mbps, download_mbps, uptime_hours) "
        "VALUES (coalesce($1::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8) "
        "RETURNING id, taken_at",
        {TimeOrNow(s.taken_at), Num(h.cpu_utilization), Num(h.ram_used_gb), Num(h.storage_used_gb),
         Num(h.network_utilization), Num(h.upload_mbps), Num(h.download_mbps),
         Num(h.uptime_hours)});
    if (!r.ok()) return r.error();
    int64_t id = r->Int(0, "id");
    std::string taken_at = r->Str(0, "taken_at");
    if (s.gpus.empty()) return id;
    Params params;
    for (const auto& g : s.gpus) {
      Params row{Num(id),         g.gpu_uuid, Num(g.gpu_index),
                 g.deployment_id, taken_at,   Num(g.process_count)};
      for (const auto& c : kGpuDoubleColumns) row.push_back(OptNum(g.*c.member));
      for (const auto& c : kGpuIntColumns) row.push_back(OptNum(g.*c.member));
      for (const auto& c : kGpuBoolColumns) row.push_back(OptBool(g.*c.member));
      params.insert(params.end(), row.begin(), row.end());
    }
    const std::string sql = "INSERT INTO gpu_metrics (sample_id, gpu_uuid, gpu_index, " +
                            GpuMetricColumnList() + ") VALUES " +
                            ValuesList(s.gpus.size(), GpuMetricCasts());
    TAOLIE_RETURN_IF_ERROR(tx.Exec(sql.c_str(), params));
    TAOLIE_RETURN_IF_ERROR(AddRentalMetering(tx, s.gpus, taken_at));
    return id;
  });
}

Result<domain::RentalMetering> PgStore::RentalMeteringOf(const std::string& deployment_id) {
  return impl_->Run("rental metering", [&](Tx& tx) -> Result<domain::RentalMetering> {
    auto r = tx.Exec(
        "SELECT coalesce(sum(samples), 0) AS samples, sum(energy_joules) / 3600.0 AS energy_wh, "
        "  CASE WHEN sum(util_samples) > 0 THEN sum(util_sum) / sum(util_samples) END AS util "
        "FROM rental_metering WHERE deployment_id = $1",
        {deployment_id});
    if (!r.ok()) return r.error();
    domain::RentalMetering m;
    m.samples = static_cast<int>(r->Int(0, "samples"));
    m.energy_wh = r->OptDbl(0, "energy_wh");
    m.mean_utilization = r->OptDbl(0, "util");
    return m;
  });
}

Result<std::vector<MetricSample>> PgStore::UnpushedMetricSamples(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("unpushed metric samples", [&](Tx& tx) -> Result<std::vector<MetricSample>> {
    auto r = tx.Exec(
        "SELECT id, taken_at, cpu_utilization, ram_used_gb, storage_used_gb, "
        "  network_utilization, upload_mbps, download_mbps, uptime_hours "
        "FROM metric_samples WHERE pushed_at IS NULL ORDER BY id LIMIT $1",
        {Num(limit)});
    if (!r.ok()) return r.error();
    std::vector<MetricSample> out;
    std::map<int64_t, size_t> pos;
    std::vector<int64_t> ids;
    for (int i = 0; i < r->size(); ++i) {
      MetricSample s;
      s.id = r->Int(i, "id");
      s.taken_at = r->Ts(i, "taken_at");
      s.host.cpu_utilization = r->Dbl(i, "cpu_utilization");
      s.host.ram_used_gb = r->Dbl(i, "ram_used_gb");
      s.host.storage_used_gb = r->Dbl(i, "storage_used_gb");
      s.host.network_utilization = r->Dbl(i, "network_utilization");
      s.host.upload_mbps = r->Dbl(i, "upload_mbps");
      s.host.download_mbps = r->Dbl(i, "download_mbps");
      s.host.uptime_hours = r->Int(i, "uptime_hours");
      pos[s.id] = out.size();
      ids.push_back(s.id);
      out.push_back(std::move(s));
    }
    if (out.empty()) return out;
    const std::string sql = "SELECT sample_id, gpu_uuid, gpu_index, " + GpuMetricColumnList() +
                            " FROM gpu_metrics WHERE sample_id = ANY($1::bigint[]) "
                            "ORDER BY sample_id, gpu_index, id";
    auto g = tx.Exec(sql.c_str(), {IntArray(ids)});
    if (!g.ok()) return g.error();
    for (int i = 0; i < g->size(); ++i) {
      GpuMetricRow m;
      m.gpu_uuid = g->Str(i, "gpu_uuid");
      m.gpu_index = static_cast<int>(g->Int(i, "gpu_index"));
      m.deployment_id = g->Str(i, "deployment_id");
      m.process_count = static_cast<int>(g->Int(i, "process_count"));
      for (const auto& c : kGpuDoubleColumns) m.*c.member = g->OptDbl(i, c.name);
      for (const auto& c : kGpuIntColumns) m.*c.member = g->OptInt(i, c.name);
      for (const auto& c : kGpuBoolColumns) m.*c.member = g->OptFlag(i, c.name);
      out[pos[g->Int(i, "sample_id")]].gpus.push_back(std::move(m));
    }
    return out;
  });
}

Status PgStore::MarkMetricSamplesPushed(const std::vector<int64_t>& ids) {
  if (ids.empty()) return OkStatus();
  return impl_->Run("mark metric samples pushed", [&](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE metric_samples SET pushed_at = now() "
                "WHERE id = ANY($1::bigint[]) AND pushed_at IS NULL",
                {IntArray(ids)}));
    return OkStatus();
  });
}

Result<int64_t> PgStore::InsertHealthReport(const HealthReport& h,
                                            const std::vector<GpuHealthRow>& gpus) {
  return impl_->Run("insert health report", [&](Tx& tx) -> Result<int64_t> {
    auto r = tx.Exec(
        "INSERT INTO health_checks (checked_at, is_healthy, status, temperature_ok, power_ok, "
        "  network_ok, storage_ok, gpu_performance_score, system_stability_score, details) "
        "VALUES (coalesce($1::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) "
        "RETURNING id, checked_at",
        {TimeOrNow(h.checked_at), Bool(h.is_healthy), h.status, Bool(h.temperature_ok),
         Bool(h.power_ok), Bool(h.network_ok), Bool(h.storage_ok), Num(h.gpu_performance_score),
         Num(h.system_stability_score), EmptyToNull(h.details_json)});
    if (!r.ok()) return r.error();
    int64_t id = r->Int(0, "id");
    std::string checked_at = r->Str(0, "checked_at");
    if (gpus.empty()) return id;
    Params params;
    for (const auto& g : gpus) {
      Params row{Num(id), g.gpu_uuid, domain::GpuHealthStateName(g.health),
                 EmptyToNull(g.checks_json), checked_at};
      params.insert(params.end(), row.begin(), row.end());
    }
    std::string sql =
        "INSERT INTO gpu_health_history (report_id, gpu_uuid, health, checks, checked_at) VALUES " +
        ValuesList(gpus.size(), {"", "", "", "::jsonb", ""});
    TAOLIE_RETURN_IF_ERROR(tx.Exec(sql.c_str(), params));
    return id;
  });
}

Result<std::optional<HealthReport>> PgStore::LatestHealthReport() {
  return impl_->Run("latest health report", [&](Tx& tx) -> Result<std::optional<HealthReport>> {
    auto r = tx.Exec((std::string("SELECT ") + kHealthColumns +
                      " FROM health_checks ORDER BY checked_at DESC, id DESC LIMIT 1")
                         .c_str());
    if (!r.ok()) return r.error();
    if (r->empty()) return std::optional<HealthReport>();
    return std::optional<HealthReport>(ToHealth(*r, 0));
  });
}

Result<std::vector<HealthReport>> PgStore::UnpushedHealthReports(int limit) {
  TAOLIE_RETURN_IF_ERROR(CheckLimit(limit));
  return impl_->Run("unpushed health reports", [&](Tx& tx) -> Result<std::vector<HealthReport>> {
    auto r = tx.Exec((std::string("SELECT ") + kHealthColumns +
                      " FROM health_checks WHERE pushed_at IS NULL ORDER BY id LIMIT $1")
                         .c_str(),
                     {Num(limit)});
    if (!r.ok()) return r.error();
    std::vector<HealthReport> out;
    for (int i = 0; i < r->size(); ++i) out.push_back(ToHealth(*r, i));
    return out;
  });
}

Status PgStore::MarkHealthReportsPushed(const std::vector<int64_t>& ids) {
  if (ids.empty()) return OkStatus();
  return impl_->Run("mark health reports pushed", [&](Tx& tx) -> Status {
    TAOLIE_RETURN_IF_ERROR(
        tx.Exec("UPDATE health_checks SET pushed_at = now() "
                "WHERE id = ANY($1::bigint[]) AND pushed_at IS NULL",
                {IntArray(ids)}));
    return OkStatus();
  });
}

// ---------- retention ----------

Result<Store::PruneResult> PgStore::Prune(const PruneLimits& limits) {
  // Each statement deletes at most $2 parent rows older than $1 days (their per-GPU rows with
  // them) and returns how many parents and rows in all it deleted.
  struct Table {
    const char* name;
    int days;
    const char* sql;
  };
  const Table tables[] = {
      {"metrics", limits.metrics_days,
       "WITH s AS (DELETE FROM metric_samples WHERE id IN ("
       "             SELECT id FROM metric_samples WHERE pushed_at IS NOT NULL "
       "             AND taken_at < now() - make_interval(days => $1::int) "
       "             ORDER BY taken_at LIMIT $2::int) RETURNING id), "
       "     g AS (DELETE FROM gpu_metrics WHERE sample_id IN (SELECT id FROM s) RETURNING 1) "
       "SELECT (SELECT count(*) FROM s) AS parents, "
       "       (SELECT count(*) FROM s) + (SELECT count(*) FROM g) AS n"},
      {"health", limits.health_days,
       "WITH h AS (DELETE FROM health_checks WHERE id IN ("
       "             SELECT id FROM health_checks WHERE pushed_at IS NOT NULL "
       "             AND checked_at < now() - make_interval(days => $1::int) "
       "             ORDER BY checked_at LIMIT $2::int) RETURNING id), "
       "     g AS (DELETE FROM gpu_health_history WHERE report_id IN (SELECT id FROM h) "
       "             RETURNING 1) "
       "SELECT (SELECT count(*) FROM h) AS parents, "
       "       (SELECT count(*) FROM h) + (SELECT count(*) FROM g) AS n"},
      {"events", limits.events_days,
       "WITH e AS (DELETE FROM outbox WHERE id IN ("
       "             SELECT id FROM outbox WHERE done_at IS NOT NULL "
       "             AND done_at < now() - make_interval(days => $1::int) "
       "             ORDER BY done_at LIMIT $2::int) RETURNING 1) "
       "SELECT count(*) AS parents, count(*) AS n FROM e"},
      {"commands", limits.commands_days,
       "WITH c AS (DELETE FROM command_queue WHERE command_id IN ("
       "             SELECT command_id FROM command_queue WHERE state = 'done' "
       "             AND processed_at < now() - make_interval(days => $1::int) "
       "             ORDER BY processed_at LIMIT $2::int) RETURNING 1) "
       "SELECT count(*) AS parents, count(*) AS n FROM c"},
      {"xids", limits.health_days,
       "WITH x AS (DELETE FROM xid_events WHERE id IN ("
       "             SELECT id FROM xid_events "
       "             WHERE at < now() - make_interval(days => $1::int) "
       "             ORDER BY at LIMIT $2::int) RETURNING 1) "
       "SELECT count(*) AS parents, count(*) AS n FROM x"},
      // A rental's totals stop growing when it ends: they age with its events.
      {"metering", limits.events_days,
       "WITH m AS (DELETE FROM rental_metering WHERE (deployment_id, gpu_uuid) IN ("
       "             SELECT deployment_id, gpu_uuid FROM rental_metering "
       "             WHERE last_at < now() - make_interval(days => $1::int) "
       "             ORDER BY last_at LIMIT $2::int) RETURNING 1) "
       "SELECT count(*) AS parents, count(*) AS n FROM m"},
  };
  const int batch = std::max(1, limits.batch_rows);
  PruneResult out;
  for (const Table& t : tables) {
    if (t.days <= 0) continue;  // keep forever
    for (int b = 0;; ++b) {
      if (b >= std::max(1, limits.max_batches)) {
        out.more = true;
        break;
      }
      auto done = impl_->Run(std::string("prune ") + t.name,
                             [&](Tx& tx) -> Result<std::pair<int64_t, int64_t>> {
                               auto r = tx.Exec(t.sql, {Num(t.days), Num(batch)});
                               if (!r.ok()) return r.error();
                               return std::make_pair(r->Int(0, "parents"), r->Int(0, "n"));
                             });
      if (!done.ok()) return done.error();
      out.rows += done->second;
      if (done->first < batch) break;
    }
  }
  return out;
}

}  // namespace taolie::store
