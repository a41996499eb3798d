#include "cli/local_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace taolie::cli {
namespace {

using nlohmann::json;

TEST(LocalClient, TheEndpointIsTheLoopbackOneForAWildcardListen) {
  config::Config cfg;
  cfg.api.listen = "0.0.0.0";
  cfg.api.port = 9200;
  cfg.data_dir = "/var/lib/taolie-host-agent";
  ApiEndpoint ep = EndpointFromConfig(cfg);
  EXPECT_EQ(ep.host, "127.0.0.1");
  EXPECT_EQ(ep.port, 9200);
  EXPECT_FALSE(ep.tls);
  EXPECT_EQ(ep.token_path, "/var/lib/taolie-host-agent/api-token");
  cfg.api.listen = "::";
  cfg.network.security.enable_ssl = true;
  cfg.network.security.ssl_cert = "/etc/taolie-host-agent/agent.crt";
  ep = EndpointFromConfig(cfg);
  EXPECT_EQ(ep.host, "::1");
  EXPECT_TRUE(ep.tls);
  EXPECT_EQ(ep.ca_file, "/etc/taolie-host-agent/agent.crt");
  cfg.api.listen = "10.0.0.5";
  EXPECT_EQ(EndpointFromConfig(cfg).host, "10.0.0.5");
}

TEST(LocalClient, StatusIsReadable) {
  json s = {{"agent_id", "agent-0123456789ab"},
            {"version", "0.9.0"},
            {"uptime_seconds", 3725},
            {"registered", true},
            {"draining", false},
            {"last_platform_contact_unix", 0},
            {"database", "ok"},
            {"gpu_source", "nvml"},
            {"gpu_source_detail", "driver 550.54"},
            {"liveness", {{"ok", true}, {"stuck", json::array()}, {"detail", ""}}},
            {"loops", json::array({json::object(), json::object()})},
            {"isolation", {{"accepting_rentals", true}}},
            {"gpus",
             {{{"index", 0},
               {"name", "NVIDIA H100"},
               {"health_state", "healthy"},
               {"present", true},
               {"deployment_id", "d-1"},
               {"dirty", false},
               {"held_back", nullptr}},
              {{"index", 1},
               {"name", "NVIDIA H100"},
               {"health_state", "unhealthy"},
               {"present", false},
               {"deployment_id", ""},
               {"dirty", true},
               {"held_back", "a process is left"}}}},
            {"deployments",
             {{{"id", "d-1"},
               {"state", "running"},
               {"image", "pytorch:2"},
               {"expires_at", "2026-12-02T20:00:00Z"}}}}};
  const std::string text = FormatStatus(s.dump());
  EXPECT_NE(text.find("agent        agent-0123456789ab  0.9.0  up 1h 02m"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rentals      accepting yes"), std::string::npos) << text;
  EXPECT_NE(text.find("platform     registered, last answer never"), std::string::npos) << text;
  EXPECT_NE(text.find("loops        2 running, none stuck"), std::string::npos) << text;
  EXPECT_NE(text.find("  GPU 0  NVIDIA H100  healthy  rented by d-1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  GPU 1  NVIDIA H100  unhealthy  LOST  dirty after a rental (held back: "
                      "a process is left)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  d-1  running  pytorch:2  ends 2026-12-02T20:00:00Z"), std::string::npos)
      << text;

  s["draining"] = true;
  s["liveness"] = {{"ok", false}, {"detail", "heartbeat: no round finished for 130 s"}};
  const std::string drained = FormatStatus(s.dump());
  EXPECT_NE(drained.find("accepting no: drained (taolie-host-agent undrain)"), std::string::npos);
  EXPECT_NE(drained.find("loops        STUCK: heartbeat: no round finished for 130 s"),
            std::string::npos)
      << drained;
  s["draining"] = false;
  s["isolation"] = {{"accepting_rentals", false}, {"error", "iptables: permission denied"}};
  EXPECT_NE(FormatStatus(s.dump()).find(
                "accepting no: rental isolation is not in place (iptables: permission "
                "denied)"),
            std::string::npos);
  EXPECT_EQ(FormatStatus("not json"), "the agent answered something that is not JSON\n");
}

TEST(LocalClient, DeploymentsAreReadable) {
  EXPECT_EQ(FormatDeployments("[]"), "no rental on this host\n");
  json list = {{{"id", "d-1"},
                {"state", "running"},
                {"image", "pytorch:2"},
                {"gpus", {"GPU-aaa"}},
                {"ports",
                 {{{"host_port", 22022}, {"container_port", 22}, {"role", "ssh"}},
                  {{"host_port", 28888}, {"container_port", 8888}, {"role", "rental_port_1"}}}},
                {"started_at", "2026-12-02T18:00:00Z"},
                {"expires_at", nullptr}}};
  const std::string text = FormatDeployments(list.dump());
  EXPECT_EQ(text,
            "d-1  running  pytorch:2\n"
            "  gpus      GPU-aaa\n"
            "  ports     22022->22 (ssh), 28888->8888 (rental_port_1)\n"
            "  started   2026-12-02T18:00:00Z\n"
            "  ends      not set\n");
}

}  // namespace
}  // namespace taolie::cli
