#include "engine/pull_tracker.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "common/time_format.h"

namespace taolie::engine {
namespace {

// The statuses the engine gives a layer (its id is the layer's short digest). Lines about the
// whole image ("Pulling from repo" under the tag, "Digest: ...", "Status: ...") are not layers.
bool IsLayerStatus(std::string_view s) {
  static constexpr std::array<std::string_view, 9> kLayer = {
      "Pulling fs layer",   "Waiting",           "Downloading",
      "Verifying Checksum", "Download complete", "Extracting",
      "Pull complete",      "Already exists",    "Retrying"};
  return std::any_of(kLayer.begin(), kLayer.end(),
                     [&](std::string_view k) { return s.substr(0, k.size()) == k; });
}

constexpr std::chrono::milliseconds kSampleSpacing{250};

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int PullSnapshot::percent() const {
  if (bytes_total <= 0) return -1;
  return static_cast<int>(std::clamp<int64_t>(sized_bytes_done * 100 / bytes_total, 0, 100));
}

double PullSnapshot::average_bytes_per_s() const {
  double s = Seconds(elapsed);
  return s > 0 ? static_cast<double>(bytes_done) / s : 0;
}

std::string FormatBytes(double bytes) {
  static constexpr std::array<const char*, 5> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{} B", static_cast<int64_t>(std::max(0.0, bytes)));
  size_t unit = 0;
  bytes /= 1024;
  while (bytes >= 1024 && unit + 1 < kUnits.size()) {
    bytes /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string DescribePull(const PullSnapshot& s, double rate_bytes_per_s) {
  std::string out;
  if (s.percent() >= 0) {
    out = fmt::format("{}% of {}", s.percent(), FormatBytes(static_cast<double>(s.bytes_total)));
    if (s.unknown_size_layers > 0) {
      out += fmt::format(" (and {} layer{} of unknown size)", s.unknown_size_layers,
                         s.unknown_size_layers == 1 ? "" : "s");
    }
  } else {
    out = FormatBytes(static_cast<double>(s.bytes_done)) + " (size not known yet)";
  }
  out += fmt::format(", {}/s, {}/{} layers done", FormatBytes(rate_bytes_per_s), s.layers_done,
                     s.layers_total);
  return out;
}

std::string DescribePull(const PullSnapshot& s) { return DescribePull(s, s.rate_bytes_per_s); }

PullTracker::PullTracker(std::string image, const Clock& clock)
    : image_(std::move(image)),
      clock_(clock),
      since_(clock.Now()),
      started_(clock.Monotonic()),
      last_line_(started_) {
  samples_.emplace_back(started_, 0);
}

bool PullTracker::Add(const docker::PullProgress& p) {
  if (!p.id.empty() && IsLayerStatus(p.status)) {
    Layer& layer = layers_[p.id];
    const std::string_view status = p.status;
    if (status == "Downloading") {
      if (p.total > 0) layer.total = p.total;
      layer.downloaded = std::max(layer.downloaded, p.current);
    } else if (status == "Extracting") {
      // Extraction reads what was downloaded: the download is over; its total is the layer's
      // size when the download did not say it.
      if (layer.total <= 0 && p.total > 0) layer.total = p.total;
      if (layer.total > 0) layer.downloaded = layer.total;
    } else if (status == "Verifying Checksum" || status == "Download complete") {
      if (layer.total > 0) layer.downloaded = layer.total;
    } else if (status == "Pull complete") {
      if (layer.total > 0) layer.downloaded = layer.total;
      layer.done = true;
    } else if (status == "Already exists") {
      layer.done = true;  // nothing to download: no bytes counted
    }
  }
  const MonoTime now = clock_.Monotonic();
  // Samples at least kSampleSpacing apart (the latest one moves): a few dozen per window.
  if (samples_.size() > 1 && now - samples_[samples_.size() - 2].first < kSampleSpacing) {
    samples_.back() = {now, Downloaded()};
  } else {
    samples_.emplace_back(now, Downloaded());
  }
  // Keep one sample at or before the window's start as the rate's baseline.
  while (samples_.size() > 2 && samples_[1].first <= now - kRateWindow) samples_.pop_front();
  if (now - last_line_ >= kProgressLogInterval) {
    last_line_ = now;
    return true;
  }
  return false;
}

int64_t PullTracker::Downloaded() const {
  int64_t sum = 0;
  for (const auto& [id, layer] : layers_) sum += layer.downloaded;
  return sum;
}

PullSnapshot PullTracker::Snapshot() const {
  PullSnapshot s;
  s.image = image_;
  s.since = since_;
  const MonoTime now = clock_.Monotonic();
  s.elapsed = now - started_;
  for (const auto& [id, layer] : layers_) {
    ++s.layers_total;
    if (layer.done) ++s.layers_done;
    s.bytes_done += layer.downloaded;
    if (layer.total > 0) {
      s.bytes_total += layer.total;
      s.sized_bytes_done += layer.downloaded;
    } else if (!layer.done && layer.downloaded > 0) {
      ++s.unknown_size_layers;
    }
  }
  // Rate: bytes over the window, from its baseline sample to now.
  const auto& [t0, b0] = samples_.front();
  const double dt = Seconds(now - t0);
  const int64_t latest = samples_.back().second;
  s.rate_bytes_per_s = dt > 0 ? static_cast<double>(latest - b0) / dt : 0;
  return s;
}

void PullBoard::Set(const std::string& deployment_id, const PullSnapshot& s) {
  std::lock_guard lock(mu_);
  auto [it, added] = pulls_.try_emplace(deployment_id);
  it->second.deployment_id = deployment_id;
  it->second.snapshot = s;
  if (added) {
    yield_.request_stop();
    yield_ = std::stop_source();
  }
}

void PullBoard::Erase(const std::string& deployment_id) {
  std::lock_guard lock(mu_);
  pulls_.erase(deployment_id);
}

std::vector<PullBoard::Entry> PullBoard::Snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<Entry> out;
  out.reserve(pulls_.size());
  for (const auto& [id, e] : pulls_) out.push_back(e);
  return out;
}

bool PullBoard::Empty() const {
  std::lock_guard lock(mu_);
  return pulls_.empty();
}

std::string PullBoard::Json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Entry& e : Snapshot()) {
    const PullSnapshot& s = e.snapshot;
    out.push_back({{"deployment_id", e.deployment_id},
                   {"image", s.image},
                   {"percent", s.percent() >= 0 ? nlohmann::json(s.percent()) : nullptr},
                   {"bytes_done", s.bytes_done},
                   {"bytes_total", s.bytes_total},
                   {"rate_bytes_per_s", static_cast<int64_t>(s.rate_bytes_per_s)},
                   {"layers_done", s.layers_done},
                   {"layers_total", s.layers_total},
                   {"since", FormatRfc3339(s.since)}});
  }
  return out.dump();
}

std::stop_token PullBoard::YieldToken() {
  std::lock_guard lock(mu_);
  return yield_.get_token();
}

}  // namespace taolie::engine
