#pragma once
// CommandStore fake: commands in `commands` as PgStore keeps them (registry credentials
// withheld, environment values blanked once done), their acks appended to `events`. Outbox
// delivery is not the rental engine's business: those calls fail the test.
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_store_tables.h"
#include "store/command_store.h"
#include "store/secret_scrub.h"

namespace taolie::testing {

class FakeCommandStore : public virtual FakeStoreTables, public virtual store::CommandStore {
 public:
  Result<bool> RecordCommand(const store::CommandRecord& c) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    // As PgStore: the registry credentials are never kept.
    store::CommandRecord kept = c;
    kept.payload_json =
        store::PayloadWithoutRegistryAuth(c.payload_json, &kept.registry_auth_withheld);
    auto [it, fresh] = commands.emplace(c.command_id, kept);
    if (!fresh) it->second.times_seen++;
    return fresh;
  }
  Result<std::optional<store::CommandRecord>> GetCommand(const std::string& id) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = commands.find(id);
    if (it == commands.end()) return std::optional<store::CommandRecord>();
    return std::optional<store::CommandRecord>(it->second);
  }
  Result<std::vector<store::CommandRecord>> PendingCommands(int limit) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<store::CommandRecord> out;
    for (const auto& [id, c] : commands) {
      if (c.state == store::CommandState::kPending && static_cast<int>(out.size()) < limit) {
        out.push_back(c);
      }
    }
    return out;
  }
  Status FinishCommand(const std::string& id, const std::string& result, const std::string& error,
                       const std::string& deployment_id,
                       const std::vector<store::OutboxEvent>& ev) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = commands.find(id);
    if (it == commands.end()) return MakeError(ErrorCode::kNotFound, "command " + id);
    if (it->second.state == store::CommandState::kDone) {
      return MakeError(ErrorCode::kFailedPrecondition, "command " + id + " already done");
    }
    it->second.state = store::CommandState::kDone;
    it->second.payload_json = store::PayloadWithoutEnvValues(it->second.payload_json);
    it->second.result = result;
    it->second.error = error;
    it->second.deployment_id = deployment_id;
    events.insert(events.end(), ev.begin(), ev.end());
    return OkStatus();
  }
  Status MarkCommandAcked(const std::string&) override { return Unexpected("MarkCommandAcked"); }

  // --- outbox delivery: not the engine's ---
  Status AppendEvents(const std::vector<store::OutboxEvent>&) override {
    return Unexpected("AppendEvents");
  }
  Result<std::vector<store::OutboxEvent>> PendingEvents(int) override {
    return Unexpected("PendingEvents");
  }
  Result<int64_t> CountPendingEvents() override { return Unexpected("CountPendingEvents"); }
  Result<std::vector<store::OutboxHead>> OutboxHeads(int) override {
    return Unexpected("OutboxHeads");
  }
  Result<bool> RequeueAck(const store::OutboxEvent&) override { return Unexpected("RequeueAck"); }
  Status MarkEventDone(int64_t, const std::string&, const std::string&) override {
    return Unexpected("MarkEventDone");
  }
  Status MarkEventAttempt(int64_t, const std::string&, SystemTime, SystemTime) override {
    return Unexpected("MarkEventAttempt");
  }
};

}  // namespace taolie::testing
