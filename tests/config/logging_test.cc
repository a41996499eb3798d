#include "telemetry/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/journal_sink.h"

namespace taolie::telemetry {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh directory per test under gtest's temp dir.
fs::path FreshDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("logging_test_" + name);
  fs::remove_all(dir);
  return dir;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

LoggingOptions FileOnly(const fs::path& file) {
  LoggingOptions o;
  o.console = false;
  o.file = file.string();
  return o;
}

TEST(Logging, RegisteredSecretNeverReachesTheFile) {
  fs::path file = FreshDir("secret") / "sub" / "agent.log";  // parent is created
  ASSERT_TRUE(SetupLogging(FileOnly(file)).ok());
  const std::string key = "sk-live-0123456789abcdef";
  RegisterSecret(key);
  spdlog::info("api key={} and again {}", key, key);
  spdlog::warn("Authorization: Bearer {}", key);
  spdlog::error("embedded{}text", key);
  FlushLogs();
  std::string text = ReadFile(file);
  EXPECT_THAT(text, Not(HasSubstr(key)));
  EXPECT_THAT(text, HasSubstr("api key=*** and again ***"));
  EXPECT_THAT(text, HasSubstr("Authorization: Bearer ***"));
  EXPECT_THAT(text, HasSubstr("embedded***text"));
}

TEST(Logging, OverlappingSecretsRedactedWhole) {
  fs::path file = FreshDir("overlap") / "agent.log";
  ASSERT_TRUE(SetupLogging(FileOnly(file)).ok());
  RegisterSecret("abcdef");
  RegisterSecret("abcdefghijkl");
  spdlog::info("[abcdefghijkl]");
  FlushLogs();
  std::string text = ReadFile(file);
  EXPECT_THAT(text, HasSubstr("[***]"));
  EXPECT_THAT(text, Not(HasSubstr("ghijkl")));
}

TEST(Logging, ShortValuesAreNotRegistered) {
  fs::path file = FreshDir("short") / "agent.log";
  ASSERT_TRUE(SetupLogging(FileOnly(file)).ok());
  RegisterSecret("abc12");  // 5 chars: ignored
  RegisterSecret("");
  spdlog::info("value abc12 stays");
  FlushLogs();
  EXPECT_THAT(ReadFile(file), HasSubstr("value abc12 stays"));
}

TEST(Logging, SecretRedactedOnConsoleToo) {
  LoggingOptions o;
  o.console = true;
  ::testing::internal::CaptureStderr();
  Status s = SetupLogging(o);
  const std::string key = "console-secret-987654";
  RegisterSecret(key);
  spdlog::warn("token {}", key);
  FlushLogs();
  std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(err, HasSubstr("token ***"));
  EXPECT_THAT(err, Not(HasSubstr(key)));
}

TEST(Logging, RedactionHoldsUnderConcurrentLoggingAndRegistering) {
  fs::path file = FreshDir("threads") / "agent.log";
  ASSERT_TRUE(SetupLogging(FileOnly(file)).ok());
  const std::string early = "early-secret-aaaaaa";
  RegisterSecret(early);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &early] {
      for (int i = 0; i < 200; ++i) spdlog::info("t{} i{} {}", t, i, early);
    });
  }
  threads.emplace_back([] {
    for (int i = 0; i < 50; ++i) RegisterSecret("late-secret-" + std::to_string(100000 + i));
  });
  for (auto& th : threads) th.join();
  FlushLogs();
  std::string text = ReadFile(file);
  EXPECT_THAT(text, Not(HasSubstr(early)));
  EXPECT_THAT(text, HasSubstr("t3 i199 ***"));
  EXPECT_EQ(RedactSecrets("x late-secret-100049 y"), "x *** y");
}

TEST(Logging, RotatesAtMaxSizeKeepingMaxFiles) {
  fs::path dir = FreshDir("rotate");
  LoggingOptions o = FileOnly(dir / "agent.log");
  o.max_size_bytes = 1024;
  o.max_files = 2;
  ASSERT_TRUE(SetupLogging(o).ok());
  const std::string filler(60, 'x');
  for (int i = 0; i < 200; ++i) spdlog::info("line {:03d} {}", i, filler);
  FlushLogs();
  EXPECT_TRUE(fs::exists(dir / "agent.log"));
  EXPECT_TRUE(fs::exists(dir / "agent.1.log"));
  EXPECT_TRUE(fs::exists(dir / "agent.2.log"));
  EXPECT_FALSE(fs::exists(dir / "agent.3.log"));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_LE(fs::file_size(entry.path()), 1024u) << entry.path();
    EXPECT_GT(fs::file_size(entry.path()), 0u) << entry.path();
  }
  EXPECT_EQ(files, 3);
  EXPECT_THAT(ReadFile(dir / "agent.log"), HasSubstr("line 199"));
  EXPECT_THAT(ReadFile(dir / "agent.2.log"), Not(HasSubstr("line 000")));
}

