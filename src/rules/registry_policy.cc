#include "rules/registry_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "domain/image_reference.h"

namespace taolie::rules {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One inet_aton part: decimal, octal with a leading 0, or hex with 0x; nullopt on a bad digit
// or a value over 32 bits.
std::optional<uint64_t> ParseAtonPart(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int base = 10;
  if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
    if (s.empty()) return uint64_t{0};  // inet_aton reads "0x" as 0
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  uint64_t v = 0;
  for (char c : s) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) {
      d = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    v = v * base + d;
    if (v > 0xffffffffULL) return std::nullopt;
  }
  return v;
}

std::optional<std::string> Ipv4Kind(uint32_t a) {
  auto in = [a](uint32_t net, int prefix) {
    uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    return (a & mask) == net;
  };
  if (in(0x7f000000, 8)) return "loopback";
  if (in(0x00000000, 8)) return "unspecified";
  if (in(0xa9fe0000, 16)) return "link-local";
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) return "private";
  if (in(0x64400000, 10)) return "shared (CGNAT)";
  return std::nullopt;
}

struct Registry {
  std::string host;  // without brackets
  int port = 0;      // 0 = not given
};

Registry SplitDomain(const std::string& domain) {
  Registry r;
  std::string_view d = domain;
  size_t colon = std::string_view::npos;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    r.host = std::string(d.substr(1, close - 1));
    if (close + 1 < d.size() && d[close + 1] == ':') colon = close + 1;
  } else {
    colon = d.rfind(':');
    r.host = std::string(d.substr(0, colon));
  }
  if (colon != std::string_view::npos) r.port = std::stoi(std::string(d.substr(colon + 1)));
  return r;
}

std::string OwnPortNote(const Registry& r, const RegistryPolicy& p) {
  if (r.port == 0) return "";
  for (const auto& own : p.own_ports) {
    if (own.port == r.port)
      return " (port " + std::to_string(r.port) + " is the agent's " + own.what + ")";
  }
  if (p.range_first > 0 && r.port >= p.range_first && r.port <= p.range_last) {
    return " (port " + std::to_string(r.port) + " is in the agent's rental port range)";
  }
  return "";
}

}  // namespace

std::optional<uint32_t> ParseInetAtonIpv4(std::string_view text) {
  std::vector<uint64_t> parts;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    auto part =
        ParseAtonPart(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (!part) return std::nullopt;
    parts.push_back(*part);
    if (parts.size() > 4) return std::nullopt;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // All parts but the last are one byte each; the last fills the remaining bytes.
  uint64_t value = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    value |= parts[i] << (8 * (3 - i));
  }
  uint64_t last_max = parts.size() == 1 ? 0xffffffffULL : (1ULL << (8 * (5 - parts.size()))) - 1;
  if (parts.back() > last_max) return std::nullopt;
  return static_cast<uint32_t>(value | parts.back());
}

std::optional<std::string> LocalAddressKind(std::string_view address) {
  std::string a(address);
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (auto pct = a.find('%'); pct != std::string::npos) a.resize(pct);
  if (auto v4 = ParseInetAtonIpv4(a)) return Ipv4Kind(*v4);
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) != 1) return std::nullopt;
  const uint8_t* b = v6.s6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&v6) || IN6_IS_ADDR_V4COMPAT(&v6)) {
    uint32_t embedded = (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) |
                        uint32_t{b[15]};
    return Ipv4Kind(embedded);
  }
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return "loopback";
  if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return "unspecified";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "private";  // site-local, fec0::/10
  if ((b[0] & 0xfe) == 0xfc) return "private";                  // unique local, fc00::/7
  return std::nullopt;
}

Status CheckImageRegistry(std::string_view image, const RegistryPolicy& policy,
                          const HostResolver& resolve) {
  auto ref = domain::ParseImageReference(image);
  if (!ref.ok()) return MakeError(ErrorCode::kInvalidArgument, "image: " + ref.error().message);
  std::string domain = Lower(ref->domain);
  if (domain.empty() || domain == "docker.io" || domain == "index.docker.io" ||
      domain == "registry-1.docker.io") {
    return OkStatus();  // Docker Hub
  }
  Registry reg = SplitDomain(domain);
  for (const auto& entry : policy.allowed_registries) {
    std::string e = Lower(entry);
    if (e == domain || e == reg.host ||
        (e.size() > 2 && e.front() == '[' && e == "[" + reg.host + "]")) {
      return OkStatus();
    }
  }
  const std::string hint = "; list it in deployment.allowed_registries to allow it";
  const std::string name = "image: registry " + ref->domain;
  if (reg.host == "localhost" || reg.host == "localhost." ||
      (reg.host.size() > 10 && reg.host.ends_with(".localhost"))) {
    return MakeError(ErrorCode::kInvalidArgument,
                     name + " is a loopback address" + OwnPortNote(reg, policy) + hint);
  }
  bool literal = ParseInetAtonIpv4(reg.host).has_value() || reg.host.find(':') != std::string::npos;
  if (literal) {
    if (auto kind = LocalAddressKind(reg.host)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       name + " is a " + *kind + " address" + OwnPortNote(reg, policy) + hint);
    }
    return OkStatus();
  }
  if (!resolve) {
    return MakeError(ErrorCode::kInvalidArgument,
                     name + " cannot be resolved (no resolver)" + hint);
  }
  auto addresses = resolve(reg.host);
  if (!addresses.ok()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     name + " could not be resolved (" + addresses.error().message + ")" + hint);
  }
  if (addresses->empty()) {
    return MakeError(ErrorCode::kInvalidArgument, name + " resolves to no address" + hint);
  }
  for (const auto& addr : *addresses) {
    if (auto kind = LocalAddressKind(addr)) {
      return MakeError(ErrorCode::kInvalidArgument, name + " resolves to " + addr + ", a " + *kind +
                                                        " address" + OwnPortNote(reg, policy) +
                                                        hint);
    }
  }
  return OkStatus();
}

bool IsListedImage(std::string_view image, const std::vector<std::string>& listed) {
  auto key = [](std::string_view ref) -> std::optional<std::string> {
    auto r = domain::ParseImageReference(ref);
    if (!r.ok()) return std::nullopt;
    std::string dom = Lower(r->domain);
    std::string path = r->path;
    if (dom.empty() || dom == "index.docker.io" || dom == "registry-1.docker.io") dom = "docker.io";
    if (dom == "docker.io" && path.find('/') == std::string::npos) path = "library/" + path;
    return dom + "/" + path +
           (r->digest.empty() ? ":" + (r->tag.empty() ? "latest" : r->tag) : "@" + r->digest);
  };
  auto want = key(image);
  if (!want) return false;
  return std::any_of(listed.begin(), listed.end(),
                     [&](const std::string& l) { return key(l) == want; });
}

}  // namespace taolie::rules
