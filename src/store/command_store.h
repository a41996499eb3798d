#pragma once
// CommandStore: the platform's commands as received (command_queue) and the outbox of events
// to the platform (outbox). The command handler records and finishes commands; the outbox loop
// delivers events in order per ordering group. Every method is one transaction.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::store {

// The first undelivered event of one ordering group of the outbox, with its retry state.
// Ordering groups: all events of one deployment form one group, delivered strictly in id
// order (platform-api.md §7: "in order per deployment"). Every ack, and any event without a
// deployment, is a group of its own: acks never wait behind any deployment's events (the
// platform re-delivers a command until it is acked, and an ack may overtake its deployment's
// `success`, which the platform accepts in any order).
struct OutboxHead {
  OutboxEvent event;
  std::optional<SystemTime> next_attempt_at;  // earliest retry after a failure; none: never failed
  std::optional<SystemTime> first_failed_at;  // first failed attempt
  bool end_pending = false;  // the same deployment has a later undelivered terminated/failed
};

class CommandStore {
 public:
  virtual ~CommandStore() = default;

  // --- commands (command_queue) ---
  // Inserts a new command (state pending) and returns true; for a known command_id only
  // increments times_seen and returns false. The payload is stored without its top-level
  // registry_auth (registry_auth_withheld says there was one): credentials live in memory only.
  virtual Result<bool> RecordCommand(const CommandRecord& command) = 0;
  virtual Result<std::optional<CommandRecord>> GetCommand(const std::string& command_id) = 0;
  virtual Result<std::vector<CommandRecord>> PendingCommands(int limit) = 0;  // oldest first
  // state=done with result/error/deployment_id, processed_at=now; and `events` (the ack).
  // The stored payload's environment values are blanked (names kept): a done command's
  // payload is a record, never read to run anything.
  virtual Status FinishCommand(const std::string& command_id, const std::string& result,
                               const std::string& error, const std::string& deployment_id,
                               const std::vector<OutboxEvent>& events) = 0;
  virtual Status MarkCommandAcked(const std::string& command_id) = 0;

  // --- outbox ---
  virtual Status AppendEvents(const std::vector<OutboxEvent>& events) = 0;
  // Undelivered events, by id ascending.
  virtual Result<std::vector<OutboxEvent>> PendingEvents(int limit) = 0;
  // How many events are undelivered (the outbox depth /metrics shows).
  virtual Result<int64_t> CountPendingEvents() = 0;
  // The head (first undelivered event) of each ordering group, at most `limit`: heads that
  // never failed first (oldest first), then by next_attempt_at, so that groups backing off
  // never crowd out the ones that are due.
  virtual Result<std::vector<OutboxHead>> OutboxHeads(int limit) = 0;
  // An ack to send again for a command delivered again after it was acked (the first ack was
  // lost), without the outbox growing: the command's ack row (same path) is queued again
  // (attempts reset, body = ack.body); already queued, nothing changes (false); none left
  // (pruned), `ack` is inserted. True when an ack is queued.
  virtual Result<bool> RequeueAck(const OutboxEvent& ack) = 0;
  // outcome: "delivered" | "unsupported" | "rejected" | "superseded" (never sent: a later
  // event of its deployment made it moot) | "failed" (given up; the row is kept). Also scrubs
  // the body of secrets by replacing it with `scrubbed_body` when non-empty, and for a
  // `success` event not "failed", the deployment's SSH password and Jupyter token
  // (ScrubSecrets), in the same transaction: one is never kept without the other.
  virtual Status MarkEventDone(int64_t id, const std::string& outcome,
                               const std::string& scrubbed_body) = 0;
  // A failed delivery attempt at `at`: attempts + 1, last_error, last_attempt_at = at,
  // first_failed_at = at unless already set, next_attempt_at = `next_attempt_at`.
  virtual Status MarkEventAttempt(int64_t id, const std::string& error, SystemTime at,
                                  SystemTime next_attempt_at) = 0;
};

}  // namespace taolie::store
