#include "support/json_schema.h"

#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace taolie::testing {
namespace {

using Json = nlohmann::json;

const std::set<std::string>& KnownKeywords() {
  static const std::set<std::string> k = {
      "type",    "properties", "required",    "additionalProperties",
      "items",   "enum",       "const",       "minimum",
      "maximum", "minLength",  "maxLength",   "pattern",
      "anyOf",   "oneOf",      "$ref",        "$defs",
      "$schema", "title",      "description", "$comment"};
  return k;
}

const std::set<std::string>& TypeNames() {
  static const std::set<std::string> t = {"object", "array",   "string", "integer",
                                          "number", "boolean", "null"};
  return t;
}

std::string Describe(const Json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  if (v.is_boolean()) return "boolean";
  return v.type_name();  // object, array, string, null
}

bool HasType(const Json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "integer") return v.is_number_integer();  // written without fraction (README)
  if (t == "number") return v.is_number();
  if (t == "boolean") return v.is_boolean();
  return v.is_null();
}

// JSON pointer escaping of one reference token (RFC 6901).
std::string PointerToken(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// "#/$defs/<name>" -> name; "" for any other form.
std::string DefName(const Json& ref) {
  static const std::string kPrefix = "#/$defs/";
  if (!ref.is_string()) return "";
  const std::string s = ref.get<std::string>();
  if (s.rfind(kPrefix, 0) != 0 || s.size() == kPrefix.size()) return "";
  return s.substr(kPrefix.size());
}

std::string Short(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

constexpr int kMaxDepth = 128;

// Checks one (sub)schema and, recursively, the ones inside it.
Status CheckSchema(const Json& s, const Json& root, const std::string& at,
                   std::map<std::string, std::regex>& patterns) {
  auto bad = [&](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument, "schema " + (at.empty() ? "/" : at) + ": " + why);
  };
  if (s.is_boolean()) return OkStatus();
  if (!s.is_object()) return bad("a schema must be an object or a boolean");
  for (const auto& [key, value] : s.items()) {
    if (KnownKeywords().count(key) == 0) return bad("unsupported keyword '" + key + "'");
    (void)value;
  }
  if (auto t = s.find("type"); t != s.end()) {
    std::vector<Json> names = t->is_array() ? t->get<std::vector<Json>>() : std::vector<Json>{*t};
    if (names.empty()) return bad("type: empty list");
    for (const auto& n : names) {
      if (!n.is_string() || TypeNames().count(n.get<std::string>()) == 0)
        return bad("type: unknown type " + Short(n));
    }
  }
  if (auto r = s.find("required"); r != s.end()) {
    if (!r->is_array()) return bad("required: must be an array");
    for (const auto& n : *r)
      if (!n.is_string()) return bad("required: names must be strings");
  }
  for (const char* k : {"minimum", "maximum"}) {
    if (auto v = s.find(k); v != s.end() && !v->is_number())
      return bad(std::string(k) + ": not a number");
  }
  for (const char* k : {"minLength", "maxLength"}) {
    if (auto v = s.find(k);
        v != s.end() && !(v->is_number_unsigned() || (v->is_number_integer() && *v >= 0)))
      return bad(std::string(k) + ": not a non-negative integer");
  }
  if (auto e = s.find("enum"); e != s.end() && (!e->is_array() || e->empty()))
    return bad("enum: must be a non-empty array");
  if (auto p = s.find("pattern"); p != s.end()) {
    if (!p->is_string()) return bad("pattern: must be a string");
    const std::string text = p->get<std::string>();
    if (patterns.count(text) == 0) {
      try {
        patterns.emplace(text, std::regex(text, std::regex::ECMAScript));
      } catch (const std::regex_error& e) {
        return bad("pattern '" + text + "' does not compile: " + e.what());
      }
    }
  }
  if (auto r = s.find("$ref"); r != s.end()) {
    const std::string name = DefName(*r);
    if (name.empty()) return bad("$ref: only \"#/$defs/<name>\" is supported, got " + Short(*r));
    if (!root.contains("$defs") || !root["$defs"].contains(name))
      return bad("$ref: no $defs entry '" + name + "'");
  }
  if (auto p = s.find("properties"); p != s.end()) {
    if (!p->is_object()) return bad("properties: must be an object");
    for (const auto& [name, sub] : p->items()) {
      TAOLIE_RETURN_IF_ERROR(
          CheckSchema(sub, root, at + "/properties/" + PointerToken(name), patterns));
    }
  }
  for (const char* k : {"additionalProperties", "items"}) {
    if (auto sub = s.find(k); sub != s.end())
      TAOLIE_RETURN_IF_ERROR(CheckSchema(*sub, root, at + "/" + k, patterns));
  }
  for (const char* k : {"anyOf", "oneOf"}) {
    if (auto list = s.find(k); list != s.end()) {
      if (!list->is_array() || list->empty()) return bad(std::string(k) + ": non-empty array");
      for (size_t i = 0; i < list->size(); ++i)
        TAOLIE_RETURN_IF_ERROR(
            CheckSchema((*list)[i], root, at + "/" + k + "/" + std::to_string(i), patterns));
    }
  }
  if (auto defs = s.find("$defs"); defs != s.end()) {
    if (!at.empty()) return bad("$defs only at the top level");
    if (!defs->is_object()) return bad("$defs: must be an object");
    for (const auto& [name, sub] : defs->items())
      TAOLIE_RETURN_IF_ERROR(CheckSchema(sub, root, "/$defs/" + PointerToken(name), patterns));
  }
  return OkStatus();
}

}  // namespace

