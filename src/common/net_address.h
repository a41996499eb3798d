#pragma once
// Address checks shared by the config checks, the platform client and the simulator.
#include <string_view>

namespace taolie {

// True for "localhost" (any case, optional trailing dot), 127.0.0.0/8, ::1 and
// ::ffff:127.x.y.z; an IPv6 literal may come in brackets ("[::1]").
bool IsLoopbackHost(std::string_view host);

}  // namespace taolie
