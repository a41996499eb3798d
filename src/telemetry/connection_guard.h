#pragma once
// The pure parts of the local API's own accept loop (issue 17 item 4): which connections it
// keeps while their request arrives, when it gives up on them, when a request is complete
// enough to hand to a worker, and which Host headers it answers. No I/O here: the server in
// status_server.cc does the sockets and closes what these say.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taolie::telemetry {

// The connections accepted but not yet handed to a worker, bounded together with those the
// workers hold. A connection beyond the bound makes room by closing the oldest one still
// waiting for its request (a slow or idle client), or, when every slot is a request being
// answered, is itself closed at once. So a flood of idle connections can delay a real client
// by at most one round of the accept loop, never lock it out.
class PendingConnections {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    size_t max_in_flight = 64;  // waiting + being answered
    std::chrono::milliseconds first_byte{1000};
    std::chrono::milliseconds whole_request{3000};
  };
  struct Entry {
    int fd = -1;
    Clock::time_point accepted;
    bool got_bytes = false;
  };
  struct Admission {
    bool admitted = false;
    std::optional<int> close_fd;  // the evicted connection, or the new one when not admitted
  };

  explicit PendingConnections(Limits limits) : limits_(limits) {}

  // A new connection `fd`, with `active` requests held by the workers.
  Admission Admit(int fd, Clock::time_point now, size_t active);
  void MarkGotBytes(int fd);
  // Removes `fd` (handed to a worker or closed); false when it is not pending.
  bool Remove(int fd);
  // The connections past their deadline (no byte within first_byte, no whole request within
  // whole_request), removed from the table.
  std::vector<int> Expire(Clock::time_point now);
  // How long until the next deadline (zero when one has passed); nullopt with none pending.
  std::optional<Clock::duration> NextDeadline(Clock::time_point now) const;
  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  Clock::time_point DeadlineOf(const Entry& e) const;
  Limits limits_;
  std::vector<Entry> entries_;  // in accept order
};

// Whether the bytes received so far hold a whole HTTP request: the header (ending in an empty
// line) and the body its Content-Length announces.
enum class RequestProgress {
  kNeedMore,
  kComplete,
  kTooLarge,     // header over max_header_bytes or body over max_body_bytes
  kUnsupported,  // Transfer-Encoding (chunked bodies), or a malformed Content-Length
};
RequestProgress CheckRequestProgress(std::string_view received, size_t max_header_bytes,
                                     size_t max_body_bytes);

// The Host header rule against DNS rebinding: a page in a browser on the host whose name
// resolves to 127.0.0.1 sends its own name as Host. Allowed: no Host header at all (only
// non-browser clients omit it), any IP literal (IPv4, or IPv6 in brackets), "localhost", and
// the names in `extra_names` (api.allowed_hosts), compared without case. Any port is allowed
// (an SSH tunnel changes it; the name alone tells a rebinding page from a real client).
bool HostHeaderAllowed(std::optional<std::string_view> host,
                       const std::vector<std::string>& extra_names);

}  // namespace taolie::telemetry
