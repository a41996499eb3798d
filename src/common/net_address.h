#pragma once
// Address checks shared by the config checks, the platform client and the simulator.
#include <string>
#include <string_view>

#include "common/result.h"

namespace taolie {

// True for "localhost" (any case, optional trailing dot), 127.0.0.0/8, ::1 and
// ::ffff:127.x.y.z; an IPv6 literal may come in brackets ("[::1]").
bool IsLoopbackHost(std::string_view host);

// Canonical "a.b.c.d/n" of an IPv4 address or CIDR ("10.1.2.3/8" -> "10.0.0.0/8", an
// address without a prefix -> "/32"); InvalidArgument otherwise.
Result<std::string> CanonicalIpv4Cidr(std::string_view text);

}  // namespace taolie
