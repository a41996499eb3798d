#pragma once
// NVIDIA XID lines read from the kernel log (/dev/kmsg), with a persisted cursor so that a
// restarted agent does not count the same line twice (issue 8, item 2).
//
// The record format (the kernel's Documentation/ABI/testing/dev-kmsg). One read() of
// /dev/kmsg returns one whole record:
//
//   PRIO,SEQ,USEC,FLAGS[,MORE...];MESSAGE\n
//    KEY=VALUE\n            (zero or more dictionary lines, each starting with a space)
//
//   PRIO   decimal syslog prefix: the low 3 bits are the level, the bits above the facility.
//          The kernel refuses facility 0 (LOG_KERN) to messages written by user space, so
//          only facility 0 records are trusted as the driver's: a process that can write to
//          /dev/kmsg cannot quarantine a GPU by printing a fake XID line.
//   SEQ    64-bit sequence number, consecutive within one boot, restarting at 0 at boot. A
//          gap means records were overwritten in the ring buffer before they were read.
//   USEC   CLOCK_MONOTONIC time of the record in microseconds.
//   FLAGS  '-' or 'c' (continuation); later kernels may append more comma-separated fields
//          (e.g. "caller=T123"), which are ignored.
//   MESSAGE  the text, non-printable bytes escaped as \xNN; it ends at the first newline.
//
// The NVIDIA driver's XID lines, in the forms drivers have printed over the years:
//
//   NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
//   NVRM: Xid (PCI:0000:3b:00): 43, pid='<unknown>', name=<unknown>, Ch 00000010
//   NVRM: Xid (0000:3b:00): 13, Graphics Exception: ESR 0x404490=0x80000001
//   NVRM: Xid (PCI:0000:3b:00.0): 31, Ch 00000008, intr 10000000. MMU Fault: ...
//
// The bus id is normalised to NVML's nvmlPciInfo_t::busId form, "DDDDDDDD:BB:DD.F" (8 hex
// digit domain, uppercase hex, function 0 when the kernel left it out), so it can be matched
// against GpuInfo::pci_bus_id. A process name ("comm", at most 15 bytes) is taken up to the
// next ", "; "<unknown>" pids and names are absent values.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace taolie::host {

// One record of the kernel log, split into its fields.
struct KmsgRecord {
  uint32_t priority = 0;  // the raw PRIO field (level | facility << 3)
  uint64_t seq = 0;
  uint64_t monotonic_usec = 0;
  bool continuation = false;  // FLAGS was 'c' (or the obsolete '+')
  std::string message;        // escapes (\xNN) kept as the kernel wrote them
  std::vector<std::pair<std::string, std::string>> dictionary;  // " KEY=VALUE" lines, in order
  uint32_t facility() const { return priority >> 3; }
  uint32_t level() const { return priority & 7U; }
};

// Parses one record (its trailing newline and dictionary lines optional). InvalidArgument
// naming the problem when the prefix is malformed (missing ';', non-numeric or out of range
// fields, no FLAGS field).
Result<KmsgRecord> ParseKmsgRecord(std::string_view text);

// An XID as the driver logged it.
struct KmsgXid {
  uint64_t seq = 0;
  uint64_t monotonic_usec = 0;
  std::string pci_bus_id;  // NVML form, "00000000:3B:00.0"
  uint64_t xid = 0;
  std::optional<uint32_t> pid;
  std::optional<std::string> process_name;
  std::string detail;   // the driver's text after the xid (and pid/name): "GPU has fallen ..."
  std::string message;  // the whole log message, for people reading the history
};

// The XID in one kernel log message ("NVRM: Xid (...): N, ..."), nullopt for any other
// message or a malformed XID line (no bus id, no number, a number that does not fit 64 bits).
// seq and monotonic_usec are left 0: the record carries them.
std::optional<KmsgXid> ParseNvrmXidMessage(std::string_view message);

// The XID in one raw /dev/kmsg record: nullopt when the record is malformed, does not come
// from the kernel (facility != 0) or is not an XID line.
std::optional<KmsgXid> ParseKmsgXidRecord(std::string_view record);

