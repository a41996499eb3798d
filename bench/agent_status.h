#pragma once
// The agent's own view of its active rentals, read from its /status endpoint: what the stall
// e2e test and the benchmarks wait on ("pulling") instead of guessing from the outside.
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "e2e/agent_harness.h"

namespace taolie::testing {

// Active deployments by id with their state ("pulling", "running", ...); empty when the
// status endpoint does not answer.
inline std::map<std::string, std::string> ActiveDeploymentStates(int status_port) {
  std::map<std::string, std::string> out;
  auto st = nlohmann::json::parse(HttpGet(status_port, "/status"), nullptr, false);
  if (!st.is_object() || !st.contains("deployments")) return out;
  for (const auto& d : st["deployments"]) out[d.value("id", "")] = d.value("state", "");
  return out;
}

}  // namespace taolie::testing
