// Unit tests for the pure Docker Engine API helpers and EngineDockerClient's argument checks.
// No daemon: the only socket used is one that does not exist.
#include "docker/engine_api.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "docker/engine_docker_client.h"

namespace taolie::docker {
namespace {

using nlohmann::json;

// The grammar itself is tested in tests/domain/image_reference_test.cc; here only the
// adapter's use of it: the split for the pull API and the error it reports.
TEST(ParseImageReferenceTest, SplitsForThePullApi) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  auto ref = ParseImageReference("127.0.0.1:5555/x/y:1@" + digest);
  ASSERT_TRUE(ref.ok()) << ref.error().ToString();
  EXPECT_EQ(ref->Name(), "127.0.0.1:5555/x/y");
  EXPECT_EQ(ref->PullTag(), digest);
  auto plain = ParseImageReference("ubuntu");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->PullTag(), "latest");
}

TEST(ParseImageReferenceTest, NamesTheReferenceAndTheReason) {
  auto ref = ParseImageReference("foo\nBar");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ref.error().message,
            "invalid image reference \"foo?Bar\": must not contain whitespace or control "
            "characters");
}

TEST(ContainerRefTest, AcceptsIdsAndNamesOnly) {
  EXPECT_TRUE(IsValidContainerRef("deployment-abc_1.x"));
  EXPECT_TRUE(IsValidContainerRef(std::string(64, 'f')));
  for (const std::string s : {"", "../x", ".x", "-x", "a/b", "a b", "a?b", "a%2f", "a\n"}) {
    EXPECT_FALSE(IsValidContainerRef(s)) << s;
  }
  EXPECT_FALSE(IsValidContainerRef(std::string(256, 'a')));
}

TEST(ApiVersionTest, NegotiatesMinimumOfServerAndSupported) {
  struct Case {
    std::string server;
    bool ok;
    std::string chosen;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"1.41", true, "1.41", ErrorCode::kInternal},
      {"1.40", true, "1.40", ErrorCode::kInternal},
      {"1.43", true, "1.43", ErrorCode::kInternal},
      {"1.47", true, "1.43", ErrorCode::kInternal},
      {"2.0", true, "1.43", ErrorCode::kInternal},
      {"1.39", false, "", ErrorCode::kFailedPrecondition},
      {"1.9", false, "", ErrorCode::kFailedPrecondition},
      {"", false, "", ErrorCode::kInternal},
      {"1", false, "", ErrorCode::kInternal},
      {"1.x", false, "", ErrorCode::kInternal},
      {"v1.41", false, "", ErrorCode::kInternal},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.server);
    auto v = NegotiateApiVersion(c.server, "1.40", "1.43");
    ASSERT_EQ(v.ok(), c.ok);
    if (c.ok) {
      EXPECT_EQ(*v, c.chosen);
    } else {
      EXPECT_EQ(v.error().code, c.code);
    }
  }
}

std::string Frame(char stream, const std::string& payload) {
  std::string f(8, '\0');
  f[0] = stream;
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + payload;
}

TEST(StreamDemuxerTest, JoinsStdoutAndStderrAcrossAnyChunking) {
  std::string big(300, 'z');
  std::string stream = Frame(1, "hello ") + Frame(2, "err\n") + Frame(1, "") + Frame(1, big);
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    StreamDemuxer d(4096);
    for (size_t i = 0; i < stream.size(); i += chunk) {
      ASSERT_TRUE(d.Feed(std::string_view(stream).substr(i, chunk)));
    }
    EXPECT_EQ(d.output(), "hello err\n" + big) << "chunk " << chunk;
    EXPECT_FALSE(d.truncated());
    EXPECT_FALSE(d.incomplete());
  }
}

TEST(StreamDemuxerTest, TruncatesAtLimitAndKeepsParsing) {
  StreamDemuxer d(5);
  ASSERT_TRUE(d.Feed(Frame(1, "0123456789") + Frame(2, "abc")));
  EXPECT_EQ(d.output(), "01234");
  EXPECT_TRUE(d.truncated());
  EXPECT_FALSE(d.incomplete());
}

