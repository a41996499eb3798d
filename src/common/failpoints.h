#pragma once
// Named crash points for the crash-safety tests. TAOLIE_FAILPOINTS="after_pull,after_start"
// makes the process kill itself with SIGKILL when it reaches one of them. Unset in production:
// each check is then one relaxed atomic load. A point written "stall:NAME" makes
// FailpointStall(NAME) block instead, until the stop token is set (the watchdog tests make a
// loop stuck this way).
#include <stop_token>
#include <string_view>

namespace taolie {

void InitFailpoints();  // reads TAOLIE_FAILPOINTS once at start
void Failpoint(std::string_view name);
// Blocks while "stall:<name>" is armed, until `stop` is requested.
void FailpointStall(std::string_view name, std::stop_token stop);

}  // namespace taolie
