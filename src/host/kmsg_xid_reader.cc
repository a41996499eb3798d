#include "host/kmsg_xid_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace taolie::host {
namespace {

constexpr std::string_view kXidPrefix = "NVRM: Xid ";
constexpr std::string_view kUnknown = "<unknown>";
// The kernel's longest /dev/kmsg record is 8 KiB (CONSOLE_EXT_LOG_MAX); a read() into a
// smaller buffer fails with EINVAL.
constexpr size_t kDeviceBufferSize = 16 * size_t{1024};
constexpr size_t kFileChunkSize = 64 * size_t{1024};

template <typename T>
bool ParseUnsigned(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return !s.empty();
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// Takes the value of a "key=value" field up to the next ", " (or the end) off `s`.
std::string_view TakeFieldValue(std::string_view& s) {
  size_t end = s.find(", ");
  std::string_view value = s.substr(0, end);
  s.remove_prefix(end == std::string_view::npos ? s.size() : end + 2);
  return value;
}

bool IsUnknown(std::string_view v) { return v == kUnknown || v == "'<unknown>'"; }

Error OpenError(const std::string& what, const std::string& path, int err) {
  ErrorCode code = ErrorCode::kUnavailable;
  if (err == ENOENT || err == ENODEV || err == ENXIO) code = ErrorCode::kNotFound;
  if (err == EACCES || err == EPERM) code = ErrorCode::kPermissionDenied;
  return MakeError(code, what + ": cannot open '" + path + "': " + std::strerror(err));
}

Result<std::string> ReadBootId(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError("boot id", path, errno);
  std::array<char, 256> buf{};
  ssize_t n = 0;
  do {
    n = ::read(fd, buf.data(), buf.size());
  } while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (n < 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "boot id: cannot read '" + path + "': " + std::strerror(err));
  }
  std::string id(buf.data(), static_cast<size_t>(n));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ' || id.back() == '\r')) {
    id.pop_back();
  }
  if (id.empty()) return MakeError(ErrorCode::kInvalidArgument, "boot id: '" + path + "' is empty");
  return id;
}

}  // namespace

Result<KmsgRecord> ParseKmsgRecord(std::string_view text) {
  size_t nl = text.find('\n');
  std::string_view first = text.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  size_t semi = first.find(';');
  if (semi == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "kmsg record: no ';' after the prefix");
  }
  std::string_view prefix = first.substr(0, semi);
  std::array<std::string_view, 4> fields;
  for (size_t i = 0; i < fields.size(); ++i) {
    size_t comma = prefix.find(',');
    if (comma == std::string_view::npos && i + 1 < fields.size()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "kmsg record: the prefix has fewer than 4 fields");
    }
    fields[i] = prefix.substr(0, comma);
    prefix.remove_prefix(comma == std::string_view::npos ? prefix.size() : comma + 1);
  }
  KmsgRecord rec;
  if (!ParseUnsigned(fields[0], rec.priority)) {
    return MakeError(ErrorCode::kInvalidArgument, "kmsg record: bad priority");
  }
  if (!ParseUnsigned(fields[1], rec.seq)) {
    return MakeError(ErrorCode::kInvalidArgument, "kmsg record: bad sequence number");
  }
  if (!ParseUnsigned(fields[2], rec.monotonic_usec)) {
    return MakeError(ErrorCode::kInvalidArgument, "kmsg record: bad timestamp");
  }
  if (fields[3] == "c" || fields[3] == "+") {
    rec.continuation = true;
  } else if (fields[3] != "-") {
    return MakeError(ErrorCode::kInvalidArgument, "kmsg record: bad flags");
  }
  rec.message = std::string(first.substr(semi + 1));
  if (!rec.message.empty() && rec.message.back() == '\r') rec.message.pop_back();
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    if (line.empty()) continue;
    if (line.front() != ' ') {
      return MakeError(ErrorCode::kInvalidArgument,
                       "kmsg record: a line after the message does not start with a space");
    }
    line.remove_prefix(1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;  // not KEY=VALUE: ignored
    rec.dictionary.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
  }
  return rec;
}