TEST(StreamDemuxerTest, DetectsMalformedAndIncompleteStreams) {
  StreamDemuxer bad(100);
  EXPECT_FALSE(bad.Feed("plain text, not a multiplexed stream"));
  StreamDemuxer partial(100);
  ASSERT_TRUE(partial.Feed(Frame(1, "abcdef").substr(0, 10)));
  EXPECT_EQ(partial.output(), "ab");
  EXPECT_TRUE(partial.incomplete());
  StreamDemuxer header_only(100);
  ASSERT_TRUE(header_only.Feed(std::string("\x01\x00\x00", 3)));
  EXPECT_TRUE(header_only.incomplete());
}

ContainerSpec FullSpec() {
  ContainerSpec s;
  s.name = "deployment-42";
  s.image = "127.0.0.1:5555/taolie-test/sshd:1";
  s.env = {"A=1", "B=two"};
  s.labels = {{"taolie.deployment", "42"}};
  s.restart_policy = "on-failure";
  s.ports = {{22, "tcp", "127.0.0.1", 40022}, {8888, "tcp", "", 0}, {22, "tcp", "::1", 40023}};
  s.gpu_uuids = {"GPU-aaaa", "GPU-bbbb"};
  s.binds = {"/srv/data:/data:ro"};
  s.mounts = {{"/srv/rentals/a", "/workspace", false}, {"/srv/rentals/b", "/ro", true}};
  s.memory_bytes = 1 << 30;
  s.nano_cpus = 2'000'000'000;
  s.shm_size_bytes = 64 << 20;
  s.pids_limit = 512;
  s.log_max_size = "50m";
  s.log_max_file = "3";
  s.no_new_privileges = true;
  s.cap_drop = {"NET_RAW"};
  s.cap_add = {"SYS_NICE"};
  s.runtime = "runc";
  s.network_mode = "bridge";
  s.extra_hosts = {"host.docker.internal:host-gateway"};
  return s;
}

TEST(BuildCreateBodyTest, MapsEveryField) {
  json b = json::parse(BuildCreateBody(FullSpec()));
  EXPECT_EQ(b["Image"], "127.0.0.1:5555/taolie-test/sshd:1");
  EXPECT_EQ(b["Env"], json({"A=1", "B=two"}));
  EXPECT_EQ(b["Labels"]["taolie.deployment"], "42");
  EXPECT_FALSE(b.contains("Cmd"));
  EXPECT_EQ(b["ExposedPorts"], json({{"22/tcp", json::object()}, {"8888/tcp", json::object()}}));
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["RestartPolicy"], json({{"Name", "on-failure"}, {"MaximumRetryCount", 3}}));
  EXPECT_EQ(h["PortBindings"]["22/tcp"], json::parse(R"([{"HostIp":"127.0.0.1","HostPort":"40022"},
                            {"HostIp":"::1","HostPort":"40023"}])"));
  EXPECT_EQ(h["PortBindings"]["8888/tcp"], json::parse(R"([{"HostIp":"","HostPort":""}])"));
  ASSERT_EQ(h["DeviceRequests"].size(), 1u);
  EXPECT_EQ(h["DeviceRequests"][0]["Driver"], "nvidia");
  EXPECT_EQ(h["DeviceRequests"][0]["DeviceIDs"], json({"GPU-aaaa", "GPU-bbbb"}));
  EXPECT_EQ(h["DeviceRequests"][0]["Capabilities"], json::parse(R"([["gpu"]])"));
  EXPECT_EQ(h["Binds"], json({"/srv/data:/data:ro"}));
  EXPECT_EQ(h["Mounts"], json::parse(R"([
    {"Type":"bind","Source":"/srv/rentals/a","Target":"/workspace","ReadOnly":false,
     "BindOptions":{"CreateMountpoint":false}},
    {"Type":"bind","Source":"/srv/rentals/b","Target":"/ro","ReadOnly":true,
     "BindOptions":{"CreateMountpoint":false}}])"));
  EXPECT_EQ(h["Memory"], 1 << 30);
  EXPECT_EQ(h["MemorySwap"], 1 << 30);
  EXPECT_EQ(h["NanoCpus"], 2'000'000'000);
  EXPECT_EQ(h["ShmSize"], 64 << 20);
  EXPECT_EQ(h["PidsLimit"], 512);
  EXPECT_EQ(h["LogConfig"],
            json::parse(R"({"Type":"json-file","Config":{"max-size":"50m","max-file":"3"}})"));
  EXPECT_EQ(h["SecurityOpt"], json({"no-new-privileges"}));
  EXPECT_EQ(h["CapDrop"], json({"NET_RAW"}));
  EXPECT_EQ(h["CapAdd"], json({"SYS_NICE"}));
  EXPECT_EQ(h["Runtime"], "runc");
  EXPECT_EQ(h["Privileged"], false);
  EXPECT_EQ(h["NetworkMode"], "bridge");
  EXPECT_EQ(h["ExtraHosts"], json({"host.docker.internal:host-gateway"}));
}