// monitoring.retention.logs_days: the rotated copies last written before the cut go; the
// current file, newer copies and other names stay.
TEST(Logging, PruneRotatedLogsDeletesOnlyOldRotatedCopies) {
  fs::path dir = FreshDir("prune");
  fs::create_directories(dir);
  const auto now = fs::file_time_type::clock::now();
  const auto old = now - std::chrono::hours(24) * 10;
  for (const char* name : {"agent.log", "agent.1.log", "agent.2.log", "agent.x.log", "other.1.log",
                           "agent.1.log.gz", "agent.12.log"}) {
    std::ofstream(dir / name) << "x";
    fs::last_write_time(dir / name, old);
  }
  fs::last_write_time(dir / "agent.2.log", now);  // rotated, but recent
  auto removed = PruneRotatedLogs((dir / "agent.log").string(), now - std::chrono::hours(24) * 7);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(*removed, 2);
  EXPECT_FALSE(fs::exists(dir / "agent.1.log"));
  EXPECT_FALSE(fs::exists(dir / "agent.12.log"));
  for (const char* kept :
       {"agent.log", "agent.2.log", "agent.x.log", "other.1.log", "agent.1.log.gz"}) {
    EXPECT_TRUE(fs::exists(dir / kept)) << kept;
  }
  EXPECT_EQ(*PruneRotatedLogs("", now), 0);  // no file configured
  EXPECT_FALSE(PruneRotatedLogs((dir / "missing" / "agent.log").string(), now).ok());
}

TEST(Logging, LevelFiltering) {
  fs::path file = FreshDir("levels") / "agent.log";
  LoggingOptions o = FileOnly(file);
  o.level = "WARNING";
  ASSERT_TRUE(SetupLogging(o).ok());
  spdlog::info("info-hidden");
  spdlog::warn("warn-shown");
  spdlog::error("error-shown");
  SetLogLevel("debug");
  spdlog::debug("debug-shown");
  spdlog::trace("trace-hidden");
  SetLogLevel("bogus");  // ignored: stays at debug
  spdlog::debug("debug-still-shown");
  SetLogLevel("off");
  spdlog::critical("critical-hidden");
  FlushLogs();
  std::string text = ReadFile(file);
  EXPECT_THAT(text, Not(HasSubstr("info-hidden")));
  EXPECT_THAT(text, ::testing::ContainsRegex("\\[warning\\] \\[[0-9]+\\] warn-shown"));
  EXPECT_THAT(text, ::testing::ContainsRegex("\\[error\\] \\[[0-9]+\\] error-shown"));
  EXPECT_THAT(text, HasSubstr("debug-shown"));
  EXPECT_THAT(text, Not(HasSubstr("trace-hidden")));
  EXPECT_THAT(text, HasSubstr("debug-still-shown"));
  EXPECT_THAT(text, HasSubstr("ignoring unknown log level \"bogus\""));
  EXPECT_THAT(text, Not(HasSubstr("critical-hidden")));
}

TEST(Logging, LevelNames) {
  for (const char* ok :
       {"trace", "DEBUG", "Info", "warn", "WARNING", "error", "err", "CRITICAL", "fatal", "off"}) {
    EXPECT_TRUE(IsValidLogLevel(ok)) << ok;
  }
  for (const char* bad : {"", "verbose", "information", "warn "}) {
    EXPECT_FALSE(IsValidLogLevel(bad)) << bad;
  }
}

TEST(Logging, UnknownLevelIsAnError) {
  LoggingOptions o;
  o.console = false;
  o.level = "chatty";
  Status s = SetupLogging(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
}

TEST(Logging, UnwritableFileIsAnErrorAndKeepsThePreviousLogger) {
  fs::path dir = FreshDir("unwritable");
  fs::create_directories(dir);
  std::ofstream(dir / "plain-file") << "x";
  ASSERT_TRUE(SetupLogging(FileOnly(dir / "ok.log")).ok());
  auto before = spdlog::default_logger();
  Status s = SetupLogging(FileOnly(dir / "plain-file" / "sub" / "agent.log"));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr("plain-file"));
  EXPECT_EQ(spdlog::default_logger(), before);
}

TEST(Logging, BadRotationOptionsAreErrors) {
  fs::path dir = FreshDir("badopts");
  LoggingOptions o = FileOnly(dir / "agent.log");
  o.max_size_mb = 0;
  EXPECT_FALSE(SetupLogging(o).ok());
  o.max_size_mb = 1;
  o.max_files = -1;
  EXPECT_FALSE(SetupLogging(o).ok());
}

TEST(Logging, JournalPriorityMapping) {
  EXPECT_EQ(JournalPriority(spdlog::level::trace), LOG_DEBUG);
  EXPECT_EQ(JournalPriority(spdlog::level::debug), LOG_DEBUG);
  EXPECT_EQ(JournalPriority(spdlog::level::info), LOG_INFO);
  EXPECT_EQ(JournalPriority(spdlog::level::warn), LOG_WARNING);
  EXPECT_EQ(JournalPriority(spdlog::level::err), LOG_ERR);
  EXPECT_EQ(JournalPriority(spdlog::level::critical), LOG_CRIT);
}

TEST(Logging, JournalSinkWorksWithOrWithoutJournald) {
  fs::path file = FreshDir("journal") / "agent.log";
  LoggingOptions o = FileOnly(file);
  o.journal = true;
  ASSERT_TRUE(SetupLogging(o).ok());
  spdlog::info("journal-test-line");  // must not throw or block when journald is absent
  FlushLogs();
  EXPECT_THAT(ReadFile(file), HasSubstr("journal-test-line"));
}

}  // namespace
}  // namespace taolie::telemetry