std::optional<std::string> NormalizePciBusId(std::string_view bus_id) {
  std::string_view s = TrimSpaces(bus_id);
  if (s.size() >= 4 && (s.substr(0, 4) == "PCI:" || s.substr(0, 4) == "pci:")) s.remove_prefix(4);
  std::string_view domain = "0";
  size_t first = s.find(':');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = s.find(':', first + 1);
  if (second != std::string_view::npos) {
    domain = s.substr(0, first);
    s.remove_prefix(first + 1);
    second = s.find(':');
  } else {
    second = first;
  }
  std::string_view bus = s.substr(0, second);
  std::string_view devfn = s.substr(second + 1);
  std::string_view device = devfn.substr(0, devfn.find('.'));
  std::string_view function = "0";
  if (devfn.find('.') != std::string_view::npos) function = devfn.substr(devfn.find('.') + 1);
  if (domain.size() > 8 || !IsHex(domain) || bus.size() != 2 || !IsHex(bus) || device.size() != 2 ||
      !IsHex(device) || function.size() != 1 || !IsHex(function)) {
    return std::nullopt;
  }
  uint32_t d = 0, b = 0, dev = 0, fn = 0;
  if (!ParseUnsigned(domain, d, 16) || !ParseUnsigned(bus, b, 16) ||
      !ParseUnsigned(device, dev, 16) || !ParseUnsigned(function, fn, 16) || dev > 0x1f || fn > 7) {
    return std::nullopt;
  }
  std::array<char, 32> out{};
  std::snprintf(out.data(), out.size(), "%08X:%02X:%02X.%X", d, b, dev, fn);
  return std::string(out.data());
}

std::optional<KmsgXid> ParseNvrmXidMessage(std::string_view message) {
  std::string_view s = message;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (!ConsumePrefix(s, kXidPrefix) || !ConsumePrefix(s, "(")) return std::nullopt;
  size_t close = s.find("): ");
  if (close == std::string_view::npos) return std::nullopt;
  auto bus_id = NormalizePciBusId(s.substr(0, close));
  if (!bus_id) return std::nullopt;
  s.remove_prefix(close + 3);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  KmsgXid xid;
  if (!ParseUnsigned(s.substr(0, digits), xid.xid)) return std::nullopt;
  s.remove_prefix(digits);
  s = TrimSpaces(s);
  if (!s.empty() && !ConsumePrefix(s, ",")) return std::nullopt;  // "79abc": not a number
  s = TrimSpaces(s);
  if (ConsumePrefix(s, "pid=")) {
    std::string_view v = TakeFieldValue(s);
    uint32_t pid = 0;
    if (!IsUnknown(v) && ParseUnsigned(v, pid)) xid.pid = pid;
  }
  if (ConsumePrefix(s, "name=")) {
    std::string_view v = TakeFieldValue(s);
    if (!IsUnknown(v) && !v.empty()) xid.process_name = std::string(v);
  }
  xid.pci_bus_id = std::move(*bus_id);
  xid.detail = std::string(TrimSpaces(s));
  xid.message = std::string(TrimSpaces(message));
  return xid;
}

std::optional<KmsgXid> ParseKmsgXidRecord(std::string_view record) {
  auto rec = ParseKmsgRecord(record);
  if (!rec.ok() || rec->facility() != 0) return std::nullopt;
  auto xid = ParseNvrmXidMessage(rec->message);
  if (!xid) return std::nullopt;
  xid->seq = rec->seq;
  xid->monotonic_usec = rec->monotonic_usec;
  return xid;
}

Result<std::unique_ptr<KmsgXidReader>> KmsgXidReader::Create(KmsgXidReaderOptions options) {
  if (options.max_records_per_drain == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "kernel log: max_records_per_drain is 0");
  }
  auto boot_id = ReadBootId(options.boot_id_path);
  if (!boot_id.ok()) return boot_id.error();
  int fd = ::open(options.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return OpenError("kernel log", options.path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return MakeError(ErrorCode::kUnavailable,
                     "kernel log: cannot stat '" + options.path + "': " + std::strerror(err));
  }
  if (!S_ISCHR(st.st_mode) && !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError(
        ErrorCode::kFailedPrecondition,
        "kernel log: '" + options.path + "' is neither a character device nor a regular file");
  }
  bool device = S_ISCHR(st.st_mode);
  std::unique_ptr<KmsgXidReader> reader(
      new KmsgXidReader(std::move(options), fd, device, std::move(*boot_id)));
  TAOLIE_RETURN_IF_ERROR(reader->Rewind());
  return reader;
}

