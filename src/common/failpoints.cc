#include "common/failpoints.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

namespace taolie {
namespace {
std::atomic<bool> g_enabled{false};
std::string g_points;  // written once before threads start
}  // namespace

void InitFailpoints() {
  const char* v = std::getenv("TAOLIE_FAILPOINTS");
  if (v != nullptr && *v != '\0') {
    g_points = std::string(",") + v + ",";
    g_enabled = true;
    spdlog::warn("failpoints armed: {}", v);
  }
}

void Failpoint(std::string_view name) {
  if (!g_enabled.load(std::memory_order_relaxed)) return;
  if (g_points.find("," + std::string(name) + ",") == std::string::npos) return;
  spdlog::warn("failpoint {} reached: killing the agent", name);
  spdlog::default_logger()->flush();
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);
}

void FailpointStall(std::string_view name, std::stop_token stop) {
  if (!g_enabled.load(std::memory_order_relaxed)) return;
  if (g_points.find(",stall:" + std::string(name) + ",") == std::string::npos) return;
  spdlog::warn("failpoint stall:{} reached: blocking until the agent stops", name);
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait(lock, std::move(stop), [] { return false; });
}

}  // namespace taolie
