#include "common/json_bounds.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie {
namespace {

std::string Nested(size_t depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

TEST(JsonBounds, ScanTable) {
  struct Row {
    std::string text;
    bool ok;
    size_t depth;      // ok: the value's depth
    size_t end;        // ok: one past the value
    std::string what;  // !ok: part of the message
  };
  const std::vector<Row> rows = {
      {"1", true, 0, 1, ""},
      {"  -1.5e3 ,", true, 0, 8, ""},
      {"null", true, 0, 4, ""},
      {R"("a")", true, 0, 3, ""},
      {"{}", true, 1, 2, ""},
      {R"({"a":[1,{"b":null}]})", true, 3, 20, ""},
      // Brackets and escaped quotes inside strings do not count.
      {R"(["[[[{{{", "\"]]]", "\\"])", true, 1, 25, ""},
      {R"({"k\"}":"}}}"} tail)", true, 1, 14, ""},
      {Nested(64), true, 64, 129, ""},
      {Nested(65), true, 65, 131, ""},
      {Nested(100000), true, 100000, 200001, ""},
      // Truncated or mismatched.
      {"", false, 0, 0, "no value"},
      {"   ", false, 0, 0, "no value"},
      {"[1,2", false, 0, 0, "truncated (1 levels open)"},
      {Nested(100000).substr(0, 150000), false, 0, 0, "truncated (50001 levels open)"},
      {R"(["abc)", false, 0, 0, "truncated string"},
      {R"(["abc\")", false, 0, 0, "truncated string"},
      {R"(["abc\)", false, 0, 0, "truncated string"},
      {"[}", false, 0, 0, "unexpected '}'"},
      {R"({"a":1])", false, 0, 0, "unexpected ']'"},
      {"]", false, 0, 0, "unexpected ']'"},
      {",", false, 0, 0, "unexpected byte 0x2c"},
      {"[\x01]", false, 0, 0, "unexpected byte 0x01"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.text.substr(0, 80));
    auto r = ScanJsonValue(row.text);
    ASSERT_EQ(r.ok(), row.ok) << (r.ok() ? "" : r.error().message);
    if (row.ok) {
      EXPECT_EQ(r->depth, row.depth);
      EXPECT_EQ(r->end, row.end);
    } else {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(r.error().message.find(row.what), std::string::npos) << r.error().message;
    }
  }
}

TEST(JsonBounds, CheckAtTheLimitAndOneAbove) {
  EXPECT_TRUE(CheckJsonBounds(Nested(kMaxJsonDepth)).ok());
  EXPECT_TRUE(CheckJsonBounds(" {\"a\":" + Nested(kMaxJsonDepth - 1) + "} \n").ok());
  auto over = CheckJsonBounds(Nested(kMaxJsonDepth + 1));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().message, "JSON nested 65 levels deep, over the limit of 64");
  auto deep = CheckJsonBounds("{\"a\":" + Nested(100000) + "}");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("100001 levels"), std::string::npos);
  EXPECT_TRUE(CheckJsonBounds(Nested(3), 3).ok());
  EXPECT_FALSE(CheckJsonBounds(Nested(4), 3).ok());
  // Not one value.
  EXPECT_FALSE(CheckJsonBounds("[1] [2]").ok());
  EXPECT_FALSE(CheckJsonBounds("").ok());
  EXPECT_FALSE(CheckJsonBounds("[1").ok());
}

TEST(JsonBounds, SplitArrayAndObject) {
  const std::string text = R"( [ {"a": "],"}, [[2]] , "x\"y" ,3 ] )";
  auto top = ScanJsonValue(text);
  ASSERT_TRUE(top.ok());
  auto elements = SplitJsonArray(text, *top);
  ASSERT_TRUE(elements.ok()) << elements.error().message;
  ASSERT_EQ(elements->size(), 4u);
  EXPECT_EQ(SpanText(text, (*elements)[0]), R"({"a": "],"})");
  EXPECT_EQ((*elements)[0].depth, 1u);
  EXPECT_EQ(SpanText(text, (*elements)[1]), "[[2]]");
  EXPECT_EQ((*elements)[1].depth, 2u);
  EXPECT_EQ(SpanText(text, (*elements)[2]), R"("x\"y")");
  EXPECT_STREQ(JsonKindName(text, (*elements)[2]), "string");
  EXPECT_EQ(SpanText(text, (*elements)[3]), "3");
  EXPECT_STREQ(JsonKindName(text, (*elements)[3]), "number");

  const std::string obj = R"({"k": {"x": [1]}, "k" : true, "\u0041":null})";
  auto o = ScanJsonValue(obj);
  ASSERT_TRUE(o.ok());
  auto members = SplitJsonObject(obj, *o);
  ASSERT_TRUE(members.ok()) << members.error().message;
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ(SpanText(obj, (*members)[0].key), R"("k")");
  EXPECT_EQ(SpanText(obj, (*members)[0].value), R"({"x": [1]})");
  EXPECT_EQ((*members)[0].value.depth, 2u);
  EXPECT_STREQ(JsonKindName(obj, (*members)[1].value), "boolean");
  EXPECT_EQ(SpanText(obj, (*members)[2].key), R"("\u0041")");
  EXPECT_STREQ(JsonKindName(obj, (*members)[2].value), "null");

  for (const std::string empty : {"[]", "[ ]", "{}", "{ \n}"}) {
    auto e = ScanJsonValue(empty);
    ASSERT_TRUE(e.ok());
    if (empty[0] == '[') {
      auto a = SplitJsonArray(empty, *e);
      ASSERT_TRUE(a.ok());
      EXPECT_TRUE(a->empty());
    } else {
      auto m = SplitJsonObject(empty, *e);
      ASSERT_TRUE(m.ok());
      EXPECT_TRUE(m->empty());
    }
  }
  // The level split is checked strictly: separators, keys, kinds.
  for (const std::string bad : {"[1 2]", "[1,]", "[,1]", "{\"a\" 1}", "{1:2}", "{\"a\":1,}"}) {
    SCOPED_TRACE(bad);
    auto v = ScanJsonValue(bad);
    ASSERT_TRUE(v.ok());
    if (bad[0] == '[') {
      EXPECT_FALSE(SplitJsonArray(bad, *v).ok());
    } else {
      EXPECT_FALSE(SplitJsonObject(bad, *v).ok());
    }
  }
  auto arr = ScanJsonValue("[1]");
  ASSERT_TRUE(arr.ok());
  EXPECT_FALSE(SplitJsonObject("[1]", *arr).ok());
  EXPECT_FALSE(SplitJsonArray("{}", *ScanJsonValue("{}")).ok());
}

}  // namespace
}  // namespace taolie
