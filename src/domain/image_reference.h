#pragma once
// The Docker distribution image-reference grammar, in one place: the rules validate renters'
// payloads with it and the Docker adapter splits references for the pull API with it.
//
//   reference := [domain '/'] path [':' tag] ['@' digest]
//   domain    := host [':' port], host := label ('.' label)* | '[' IPv6 ']'
//   path      := component ('/' component)*, component := [a-z0-9]+ ([._] | __ | -+ [a-z0-9]+)*
//   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//   digest    := sha256:<64 lowercase hex digits>
// At most 255 characters, printable ASCII only, no leading '-'.
#include <string>
#include <string_view>

#include "common/result.h"

namespace taolie::domain {

struct ImageReference {
  std::string domain;  // "" when absent, e.g. "127.0.0.1:5555"
  std::string path;    // "taolie-test/busybox"
  std::string tag;     // "" when absent
  std::string digest;  // "" when absent, e.g. "sha256:<64 hex>"

  std::string Name() const { return domain.empty() ? path : domain + "/" + path; }
  // The POST /images/create `tag` parameter: the digest, else the tag, else "latest".
  std::string PullTag() const;
};

// Parses `ref`. On failure: InvalidArgument whose message is the reason alone, e.g. "must not
// be empty" or "tag must match ..."; callers prefix the field or context.
Result<ImageReference> ParseImageReference(std::string_view ref);

inline bool IsValidImageReference(std::string_view ref) { return ParseImageReference(ref).ok(); }

}  // namespace taolie::domain
