#pragma once
// Bounds for JSON from outside the agent (platform replies, Docker Engine answers, local API
// bodies), checked before a parser's tree is copied, compared, dumped or walked. nlohmann's
// parser is iterative, but its copy, operator== and dump() recurse once per level: a value
// nested 100 000 deep (200 KB) overflows the stack. Everything here is one loop over the bytes
// (strings and escapes aware), never recursive; memory is one bit per open level.
//
// The scanner checks structure only (brackets, strings, separators of the level it splits);
// it is not a validator: a text that passes is still parsed strictly afterwards.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace taolie {

// The deepest nesting the agent accepts in any JSON from outside: `{"a":[1]}` is 2 deep.
inline constexpr size_t kMaxJsonDepth = 64;

// One JSON value inside a text: bytes [begin, end) and how deep it nests (0 for a scalar).
struct JsonSpan {
  size_t begin = 0;
  size_t end = 0;
  size_t depth = 0;
};

// One member of an object: its key (the quoted string token, escapes undecoded) and value.
struct JsonMember {
  JsonSpan key;
  JsonSpan value;
};

// Skips white space from `pos`, then one value. InvalidArgument when the text ends inside it
// (truncated), a bracket closes the wrong kind, or a byte cannot start or continue a value.
Result<JsonSpan> ScanJsonValue(std::string_view text, size_t pos = 0);

// The whole text is one value (white space around it allowed) nested at most `max_depth`
// deep. The message says which: "nested 100000 levels deep, over the limit of 64" or why the
// text is not one value.
Status CheckJsonBounds(std::string_view text, size_t max_depth = kMaxJsonDepth);

// The elements of the array `array` (a span ScanJsonValue returned over `text`), each with its
// own depth. InvalidArgument when it is not an array or a separator is wrong.
Result<std::vector<JsonSpan>> SplitJsonArray(std::string_view text, const JsonSpan& array);
// The members of the object `object`, in text order (duplicates kept).
Result<std::vector<JsonMember>> SplitJsonObject(std::string_view text, const JsonSpan& object);

// nlohmann's name for the kind of value `span` holds: "object", "array", "string", "boolean",
// "null" or "number" (from its first byte).
const char* JsonKindName(std::string_view text, const JsonSpan& span);

// The bytes of `span`.
inline std::string_view SpanText(std::string_view text, const JsonSpan& span) {
  return text.substr(span.begin, span.end - span.begin);
}

}  // namespace taolie