KmsgXidReader::KmsgXidReader(KmsgXidReaderOptions options, int fd, bool device, std::string boot_id)
    : options_(std::move(options)), fd_(fd), device_(device), boot_id_(std::move(boot_id)) {
  if (!options_.read) {
    options_.read = [](int f, char* buf, size_t len) { return ::read(f, buf, len); };
  }
}

KmsgXidReader::~KmsgXidReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status KmsgXidReader::Rewind() {
  // SEEK_SET 0 on /dev/kmsg: the first record the ring buffer still holds.
  if (::lseek(fd_, 0, SEEK_SET) < 0) {
    return MakeError(ErrorCode::kUnavailable, "kernel log: cannot seek '" + options_.path +
                                                  "' to its start: " + std::strerror(errno));
  }
  pending_.clear();
  read_next_ = 0;
  read_any_ = false;
  return OkStatus();
}

Result<KmsgXidReader::Next> KmsgXidReader::ReadRecord(std::string& record) {
  if (device_) {
    record.resize(kDeviceBufferSize);
    // EINTR is retried a bounded number of times; a signal storm ends this Drain.
    for (int attempt = 0; attempt < 8; ++attempt) {
      ssize_t n = options_.read(fd_, record.data(), record.size());
      if (n > 0) {
        record.resize(static_cast<size_t>(n));
        return Next::kRecord;
      }
      if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) return Next::kEnd;
      if (errno == EPIPE) return Next::kOverwritten;
      if (errno == EINTR) continue;
      return MakeError(ErrorCode::kUnavailable, "kernel log: read of '" + options_.path +
                                                    "' failed: " + std::strerror(errno));
    }
    return Next::kEnd;
  }
  // A regular file: one record per line; dictionary lines (leading space) and empty lines are
  // skipped; a last line without its newline is still being written and waits for the next
  // Drain.
  std::array<char, kFileChunkSize> chunk{};
  while (true) {
    size_t nl = pending_.find('\n');
    while (nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      if (!line.empty() && line.front() != ' ') {
        record = std::move(line);
        return Next::kRecord;
      }
      nl = pending_.find('\n');
    }
    ssize_t n = options_.read(fd_, chunk.data(), chunk.size());
    if (n == 0) return Next::kEnd;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Next::kEnd;
      return MakeError(ErrorCode::kUnavailable, "kernel log: read of '" + options_.path +
                                                    "' failed: " + std::strerror(errno));
    }
    pending_.append(chunk.data(), static_cast<size_t>(n));
  }
}

Result<KmsgDrain> KmsgXidReader::Drain(const KmsgCursor& cursor) {
  const bool same_boot = cursor.boot_id == boot_id_;
  const uint64_t from = same_boot ? cursor.next_seq : 0;
  // The fd is past records the caller has not seen: read them again from the start.
  if (read_any_ && read_next_ > from) TAOLIE_RETURN_IF_ERROR(Rewind());

  KmsgDrain out;
  out.cursor = {boot_id_, from};
  std::string record;
  bool ended = false;
  for (size_t i = 0; i < options_.max_records_per_drain; ++i) {
    auto next = ReadRecord(record);
    if (!next.ok()) return next.error();
    if (*next == Next::kEnd) {
      ended = true;
      break;
    }
    if (*next == Next::kOverwritten) continue;  // the next read returns the oldest one left
    ++out.records_read;
    auto rec = ParseKmsgRecord(record);
    if (!rec.ok()) continue;  // not a record (a stray line in a file): nothing to count
    read_any_ = true;
    read_next_ = rec->seq + 1;
    if (rec->seq < out.cursor.next_seq) continue;  // seen before
    // A gap counts as lost only after a record this boot was seen: a cursor of 0 (an empty
    // first read) has nothing to compare with.
    if (same_boot && out.cursor.next_seq > 0) out.records_lost += rec->seq - out.cursor.next_seq;
    out.cursor.next_seq = rec->seq + 1;
    if (rec->facility() != 0) continue;
    auto xid = ParseNvrmXidMessage(rec->message);
    if (!xid) continue;
    xid->seq = rec->seq;
    xid->monotonic_usec = rec->monotonic_usec;
    out.xids.push_back(std::move(*xid));
  }
  out.more = !ended;
  return out;
}

}  // namespace taolie::host
