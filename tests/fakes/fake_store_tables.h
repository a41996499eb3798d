#pragma once
// The tables the Store's role fakes share (fake_command_store.h, fake_deployment_store.h,
// fake_gpu_store.h, fake_telemetry_store.h, fake_state_store.h), with the test's controls and
// views of them. Each role fake is a virtual base of FakeStore, so FakeStore has one set of
// tables, and a call through one role sees what another wrote (a deployment's claim in the
// GPU list) as in PgStore; a role fake alone has its own. `down` makes every call answer
// Unavailable (PostgreSQL gone); a call a test did not set up fails it (Unexpected).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::testing {

class FakeStoreTables {
 public:
  using Deployment = domain::Deployment;

  // --- test control and inspection ---
  std::atomic<bool> down{false};
  std::vector<store::OutboxEvent> events;  // every event written, in order
  std::map<std::string, Deployment> deployments;
  std::map<std::string, store::CommandRecord> commands;
  std::vector<store::GpuRecord> gpus;
  std::map<std::string, domain::RentalMetering> metering;  // by deployment id
  std::vector<store::XidRecord> xids;
  std::optional<store::KmsgCursorRow> kmsg_cursor;
  int update_calls = 0;

  void AddGpu(const std::string& uuid,
              domain::GpuHealthState h = domain::GpuHealthState::kHealthy) {
    store::GpuRecord g;
    g.uuid = uuid;
    g.index = static_cast<int>(gpus.size());
    g.health = h;
    gpus.push_back(g);
  }
  std::vector<std::string> EventKinds(const std::string& deployment_id) const {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.deployment_id == deployment_id && e.kind != domain::EventKind::kAck) {
        out.push_back(domain::EventKindName(e.kind));
      }
    }
    return out;
  }
  std::vector<std::string> AckBodies(const std::string& command_id) const {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.kind == domain::EventKind::kAck &&
          e.path.find("/commands/" + command_id + "/ack") != std::string::npos) {
        out.push_back(e.body);
      }
    }
    return out;
  }
  void ReleaseAllPorts() {
    std::lock_guard l(mu_);
    ports_.clear();
  }
  Deployment Get(const std::string& id) const {
    std::lock_guard l(mu_);
    auto it = deployments.find(id);
    if (it == deployments.end()) ADD_FAILURE() << "FakeStore: no deployment " << id;
    return it == deployments.end() ? Deployment{} : it->second;
  }

 protected:
  FakeStoreTables() = default;
  ~FakeStoreTables() = default;

  Status Up() const {
    if (down) return MakeError(ErrorCode::kUnavailable, "FakeStore: database down");
    return OkStatus();
  }
  static Error Unexpected(const char* what) {
    ADD_FAILURE() << "FakeStore: unexpected call to " << what;
    return Error{ErrorCode::kInternal, std::string("unexpected call to ") + what};
  }
  mutable std::mutex mu_;
  std::map<int, std::pair<std::string, domain::PortAllocation>> ports_;
};

}  // namespace taolie::testing
