// Table-driven tests of the one image-reference grammar (domain/image_reference.h), used by the
// deploy-payload rules and by the Docker adapter.
#include "domain/image_reference.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::domain {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

struct ValidCase {
  std::string input;
  std::string domain, path, tag, digest, pull_tag;
};

TEST(ImageReferenceTest, SplitsValidReferences) {
  const std::vector<ValidCase> cases = {
      {"ubuntu", "", "ubuntu", "", "", "latest"},
      {"ubuntu:22.04", "", "ubuntu", "22.04", "", "22.04"},
      {"library/ubuntu", "", "library/ubuntu", "", "", "latest"},
      {"library/ubuntu:latest", "", "library/ubuntu", "latest", "", "latest"},
      {"127.0.0.1:5555/taolie-test/busybox:1", "127.0.0.1:5555", "taolie-test/busybox", "1", "",
       "1"},
      {"127.0.0.1:5555/taolie-test/busybox", "127.0.0.1:5555", "taolie-test/busybox", "", "",
       "latest"},
      {"localhost/foo:dev", "localhost", "foo", "dev", "", "dev"},
      {"localhost/img", "localhost", "img", "", "", "latest"},
      {"localhost:5000/a/b/c:tag_1", "localhost:5000", "a/b/c", "tag_1", "", "tag_1"},
      {"[::1]:5000/img", "[::1]:5000", "img", "", "", "latest"},
      {"nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io", "nvidia/pytorch", "24.01-py3", "",
       "24.01-py3"},
      {"registry.example.com:443/a/b/c__d-e.f:T_1", "registry.example.com:443", "a/b/c__d-e.f",
       "T_1", "", "T_1"},
      {"my-registry.example.com/a__b/c-d/e---f:v1.0", "my-registry.example.com", "a__b/c-d/e---f",
       "v1.0", "", "v1.0"},
      // Uppercase is allowed in the registry host only.
      {"Registry.Example.com/img", "Registry.Example.com", "img", "", "", "latest"},
      {"alpine@" + kDigest, "", "alpine", "", kDigest, kDigest},
      {"ubuntu@sha256:" + std::string(64, '0'), "", "ubuntu", "", "sha256:" + std::string(64, '0'),
       "sha256:" + std::string(64, '0')},
      {"127.0.0.1:5555/x/y:1@" + kDigest, "127.0.0.1:5555", "x/y", "1", kDigest, kDigest},
      {"my---repo", "", "my---repo", "", "", "latest"},
      {std::string(255, 'a'), "", std::string(255, 'a'), "", "", "latest"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto ref = ParseImageReference(c.input);
    ASSERT_TRUE(ref.ok()) << ref.error().ToString();
    EXPECT_TRUE(IsValidImageReference(c.input));
    EXPECT_EQ(ref->domain, c.domain);
    EXPECT_EQ(ref->path, c.path);
    EXPECT_EQ(ref->tag, c.tag);
    EXPECT_EQ(ref->digest, c.digest);
    EXPECT_EQ(ref->PullTag(), c.pull_tag);
    EXPECT_EQ(ref->Name(), c.domain.empty() ? c.path : c.domain + "/" + c.path);
  }
}

struct InvalidCase {
  std::string input;
  std::string reason;  // expected prefix of the error message
};

TEST(ImageReferenceTest, RejectsMalformedAndHostileReferences) {
  const std::string kPathRule = "repository path component";
  const std::string kTagRule = "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
  const std::vector<InvalidCase> cases = {
      {"", "must not be empty"},
      {std::string(256, 'a'), "is longer than 255 characters"},
      {std::string(600, 'a'), "is longer than 255 characters"},
      {"x/" + std::string(300, 'a'), "is longer than 255 characters"},
      {"-ubuntu", "must not start with '-'"},
      {"--privileged", "must not start with '-'"},
      {"-host.com/a", "must not start with '-'"},
      {"ubuntu latest", "must not contain whitespace or control characters"},
      {"ubuntu\t", "must not contain whitespace or control characters"},
      {"foo\nbar", "must not contain whitespace or control characters"},
      {std::string("foo\0bar", 7), "must not contain whitespace or control characters"},
      {"$(rm -rf /)", "must not contain whitespace or control characters"},
      {"ub\xc3\xbcntu", "must be ASCII"},
      {"foo\xc3\xa9", "must be ASCII"},
      {"foo@", "digest must be sha256:<64 hex digits>"},
      {"ubuntu@md5:" + std::string(32, '0'), "digest must be sha256:<64 hex digits>"},
      {"foo@sha256:zz", "digest must be sha256:<64 lowercase hex digits>"},
      {"ubuntu@sha256:abc", "digest must be sha256:<64 lowercase hex digits>"},
      {"foo@sha256:" + std::string(63, 'a'), "digest must be sha256:<64 lowercase hex digits>"},
      {"foo@sha256:" + std::string(64, 'A'), "digest must be sha256:<64 lowercase hex digits>"},
      {"ubuntu:", kTagRule},
      {"ubuntu:-x", kTagRule},
      {"ubuntu:.bad", kTagRule},
      {"ubuntu:" + std::string(129, 'a'), kTagRule},
      {":tag", "repository name is missing"},
      {"localhost/", "repository name is missing"},
      {"Ubuntu", "repository name must be lowercase"},
      {"library/Ubuntu", "repository name must be lowercase"},
      {"docker.io/Ubuntu", "repository name must be lowercase"},
      {"Library/Ubuntu:22.04", "repository name must be lowercase"},
      {"a..b.com/x", "registry host 'a..b.com' is malformed"},
      {"host.com:99999/a", "registry host 'host.com:99999' is malformed"},
      {"host:99999999/x", "registry host 'host:99999999' is malformed"},
      {"host.com:/a", "registry host 'host.com:' is malformed"},
      {"host:/x", "registry host 'host:' is malformed"},
      {"[::1/x", "registry host '[::1' is malformed"},
      {"a..b", kPathRule + " 'a..b' must match [a-z0-9]+ separated by '.', '_', '__' or '-'"},
      {"a/", kPathRule + " ''"},
      {"/a", kPathRule + " ''"},
      {"a//b", kPathRule + " ''"},
      {"foo/../bar", kPathRule + " '..'"},
      {"../../etc/passwd", "registry host '..' is malformed"},
      {"a_-b", kPathRule + " 'a_-b'"},
      {"a___b", kPathRule + " 'a___b'"},
      {"a.", kPathRule + " 'a.'"},
      {"foo_", kPathRule + " 'foo_'"},
      {"foo;rm", kPathRule + " 'foo;rm'"},
      {"foo?x=1", kPathRule + " 'foo?x=1'"},
      {"foo#x", kPathRule + " 'foo#x'"},
      {"foo%2fbar", kPathRule + " 'foo%2fbar'"},
      {"x/" + std::string(85, 'b') + "_", kPathRule + " '" + std::string(80, 'b') + "...'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto ref = ParseImageReference(c.input);
    ASSERT_FALSE(ref.ok());
    EXPECT_FALSE(IsValidImageReference(c.input));
    EXPECT_EQ(ref.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(ref.error().message.substr(0, c.reason.size()), c.reason)
        << "got '" << ref.error().message << "'";
  }
}

}  // namespace
}  // namespace taolie::domain
