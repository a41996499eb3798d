#pragma once
// GpuStore fake: the GPU rows in `gpus` (AddGpu) with health, cleanliness and quarantine as
// PgStore keeps them; XIDs in `xids` (attributed to the GPU's claim, as PgStore does) and the
// kernel-log cursor in `kmsg_cursor`. SyncGpus is the health loop's: it fails the test unless
// a test overrides it.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_store_tables.h"
#include "store/gpu_store.h"

namespace taolie::testing {

class FakeGpuStore : public virtual FakeStoreTables, public virtual store::GpuStore {
 public:
  Status SyncGpus(const std::vector<store::GpuRecord>&) override { return Unexpected("SyncGpus"); }
  Result<std::vector<store::GpuRecord>> ListGpus() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    return gpus;
  }
  Status SetGpuHealth(const std::string& uuid, domain::GpuHealthState health) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        g.health = health;
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }
  Status QuarantineGpu(const std::string& uuid, const std::string& reason, bool needs_reset,
                       const std::vector<store::OutboxEvent>& queued) override {
    TAOLIE_RETURN_IF_ERROR(EditGpu(uuid, [&](store::GpuRecord& g) {
      if (!g.quarantined_since) g.quarantined_since = SystemTime{} + std::chrono::seconds(1);
      g.quarantine_reason = reason;
      g.needs_reset = g.needs_reset || needs_reset;
    }));
    std::lock_guard l(mu_);
    events.insert(events.end(), queued.begin(), queued.end());
    return OkStatus();
  }
  Status ReleaseGpu(const std::string& uuid) override {
    return EditGpu(uuid, [](store::GpuRecord& g) {
      g.quarantined_since.reset();
      g.quarantine_reason.clear();
      g.needs_reset = false;
    });
  }
  Status MarkGpuReset(const std::string& uuid) override {
    return EditGpu(uuid, [](store::GpuRecord& g) {
      g.needs_reset = false;
      g.reset_at = std::chrono::system_clock::now();
    });
  }
  Status EditGpu(const std::string& uuid, const std::function<void(store::GpuRecord&)>& edit) {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        edit(g);
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }
  Status MarkGpuClean(const std::string& uuid) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        g.dirty_since.reset();
        g.dirty_after.clear();
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }
  // XIDs: kept in `xids` (attributed to the GPU's claim, as PgStore does) and `kmsg_cursor`.
  Status RecordXids(const std::vector<store::XidRecord>& in,
                    const std::optional<store::KmsgCursorRow>& cursor) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto x : in) {
      for (const auto& g : gpus) {
        if (g.uuid == x.gpu_uuid) x.deployment_id = g.deployment_id;
      }
      xids.push_back(std::move(x));
    }
    if (cursor) kmsg_cursor = cursor;
    return OkStatus();
  }
  Result<std::optional<store::KmsgCursorRow>> KmsgCursor() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    return kmsg_cursor;
  }
  Result<std::vector<store::XidRecord>> XidsSince(SystemTime since) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<store::XidRecord> out;
    for (const auto& x : xids) {
      if (x.at >= since) out.push_back(x);
    }
    return out;
  }
};

}  // namespace taolie::testing
