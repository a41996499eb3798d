// PgStore, CommandStore role: command_queue and the outbox.
#include "common/time_format.h"
#include "store/pg_store.h"
#include "store/pg_store_internal.h"
#include "store/secret_scrub.h"

namespace taolie::store {
namespace {

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
}  // namespace

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
}  // namespace taolie::store
