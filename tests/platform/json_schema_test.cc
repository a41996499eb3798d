// The test validator (tests/support/json_schema.h): for each keyword a valid and an invalid
// sample, and schemas it must refuse to load.
#include "support/json_schema.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::testing {
namespace {

using Json = nlohmann::json;

struct Case {
  const char* name;
  const char* schema;
  const char* instance;
  // "" = valid; otherwise a piece of the expected message.
  const char* error;
};

class KeywordTest : public ::testing::TestWithParam<Case> {};

TEST_P(KeywordTest, ValidatesAsExpected) {
  const Case& c = GetParam();
  auto schema = JsonSchema::Parse(Json::parse(c.schema));
  ASSERT_TRUE(schema.ok()) << schema.error().ToString();
  const std::string got = schema->Validate(Json::parse(c.instance));
  if (std::string(c.error).empty()) {
    EXPECT_EQ(got, "") << c.instance;
  } else {
    EXPECT_NE(got.find(c.error), std::string::npos) << "got: '" << got << "'";
  }
}

const Case kCases[] = {
    // type
    {"type_string_ok", R"({"type":"string"})", R"("x")", ""},
    {"type_string_bad", R"({"type":"string"})", "1", "/: expected string, got integer"},
    {"type_integer_ok", R"({"type":"integer"})", "42", ""},
    {"type_integer_rejects_float", R"({"type":"integer"})", "42.0", "expected integer, got number"},
    {"type_number_takes_int", R"({"type":"number"})", "7", ""},
    {"type_number_bad", R"({"type":"number"})", R"("7")", "expected number, got string"},
    {"type_boolean_bad", R"({"type":"boolean"})", "0", "expected boolean, got integer"},
    {"type_null_ok", R"({"type":"null"})", "null", ""},
    {"type_object_bad", R"({"type":"object"})", "[]", "expected object, got array"},
    {"type_array_bad", R"({"type":"array"})", "{}", "expected array, got object"},
    {"type_list_ok", R"({"type":["string","null"]})", "null", ""},
    {"type_list_bad", R"({"type":["string","null"]})", "3", "expected string or null"},
    // properties
    {"properties_ok", R"({"properties":{"a":{"type":"integer"}}})", R"({"a":1,"b":"x"})", ""},
    {"properties_bad", R"({"properties":{"a":{"type":"integer"}}})", R"({"a":"1"})",
     "/a: expected integer, got string"},
    {"properties_ignore_non_objects", R"({"properties":{"a":{"type":"integer"}}})", "[1]", ""},
    // required
    {"required_ok", R"({"required":["a"]})", R"({"a":null})", ""},
    {"required_missing", R"({"required":["a","b"]})", R"({"a":1})",
     "required property 'b' is missing"},
    // additionalProperties
    {"additional_schema_ok", R"({"additionalProperties":{"type":"integer"}})", R"({"22":2222})",
     ""},
    {"additional_schema_bad", R"({"additionalProperties":{"type":"integer"}})", R"({"22":"x"})",
     "/22: expected integer"},
    {"additional_false", R"({"properties":{"a":{}},"additionalProperties":false})",
     R"({"a":1,"b":2})", "/b: not allowed here"},
    // items
    {"items_ok", R"({"items":{"type":"string"}})", R"(["a","b"])", ""},
    {"items_bad", R"({"items":{"type":"string"}})", R"(["a",2])", "/1: expected string"},
    // enum
    {"enum_ok", R"({"enum":["SSD","HDD",null]})", "null", ""},
    {"enum_bad", R"({"enum":["SSD","HDD"]})", R"("ssd")", "is not one of"},
    // const
    {"const_ok", R"({"const":"processed"})", R"("processed")", ""},
    {"const_bad", R"({"const":"processed"})", R"("done")", "must be \"processed\""},
    // minimum / maximum
    {"minimum_ok", R"({"minimum":1})", "1", ""},
    {"minimum_bad", R"({"minimum":1})", "0", "below the minimum 1"},
    {"maximum_ok", R"({"maximum":65535})", "65535", ""},
    {"maximum_bad", R"({"maximum":65535})", "65536", "above the maximum 65535"},
    {"minimum_ignores_strings", R"({"minimum":1})", R"("0")", ""},
    // minLength / maxLength (UTF-8 characters, not bytes)
    {"min_length_ok", R"({"minLength":1})", R"("a")", ""},
    {"min_length_bad", R"({"minLength":1})", R"("")", "shorter than 1"},
    {"max_length_counts_characters", R"({"maxLength":2})", "\"\xc3\xa9\xc3\xa9\"", ""},
    {"max_length_bad", R"({"maxLength":2})", R"("abc")", "longer than 2"},
    // pattern (searched, ECMAScript)
    {"pattern_ok", R"({"pattern":"^[0-9]{4}-"})", R"("2026-12-07")", ""},
    {"pattern_bad", R"({"pattern":"^[0-9]{4}-"})", R"("26-12-07")", "does not match"},
    {"pattern_is_searched", R"({"pattern":"b"})", R"("abc")", ""},
    {"pattern_lookahead", R"j({"pattern":"^(?!(deploy|terminate)$)"})j", R"("deploy")",
     "does not match"},
    // anyOf
    {"any_of_ok", R"({"anyOf":[{"type":"string"},{"type":"integer"}]})", "1", ""},
    {"any_of_bad", R"({"anyOf":[{"type":"string"},{"type":"integer"}]})", "true",
     "matches none of anyOf ([0] /: expected string"},
    // oneOf
    {"one_of_ok", R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", R"("x")", ""},
    {"one_of_none", R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", "[]",
     "matches none of oneOf"},
    {"one_of_two", R"({"oneOf":[{"type":"number"},{"type":"integer"}]})", "3",
     "matches more than one of oneOf ([0] and [1])"},
    // $ref to $defs
    {"ref_ok",
     R"({"$defs":{"port":{"type":"integer","minimum":1}},"items":{"$ref":"#/$defs/port"}})",
     "[22, 8888]", ""},
    {"ref_bad",
     R"({"$defs":{"port":{"type":"integer","minimum":1}},"items":{"$ref":"#/$defs/port"}})",
     "[22, 0]", "/1: 0 is below the minimum 1"},
    // boolean schemas, annotations
    {"true_schema", R"({"properties":{"a":true}})", R"({"a":[1]})", ""},
    {"annotations_ignored",
     R"({"$schema":"https://json-schema.org/draft/2020-12/schema","title":"t","description":"d","$comment":"c"})",
     "1", ""},
    // pointers are escaped
    {"pointer_escaped", R"({"additionalProperties":{"type":"integer"}})", R"({"a/b~c":"x"})",
     "/a~1b~0c: expected integer"},
};

INSTANTIATE_TEST_SUITE_P(Keywords, KeywordTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return std::string(param_info.param.name);
                         });

struct BadSchema {
  const char* schema;
  const char* error;
};

TEST(JsonSchemaTest, RefusesSchemasItCannotHonour) {
  const std::vector<BadSchema> cases = {
      {R"({"type":"string","format":"date-time"})", "unsupported keyword 'format'"},
      {R"({"properties":{"a":{"if":{}}}})", "schema /properties/a: unsupported keyword 'if'"},
      {R"({"type":"int"})", "type: unknown type \"int\""},
      {R"({"type":[]})", "type: empty list"},
      {R"({"required":"a"})", "required: must be an array"},
      {R"({"minimum":"1"})", "minimum: not a number"},
      {R"({"maxLength":-1})", "maxLength: not a non-negative integer"},
      {R"({"enum":[]})", "enum: must be a non-empty array"},
      {R"({"pattern":"(unclosed"})", "does not compile"},
      {R"({"$ref":"other.json#/x"})", "only \"#/$defs/<name>\" is supported"},
      {R"({"$ref":"#/$defs/missing"})", "no $defs entry 'missing'"},
      {R"({"anyOf":[]})", "anyOf: non-empty array"},
      {R"({"items":{"$defs":{}}})", "$defs only at the top level"},
      {R"(3)", "a schema must be an object or a boolean"},
  };
  for (const auto& c : cases) {
    auto s = JsonSchema::Parse(Json::parse(c.schema));
    ASSERT_FALSE(s.ok()) << c.schema;
    EXPECT_NE(s.error().message.find(c.error), std::string::npos)
        << c.schema << " -> " << s.error().message;
  }
}

TEST(JsonSchemaTest, ReportsTheFirstProblemWithItsPath) {
  auto s = JsonSchema::Parse(Json::parse(R"({
    "type": "object", "required": ["access_info"],
    "properties": {"access_info": {"type": "object", "properties": {
      "ssh": {"type": "object", "properties": {"port": {"type": "integer"}}}}}}})"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->Validate(Json::parse(R"({"access_info": {"ssh": {"port": "22"}}})")),
            "/access_info/ssh/port: expected integer, got string");
  EXPECT_EQ(s->Validate(Json::parse(R"({})")), "/: required property 'access_info' is missing");
}

TEST(JsonSchemaTest, SelfReferenceIsBoundedByDepth) {
  auto s = JsonSchema::Parse(Json::parse(
      R"({"$defs":{"node":{"type":"array","items":{"$ref":"#/$defs/node"}}},"$ref":"#/$defs/node"})"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->Validate(Json::parse("[[[]]]")), "");
  Json deep = Json::array();
  for (int i = 0; i < 200; ++i) deep = Json::array({deep});
  EXPECT_NE(s->Validate(deep).find("nested deeper than"), std::string::npos);
}

TEST(JsonSchemaTest, LoadNamesTheFile) {
  auto missing = JsonSchema::Load("/nonexistent/x.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/x.json"), std::string::npos);
}

struct Route {
  const char* endpoint;
  int status;
  const char* request;
  const char* response;
};

TEST(JsonSchemaTest, EachEndpointHasItsSchemas) {
  const std::vector<Route> routes = {
      {"register", 200, "register.request.json", "register.response.json"},
      {"register", 201, "register.request.json", "register.response.json"},
      {"register", 409, "register.request.json", "register.response.json"},
      {"register", 401, "register.request.json", "error.response.json"},
      {"heartbeat", 200, "heartbeat.request.json", "status.response.json"},
      {"commands", 200, "", "commands.response.json"},
      {"commands", 503, "", "error.response.json"},
      {"ack", 200, "ack.request.json", "status.response.json"},
      {"ack", 404, "ack.request.json", "error.response.json"},
      {"metrics", 200, "metrics.request.json", "status.response.json"},
      {"health", 422, "health.request.json", "error.response.json"},
      {"event.success", 200, "event.success.request.json", "status.response.json"},
      {"event.gpu_failed", 404, "event.gpu_failed.request.json", "error.response.json"},
      {"heartbeat", 304, "heartbeat.request.json", ""},
      {"event.unknown", 404, "", ""},
      {"", 404, "", ""},
  };
  for (const auto& r : routes) {
    SCOPED_TRACE(std::string(r.endpoint) + " " + std::to_string(r.status));
    EXPECT_EQ(RequestSchemaFor(r.endpoint), r.request);
    EXPECT_EQ(ResponseSchemaFor(r.endpoint, r.status), r.response);
  }
}

}  // namespace
}  // namespace taolie::testing