TEST(BuildCreateBodyTest, OmitsUnsetOptions) {
  ContainerSpec s;
  s.image = "busybox";
  s.cmd = std::vector<std::string>{"sleep", "1"};
  s.restart_policy = "no";
  json b = json::parse(BuildCreateBody(s));
  EXPECT_EQ(b["Cmd"], json({"sleep", "1"}));
  const json& h = b["HostConfig"];
  EXPECT_FALSE(h.contains("DeviceRequests"));
  EXPECT_FALSE(h.contains("Mounts"));
  EXPECT_FALSE(h.contains("Memory"));
  EXPECT_FALSE(h.contains("MemorySwap"));
  EXPECT_FALSE(h.contains("NanoCpus"));
  EXPECT_FALSE(h.contains("PidsLimit"));
  EXPECT_FALSE(h.contains("StorageOpt"));
  EXPECT_FALSE(h.contains("SecurityOpt"));
  EXPECT_FALSE(h.contains("Runtime"));
  EXPECT_FALSE(h.contains("NetworkMode"));
  EXPECT_EQ(h["Privileged"], false);
  EXPECT_EQ(h["RestartPolicy"], json({{"Name", ""}}));
}

TEST(BuildCreateBodyTest, StorageSizeBecomesStorageOptInBytes) {
  ContainerSpec s;
  s.image = "busybox";
  s.storage_size_bytes = int64_t{10} << 30;
  json b = json::parse(BuildCreateBody(s));
  EXPECT_EQ(b["HostConfig"]["StorageOpt"], json({{"size", "10737418240"}}));
  s.storage_size_bytes = -1;
  EXPECT_FALSE(ValidateSpec(s).ok());
}

TEST(EngineMessagesTest, StorageOptRefusalsAreRecognised) {
  // dockerd 20.10 and 24, overlay2 on ext4; and a driver without the option.
  EXPECT_TRUE(IsStorageOptUnsupported(
      "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"));
  EXPECT_TRUE(IsStorageOptUnsupported("docker: create: --storage-opt is not supported for vfs"));
  EXPECT_FALSE(IsStorageOptUnsupported("No such image: busybox:latest"));
  EXPECT_FALSE(IsStorageOptUnsupported("Conflict. The container name is already in use"));
}

TEST(EngineMessagesTest, AMissingImageIsRecognised) {
  EXPECT_TRUE(IsNoSuchImage("docker: create deployment-x: No such image: host/a:1 (HTTP 404)"));
  EXPECT_FALSE(IsNoSuchImage("No such container: deployment-x"));
  EXPECT_FALSE(IsNoSuchImage("--storage-opt is supported only for overlay over xfs"));
}

