#pragma once
// Checks recorded exchanges with the platform simulator against the contract's JSON Schemas
// (schemas/, docs/platform-api.md): every body the agent sent and every answer the simulator
// gave. Used by the e2e harness at teardown and by the simulator's own tests. Test support only.
#include <string>
#include <vector>

#include "sim/simulator.h"

namespace taolie::testing {

// One line per problem, at most `max_reported` of them (then one line with the count of the
// rest): "<METHOD> <path> [<endpoint>] <request|answer HTTP n>: <why>" followed by the body,
// secrets masked (platform::RedactForLog) and cut. Exchanges outside /api/ (the simulator's
// control paths) are not part of the contract and are skipped, and so are answers a test
// injected on purpose (Request::injected). A /api/ request to no endpoint of the contract is a
// problem, and so is a 422 from the simulator for a body its schema accepts (the simulator and
// the schemas disagree).
std::vector<std::string> ContractViolations(const std::vector<sim::Simulator::Request>& exchanges,
                                            size_t max_reported = 10);

}  // namespace taolie::testing
