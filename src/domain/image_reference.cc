#include "domain/image_reference.h"

#include <algorithm>
#include <charconv>

namespace taolie::domain {
namespace {

constexpr size_t kMaxReferenceLength = 255;
constexpr size_t kMaxTagLength = 128;
constexpr std::string_view kSha256 = "sha256:";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || IsUpper(c); }
bool IsTagChar(char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

Error Bad(std::string reason) { return MakeError(ErrorCode::kInvalidArgument, std::move(reason)); }

// The reference is printable ASCII by the time this runs, so quoting is cutting only.
std::string Shown(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'" + std::string(s.substr(0, kMaxShown));
  if (s.size() > kMaxShown) out += "...";
  return out + "'";
}

// Calls `fn` on each `sep`-separated piece of `s`; stops at the first false.
template <typename Fn>
bool EachPiece(std::string_view s, char sep, Fn fn) {
  while (true) {
    size_t pos = s.find(sep);
    if (!fn(s.substr(0, pos))) return false;
    if (pos == std::string_view::npos) return true;
    s.remove_prefix(pos + 1);
  }
}

// component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [._] | __ | -+
bool IsPathComponent(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsLowerAlnum(s[j])) ++j;
    std::string_view sep = s.substr(i, j - i);
    if (sep != "." && sep != "_" && sep != "__" && sep.find_first_not_of('-') != sep.npos) {
      return false;
    }
    i = j;
  }
  return true;
}

// label := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainLabel(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAlnum(c) || c == '-'; });
}

bool IsPort(std::string_view s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), IsDigit)) return false;
  int port = 0;
  std::from_chars(s.data(), s.data() + s.size(), port);
  return port >= 1 && port <= 65535;
}

// host[:port], host := label ('.' label)* | [IPv6]
bool IsRegistryDomain(std::string_view s) {
  std::string_view port_part;  // ":port" or ""
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view ip = s.substr(1, close - 1);
    if (ip.empty() ||
        !std::all_of(ip.begin(), ip.end(), [](char c) { return IsHexDigit(c) || c == ':'; })) {
      return false;
    }
    port_part = s.substr(close + 1);
  } else {
    size_t colon = s.find(':');
    std::string_view host = s.substr(0, colon);
    if (host.empty() || !EachPiece(host, '.', IsDomainLabel)) return false;
    if (colon != std::string_view::npos) port_part = s.substr(colon);
  }
  if (port_part.empty()) return true;
  return port_part.front() == ':' && IsPort(port_part.substr(1));
}

bool LooksLikeDomain(std::string_view first) {
  return first.find_first_of(".:[") != std::string_view::npos || first == "localhost" ||
         std::any_of(first.begin(), first.end(), IsUpper);
}

}  // namespace

std::string ImageReference::PullTag() const {
  if (!digest.empty()) return digest;
  if (!tag.empty()) return tag;
  return "latest";
}

Result<ImageReference> ParseImageReference(std::string_view ref) {
  if (ref.empty()) return Bad("must not be empty");
  if (ref.size() > kMaxReferenceLength) return Bad("is longer than 255 characters");
  if (ref.front() == '-') return Bad("must not start with '-'");
  for (char c : ref) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return Bad("must not contain whitespace or control characters");
    if (u >= 0x80) return Bad("must be ASCII");
  }
  ImageReference out;
  std::string_view rest = ref;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (digest.substr(0, kSha256.size()) != kSha256) {
      return Bad("digest must be sha256:<64 hex digits>");
    }
    std::string_view hex = digest.substr(kSha256.size());
    if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char c) {
          return IsDigit(c) || (c >= 'a' && c <= 'f');
        })) {
      return Bad("digest must be sha256:<64 lowercase hex digits>");
    }
    out.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (tag.empty() || tag.size() > kMaxTagLength || tag.front() == '.' || tag.front() == '-' ||
        !std::all_of(tag.begin(), tag.end(), IsTagChar)) {
      return Bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
    out.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Bad("repository name is missing");
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (LooksLikeDomain(first)) {
      if (!IsRegistryDomain(first)) return Bad("registry host " + Shown(first) + " is malformed");
      out.domain = std::string(first);
      rest = rest.substr(slash + 1);
      if (rest.empty()) return Bad("repository name is missing");
    }
  }
  std::string problem;
  EachPiece(rest, '/', [&](std::string_view comp) {
    if (std::any_of(comp.begin(), comp.end(), IsUpper)) {
      problem = "repository name must be lowercase";
    } else if (!IsPathComponent(comp)) {
      problem = "repository path component " + Shown(comp) +
                " must match [a-z0-9]+ separated by '.', '_', '__' or '-'";
    }
    return problem.empty();
  });
  if (!problem.empty()) return Bad(std::move(problem));
  out.path = std::string(rest);
  return out;
}

}  // namespace taolie::domain
