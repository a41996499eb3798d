#include "cli/local_client.h"

#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

#include "agent/api_token.h"
#include "common/real_time.h"

namespace taolie::cli {
namespace {

using nlohmann::json;

struct Reply {
  int status = 0;  // 0 = no answer
  std::string body;
  std::string error;
};

std::string Url(const ApiEndpoint& ep) {
  const bool v6 = ep.host.find(':') != std::string::npos;
  return std::string(ep.tls ? "https://" : "http://") + (v6 ? "[" + ep.host + "]" : ep.host) + ":" +
         std::to_string(ep.port);
}

Reply Request(const ApiEndpoint& ep, const std::string& method, const std::string& path,
              const std::string& token = "") {
  std::unique_ptr<httplib::ClientImpl> client;
  if (ep.tls) {
    auto ssl = std::make_unique<httplib::SSLClient>(ep.host, ep.port);
    ssl->enable_server_certificate_verification(true);
    if (!ep.ca_file.empty()) ssl->set_ca_cert_path(ep.ca_file.c_str());
    client = std::move(ssl);
  } else {
    client = std::make_unique<httplib::ClientImpl>(ep.host, ep.port);
  }
  client->set_connection_timeout(3, 0);
  client->set_read_timeout(15, 0);
  client->set_write_timeout(5, 0);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  httplib::Result res = method == "POST" ? client->Post(path.c_str(), headers, "", "text/plain")
                                         : client->Get(path.c_str(), headers);
  Reply out;
  if (!res) {
    out.error = httplib::to_string(res.error());
    return out;
  }
  out.status = res->status;
  out.body = res->body;
  return out;
}

// Prints why the agent could not be reached, with what to check.
int Unreachable(const ApiEndpoint& ep, const Reply& r) {
  std::fprintf(stderr,
               "cannot reach the agent's local API at %s (%s).\n"
               "Is the agent running? (systemctl status taolie-host-agent, or "
               "taolie-host-agent doctor). Is api.enabled on, and are api.listen/api.port in the "
               "config this command read (-c) the ones the agent uses?\n",
               Url(ep).c_str(), r.error.c_str());
  return 1;
}

std::string Ago(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "never";
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(WallNow().time_since_epoch()).count();
  return std::to_string(std::max<int64_t>(0, now - unix_seconds)) + " s ago";
}

std::string Duration(int64_t s) {
  char buf[64];
  if (s >= 86400) {
    std::snprintf(buf, sizeof buf, "%lldd %02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

template <typename T>
T Get(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

void Row(std::ostringstream& out, const char* label, const std::string& text) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%-13s", label);
  out << buf << text << "\n";
}

}  // namespace

ApiEndpoint EndpointFromConfig(const config::Config& cfg) {
  ApiEndpoint ep;
  ep.host = cfg.api.listen;
  if (ep.host.empty() || ep.host == "0.0.0.0" || ep.host == "localhost") ep.host = "127.0.0.1";
  if (ep.host == "::") ep.host = "::1";
  ep.port = cfg.api.port;
  ep.tls = cfg.network.security.enable_ssl;
  ep.ca_file = cfg.network.security.ssl_cert;
  ep.token_path = cfg.data_dir + "/" + agent::kApiTokenFile;
  return ep;
}

std::string FormatStatus(const std::string& status_json) {
  json s = json::parse(status_json, nullptr, false);
  if (s.is_discarded() || !s.is_object()) return "the agent answered something that is not JSON\n";
  std::ostringstream out;
  Row(out, "agent",
      Get<std::string>(s, "agent_id", "?") + "  " + Get<std::string>(s, "version", "?") + "  up " +
          Duration(Get<int64_t>(s, "uptime_seconds", 0)));
  const json iso = s.value("isolation", json::object());
  std::string accepting = "yes";
  if (Get<bool>(s, "draining", false)) {
    accepting = "no: drained (taolie-host-agent undrain)";
  } else if (!Get<bool>(iso, "accepting_rentals", true)) {
    accepting = "no: rental isolation is not in place (" + Get<std::string>(iso, "error", "") + ")";
  }
  Row(out, "rentals", "accepting " + accepting);
  Row(out, "platform",
      std::string(Get<bool>(s, "registered", false) ? "registered" : "NOT registered yet") +
          ", last answer " + Ago(Get<int64_t>(s, "last_platform_contact_unix", 0)));
  Row(out, "database", Get<std::string>(s, "database", "?"));
  Row(out, "gpu source",
      Get<std::string>(s, "gpu_source", "?") + " (" + Get<std::string>(s, "gpu_source_detail", "") +
          ")");
  const json live = s.value("liveness", json::object());
  const json loops = s.value("loops", json::array());
  Row(out, "loops",
      Get<bool>(live, "ok", true)
          ? std::to_string(loops.size()) + " running, none stuck"
          : "STUCK: " + Get<std::string>(live, "detail", "") +
                " (systemd restarts the agent when its watchdog is not fed)");
  const json gpus = s.value("gpus", json::array());
  Row(out, "gpus", std::to_string(gpus.size()));
  for (const json& g : gpus) {
    std::string line = "  GPU " + std::to_string(Get<int>(g, "index", -1)) + "  " +
                       Get<std::string>(g, "name", "?") + "  " +
                       Get<std::string>(g, "health_state", "?");
    if (!Get<bool>(g, "present", true)) line += "  LOST";
    if (std::string d = Get<std::string>(g, "deployment_id", ""); !d.empty()) {
      line += "  rented by " + d;
    }
    if (Get<bool>(g, "dirty", false)) line += "  dirty after a rental";
    if (std::string h = Get<std::string>(g, "held_back", ""); !h.empty()) {
      line += " (held back: " + h + ")";
    }
    out << line << "\n";
  }
  const json deps = s.value("deployments", json::array());
  Row(out, "deployments", std::to_string(deps.size()) + " not ended");
  for (const json& d : deps) {
    out << "  " << Get<std::string>(d, "id", "?") << "  " << Get<std::string>(d, "state", "?")
        << "  " << Get<std::string>(d, "image", "?");
    if (std::string e = Get<std::string>(d, "expires_at", ""); !e.empty()) out << "  ends " << e;
    out << "\n";
  }
  if (s.contains("pulls")) {
    for (const json& p : s["pulls"]) {
      out << "  pulling " << Get<std::string>(p, "image", "?") << " for "
          << Get<std::string>(p, "deployment_id", "?") << ": " << Get<double>(p, "percent", 0.0)
          << "%\n";
    }
  }
  return out.str();
}

std::string FormatDeployments(const std::string& deployments_json) {
  json list = json::parse(deployments_json, nullptr, false);
  if (list.is_discarded() || !list.is_array()) {
    return "the agent answered something that is not a JSON list\n";
  }
  if (list.empty()) return "no rental on this host\n";
  std::ostringstream out;
  for (const json& d : list) {
    out << Get<std::string>(d, "id", "?") << "  " << Get<std::string>(d, "state", "?") << "  "
        << Get<std::string>(d, "image", "?") << "\n";
    std::string gpus;
    for (const json& g : d.value("gpus", json::array())) {
      gpus += (gpus.empty() ? "" : ", ") + g.get<std::string>();
    }
    out << "  gpus      " << (gpus.empty() ? "none (CPU only)" : gpus) << "\n";
    std::string ports;
    for (const json& p : d.value("ports", json::array())) {
      ports += (ports.empty() ? "" : ", ") + std::to_string(Get<int>(p, "host_port", 0)) + "->" +
               std::to_string(Get<int>(p, "container_port", 0)) + " (" +
               Get<std::string>(p, "role", "") + ")";
    }
    out << "  ports     " << (ports.empty() ? "none" : ports) << "\n";
    out << "  started   " << Get<std::string>(d, "started_at", "not yet") << "\n";
    out << "  ends      " << Get<std::string>(d, "expires_at", "not set") << "\n";
  }
  return out.str();
}

namespace {

// The admin token, or nullopt after printing why it cannot be read (not root, no agent yet).
std::optional<std::string> TokenOrSay(const ApiEndpoint& ep) {
  auto token = agent::ReadApiToken(ep.token_path);
  if (!token.ok()) {
    std::fprintf(stderr, "%s\n", token.error().message.c_str());
    return std::nullopt;
  }
  return *token;
}

// GET `path` (with the admin token when `with_token`) and print its JSON as is, or as
// `format` makes it readable.
int PrintDocument(const config::Config& cfg, const char* path, bool as_json, bool with_token,
                  std::string (*format)(const std::string&)) {
  const ApiEndpoint ep = EndpointFromConfig(cfg);
  std::string token;
  if (with_token) {
    std::optional<std::string> t = TokenOrSay(ep);
    if (!t) return 1;
    token = std::move(*t);
  }
  Reply r = Request(ep, "GET", path, token);
  if (r.status == 0) return Unreachable(ep, r);
  if (r.status != 200) {
    std::fprintf(stderr, "the agent answered %d: %s", r.status, r.body.c_str());
    return 1;
  }
  std::fputs(as_json ? (r.body + "\n").c_str() : format(r.body).c_str(), stdout);
  return 0;
}

}  // namespace

int CmdStatus(const config::Config& cfg, bool as_json) {
  return PrintDocument(cfg, "/v1/status", as_json, /*with_token=*/false, FormatStatus);
}

int CmdDeployments(const config::Config& cfg, bool as_json) {
  // Who rents what is for root (the token file), like drain.
  return PrintDocument(cfg, "/v1/deployments", as_json, /*with_token=*/true, FormatDeployments);
}

int CmdDrain(const config::Config& cfg, bool drain) {
  const ApiEndpoint ep = EndpointFromConfig(cfg);
  std::optional<std::string> token = TokenOrSay(ep);
  if (!token) return 1;
  Reply r = Request(ep, "POST", drain ? "/v1/drain" : "/v1/undrain", *token);
  if (r.status == 0) return Unreachable(ep, r);
  if (r.status != 200) {
    std::fprintf(stderr, "the agent refused (%d): %s", r.status, r.body.c_str());
    return 1;
  }
  json j = json::parse(r.body, nullptr, false);
  const int active = j.is_object() ? Get<int>(j, "active_deployments", 0) : 0;
  if (drain) {
    std::printf(
        "drained: no new rental is accepted; %d current rental(s) run on until they end.\n"
        "The platform sees status \"draining\". Undo with: taolie-host-agent undrain\n",
        active);
  } else {
    std::printf("undrained: rentals are accepted again.\n");
  }
  return 0;
}

int CmdHealthcheck(const config::Config& cfg) {
  const ApiEndpoint ep = EndpointFromConfig(cfg);
  Reply r = Request(ep, "GET", "/healthz");
  if (r.status == 200) return 0;
  if (r.status == 0) return Unreachable(ep, r);
  std::fprintf(stderr, "unhealthy (%d): %s", r.status, r.body.c_str());
  return 1;
}

int CmdLogs(const config::Config& cfg, bool follow, int lines) {
  const std::string n = std::to_string(lines > 0 ? lines : 100);
  std::error_code ec;
  const bool systemd = std::filesystem::exists("/run/systemd/system", ec);
  std::vector<std::string> args;
  if (systemd && ::access("/usr/bin/journalctl", X_OK) == 0) {
    args = {"journalctl", "-u", "taolie-host-agent", "-n", n, "--no-pager"};
    if (follow) args.push_back("-f");
  } else if (!cfg.logging.file.empty()) {
    args = {"tail", "-n", n};
    if (follow) args.push_back("-F");
    args.push_back(cfg.logging.file);
  } else {
    std::fprintf(stderr,
                 "no log to show: systemd's journal is not running here and logging.file is "
                 "empty (the agent logs to its stderr only)\n");
    return 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  std::fprintf(stderr, "cannot run %s\n", argv[0]);
  return 1;
}

}  // namespace taolie::cli