TEST(ValidateSpecTest, RejectsBadFields) {
  EXPECT_TRUE(ValidateSpec(FullSpec()).ok());
  auto expect_bad = [](ContainerSpec s, const char* what) {
    auto st = ValidateSpec(s);
    ASSERT_FALSE(st.ok()) << what;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << what;
  };
  ContainerSpec s = FullSpec();
  s.name = "../etc";
  expect_bad(s, "name");
  s = FullSpec();
  s.image = "Bad Image";
  expect_bad(s, "image");
  s = FullSpec();
  s.restart_policy = "sometimes";
  expect_bad(s, "restart");
  s = FullSpec();
  s.ports[0].container_port = 0;
  expect_bad(s, "container port");
  s = FullSpec();
  s.ports[0].host_port = 70000;
  expect_bad(s, "host port");
  s = FullSpec();
  s.ports[0].protocol = "icmp";
  expect_bad(s, "protocol");
  s = FullSpec();
  s.memory_bytes = -1;
  expect_bad(s, "memory");
  s = FullSpec();
  s.gpu_uuids = {"GPU-a,GPU-b"};
  expect_bad(s, "gpu");
}

TEST(ParseInspectTest, MapsEngineAnswer) {
  const char* kInspect = R"({
    "Id": "abc123", "Name": "/deployment-42", "Image": "sha256:ffff",
    "State": {"Status": "running", "Running": true, "ExitCode": 0, "OOMKilled": false,
              "StartedAt": "2024-01-01T00:00:00.5Z", "FinishedAt": "0001-01-01T00:00:00Z"},
    "Config": {"Image": "127.0.0.1:5555/taolie-test/sshd:1", "Env": ["A=1", "PATH=/bin"],
               "Labels": {"taolie.deployment": "42"}},
    "HostConfig": {"Privileged": false,
                   "DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": ["GPU-a", "GPU-b"]}]},
    "NetworkSettings": {"Ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40022"}],
                                  "8888/tcp": null, "53/udp": [{"HostIp": "", "HostPort": "5353"}]}}
  })";
  auto info = ParseInspect(kInspect);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->id, "abc123");
  EXPECT_EQ(info->name, "deployment-42");
  EXPECT_EQ(info->image, "127.0.0.1:5555/taolie-test/sshd:1");
  EXPECT_EQ(info->state, "running");
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->started_at, "2024-01-01T00:00:00.5Z");
  EXPECT_EQ(info->labels.at("taolie.deployment"), "42");
  EXPECT_EQ(info->env, (std::vector<std::string>{"A=1", "PATH=/bin"}));
  EXPECT_FALSE(info->privileged);
  EXPECT_EQ(info->device_request_ids, (std::vector<std::string>{"GPU-a", "GPU-b"}));
  ASSERT_EQ(info->ports.size(), 2u);  // 8888 is exposed but not bound
  EXPECT_EQ(info->ports[0].container_port, 22);
  EXPECT_EQ(info->ports[0].protocol, "tcp");
  EXPECT_EQ(info->ports[0].host_ip, "127.0.0.1");
  EXPECT_EQ(info->ports[0].host_port, 40022);
  EXPECT_EQ(info->ports[1].container_port, 53);
  EXPECT_EQ(info->ports[1].protocol, "udp");
  EXPECT_EQ(info->ports[1].host_port, 5353);
}

TEST(ParseInspectTest, ToleratesNullsAndRejectsGarbage) {
  auto sparse = ParseInspect(R"({"Id":"x","Config":null,"State":null,"HostConfig":null,
                                 "NetworkSettings":{"Ports":null}})");
  ASSERT_TRUE(sparse.ok());
  EXPECT_EQ(sparse->id, "x");
  EXPECT_TRUE(sparse->ports.empty());
  EXPECT_FALSE(ParseInspect("not json").ok());
  EXPECT_FALSE(ParseInspect("[]").ok());
  EXPECT_FALSE(ParseInspect("{}").ok());
}

TEST(ParseListTest, MapsContainersAndExitCodes) {
  const char* kList = R"([
    {"Id": "a1", "Names": ["/deployment-1"], "Image": "img:1", "State": "running",
     "Status": "Up 2 minutes", "Labels": {"k": "v"},
     "Ports": [{"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 40022, "Type": "tcp"},
               {"PrivatePort": 8888, "Type": "tcp"}]},
    {"Id": "b2", "Names": ["/deployment-2"], "Image": "img:1", "State": "exited",
     "Status": "Exited (137) 5 seconds ago", "Labels": null, "Ports": []},
    "junk"
  ])";
  auto list = ParseList(kList);
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "deployment-1");
  EXPECT_TRUE((*list)[0].running);
  EXPECT_EQ((*list)[0].labels.at("k"), "v");
  ASSERT_EQ((*list)[0].ports.size(), 1u);
  EXPECT_EQ((*list)[0].ports[0].host_port, 40022);
  EXPECT_EQ((*list)[0].ports[0].host_ip, "127.0.0.1");
  EXPECT_FALSE((*list)[1].running);
  EXPECT_EQ((*list)[1].state, "exited");
  EXPECT_EQ((*list)[1].exit_code, 137);
  EXPECT_FALSE(ParseList("{}").ok());
}