Result<JsonSchema> JsonSchema::Parse(Json schema) {
  auto shared = std::make_shared<Shared>();
  shared->root = std::move(schema);
  TAOLIE_RETURN_IF_ERROR(CheckSchema(shared->root, shared->root, "", shared->patterns));
  return JsonSchema(std::move(shared));
}

Result<JsonSchema> JsonSchema::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return MakeError(ErrorCode::kNotFound, "cannot read schema " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return MakeError(ErrorCode::kInvalidArgument, path + ": not JSON");
  auto s = Parse(std::move(j));
  if (!s.ok()) return MakeError(s.error().code, path + ": " + s.error().message);
  return s;
}

std::string JsonSchema::Validate(const Json& instance) const {
  return Check(shared_->root, instance, "", 0);
}

std::string JsonSchema::Check(const Json& s, const Json& v, const std::string& where,
                              int depth) const {
  const std::string at = where.empty() ? "/" : where;
  if (depth > kMaxDepth) return at + ": nested deeper than " + std::to_string(kMaxDepth);
  if (s.is_boolean()) return s.get<bool>() ? "" : at + ": not allowed here";
  if (auto r = s.find("$ref"); r != s.end()) {
    const Json& target = shared_->root["$defs"][DefName(*r)];
    if (std::string e = Check(target, v, where, depth + 1); !e.empty()) return e;
  }
  if (auto t = s.find("type"); t != s.end()) {
    bool ok = false;
    std::string wanted;
    for (const auto& n : t->is_array() ? *t : Json::array({*t})) {
      ok = ok || HasType(v, n.get<std::string>());
      wanted += (wanted.empty() ? "" : " or ") + n.get<std::string>();
    }
    if (!ok) return at + ": expected " + wanted + ", got " + Describe(v);
  }
  if (auto c = s.find("const"); c != s.end() && v != *c)
    return at + ": must be " + Short(*c) + ", got " + Short(v);
  if (auto e = s.find("enum"); e != s.end()) {
    bool found = false;
    for (const auto& option : *e) found = found || option == v;
    if (!found) return at + ": " + Short(v) + " is not one of " + Short(*e);
  }
  if (v.is_number()) {
    const double x = v.get<double>();
    if (auto m = s.find("minimum"); m != s.end() && x < m->get<double>())
      return at + ": " + Short(v) + " is below the minimum " + Short(*m);
    if (auto m = s.find("maximum"); m != s.end() && x > m->get<double>())
      return at + ": " + Short(v) + " is above the maximum " + Short(*m);
  }
  if (v.is_string()) {
    const std::string& text = v.get_ref<const std::string&>();
    const size_t len = Utf8Length(text);
    if (auto m = s.find("minLength"); m != s.end() && len < m->get<size_t>())
      return at + ": shorter than " + Short(*m) + " characters";
    if (auto m = s.find("maxLength"); m != s.end() && len > m->get<size_t>())
      return at + ": longer than " + Short(*m) + " characters";
    if (auto p = s.find("pattern"); p != s.end()) {
      const std::regex& re = shared_->patterns.at(p->get<std::string>());
      if (!std::regex_search(text, re))
        return at + ": " + Short(v) + " does not match " + Short(*p);
    }
  }
  if (v.is_object()) {
    if (auto r = s.find("required"); r != s.end()) {
      for (const auto& name : *r) {
        if (!v.contains(name.get<std::string>()))
          return at + ": required property '" + name.get<std::string>() + "' is missing";
      }
    }
    const auto props = s.find("properties");
    const auto extra = s.find("additionalProperties");
    for (const auto& [name, value] : v.items()) {
      const std::string child = where + "/" + PointerToken(name);
      if (props != s.end() && props->contains(name)) {
        if (std::string e = Check((*props)[name], value, child, depth + 1); !e.empty()) return e;
      } else if (extra != s.end()) {
        if (std::string e = Check(*extra, value, child, depth + 1); !e.empty()) return e;
      }
    }
  }
  if (v.is_array()) {
    if (auto items = s.find("items"); items != s.end()) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (std::string e = Check(*items, v[i], where + "/" + std::to_string(i), depth + 1);
            !e.empty())
          return e;
      }
    }
  }
  if (auto any = s.find("anyOf"); any != s.end()) {
    std::string why;
    bool matched = false;
    for (size_t i = 0; i < any->size() && !matched; ++i) {
      std::string e = Check((*any)[i], v, where, depth + 1);
      matched = e.empty();
      why += (why.empty() ? "" : "; ") + ("[" + std::to_string(i) + "] " + e);
    }
    if (!matched) return at + ": matches none of anyOf (" + why + ")";
  }
  if (auto one = s.find("oneOf"); one != s.end()) {
    std::string why;
    std::vector<size_t> matched;
    for (size_t i = 0; i < one->size(); ++i) {
      std::string e = Check((*one)[i], v, where, depth + 1);
      if (e.empty()) {
        matched.push_back(i);
      } else {
        why += (why.empty() ? "" : "; ") + ("[" + std::to_string(i) + "] " + e);
      }
    }
    if (matched.empty()) return at + ": matches none of oneOf (" + why + ")";
    if (matched.size() > 1) {
      return at + ": matches more than one of oneOf ([" + std::to_string(matched[0]) + "] and [" +
             std::to_string(matched[1]) + "])";
    }
  }
  return "";
}

Result<JsonSchema> LoadContractSchema(const std::string& name) {
  return JsonSchema::Load(std::string(TAOLIE_SCHEMA_DIR) + "/" + name);
}

namespace {

bool KnownEndpoint(const std::string& endpoint) {
  static const std::set<std::string> k = {
      "register",       "heartbeat",        "commands",        "ack",
      "metrics",        "health",           "event.success",   "event.failed",
      "event.expiring", "event.terminated", "event.gpu_failed"};
  return k.count(endpoint) > 0;
}

}  // namespace

std::string RequestSchemaFor(const std::string& endpoint) {
  if (!KnownEndpoint(endpoint) || endpoint == "commands") return "";
  return endpoint + ".request.json";
}

std::string ResponseSchemaFor(const std::string& endpoint, int status) {
  if (!KnownEndpoint(endpoint)) return "";
  if (endpoint == "register" && (status == 200 || status == 201 || status == 409))
    return "register.response.json";
  if (status >= 400) return "error.response.json";
  if (status >= 200 && status < 300) {
    return endpoint == "commands" ? "commands.response.json" : "status.response.json";
  }
  return "";
}

}  // namespace taolie::testing
