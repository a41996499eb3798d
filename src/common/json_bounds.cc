#include "common/json_bounds.h"

namespace taolie {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Bytes a number or a literal (true, false, null) is made of.
bool IsLiteralByte(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '+' || c == '.';
}

size_t SkipSpace(std::string_view text, size_t i) {
  while (i < text.size() && IsSpace(text[i])) ++i;
  return i;
}

Error Bad(const std::string& what, size_t at) {
  return MakeError(ErrorCode::kInvalidArgument, "JSON: " + what + " at byte " + std::to_string(at));
}

}  // namespace

Result<JsonSpan> ScanJsonValue(std::string_view text, size_t pos) {
  size_t i = SkipSpace(text, pos);
  if (i >= text.size()) return Bad("no value", i);
  JsonSpan span;
  span.begin = i;
  std::vector<bool> open;  // one entry per open level: true = object, false = array
  while (true) {
    if (i >= text.size()) {
      return Bad("truncated (" + std::to_string(open.size()) + " levels open)", i);
    }
    const char c = text[i];
    if (c == '{' || c == '[') {
      open.push_back(c == '{');
      if (open.size() > span.depth) span.depth = open.size();
      ++i;
    } else if (c == '}' || c == ']') {
      if (open.empty() || open.back() != (c == '}')) {
        return Bad(std::string("unexpected '") + c + "'", i);
      }
      open.pop_back();
      ++i;
    } else if (c == '"') {
      ++i;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      if (i >= text.size()) return Bad("truncated string", text.size());
      ++i;
    } else if (IsLiteralByte(c)) {
      while (i < text.size() && IsLiteralByte(text[i])) ++i;
    } else if (!open.empty() && (c == ',' || c == ':' || IsSpace(c))) {
      ++i;
    } else {
      return Bad(std::string("unexpected byte 0x") + "0123456789abcdef"[(c >> 4) & 0xF] +
                     "0123456789abcdef"[c & 0xF],
                 i);
    }
    if (open.empty()) {
      span.end = i;
      return span;
    }
  }
}

Status CheckJsonBounds(std::string_view text, size_t max_depth) {
  auto v = ScanJsonValue(text);
  if (!v.ok()) return v.error();
  if (size_t rest = SkipSpace(text, v->end); rest != text.size()) {
    return Bad("more than one value", rest);
  }
  if (v->depth > max_depth) {
    return MakeError(ErrorCode::kInvalidArgument, "JSON nested " + std::to_string(v->depth) +
                                                      " levels deep, over the limit of " +
                                                      std::to_string(max_depth));
  }
  return OkStatus();
}

namespace {

// Walks the members of a container: `element` scans one member starting at a position and
// returns where it ended. `close` is '}' or ']'.
template <typename Element>
Status ForEachMember(std::string_view text, const JsonSpan& span, char open, char close,
                     Element element) {
  if (span.end > text.size() || span.end - span.begin < 2 || text[span.begin] != open ||
      text[span.end - 1] != close) {
    return Bad(std::string("expected '") + open + "'", span.begin);
  }
  const std::string_view inner = text.substr(0, span.end - 1);
  size_t i = SkipSpace(inner, span.begin + 1);
  if (i == inner.size()) return OkStatus();  // empty
  while (true) {
    auto next = element(inner, i);
    if (!next.ok()) return next.error();
    i = SkipSpace(inner, *next);
    if (i == inner.size()) return OkStatus();
    if (inner[i] != ',') return Bad("expected ',' or '" + std::string(1, close) + "'", i);
    ++i;
  }
}

}  // namespace

Result<std::vector<JsonSpan>> SplitJsonArray(std::string_view text, const JsonSpan& array) {
  std::vector<JsonSpan> out;
  Status st = ForEachMember(text, array, '[', ']',
                            [&](std::string_view inner, size_t at) -> Result<size_t> {
                              auto v = ScanJsonValue(inner, at);
                              if (!v.ok()) return v.error();
                              out.push_back(*v);
                              return v->end;
                            });
  if (!st.ok()) return st.error();
  return out;
}

Result<std::vector<JsonMember>> SplitJsonObject(std::string_view text, const JsonSpan& object) {
  std::vector<JsonMember> out;
  Status st = ForEachMember(text, object, '{', '}',
                            [&](std::string_view inner, size_t at) -> Result<size_t> {
                              auto key = ScanJsonValue(inner, at);
                              if (!key.ok()) return key.error();
                              if (inner[key->begin] != '"')
                                return Bad("expected a string key", key->begin);
                              size_t colon = SkipSpace(inner, key->end);
                              if (colon >= inner.size() || inner[colon] != ':')
                                return Bad("expected ':'", colon);
                              auto value = ScanJsonValue(inner, colon + 1);
                              if (!value.ok()) return value.error();
                              out.push_back(JsonMember{*key, *value});
                              return value->end;
                            });
  if (!st.ok()) return st.error();
  return out;
}

const char* JsonKindName(std::string_view text, const JsonSpan& span) {
  if (span.begin >= text.size() || span.begin >= span.end) return "nothing";
  switch (text[span.begin]) {
    case '{':
      return "object";
    case '[':
      return "array";
    case '"':
      return "string";
    case 't':
    case 'f':
      return "boolean";
    case 'n':
      return "null";
    default:
      return "number";
  }
}

}  // namespace taolie