TEST(LabelFilterTest, KeyOnlyAndKeyValue) {
  json f = json::parse(BuildLabelFilter({{"a", "1"}, {"b", ""}}));
  EXPECT_EQ(f, json::parse(R"({"label":["a=1","b"]})"));
}

// base64url back to text, for checking what the engine gets.
std::string FromBase64Url(const std::string& in) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    auto pos = alphabet.find(c);
    EXPECT_NE(pos, std::string::npos) << "not base64url: " << c;
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

TEST(RegistryAuthHeaderTest, Base64UrlJsonForTheEngine) {
  EXPECT_EQ(RegistryAuthHeader({}, "r.example"), "");
  RegistryAuth basic;
  basic.username = "renter";
  basic.password = "p?>w~ord";  // characters that differ between base64 and base64url
  auto header = RegistryAuthHeader(basic, "registry.example:5000");
  EXPECT_EQ(header.find_first_of("+/"), std::string::npos) << header;
  auto j = nlohmann::json::parse(FromBase64Url(header));
  EXPECT_EQ(j, (nlohmann::json{{"username", "renter"},
                               {"password", "p?>w~ord"},
                               {"serveraddress", "registry.example:5000"}}));
  RegistryAuth token;
  token.identity_token = "refresh-tok";
  auto t = nlohmann::json::parse(FromBase64Url(RegistryAuthHeader(token, "ghcr.io")));
  EXPECT_EQ(t, (nlohmann::json{{"identitytoken", "refresh-tok"}, {"serveraddress", "ghcr.io"}}));
}

TEST(ParsePullLineTest, ProgressAndErrors) {
  auto p = ParsePullLine(
      R"({"status":"Downloading","progressDetail":{"current":10,"total":100},"id":"abc"})");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->error);
  EXPECT_EQ(p->progress.id, "abc");
  EXPECT_EQ(p->progress.status, "Downloading");
  EXPECT_EQ(p->progress.current, 10);
  EXPECT_EQ(p->progress.total, 100);

  auto e = ParsePullLine(R"({"errorDetail":{"message":"manifest unknown"},"error":"x"})");
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->error);
  EXPECT_EQ(*e->error, "manifest unknown");
  auto e2 = ParsePullLine(R"({"error":"toomanyrequests"})");
  ASSERT_TRUE(e2.ok());
  EXPECT_EQ(e2->error.value_or(""), "toomanyrequests");
  EXPECT_FALSE(ParsePullLine("{oops").ok());
}

// issue 17 item 1: an Engine answer nested past the limit is refused before any tree is built.
TEST(ParseInspectTest, TooDeepAnswersAreRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto inspect = ParseInspect(R"({"Id": "abc", "Config": {"Labels": )" + deep + "}}");
  ASSERT_FALSE(inspect.ok());
  EXPECT_EQ(inspect.error().message,
            "docker: inspect response: JSON nested 100002 levels deep, over the limit of 64");
  EXPECT_FALSE(ParseList("[" + deep + "]").ok());
  EXPECT_FALSE(ParsePullLine(R"({"status": )" + deep + "}").ok());
  EXPECT_TRUE(
      ParsePullLine(R"({"status": "x", "y": )" + std::string(63, '[') + std::string(63, ']') + "}")
          .ok());
  // An error body that deep is shown as raw text (capped), never parsed.
  const std::string message = EngineMessage(R"({"message": )" + deep + "}");
  EXPECT_EQ(message.rfind(R"({"message": [[[)", 0), 0u);
  EXPECT_LE(message.size(), 2048u);
}

