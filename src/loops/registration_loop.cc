#include "loops/registration_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "engine/events.h"
#include "engine/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "health/inventory_sync.h"
#include "loops/loop_helpers.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::loops {

Status RegisterWithPlatform(runtime::Deps& d, runtime::Runtime& rt, std::stop_token stop) {
  platform::RegistrationInput in;
  in.agent_id = rt.agent_id();
  in.agent_version = rt.version();
  if (auto v = d.docker.Version(); v.ok()) in.docker_version = v->version;
  in.public_ip = d.cfg.network.public_ip;
  in.location = d.cfg.provider.count("region") ? d.cfg.provider.at("region") : "";
  if (!d.cfg.network.port_range.empty()) {
    in.port_range = std::to_string(d.cfg.network.port_range.first) + "-" +
                    std::to_string(d.cfg.network.port_range.last);
  }
  in.ssh_port = d.cfg.network.ports.ssh;
  in.rental_port_1 = d.cfg.network.ports.rental_port_1;
  in.rental_port_2 = d.cfg.network.ports.rental_port_2;
  in.rental_port_3 = d.cfg.network.ports.rental_port_3;
  auto facts = d.host.Facts();
  if (!facts.ok()) return facts.error();
  in.host = *facts;
  if (d.gpus.Available()) {
    if (auto drv = d.gpus.Driver(); drv.ok()) in.driver = *drv;
    if (auto list = d.gpus.ListGpus(); list.ok()) in.gpus = *list;
  }
  in.upload_mbps = d.cfg.network.upload_mbps;
  in.download_mbps = d.cfg.network.download_mbps;
  in.latency_ms = d.cfg.network.latency_ms;
  in.now = d.clock.Now();
  in.ts = rt.ts();
  platform::RetryPolicy policy;
  policy.max_attempts = 3;
  policy.max_retry_after = std::chrono::seconds(60);
  auto resp = platform::SendWithRetry(d.api, platform::Method::kPost, platform::RegisterPath(),
                                      platform::BuildRegisterBody(in), false, policy, stop,
                                      platform::StopAwareSleeper(stop));
  if (!resp.ok()) return HttpError(resp, "register");
  auto parsed = platform::ParseRegisterResponse(resp->status, resp->body);
  if (!parsed.ok()) return parsed.error();
  rt.MarkPlatformOk(d.clock.Now());
  if (!parsed->gpu_uuid.empty()) {
    rt.set_platform_gpu_uuid(parsed->gpu_uuid);
    runtime::WarnIfError(d.store.SetState("platform_gpu_uuid", parsed->gpu_uuid),
                         "store platform gpu_uuid");
  }
  rt.set_registered_signature(health::InventorySignature(in.gpus));
  rt.set_registered(true);
  rt.NotifyOutbox();  // events held back while unregistered go out now
  spdlog::info("registered with the platform as {} (offer {})", rt.agent_id(), parsed->gpu_uuid);
  return OkStatus();
}

Status RegistrationLoop::RunOnce(std::stop_token stop) {
  if (retry_now_.exchange(false)) next_register_ = {};
  if (rt_.registered() && !rt_.reregister_wanted) return OkStatus();
  // A refused key (401) or a refused field (422) will not fix itself: retry slowly until the
  // operator fixes the config (restart or SIGHUP retries at once).
  if (d_.clock.Monotonic() < next_register_) {
    return rt_.registered()
               ? OkStatus()
               : MakeError(ErrorCode::kFailedPrecondition, "not registered (refused, retry later)");
  }
  const bool was_registered = rt_.registered();
  rt_.reregister_wanted = false;
  Status reg = RegisterWithPlatform(d_, rt_, stop);
  if (!reg.ok()) {
    if (was_registered) rt_.reregister_wanted = true;
    if (reg.error().code == ErrorCode::kPermissionDenied ||
        reg.error().code == ErrorCode::kInvalidArgument) {
      next_register_ = d_.clock.Monotonic() + std::chrono::minutes(5);
      spdlog::error(
          "registration refused: {}. Fix the config, then restart the agent or send SIGHUP "
          "(next try in 5 minutes)",
          reg.error().message);
    }
    return reg;
  }
  if (!was_registered && on_registered_) on_registered_();
  return OkStatus();
}

}  // namespace taolie::loops
