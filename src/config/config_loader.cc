// The loader's entry points: a config file or YAML text -> LoadResult (read, environment,
// Validate), and the parsers of single values shared with other libraries (port ranges,
// deployment.host_allow entries, log levels).
#include "config/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log_level.h"
#include "common/net_address.h"
#include "config/config_internal.h"

namespace taolie::config {
namespace internal {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string Quote(const std::string& s) {
  constexpr size_t kMax = 60;
  return "\"" + (s.size() > kMax ? s.substr(0, kMax) + "..." : s) + "\"";
}

std::optional<long long> ParseInteger(const std::string& raw) {
  std::string s = Trim(raw);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.empty()) return std::nullopt;
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace internal

namespace {

using internal::kRootKey;
using internal::ParseInteger;
using internal::Quote;
using internal::Trim;

struct ParseError {
  bool failed = false;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string message;
};

// Parses YAML text; on syntax error fills `err` and returns an undefined node.
YAML::Node ParseYaml(const std::string& text, ParseError* err) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    err->failed = true;
    err->line = e.mark.is_null() ? 0 : e.mark.line + 1;
    err->column = e.mark.is_null() ? 0 : e.mark.column + 1;
    err->message = e.msg;
  } catch (const std::exception& e) {
    err->failed = true;
    err->message = e.what();
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string DescribeParseError(const ParseError& err) {
  std::ostringstream out;
  if (err.line > 0) out << "line " << err.line << ", column " << err.column << ": ";
  out << err.message;
  return out.str();
}

// images.prefetch and docker.prefetch_images name one list: the agent uses their union,
// docker.prefetch_images first (after validation, so each problem names its own key).
void MergePrefetchLists(Config& c) {
  std::vector<std::string>& merged = c.docker.prefetch_images;
  for (const std::string& image : c.images.prefetch) {
    if (std::find(merged.begin(), merged.end(), image) == merged.end()) merged.push_back(image);
  }
}

// Fills `result` from a parsed document; never throws.
void LoadFromNode(const YAML::Node& root, const EnvLookup& getenv, LoadResult* result) {
  internal::ReadDocument(root, &result->config, &result->problems);
  if (getenv) ApplyEnvironment(result->config, getenv);
  auto checks = Validate(result->config);
  result->problems.insert(result->problems.end(), checks.begin(), checks.end());
  MergePrefetchLists(result->config);
}

}  // namespace

Result<PortRange> ParsePortRange(const std::string& text) {
  std::string s = Trim(text);
  if (s.empty()) return PortRange{};
  size_t dash = s.find('-');
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected \"FIRST-LAST\" like \"30000-30999\", got " + Quote(text));
  };
  if (dash == std::string::npos) return bad();
  std::string a = Trim(s.substr(0, dash));
  std::string b = Trim(s.substr(dash + 1));
  if (a.empty() || b.empty() || a.find_first_not_of("0123456789") != std::string::npos ||
      b.find_first_not_of("0123456789") != std::string::npos || a.size() > 6 || b.size() > 6) {
    return bad();
  }
  auto first = ParseInteger(a);
  auto last = ParseInteger(b);
  if (!first || !last) return bad();
  return PortRange{static_cast<int>(*first), static_cast<int>(*last)};
}

Result<HostAllowEntry> ParseHostAllow(const std::string& text) {
  const std::string s = Trim(text);
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected \"CIDR:PORT\" like \"10.213.0.1/32:8080\", got " + Quote(text));
  }
  auto cidr = CanonicalIpv4Cidr(Trim(s.substr(0, colon)));
  if (!cidr.ok()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "not an IPv4 address or CIDR before the port: " + Quote(text));
  }
  const std::string port = Trim(s.substr(colon + 1));
  auto number = port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5
                    ? ParseInteger(port)
                    : std::nullopt;
  if (!number || *number < 1 || *number > 65535) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "port must be a number in 1..65535, got " + Quote(port));
  }
  return HostAllowEntry{*cidr, static_cast<int>(*number)};
}

std::string FormatPortRange(const PortRange& range) {
  if (range.empty()) return "";
  return std::to_string(range.first) + "-" + std::to_string(range.last);
}

bool IsKnownLogLevel(const std::string& level) { return ParseLogLevel(level).has_value(); }

void ApplyEnvironment(Config& config, const EnvLookup& getenv) {
  if (!getenv) return;
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  if (auto v = get("TAOLIE_API_KEY")) config.agent.api_key = *v;
  if (auto v = get("TAOLIE_DB_PASSWORD")) config.database.password = *v;
  if (auto v = get("TAOLIE_SMTP_PASSWORD")) config.monitoring.alerts.smtp_password = *v;
  if (auto v = get("TAOLIE_SERVER_URL")) config.server.url = *v;
  if (config.docker.host.empty()) {
    if (auto v = get("DOCKER_HOST")) config.docker.host = *v;
  }
}

LoadResult LoadConfigString(const std::string& yaml, const EnvLookup& getenv) {
  LoadResult result;
  ParseError err;
  YAML::Node root = ParseYaml(yaml, &err);
  if (err.failed) {
    result.problems.push_back({kRootKey, "invalid YAML: " + DescribeParseError(err), true});
    return result;
  }
  LoadFromNode(root, getenv, &result);
  return result;
}

Result<LoadResult> LoadConfigFile(const std::string& path, const EnvLookup& getenv) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int e = errno;
    ErrorCode code = e == ENOENT   ? ErrorCode::kNotFound
                     : e == EACCES ? ErrorCode::kPermissionDenied
                                   : ErrorCode::kUnavailable;
    return MakeError(code, "cannot read config file " + path + ": " + std::strerror(e));
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cannot read config file " + path + ": is a directory");
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return MakeError(ErrorCode::kUnavailable, "cannot read config file " + path);
  }
  ParseError err;
  YAML::Node root = ParseYaml(buf.str(), &err);
  if (err.failed) {
    std::string where = path;
    if (err.line > 0) where += ":" + std::to_string(err.line) + ":" + std::to_string(err.column);
    return MakeError(ErrorCode::kInvalidArgument,
                     "config file " + where + " is not valid YAML: " + DescribeParseError(err));
  }
  LoadResult result;
  LoadFromNode(root, getenv, &result);
  // Host volumes never reach the config file's directory (issue 7, item 5).
  result.config.config_file = std::filesystem::absolute(path, ec).lexically_normal().string();
  return result;
}

}  // namespace taolie::config