TEST(EngineErrorsTest, MessagesAndCodes) {
  EXPECT_EQ(EngineMessage(R"({"message":"No such container: x"})"), "No such container: x");
  EXPECT_EQ(EngineMessage("page not found\n"), "page not found");
  EXPECT_EQ(EngineMessage(""), "(empty response)");
  EXPECT_EQ(CodeForHttpStatus(404, ErrorCode::kAlreadyExists), ErrorCode::kNotFound);
  EXPECT_EQ(CodeForHttpStatus(409, ErrorCode::kAlreadyExists), ErrorCode::kAlreadyExists);
  EXPECT_EQ(CodeForHttpStatus(409, ErrorCode::kFailedPrecondition), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(CodeForHttpStatus(400, ErrorCode::kInternal), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeForHttpStatus(403, ErrorCode::kInternal), ErrorCode::kPermissionDenied);
  EXPECT_EQ(CodeForHttpStatus(500, ErrorCode::kInternal), ErrorCode::kInternal);
  EXPECT_EQ(CodeForHttpStatus(503, ErrorCode::kInternal), ErrorCode::kUnavailable);
  EXPECT_EQ(CodeForPullError("manifest for x:1 not found: manifest unknown"), ErrorCode::kNotFound);
  EXPECT_EQ(CodeForPullError("pull access denied for x"), ErrorCode::kPermissionDenied);
  EXPECT_EQ(CodeForPullError("dial tcp 127.0.0.1:1: connect: connection refused"),
            ErrorCode::kUnavailable);
}

TEST(EngineDockerClientCreateTest, ValidatesHostAndArguments) {
  using std::chrono::seconds;
  EXPECT_TRUE(EngineDockerClient::Create("unix:///run/x/docker.sock", seconds(5)).ok());
  auto bare = EngineDockerClient::Create("/run/x/docker.sock", seconds(5));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ((*bare)->socket_path(), "/run/x/docker.sock");
  for (const std::string host : {"tcp://127.0.0.1:2375", "unix://relative", "ssh://h", "unix://"}) {
    auto c = EngineDockerClient::Create(host, seconds(5));
    ASSERT_FALSE(c.ok()) << host;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument) << host;
  }
  EXPECT_FALSE(EngineDockerClient::Create("unix:///" + std::string(200, 'a'), seconds(5)).ok());
  EXPECT_FALSE(EngineDockerClient::Create("/x.sock", seconds(0)).ok());
  EXPECT_FALSE(EngineDockerClient::Create("/x.sock", seconds(5), "1.20").ok());
  EXPECT_FALSE(EngineDockerClient::Create("/x.sock", seconds(5), "latest").ok());
  auto pinned = EngineDockerClient::Create("/x.sock", seconds(5), "1.41");
  ASSERT_TRUE(pinned.ok());
  auto v = (*pinned)->ApiVersion();
  ASSERT_TRUE(v.ok());  // pinned: no daemon needed
  EXPECT_EQ(*v, "1.41");
}

TEST(EngineDockerClientCreateTest, EmptyHostUsesDockerHostEnv) {
  const char* old = std::getenv("DOCKER_HOST");
  std::string saved = old ? old : "";
  setenv("DOCKER_HOST", "unix:///tmp/from-env.sock", 1);
  auto c = EngineDockerClient::Create("", std::chrono::seconds(5));
  unsetenv("DOCKER_HOST");
  auto d = EngineDockerClient::Create("", std::chrono::seconds(5));
  if (old) setenv("DOCKER_HOST", saved.c_str(), 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->socket_path(), "/tmp/from-env.sock");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->socket_path(), "/var/run/docker.sock");
}

TEST(EngineDockerClientCreateTest, MissingDaemonIsUnavailable) {
  std::string sock = "/tmp/taolie-no-daemon-" + std::to_string(getpid()) + ".sock";
  auto c = EngineDockerClient::Create("unix://" + sock, std::chrono::seconds(2));
  ASSERT_TRUE(c.ok());
  auto v = (*c)->Version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::kUnavailable) << v.error().ToString();
  auto l = (*c)->List({});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, ErrorCode::kUnavailable);
  // Argument errors are reported before any I/O.
  auto i = (*c)->Inspect("../../etc");
  ASSERT_FALSE(i.ok());
  EXPECT_EQ(i.error().code, ErrorCode::kInvalidArgument);
  auto p = (*c)->Pull("Not An Image", nullptr, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
}

