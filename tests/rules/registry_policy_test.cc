// The registry rule: local, private and link-local registries in every spelling are refused
// unless listed; names resolve through a fake resolver (no DNS here).
#include "rules/registry_policy.h"

#include <gtest/gtest.h>

#include <map>

namespace taolie::rules {
namespace {

RegistryPolicy Policy(std::vector<std::string> allowed = {}) {
  RegistryPolicy p;
  p.allowed_registries = std::move(allowed);
  p.own_ports = {{9109, "API port"}, {22022, "SSH rental port"}};
  p.range_first = 40000;
  p.range_last = 40100;
  return p;
}

// Answers from a fixed table; a name not in it is an error. Counts its calls.
struct FakeResolver {
  std::map<std::string, std::vector<std::string>> table;
  int calls = 0;
  HostResolver Fn() {
    return [this](const std::string& host) -> Result<std::vector<std::string>> {
      ++calls;
      auto it = table.find(host);
      if (it == table.end()) return MakeError(ErrorCode::kNotFound, "no such host");
      return it->second;
    };
  }
};

TEST(InetAtonIpv4, ReadsEverySpelling) {
  struct Case {
    const char* text;
    uint32_t want;
  };
  for (const Case& c :
       {Case{"127.0.0.1", 0x7f000001}, Case{"127.1", 0x7f000001}, Case{"127.0.1", 0x7f000001},
        Case{"2130706433", 0x7f000001}, Case{"0x7f.1", 0x7f000001}, Case{"0x7F000001", 0x7f000001},
        Case{"017700000001", 0x7f000001}, Case{"0177.0.0.01", 0x7f000001},
        Case{"10.0x10.1", 0x0a100001}, Case{"0", 0}, Case{"8.8.8.8", 0x08080808}}) {
    auto v = ParseInetAtonIpv4(c.text);
    ASSERT_TRUE(v.has_value()) << c.text;
    EXPECT_EQ(*v, c.want) << c.text;
  }
  for (const char* bad : {"", "127..1", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1.2.65536",
                          "4294967296", "08", "0x7g", "registry", "127.0.0.1."}) {
    EXPECT_FALSE(ParseInetAtonIpv4(bad).has_value()) << bad;
  }
}

TEST(LocalAddressKind, ClassifiesAddresses) {
  std::map<std::string, std::string> want = {
      {"127.0.0.1", "loopback"},
      {"127.255.1.2", "loopback"},
      {"::1", "loopback"},
      {"[::1]", "loopback"},
      {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:7f00:1", "loopback"},
      {"169.254.169.254", "link-local"},
      {"fe80::1", "link-local"},
      {"febf::1", "link-local"},
      {"fe80::1%eth0", "link-local"},
      {"10.1.2.3", "private"},
      {"172.16.0.1", "private"},
      {"172.31.255.255", "private"},
      {"192.168.1.1", "private"},
      {"fc00::1", "private"},
      {"fd12:3456::1", "private"},
      {"::ffff:10.0.0.1", "private"},
      {"100.64.0.1", "shared (CGNAT)"},
      {"100.127.255.255", "shared (CGNAT)"},
      {"0.0.0.0", "unspecified"},
      {"::", "unspecified"},
      {"::ffff:0.0.0.0", "unspecified"},
      {"0x7f.1", "loopback"},
      {"2130706433", "loopback"},
  };
  for (const auto& [addr, kind] : want) {
    auto got = LocalAddressKind(addr);
    ASSERT_TRUE(got.has_value()) << addr;
    EXPECT_EQ(*got, kind) << addr;
  }
  for (const char* pub :
       {"8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "169.255.0.1",
        "2606:4700::1", "::ffff:8.8.8.8", "registry.example.com"}) {
    EXPECT_FALSE(LocalAddressKind(pub).has_value()) << pub;
  }
}

TEST(CheckImageRegistry, RefusesLocalRegistriesInEverySpelling) {
  FakeResolver dns;
  for (const char* image :
       {"127.0.0.1:5555/t/busybox:1", "127.1:5000/x", "2130706433:5000/x", "0x7f.1:5000/x",
        "017700000001:5000/x", "localhost:5000/x", "localhost/x", "[::1]:5000/x",
        "[::ffff:7f00:1]:5000/x", "169.254.169.254/x", "[fe80::1]/x", "10.0.0.5/x",
        "172.16.3.4:443/x", "192.168.1.10/x", "100.64.1.1/x", "[fd00::1]:5000/x", "0.0.0.0:80/x",
        "[::]:5000/x"}) {
    Status st = CheckImageRegistry(image, Policy(), dns.Fn());
    ASSERT_FALSE(st.ok()) << image;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find("deployment.allowed_registries"), std::string::npos)
        << st.error().message;
  }
  EXPECT_EQ(dns.calls, 0);  // literals and localhost are never resolved
}

// The refusal's message for `image`, or "" when it may be pulled.
std::string Refusal(const std::string& image, FakeResolver& dns) {
  Status st = CheckImageRegistry(image, Policy(), dns.Fn());
  return st.ok() ? "" : st.error().message;
}

TEST(CheckImageRegistry, MessagesNameTheRegistryTheKindAndTheAgentPort) {
  FakeResolver dns;
  EXPECT_EQ(Refusal("127.0.0.1:9109/t/img:1", dns),
            "image: registry 127.0.0.1:9109 is a loopback address (port 9109 is the agent's API "
            "port); list it in deployment.allowed_registries to allow it");
  EXPECT_NE(Refusal("10.0.0.2:40050/img", dns)
                .find("private address (port 40050 is in the agent's rental port range)"),
            std::string::npos);
}

TEST(CheckImageRegistry, ResolvesNamesThroughTheSeam) {
  FakeResolver dns;
  dns.table["registry.example.com"] = {"93.184.216.34", "2606:2800:220:1::1"};
  dns.table["evil.example.com"] = {"93.184.216.34", "::ffff:127.0.0.1"};
  dns.table["meta.example.com"] = {"169.254.169.254"};
  dns.table["empty.example.com"] = {};
  EXPECT_EQ(Refusal("registry.example.com/team/app:2", dns), "");
  EXPECT_EQ(dns.calls, 1);
  EXPECT_EQ(Refusal("evil.example.com:5000/x", dns),
            "image: registry evil.example.com:5000 resolves to ::ffff:127.0.0.1, a loopback "
            "address; list it in deployment.allowed_registries to allow it");
  EXPECT_NE(Refusal("meta.example.com/x", dns).find("169.254.169.254, a link-local address"),
            std::string::npos);
  EXPECT_NE(Refusal("empty.example.com/x", dns).find("resolves to no address"), std::string::npos);
  EXPECT_NE(Refusal("unknown.example.com/x", dns).find("could not be resolved (no such host)"),
            std::string::npos);
}

TEST(CheckImageRegistry, AllowedRegistriesAndDockerHubPassWithoutResolving) {
  FakeResolver dns;
  auto p = Policy({"127.0.0.1:5555", "registry.lan", "[::1]:5000", "10.0.0.5"});
  for (const char* image :
       {"127.0.0.1:5555/taolie-test/sshd:1", "registry.lan/x", "REGISTRY.LAN:8443/x",
        "[::1]:5000/x", "10.0.0.5:9109/x", "ubuntu:22.04", "library/ubuntu",
        "docker.io/library/ubuntu", "nvidia/cuda:12.2.0-base"}) {
    EXPECT_TRUE(CheckImageRegistry(image, p, dns.Fn()).ok()) << image;
  }
  EXPECT_EQ(dns.calls, 0);
  // host:port allows that port only.
  EXPECT_FALSE(CheckImageRegistry("127.0.0.1:5556/x", p, dns.Fn()).ok());
  EXPECT_FALSE(CheckImageRegistry("[::1]:5001/x", p, dns.Fn()).ok());
  // A refused registry is refused without a resolver too; a name without one is refused.
  EXPECT_FALSE(CheckImageRegistry("registry.example.com/x", p, HostResolver()).ok());
  EXPECT_TRUE(CheckImageRegistry("8.8.8.8:5000/x", p, HostResolver()).ok());
  EXPECT_FALSE(CheckImageRegistry("not an image", p, dns.Fn()).ok());
}

TEST(IsListedImage, MatchesTheSameReferenceInAnySpelling) {
  std::vector<std::string> listed = {"ubuntu", "127.0.0.1:5555/taolie-test/sshd:1",
                                     "nvidia/cuda@sha256:" + std::string(64, 'a')};
  for (const char* same : {"ubuntu:latest", "docker.io/library/ubuntu", "library/ubuntu:latest",
                           "index.docker.io/library/ubuntu", "127.0.0.1:5555/taolie-test/sshd:1"}) {
    EXPECT_TRUE(IsListedImage(same, listed)) << same;
  }
  EXPECT_TRUE(IsListedImage("docker.io/nvidia/cuda@sha256:" + std::string(64, 'a'), listed));
  for (const char* other : {"ubuntu:22.04", "127.0.0.1:5555/taolie-test/sshd:2",
                            "127.0.0.1:5555/taolie-test/sshd", "nvidia/cuda", "-bad"}) {
    EXPECT_FALSE(IsListedImage(other, listed)) << other;
  }
  EXPECT_FALSE(IsListedImage("ubuntu", {}));
}

}  // namespace
}  // namespace taolie::rules
