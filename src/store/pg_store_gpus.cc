// PgStore, GpuStore role: gpu_status (inventory, health, quarantine) and xid_events.
#include "common/time_format.h"
#include "store/pg_store.h"
#include "store/pg_store_internal.h"

namespace taolie::store {
namespace {

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
}  // namespace taolie::store