NetworkSpec RentalNetwork() {
  NetworkSpec spec;
  spec.name = "taolie-rentals";
  spec.bridge_name = "taolie0";
  spec.subnet = "10.213.0.0/24";
  spec.labels = {{"taolie.managed", "true"}};
  return spec;
}

TEST(NetworkSpecTest, CreateBodyIsABridgeWithoutIccOrIpv6) {
  json b = json::parse(BuildNetworkCreateBody(RentalNetwork()));
  EXPECT_EQ(b, json::parse(R"({
    "Name": "taolie-rentals", "Driver": "bridge", "CheckDuplicate": true,
    "EnableIPv6": false, "Internal": false, "Attachable": false,
    "Labels": {"taolie.managed": "true"},
    "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.213.0.0/24"}]},
    "Options": {"com.docker.network.bridge.name": "taolie0",
                "com.docker.network.bridge.enable_icc": "false"}})"));
}

TEST(NetworkSpecTest, ValidationNamesTheField) {
  EXPECT_TRUE(ValidateNetworkSpec(RentalNetwork()).ok());
  struct Case {
    std::string name;
    std::function<void(NetworkSpec&)> mutate;
    std::string reason;
  };
  const Case cases[] = {
      {"bad name", [](NetworkSpec& s) { s.name = "../x"; }, "invalid name"},
      {"empty bridge", [](NetworkSpec& s) { s.bridge_name = ""; }, "bridge_name"},
      {"long bridge", [](NetworkSpec& s) { s.bridge_name = "abcdefghijklmnop"; }, "bridge_name"},
      {"bridge with slash", [](NetworkSpec& s) { s.bridge_name = "a/b"; }, "bridge_name"},
      {"bad subnet", [](NetworkSpec& s) { s.subnet = "10.213.0.0/40"; }, "subnet"},
      {"ipv6 subnet", [](NetworkSpec& s) { s.subnet = "fd00::/64"; }, "subnet"},
      {"empty label key", [](NetworkSpec& s) { s.labels[""] = "x"; }, "label"},
  };
  for (const auto& tc : cases) {
    NetworkSpec spec = RentalNetwork();
    tc.mutate(spec);
    auto st = ValidateNetworkSpec(spec);
    ASSERT_FALSE(st.ok()) << tc.name;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << tc.name;
    EXPECT_NE(st.error().message.find(tc.reason), std::string::npos) << st.error().message;
  }
}

TEST(NetworkSpecTest, ParsesNetworkInspect) {
  auto info = ParseNetworkInspect(R"({
    "Name": "taolie-rentals", "Id": "abc123", "Driver": "bridge", "EnableIPv6": false,
    "Internal": false,
    "IPAM": {"Driver": "default", "Options": null,
             "Config": [{"Subnet": "10.213.0.0/24", "Gateway": "10.213.0.1"}]},
    "Options": {"com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.name": "taolie0"},
    "Labels": {"taolie.managed": "true"}, "Containers": {}})");
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->id, "abc123");
  EXPECT_EQ(info->name, "taolie-rentals");
  EXPECT_EQ(info->driver, "bridge");
  EXPECT_FALSE(info->enable_ipv6);
  EXPECT_EQ(info->subnets, std::vector<std::string>{"10.213.0.0/24"});
  EXPECT_EQ(info->gateways, std::vector<std::string>{"10.213.0.1"});
  EXPECT_EQ(info->options.at("com.docker.network.bridge.enable_icc"), "false");
  EXPECT_EQ(info->labels.at("taolie.managed"), "true");
  EXPECT_FALSE(ParseNetworkInspect("{}").ok());
  EXPECT_FALSE(ParseNetworkInspect("not json").ok());
}

}  // namespace
}  // namespace taolie::docker
