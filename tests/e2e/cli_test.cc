// The executable's command line: version, check-config, and run refusing a bad config.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

struct Out {
  int code = -1;
  std::string text;
};

Out RunAgent(const std::string& args) {
  Out o;
  std::string cmd = std::string(AGENT_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.text.append(buf, n);
  int status = ::pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taolie-cli-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(CliTest, Version) {
  Out o = RunAgent("version");
  EXPECT_EQ(o.code, 0);
  EXPECT_EQ(o.text.rfind("taolie-host-agent ", 0), 0u) << o.text;
}

TEST_F(CliTest, CheckConfigNamesEachBadKey) {
  std::string path =
      Write("bad.yaml",
            "agent: {api_key: k-123456789}\n"
            "network: {public_ip: 1.2.3.4, ports: {ssh: \"abc\", rental_port_1: 70000}}\n"
            "server: {url: \"http://platform.example.com\"}\n"
            "monitoring: {heartbeat_interval: 0}\n"
            "surprise: 1\n");
  Out o = RunAgent("check-config --config " + path);
  EXPECT_NE(o.code, 0);
  for (const char* key : {"network.ports.ssh:", "network.ports.rental_port_1:", "server.url:",
                          "monitoring.heartbeat_interval:", "surprise:"}) {
    EXPECT_NE(o.text.find(key), std::string::npos) << key << "\n" << o.text;
  }
  EXPECT_EQ(o.text.find("k-123456789"), std::string::npos) << "the API key was echoed";
}

TEST_F(CliTest, CheckConfigAcceptsTheSeedAndThePythonAgentsFile) {
  // The documented seed and the first agent's file load; only the placeholder API key fails.
  for (const char* path : {SEED_CONFIG, PYTHON_CONFIG}) {
    Out o = RunAgent(std::string("check-config --config ") + path);
    EXPECT_EQ(o.code, 1) << o.text;
    EXPECT_NE(o.text.find("agent.api_key:"), std::string::npos) << o.text;
    EXPECT_EQ(o.text.find("error: network"), std::string::npos) << o.text;
  }
}

TEST_F(CliTest, RunRefusesABadConfigAndTouchesNothing) {
  std::string data = dir_ + "/data";
  std::string path =
      Write("bad.yaml",
            "agent: {api_key: k-123456789}\nnetwork: {ports: {ssh: -1}}\ndata_dir: " + data + "\n");
  Out o = RunAgent("run --config " + path);
  EXPECT_EQ(o.code, 2) << o.text;
  EXPECT_NE(o.text.find("network.ports.ssh:"), std::string::npos) << o.text;
  EXPECT_FALSE(std::filesystem::exists(data)) << "run created state despite a bad config";
  Out missing = RunAgent("run --config " + dir_ + "/nope.yaml");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.text.find("nope.yaml"), std::string::npos) << missing.text;
}

}  // namespace
