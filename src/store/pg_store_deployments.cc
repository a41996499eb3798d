// PgStore, DeploymentStore role: deployments, their GPU claims and port_allocations.
#include <algorithm>
#include <map>
#include <set>

#include "store/pg_store.h"
#include "store/pg_store_internal.h"
#include "store/secret_scrub.h"
#include "store/transitions.h"

namespace taolie::store {
namespace {

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
}  // namespace taolie::store
