#pragma once
// Runs a host tool (iptables, ...) by argument vector, never through a shell, with a deadline.
// A seam so the code that drives a tool can be unit-tested with a scripted fake.
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace taolie::host {

struct CommandOutput {
  int exit_code = 0;        // the tool's exit status; 128 + n when killed by signal n
  std::string output;       // stdout and stderr together as they came, at most 64 KiB kept: for
                            // messages
  std::string stdout_text;  // stdout alone, at most 64 KiB kept: for parsing. A tool's remark
                            // on stderr (iptables-nft's "# Warning: iptables-legacy tables
                            // present") can land in the middle of a stdout line in `output`.
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // argv[0] is looked up in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin
  // unless it contains a '/'. `stdin_data` is the tool's standard input. NotFound when the
  // tool is not installed; DeadlineExceeded (the tool killed) after `timeout`; a non-zero
  // exit is not an error here: the caller reads exit_code.
  virtual Result<CommandOutput> Run(const std::vector<std::string>& argv,
                                    std::string_view stdin_data,
                                    std::chrono::milliseconds timeout) = 0;
};

// fork/exec through posix_spawn: environment reduced to PATH and LC_ALL=C, signal mask and
// dispositions reset, no descriptors inherited but the three standard ones.
class SubprocessRunner : public CommandRunner {
 public:
  Result<CommandOutput> Run(const std::vector<std::string>& argv, std::string_view stdin_data,
                            std::chrono::milliseconds timeout) override;
};

}  // namespace taolie::host
