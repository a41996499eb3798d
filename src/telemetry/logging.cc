#include "telemetry/logging.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/log_level.h"
#include "telemetry/journal_sink.h"

namespace taolie::telemetry {
namespace {

constexpr size_t kMinSecretLength = 6;
constexpr char kRedacted[] = "***";
constexpr char kLoggerName[] = "taolie";
constexpr char kPattern[] = "%Y-%m-%dT%H:%M:%S.%eZ [%l] [%t] %v";

// Registered secrets, longest first so that a secret containing another is replaced whole.
// Readers take a snapshot (shared_ptr copy) under a shared lock and scan without a lock.
class SecretRegistry {
 public:
  static SecretRegistry& Instance() {
    static SecretRegistry registry;
    return registry;
  }

  void Add(const std::string& secret) {
    std::unique_lock lock(mu_);
    if (std::find(secrets_->begin(), secrets_->end(), secret) != secrets_->end()) return;
    auto next = std::make_shared<std::vector<std::string>>(*secrets_);
    next->push_back(secret);
    std::stable_sort(next->begin(), next->end(), [](const std::string& a, const std::string& b) {
      return a.size() > b.size();
    });
    secrets_ = std::move(next);
  }

  std::shared_ptr<const std::vector<std::string>> Snapshot() const {
    std::shared_lock lock(mu_);
    return secrets_;
  }

 private:
  mutable std::shared_mutex mu_;
  std::shared_ptr<const std::vector<std::string>> secrets_ =
      std::make_shared<const std::vector<std::string>>();
};

// Returns the redacted text, or nullopt when `text` holds no secret (the common case: no copy).
std::optional<std::string> Redact(std::string_view text, const std::vector<std::string>& secrets) {
  std::optional<std::string> out;
  for (const std::string& secret : secrets) {
    std::string_view current = out ? std::string_view(*out) : text;
    size_t pos = current.find(secret);
    if (pos == std::string_view::npos) continue;
    std::string replaced;
    replaced.reserve(current.size());
    size_t start = 0;
    while (pos != std::string_view::npos) {
      replaced.append(current.substr(start, pos - start));
      replaced.append(kRedacted);
      start = pos + secret.size();
      pos = current.find(secret, start);
    }
    replaced.append(current.substr(start));
    out = std::move(replaced);
  }
  return out;
}

// The only sink the logger sees: rewrites the payload without secrets, then hands the message
// to the real sinks. Formatters run in the real sinks, after redaction, so no sink can emit a
// registered secret. The child list is fixed at construction; children are thread-safe (_mt).
class RedactingSink final : public spdlog::sinks::sink {
 public:
  explicit RedactingSink(std::vector<spdlog::sink_ptr> children) : children_(std::move(children)) {}

  void log(const spdlog::details::log_msg& msg) override {
    auto secrets = SecretRegistry::Instance().Snapshot();
    std::optional<std::string> redacted;
    if (!secrets->empty()) redacted = Redact({msg.payload.data(), msg.payload.size()}, *secrets);
    if (!redacted) {
      Forward(msg);
      return;
    }
    spdlog::details::log_msg copy(msg);
    copy.payload = spdlog::string_view_t(redacted->data(), redacted->size());
    Forward(copy);
  }

  void flush() override {
    for (auto& child : children_) child->flush();
  }

  void set_pattern(const std::string& pattern) override {
    for (auto& child : children_) child->set_pattern(pattern);
  }

  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    for (auto& child : children_) child->set_formatter(formatter->clone());
  }

 private:
  void Forward(const spdlog::details::log_msg& msg) {
    for (auto& child : children_) {
      if (child->should_log(msg.level)) child->log(msg);
    }
  }