// "0000:3b:00", "3b:00.0", "00000000:3B:00.0", "PCI:0000:3b:00" -> "00000000:3B:00.0";
// nullopt when it is not a PCI address (domain over 8 hex digits, bus or device not 2 hex
// digits, device over 0x1f, function over 7).
std::optional<std::string> NormalizePciBusId(std::string_view bus_id);

// Where a reader stands in the kernel log: records with seq >= next_seq of boot `boot_id`
// are new. The caller persists it and passes it back; a default cursor (or one of another
// boot, whose sequence numbers restarted) makes every record new.
struct KmsgCursor {
  std::string boot_id;
  uint64_t next_seq = 0;  // one past the last record seen
  bool operator==(const KmsgCursor&) const = default;
};

struct KmsgDrain {
  std::vector<KmsgXid> xids;  // new XIDs, in log order
  KmsgCursor cursor;          // to persist and pass to the next Drain
  uint64_t records_read = 0;  // records read by this call, old ones skipped included
  // Records of this boot that were overwritten before they could be read (sequence numbers
  // missing between the cursor and what the log still holds): XIDs may have been lost.
  uint64_t records_lost = 0;
  bool more = false;  // the per-call bound stopped the read: call again for the rest
};

struct KmsgXidReaderOptions {
  std::string path = "/dev/kmsg";
  std::string boot_id_path = "/proc/sys/kernel/random/boot_id";
  size_t max_records_per_drain = 4096;
  // One read(2) on the opened fd. Unset = ::read. Tests replace it to play the device's
  // EAGAIN / EPIPE answers on a character device that has none (/dev/null).
  std::function<ssize_t(int fd, char* buf, size_t len)> read;
};

// Reads XIDs from the kernel log. On a character device (the real /dev/kmsg) each read()
// returns one record, EAGAIN marks the end, EPIPE that the records after the last one read
// were overwritten (reading goes on with the oldest one left); the fd is positioned at the
// first record the ring buffer still holds (lseek SEEK_SET 0: records an operator cleared
// with `dmesg -C` stay readable, unlike SEEK_DATA). A regular file standing in for it
// (tests, a saved log) is read line by line from its start; end of file is the end, and
// lines appended later are read by the next Drain. The fd stays open between Drains; a cursor
// behind the reader's position (another boot's, or an older one) makes it read from the start
// again. Not thread-safe: one caller.
class KmsgXidReader {
 public:
  // NotFound / PermissionDenied (naming the path) when the log or the boot id cannot be
  // opened, FailedPrecondition when the path is neither a character device nor a regular
  // file, InvalidArgument when the boot id file is empty or max_records_per_drain is 0.
  static Result<std::unique_ptr<KmsgXidReader>> Create(KmsgXidReaderOptions options);
  ~KmsgXidReader();
  KmsgXidReader(const KmsgXidReader&) = delete;
  KmsgXidReader& operator=(const KmsgXidReader&) = delete;

  // The XIDs after `cursor` (all of them when its boot id is not the current one), reading at
  // most max_records_per_drain records. Unavailable when a read fails for another reason than
  // the ones above (the fd stays usable: the next Drain tries again).
  Result<KmsgDrain> Drain(const KmsgCursor& cursor);

  const std::string& boot_id() const { return boot_id_; }

 private:
  enum class Next { kRecord, kEnd, kOverwritten };
  KmsgXidReader(KmsgXidReaderOptions options, int fd, bool device, std::string boot_id);
  Result<Next> ReadRecord(std::string& record);
  Status Rewind();

  KmsgXidReaderOptions options_;
  int fd_ = -1;
  bool device_ = false;  // a character device (one record per read) or a regular file
  std::string boot_id_;
  std::string pending_;     // regular file: bytes read past the last complete line
  uint64_t read_next_ = 0;  // one past the seq of the last record read from fd_
  bool read_any_ = false;   // whether fd_ has been read since its last rewind
};

}  // namespace taolie::host
