#pragma once
// The duration monitor's round: expiry warnings, expiries, and containers that died or were
// removed behind the agent's back. Endings are queued on the stop lane, so they never wait
// behind deploys.
//
// Without the database (PostgreSQL down, or not answering) the round goes on from memory and
// Docker's state: each running rental's last known row, its clock advanced on the monotonic
// clock, or, for a container the monitor has not seen yet, its labels (`taolie.expires_at`,
// wall time). Warnings are delivered into the container and an expired rental's container is
// stopped (SIGTERM, grace, kill) and left in place. When the database answers again the
// warnings are written (warned_at and `expiring`) and each stopped rental is ended as usual,
// billed to the moment it was stopped.
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>

#include "docker/docker_client.h"
#include "engine/rental_context.h"
#include "engine/rental_ender.h"

namespace taolie::engine {

class RentalMonitor {
 public:
  explicit RentalMonitor(const RentalContext& ctx) : ctx_(ctx), ender_(ctx) {}

  Status CheckOnce(std::stop_token stop);
  // Queues the end of a deployment on the stop lane (deduplicated; re-reads when it runs).
  void QueueEnd(const std::string& id, const std::string& end_status, const std::string& reason);

  // Rentals the monitor is enforcing from memory (for tests and /status).
  size_t KnownRentals() const;

 private:
  // What the monitor knows of one running rental, kept for when the database is down.
  struct Known {
    domain::Deployment d;                   // last row read; clock advanced in memory
    std::optional<SystemTime> warned_ends;  // warned while down: write warned_at + `expiring`
    int64_t warned_left_s = 0;
    bool stop_queued = false;                       // expired while down: a stop job was queued
    std::optional<rules::ClockReading> stopped_at;  // ... and the container was stopped then
  };

  Status WarnExpiry(domain::Deployment& d, std::chrono::milliseconds left);
  // Writes the warning into the container (a file and every terminal); returns its deadline.
  SystemTime DeliverWarning(const domain::Deployment& d, int64_t left_s);
  // Writes `msg` to /run/taolie/<file> and every terminal of the container (logged on failure).
  void WriteInside(const domain::Deployment& d, const std::string& file, const std::string& msg);
  // Measures the writable layer (one list call) and bind volumes of each rental with a disk
  // quota; warns at 90% and ends at 100% (rules/disk_quota.h). Once per round.
  void CheckDiskQuotas(const std::vector<domain::Deployment>& rentals);
  // Advances the rental's clock to now (adopting a row that has none from its wall times),
  // notes a wall-clock step, and persists the checkpoint. Returns the time left.
  std::chrono::milliseconds Tick(domain::Deployment& d, const rules::ClockReading& now);
  // The round without the database.
  void EnforceWithoutStore(const rules::ClockReading& now, std::stop_token stop);
  void QueueOfflineStop(const std::string& id, const std::string& container);
  // The database is back: writes the warnings given without it; true when it wrote any.
  bool WriteBack();
  void Remember(const std::vector<domain::Deployment>& running);
  std::optional<rules::ClockReading> StoppedAt(const std::string& id) const;

  const RentalContext& ctx_;
  RentalEnder ender_;
  mutable std::mutex mu_;  // known_: the monitor's round and the stop jobs
  std::map<std::string, Known> known_;
  bool store_down_ = false;
  std::set<std::string> disk_warned_;  // rentals warned of their disk quota (the round's thread)
  static constexpr size_t kMaxVolumeEntries = 200000;  // per volume and round
};

// Writes `message` into the container: to /run/taolie/<file> and to each of its terminals (an
// SSH session sees it at once). `file` is one of the agent's own names, never a renter's.
Status WriteToRenter(docker::DockerClient& docker, const std::string& container_id,
                     const std::string& file, const std::string& message,
                     std::chrono::seconds timeout);

}  // namespace taolie::engine
