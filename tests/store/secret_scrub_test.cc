// What the store never keeps of a renter's secrets (issue 17 item 5): the pure rewrites both
// stores apply, table-driven.
#include "store/secret_scrub.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::store {
namespace {

std::string Nested(int depth) {
  std::string s = R"({"registry_auth":{"password":"deep-pw"},"x":)";
  for (int i = 0; i < depth; ++i) s += "[";
  for (int i = 0; i < depth; ++i) s += "]";
  return s + "}";
}

TEST(SecretScrub, RegistryAuthIsRemovedFromAnyPayload) {
  struct Case {
    std::string in, want;
    bool removed;
  };
  const std::vector<Case> cases = {
      {R"({"image":"x","registry_auth":{"username":"u","password":"pw"},"ports":{}})",
       R"({"image":"x","ports":{}})", true},
      // An escaped key is the same key once parsed: removed too.
      {R"({"registry\u005fauth":{"identitytoken":"tok"},"image":"x"})", R"({"image":"x"})", true},
      {R"({"image": "x"})", R"({"image": "x"})", false},  // untouched, spacing kept
      {R"({"ext":{"registry_auth":1}})", R"({"ext":{"registry_auth":1}})", false},  // top only
      {"not json", "not json", false},
      {R"(["registry_auth"])", R"(["registry_auth"])", false},
      {Nested(kMaxScrubDepth + 10), "{}", true},  // too deep to walk: nothing kept
  };
  for (const auto& c : cases) {
    bool removed = !c.removed;
    EXPECT_EQ(PayloadWithoutRegistryAuth(c.in, &removed), c.want) << c.in.substr(0, 80);
    EXPECT_EQ(removed, c.removed) << c.in.substr(0, 80);
  }
  bool removed = false;
  EXPECT_EQ(PayloadWithoutRegistryAuth(Nested(20), &removed).find("deep-pw"), std::string::npos);
  EXPECT_TRUE(removed);
}

TEST(SecretScrub, EnvironmentValuesAreBlankedNamesKept) {
  EXPECT_EQ(PayloadWithoutEnvValues(R"({"environment":{"A":"1","B":"two"},"image":"x"})"),
            R"({"environment":{"A":"","B":""},"image":"x"})");
  EXPECT_EQ(PayloadWithoutEnvValues(R"({"image": "x"})"), R"({"image": "x"})");
  EXPECT_EQ(PayloadWithoutEnvValues(R"({"environment": {}})"), R"({"environment": {}})");
  EXPECT_EQ(PayloadWithoutEnvValues("junk"), "junk");
  EXPECT_EQ(SpecWithoutEnvValues(R"({"env":[["A","1"],["B","2"]],"image":"x"})"),
            R"({"env":[["A",""],["B",""]],"image":"x"})");
  EXPECT_EQ(SpecWithoutEnvValues(R"({"env":[]})"), R"({"env":[]})");
  EXPECT_EQ(SpecWithoutEnvValues(R"({"image":"x"})"), R"({"image":"x"})");
}

}  // namespace
}  // namespace taolie::store