  const std::vector<spdlog::sink_ptr> children_;
};

std::optional<spdlog::level::level_enum> ParseLevel(const std::string& name) {
  auto level = ParseLogLevel(name);
  if (!level) return std::nullopt;
  switch (*level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kCritical:
      return spdlog::level::critical;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return std::nullopt;
}

Result<spdlog::sink_ptr> MakeFileSink(const LoggingOptions& options) {
  if (options.max_files < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "logging: max_files must not be negative");
  }
  size_t max_size = options.max_size_bytes > 0
                        ? options.max_size_bytes
                        : static_cast<size_t>(std::max(options.max_size_mb, 0)) * 1024 * 1024;
  if (max_size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "logging: max_size_mb must be positive");
  }
  std::filesystem::path path(options.file);
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return MakeError(
          ec == std::errc::permission_denied ? ErrorCode::kPermissionDenied
                                             : ErrorCode::kUnavailable,
          "cannot create log directory " + path.parent_path().string() + ": " + ec.message());
    }
  }
  try {
    return spdlog::sink_ptr(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        options.file, max_size, static_cast<size_t>(options.max_files)));
  } catch (const std::exception& e) {  // spdlog_ex: cannot open for writing
    return MakeError(ErrorCode::kUnavailable,
                     "cannot open log file " + options.file + ": " + e.what());
  }
}

}  // namespace

bool IsValidLogLevel(const std::string& level) { return ParseLevel(level).has_value(); }

Status SetupLogging(const LoggingOptions& options) {
  auto level = ParseLevel(options.level);
  if (!level) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "logging: unknown level \"" + options.level + "\"");
  }
  std::vector<spdlog::sink_ptr> sinks;
  try {
    if (options.console) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (!options.file.empty()) {
      auto file_sink = MakeFileSink(options);
      if (!file_sink.ok()) return file_sink.error();
      sinks.push_back(std::move(file_sink.value()));
    }
    if (options.journal) sinks.push_back(std::make_shared<JournalSink>());

    auto redacting = std::make_shared<RedactingSink>(std::move(sinks));
    auto logger = std::make_shared<spdlog::logger>(kLoggerName, std::move(redacting));
    logger->set_pattern(kPattern, spdlog::pattern_time_type::utc);
    logger->set_level(*level);
    // Flush after every message: the agent logs little, and a crash must not lose the tail.
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInternal, std::string("logging setup failed: ") + e.what());
  }
  return OkStatus();
}

void RegisterSecret(const std::string& secret) {
  if (secret.size() < kMinSecretLength) return;
  SecretRegistry::Instance().Add(secret);
}

void SetLogLevel(const std::string& level) {
  auto parsed = ParseLevel(level);
  if (!parsed) {
    spdlog::warn("ignoring unknown log level \"{}\"", level);
    return;
  }
  spdlog::default_logger()->set_level(*parsed);
}

void FlushLogs() { spdlog::default_logger()->flush(); }

Result<int> PruneRotatedLogs(const std::string& file, std::filesystem::file_time_type older_than) {
  namespace fs = std::filesystem;
  if (file.empty()) return 0;
  const fs::path path(file);
  const std::string stem = path.stem().string();
  const std::string ext = path.extension().string();
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     "logging: cannot list " + dir.string() + ": " + ec.message());
  }
  int removed = 0;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    // <stem>.<digits><ext>
    if (name.size() <= stem.size() + 1 + ext.size() || name.rfind(stem + ".", 0) != 0 ||
        name.compare(name.size() - ext.size(), ext.size(), ext) != 0) {
      continue;
    }
    const std::string n = name.substr(stem.size() + 1, name.size() - stem.size() - 1 - ext.size());
    if (n.empty() || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    std::error_code e;
    if (!entry.is_regular_file(e) || e) continue;
    const auto written = entry.last_write_time(e);
    if (e || written >= older_than) continue;
    if (fs::remove(entry.path(), e) && !e) {
      ++removed;
    } else if (e) {
      spdlog::warn("logging: rotated file {} not deleted: {}", entry.path().string(), e.message());
    }
  }
  return removed;
}

std::string RedactSecrets(const std::string& text) {
  auto secrets = SecretRegistry::Instance().Snapshot();
  auto redacted = Redact(text, *secrets);
  if (redacted) return std::move(*redacted);
  return text;
}

}  // namespace taolie::telemetry
