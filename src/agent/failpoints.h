#pragma once
// Named crash points for the crash-safety tests. TAOLIE_FAILPOINTS="after_pull,after_start"
// makes the process kill itself with SIGKILL when it reaches one of them. Unset in production:
// each check is then one relaxed atomic load.
#include <string_view>

namespace taolie::agent {

void InitFailpoints();  // reads TAOLIE_FAILPOINTS once at start
void Failpoint(std::string_view name);

}  // namespace taolie::agent
