// PgStore, TelemetryStore role: metric samples, rental metering, health history, retention.
#include <algorithm>
#include <map>
#include <set>

#include "store/pg_store.h"
#include "store/pg_store_internal.h"

namespace taolie::store {
namespace {

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
