#include "store/secret_scrub.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

namespace taolie::store {
namespace {

using Json = nlohmann::ordered_json;

// `text` parsed; nullopt when it is not a JSON object. Nested deeper than kMaxScrubDepth: an
// empty object with too_deep set (such a document is never dumped: dump() recurses).
struct Parsed {
  Json json;
  bool too_deep = false;
};
std::optional<Parsed> ParseObject(const std::string& text) {
  int deepest = 0;
  auto depth_of = [&deepest](int depth, Json::parse_event_t, Json&) {
    deepest = std::max(deepest, depth);
    return true;
  };
  Json j = Json::parse(text, depth_of, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  if (deepest > kMaxScrubDepth) return Parsed{Json::object(), true};
  return Parsed{std::move(j), false};
}

// `text` with each element of its top-level member `key` (a non-empty object or array, as
// `is_kind` says) rewritten by `blank`; unchanged when there is no such member.
template <typename IsKind, typename Blank>
std::string BlankMember(const std::string& text, const char* key, IsKind is_kind, Blank blank) {
  auto p = ParseObject(text);
  if (!p) return text;
  if (p->too_deep) return "{}";
  auto member = p->json.find(key);
  if (member == p->json.end() || !is_kind(*member) || member->empty()) return text;
  for (auto& element : *member) blank(element);
  return p->json.dump();
}

}  // namespace

std::string PayloadWithoutRegistryAuth(const std::string& payload, bool* removed) {
  *removed = false;
  auto p = ParseObject(payload);
  if (!p) return payload;
  if (p->too_deep) {
    *removed = true;
    return "{}";
  }
  if (!p->json.contains(kRegistryAuthKey)) return payload;
  p->json.erase(std::string(kRegistryAuthKey));
  *removed = true;
  return p->json.dump();
}

std::string PayloadWithoutEnvValues(const std::string& payload) {
  return BlankMember(
      payload, "environment", [](const Json& j) { return j.is_object(); },
      [](Json& value) { value = ""; });
}

std::string SpecWithoutEnvValues(const std::string& spec_json) {
  return BlankMember(
      spec_json, "env", [](const Json& j) { return j.is_array(); },
      [](Json& pair) {
        if (pair.is_array() && pair.size() == 2) pair[1] = "";
      });
}

}  // namespace taolie::store
