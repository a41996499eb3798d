#pragma once
// StateStore fake: Ping answers (Unavailable while `down`); agent state is not the rental
// engine's business, so GetState/SetState fail the test.
#include <optional>
#include <string>

#include "fakes/fake_store_tables.h"
#include "store/state_store.h"

namespace taolie::testing {

class FakeStateStore : public virtual FakeStoreTables, public virtual store::StateStore {
 public:
  Result<std::optional<std::string>> GetState(const std::string& key) override {
    return Unexpected("GetState");
  }
  Status SetState(const std::string&, const std::string&) override {
    return Unexpected("SetState");
  }
  Status Ping() override {
    std::lock_guard l(mu_);
    return Up();
  }
};

}  // namespace taolie::testing
