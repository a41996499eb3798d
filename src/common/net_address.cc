#include "common/net_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

namespace taolie {

bool IsLoopbackHost(std::string_view host_in) {
  std::string host(host_in);
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "localhost.") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  // ::ffff:127.x.y.z, an IPv4 loopback client on a dual-stack socket.
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

Result<std::string> CanonicalIpv4Cidr(std::string_view text) {
  std::string addr(text);
  int prefix = 32;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = std::string(text.substr(0, slash));
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 2 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "bad prefix length in '" + std::string(text) + "'");
    }
    prefix = std::stoi(std::string(p));
    if (prefix > 32) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "prefix over 32 in '" + std::string(text) + "'");
    }
  }
  in_addr a{};
  if (::inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "'" + std::string(text) + "' is not an IPv4 address or CIDR");
  }
  uint32_t host = ntohl(a.s_addr);
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  a.s_addr = htonl(host & mask);
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix);
}

}  // namespace taolie
