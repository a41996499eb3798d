#include "telemetry/connection_guard.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>

namespace taolie::telemetry {
namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value of header `name` in `header` (the lines after the request line), trimmed;
// nullopt when absent. `count` gets how many times it appears.
std::optional<std::string_view> HeaderValue(std::string_view header, std::string_view name,
                                            int* count) {
  std::optional<std::string_view> found;
  *count = 0;
  size_t pos = header.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < header.size()) {
    const size_t start = pos + 2;
    const size_t end = header.find("\r\n", start);
    const std::string_view line =
        header.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsNoCase(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      found = v;
      ++*count;
    }
    pos = end;
  }
  return found;
}

}  // namespace

PendingConnections::Admission PendingConnections::Admit(int fd, Clock::time_point now,
                                                        size_t active) {
  Admission out;
  if (entries_.size() + active < limits_.max_in_flight) {
    entries_.push_back(Entry{fd, now, false});
    out.admitted = true;
    return out;
  }
  if (entries_.empty()) {  // every slot is a request being answered
    out.close_fd = fd;
    return out;
  }
  out.close_fd = entries_.front().fd;  // the oldest still waiting for its request
  entries_.erase(entries_.begin());
  entries_.push_back(Entry{fd, now, false});
  out.admitted = true;
  return out;
}

void PendingConnections::MarkGotBytes(int fd) {
  for (Entry& e : entries_) {
    if (e.fd == fd) e.got_bytes = true;
  }
}

bool PendingConnections::Remove(int fd) {
  auto it =
      std::find_if(entries_.begin(), entries_.end(), [fd](const Entry& e) { return e.fd == fd; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

PendingConnections::Clock::time_point PendingConnections::DeadlineOf(const Entry& e) const {
  return e.accepted + (e.got_bytes ? limits_.whole_request : limits_.first_byte);
}

std::vector<int> PendingConnections::Expire(Clock::time_point now) {
  std::vector<int> expired;
  auto keep = std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) {
    if (DeadlineOf(e) > now) return false;
    expired.push_back(e.fd);
    return true;
  });
  entries_.erase(keep, entries_.end());
  return expired;
}

std::optional<PendingConnections::Clock::duration> PendingConnections::NextDeadline(
    Clock::time_point now) const {
  std::optional<Clock::duration> next;
  for (const Entry& e : entries_) {
    const Clock::duration left = std::max(Clock::duration::zero(), DeadlineOf(e) - now);
    if (!next || left < *next) next = left;
  }
  return next;
}

RequestProgress CheckRequestProgress(std::string_view received, size_t max_header_bytes,
                                     size_t max_body_bytes) {
  const size_t end = received.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return received.size() > max_header_bytes ? RequestProgress::kTooLarge
                                              : RequestProgress::kNeedMore;
  }
  const size_t header_size = end + 4;
  if (header_size > max_header_bytes) return RequestProgress::kTooLarge;
  const std::string_view header = received.substr(0, end + 2);
  int count = 0;
  if (HeaderValue(header, "Transfer-Encoding", &count)) return RequestProgress::kUnsupported;
  const std::optional<std::string_view> length = HeaderValue(header, "Content-Length", &count);
  size_t body = 0;
  if (length) {
    const auto [ptr, ec] = std::from_chars(length->data(), length->data() + length->size(), body);
    if (count != 1 || length->empty() || ec != std::errc() ||
        ptr != length->data() + length->size()) {
      return RequestProgress::kUnsupported;
    }
    if (body > max_body_bytes) return RequestProgress::kTooLarge;
  }
  return received.size() >= header_size + body ? RequestProgress::kComplete
                                               : RequestProgress::kNeedMore;
}

bool HostHeaderAllowed(std::optional<std::string_view> host,
                       const std::vector<std::string>& extra_names) {
  if (!host) return true;
  std::string_view h = *host;
  std::string_view name;
  if (!h.empty() && h.front() == '[') {  // [IPv6]:port
    const size_t close = h.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = h.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !AllDigits(rest.substr(1)))) return false;
    const std::string v6(h.substr(1, close - 1));
    std::array<std::uint8_t, 16> buf{};
    return inet_pton(AF_INET6, v6.c_str(), buf.data()) == 1;
  }
  const size_t colon = h.find(':');
  name = h.substr(0, colon);
  if (colon != std::string_view::npos && !AllDigits(h.substr(colon + 1))) return false;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // "localhost."
  if (name.empty()) return false;
  std::array<std::uint8_t, 4> v4{};
  if (inet_pton(AF_INET, std::string(name).c_str(), v4.data()) == 1) return true;
  if (EqualsNoCase(name, "localhost")) return true;
  return std::any_of(extra_names.begin(), extra_names.end(),
                     [name](const std::string& n) { return EqualsNoCase(name, n); });
}

}  // namespace taolie::telemetry
