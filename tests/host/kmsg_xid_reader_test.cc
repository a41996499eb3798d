// Kernel log XIDs (issue 8, item 2): the record and XID parsers on table cases, the reader on a
// temporary file standing in for /dev/kmsg, on /dev/null with scripted read() answers (the
// device's EAGAIN and EPIPE), and read-only on the real /dev/kmsg when this machine lets it.
#include "host/kmsg_xid_reader.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>

namespace taolie::host {
namespace {

namespace fs = std::filesystem;

// ---- ParseKmsgRecord -----------------------------------------------------------------------

TEST(ParseKmsgRecordTest, FieldsMessageAndDictionary) {
  auto r = ParseKmsgRecord(
      "4,1207,98765432,-,caller=T812;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the "
      "bus.\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->priority, 4U);
  EXPECT_EQ(r->level(), 4U);
  EXPECT_EQ(r->facility(), 0U);
  EXPECT_EQ(r->seq, 1207U);
  EXPECT_EQ(r->monotonic_usec, 98765432U);
  EXPECT_FALSE(r->continuation);
  EXPECT_EQ(r->message, "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.");
  ASSERT_EQ(r->dictionary.size(), 2U);
  EXPECT_EQ(r->dictionary[0].first, "SUBSYSTEM");
  EXPECT_EQ(r->dictionary[0].second, "pci");
  EXPECT_EQ(r->dictionary[1].first, "DEVICE");
  EXPECT_EQ(r->dictionary[1].second, "+pci:0000:3b:00.0");
}

TEST(ParseKmsgRecordTest, FacilityContinuationAndSemicolonsInTheMessage) {
  auto r = ParseKmsgRecord("14,3,0,c;user; text; with ;semicolons");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->facility(), 1U);
  EXPECT_EQ(r->level(), 6U);
  EXPECT_TRUE(r->continuation);
  EXPECT_EQ(r->message, "user; text; with ;semicolons");
  EXPECT_TRUE(r->dictionary.empty());
  auto empty = ParseKmsgRecord("6,18446744073709551615,1,-;");
  ASSERT_TRUE(empty.ok()) << empty.error().ToString();
  EXPECT_EQ(empty->seq, 18446744073709551615ULL);
  EXPECT_EQ(empty->message, "");
}

TEST(ParseKmsgRecordTest, MalformedRecordsAreRefused) {
  struct Case {
    const char* text;
    const char* problem;
  };
  const Case cases[] = {
      {"", "no ';'"},
      {"garbage without any structure", "no ';'"},
      {"6,12,3400", "no ';'"},  // truncated before the flags
      {"6,12;short prefix", "fewer than 4 fields"},
      {"6,12,3400;three fields", "fewer than 4 fields"},
      {"x,12,3400,-;bad priority", "bad priority"},
      {"-1,12,3400,-;negative priority", "bad priority"},
      {"6,,3400,-;empty seq", "bad sequence number"},
      {"6,18446744073709551616,1,-;seq over 64 bits", "bad sequence number"},
      {"6,12,34a0,-;bad usec", "bad timestamp"},
      {"6,12,3400,;empty flags", "bad flags"},
      {"6,12,3400,x;unknown flag", "bad flags"},
      {"6,12,3400,-;text\nnot a dictionary line", "does not start with a space"},
  };
  for (const Case& c : cases) {
    auto r = ParseKmsgRecord(c.text);
    ASSERT_FALSE(r.ok()) << "accepted: " << c.text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.text;
    EXPECT_NE(r.error().message.find(c.problem), std::string::npos)
        << c.text << " -> " << r.error().message;
  }
}

// ---- NormalizePciBusId ---------------------------------------------------------------------

TEST(NormalizePciBusIdTest, KernelAndNvmlFormsMeet) {
  struct Case {
    const char* in;
    const char* out;  // nullptr = refused
  };
  const Case cases[] = {
      {"0000:3b:00", "00000000:3B:00.0"},
      {"PCI:0000:3b:00", "00000000:3B:00.0"},
      {"0000:3b:00.0", "00000000:3B:00.0"},
      {"00000000:3B:00.0", "00000000:3B:00.0"},
      {"3b:00", "00000000:3B:00.0"},
      {"0001:af:1f.7", "00000001:AF:1F.7"},
      {"c2d1:01:00", "0000C2D1:01:00.0"},
      {" 0000:db:00 ", "00000000:DB:00.0"},
      {"", nullptr},
      {"0000", nullptr},
      {"000000000:3b:00", nullptr},  // domain over 8 digits
      {"0000:3:00", nullptr},        // bus not 2 digits
      {"0000:3b:0", nullptr},
      {"0000:3b:20", nullptr},  // device over 0x1f
      {"0000:3b:00.8", nullptr},
      {"0000:3b:00.", nullptr},
      {"0000:zz:00", nullptr},
      {"0000:3b:00:00", nullptr},
  };
  for (const Case& c : cases) {
    auto got = NormalizePciBusId(c.in);
    if (c.out == nullptr) {
      EXPECT_FALSE(got.has_value()) << "'" << c.in << "' -> " << got.value_or("");
    } else {
      EXPECT_EQ(got.value_or("<refused>"), c.out) << "'" << c.in << "'";
    }
  }
}

// ---- ParseNvrmXidMessage -------------------------------------------------------------------

TEST(ParseNvrmXidMessageTest, DriverForms) {
  struct Case {
    const char* message;
    const char* bus_id;
    uint64_t xid;
    std::optional<uint32_t> pid;
    std::optional<std::string> name;
    const char* detail;
  };
  const Case cases[] = {
      {"NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.",
       "00000000:3B:00.0", 79, 1234, "python", "GPU has fallen off the bus."},
      {"NVRM: Xid (PCI:0000:86:00): 43, pid='<unknown>', name=<unknown>, Ch 00000010",
       "00000000:86:00.0", 43, std::nullopt, std::nullopt, "Ch 00000010"},
      {"NVRM: Xid (PCI:0000:86:00): 31, pid=<unknown>, name=<unknown>, Ch 00000008",
       "00000000:86:00.0", 31, std::nullopt, std::nullopt, "Ch 00000008"},
      {"NVRM: Xid (0000:3b:00): 13, Graphics Exception: ESR 0x404490=0x80000001",
       "00000000:3B:00.0", 13, std::nullopt, std::nullopt,
       "Graphics Exception: ESR 0x404490=0x80000001"},
      {"NVRM: Xid (PCI:0001:db:00.0): 48, pid=88, name=train.py, An uncorrectable double bit "
       "error (DBE) has been detected on GPU in the framebuffer at partition 2, subpartition 0.",
       "00000001:DB:00.0", 48, 88, "train.py",
       "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at "
       "partition 2, subpartition 0."},
      {"NVRM: Xid (PCI:0000:18:00): 94, pid=4321, name=pt_main_thread, Contained: SM (0x1). "
       "RST: No, D-RST: No",
       "00000000:18:00.0", 94, 4321, "pt_main_thread", "Contained: SM (0x1). RST: No, D-RST: No"},
      {"NVRM: Xid (PCI:0000:18:00): 119", "00000000:18:00.0", 119, std::nullopt, std::nullopt, ""},
      {"NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 "
       "(GPU Reset Required)",
       "00000000:18:00.0", 154, std::nullopt, std::nullopt,
       "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"},
      {"NVRM: Xid (PCI:0000:18:00): 45, name=nccl-worker, Ch 0000001c", "00000000:18:00.0", 45,
       std::nullopt, "nccl-worker", "Ch 0000001c"},
      {"NVRM: Xid (PCI:0000:18:00): 45, pid=notanumber, name=x, Ch 0000001c", "00000000:18:00.0",
       45, std::nullopt, "x", "Ch 0000001c"},
  };
  for (const Case& c : cases) {
    auto x = ParseNvrmXidMessage(c.message);
    ASSERT_TRUE(x.has_value()) << c.message;
    EXPECT_EQ(x->pci_bus_id, c.bus_id) << c.message;
    EXPECT_EQ(x->xid, c.xid) << c.message;
    EXPECT_EQ(x->pid, c.pid) << c.message;
    EXPECT_EQ(x->process_name, c.name) << c.message;
    EXPECT_EQ(x->detail, c.detail) << c.message;
    EXPECT_EQ(x->message, c.message);
    EXPECT_EQ(x->seq, 0U);
  }
}

TEST(ParseNvrmXidMessageTest, OtherAndBrokenMessagesAreNotXids) {
  const char* messages[] = {
      "",
      "garbage",
      "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15",
      "NVRM: GPU at PCI:0000:3b:00: GPU-5e4b0a5c-9c1c-4b7a-8c51-1f0f1d2e3a4b",
      "NVRM: GPU 0000:3b:00.0: RmInitAdapter failed! (0x22:0x56:762)",
      "nvidia-nvlink: Nvlink Core is being initialized, major device number 510",
      "pcieport 0000:00:01.0: AER: Corrected error received: 0000:3b:00.0",
      "nvidia 0000:3b:00.0: Xid 79 is not how the driver prints it",
      "NVRM: Xid",                                                  // truncated
      "NVRM: Xid (PCI:0000:3b:00",                                  // truncated inside the bus id
      "NVRM: Xid (PCI:0000:3b:00):",                                // truncated before the number
      "NVRM: Xid (PCI:0000:3b:00): ",                               // no number
      "NVRM: Xid (PCI:0000:3b:00): abc, text",                      // not a number
      "NVRM: Xid (PCI:0000:3b:00): 79abc, text",                    // number glued to text
      "NVRM: Xid (PCI:0000:3b:00): 99999999999999999999999, text",  // over 64 bits
      "NVRM: Xid (PCI:zz:3b:00): 79, text",                         // bad bus id
      "NVRM: Xid (): 79, text",
      "NVRM: Xid PCI:0000:3b:00: 79, text",  // no parentheses
      "user: NVRM: Xid (PCI:0000:3b:00): 79, quoted by someone else",
  };
  for (const char* m : messages) {
    auto x = ParseNvrmXidMessage(m);
    EXPECT_FALSE(x.has_value()) << "'" << m << "' parsed as xid " << x->xid;
  }
}

TEST(ParseKmsgXidRecordTest, OnlyKernelRecordsCount) {
  auto x = ParseKmsgXidRecord(
      "3,5521,1234567890,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has "
      "fallen off the bus.\n");
  ASSERT_TRUE(x.has_value());
  EXPECT_EQ(x->seq, 5521U);
  EXPECT_EQ(x->monotonic_usec, 1234567890U);
  EXPECT_EQ(x->xid, 79U);
  EXPECT_EQ(x->pci_bus_id, "00000000:3B:00.0");
  // The same text written by a user-space process (facility 1, LOG_USER) is not the driver's.
  EXPECT_FALSE(
      ParseKmsgXidRecord("12,5522,1234567999,-;NVRM: Xid (PCI:0000:3b:00): 79, fake").has_value());
  EXPECT_FALSE(ParseKmsgXidRecord("3,5523,1,-;usb 1-1: new high-speed USB device").has_value());
  EXPECT_FALSE(ParseKmsgXidRecord("3,55").has_value());  // truncated record
  EXPECT_FALSE(ParseKmsgXidRecord("NVRM: Xid (PCI:0000:3b:00): 79, no prefix").has_value());
}

// ---- KmsgXidReader over a regular file -----------------------------------------------------

std::string Rec(uint64_t seq, const std::string& message, int priority = 4) {
  return std::to_string(priority) + "," + std::to_string(seq) + "," + std::to_string(seq * 1000) +
         ",-;" + message + "\n";
}

std::string XidMsg(int xid, const std::string& bus = "0000:3b:00") {
  return "NVRM: Xid (PCI:" + bus + "): " + std::to_string(xid) + ", pid=77, name=python, detail";
}

std::vector<uint64_t> Seqs(const KmsgDrain& d) {
  std::vector<uint64_t> out;
  for (const auto& x : d.xids) out.push_back(x.seq);
  return out;
}

class KmsgXidReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taolie-kmsg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    opts_.path = dir_ + "/kmsg";
    opts_.boot_id_path = dir_ + "/boot_id";
    Write(opts_.boot_id_path, kBoot + "\n");
    Write(opts_.path, "");
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  static void Write(const std::string& path, const std::string& text, bool append = false) {
    std::ofstream f(path, append ? std::ios::app : std::ios::trunc);
    f << text;
    ASSERT_TRUE(f.good()) << path;
  }
  void Append(const std::string& text) { Write(opts_.path, text, true); }
  std::unique_ptr<KmsgXidReader> Reader() {
    auto r = KmsgXidReader::Create(opts_);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  static KmsgDrain MustDrain(KmsgXidReader& reader, const KmsgCursor& cursor) {
    auto d = reader.Drain(cursor);
    EXPECT_TRUE(d.ok()) << d.error().ToString();
    return d.ok() ? std::move(d).value() : KmsgDrain{};
  }

  const std::string kBoot = "0f4c1e2a-3b5d-4e6f-8a9b-0c1d2e3f4a5b";
  std::string dir_;
  KmsgXidReaderOptions opts_;
};

TEST_F(KmsgXidReaderTest, DrainsOnlyWhatIsNew) {
  Append(Rec(0, "Linux version 6.1.0-18-amd64"));
  Append(Rec(1, XidMsg(13)));
  Append(" SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n");
  Append(Rec(2, "usb 1-1: new high-speed USB device number 2 using xhci_hcd"));
  Append(Rec(3, XidMsg(79, "0000:86:00")));
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->boot_id(), kBoot);

  KmsgDrain first = MustDrain(*reader, {});
  EXPECT_EQ(Seqs(first), (std::vector<uint64_t>{1, 3}));
  ASSERT_EQ(first.xids.size(), 2U);
  EXPECT_EQ(first.xids[0].xid, 13U);
  EXPECT_EQ(first.xids[0].pci_bus_id, "00000000:3B:00.0");
  EXPECT_EQ(first.xids[0].monotonic_usec, 1000U);
  EXPECT_EQ(first.xids[1].xid, 79U);
  EXPECT_EQ(first.xids[1].pci_bus_id, "00000000:86:00.0");
  EXPECT_EQ(first.cursor, (KmsgCursor{kBoot, 4}));
  EXPECT_EQ(first.records_read, 4U);
  EXPECT_EQ(first.records_lost, 0U);
  EXPECT_FALSE(first.more);

  KmsgDrain second = MustDrain(*reader, first.cursor);
  EXPECT_TRUE(second.xids.empty());
  EXPECT_EQ(second.cursor, first.cursor);
  EXPECT_EQ(second.records_read, 0U);

  Append(Rec(4, "eth0: link up"));
  Append(Rec(5, XidMsg(48)));
  KmsgDrain third = MustDrain(*reader, second.cursor);
  EXPECT_EQ(Seqs(third), (std::vector<uint64_t>{5}));
  EXPECT_EQ(third.cursor, (KmsgCursor{kBoot, 6}));
  EXPECT_EQ(third.records_read, 2U);
}

TEST_F(KmsgXidReaderTest, ARestartedReaderSkipsWhatTheCursorHasSeen) {
  Append(Rec(0, XidMsg(13)) + Rec(1, XidMsg(31)) + Rec(2, XidMsg(43)));
  KmsgCursor persisted;
  {
    auto reader = Reader();
    ASSERT_NE(reader, nullptr);
    KmsgDrain d = MustDrain(*reader, {});
    EXPECT_EQ(Seqs(d), (std::vector<uint64_t>{0, 1, 2}));
    persisted = d.cursor;
  }
  Append(Rec(3, XidMsg(79)));
  auto reader = Reader();  // reads the file from its start again
  ASSERT_NE(reader, nullptr);
  KmsgDrain d = MustDrain(*reader, persisted);
  EXPECT_EQ(Seqs(d), (std::vector<uint64_t>{3}));
  EXPECT_EQ(d.records_read, 4U);  // the old records were read and skipped
  EXPECT_EQ(d.cursor, (KmsgCursor{kBoot, 4}));
}

TEST_F(KmsgXidReaderTest, AnotherBootsCursorReturnsEverythingAgain) {
  Append(Rec(0, XidMsg(13)) + Rec(1, "ok") + Rec(2, XidMsg(79)));
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgDrain first = MustDrain(*reader, {});
  ASSERT_EQ(Seqs(first), (std::vector<uint64_t>{0, 2}));
  // A cursor persisted before a reboot: its sequence numbers mean nothing now.
  KmsgDrain other = MustDrain(*reader, {"a-previous-boot", 100});
  EXPECT_EQ(Seqs(other), (std::vector<uint64_t>{0, 2}));
  EXPECT_EQ(other.cursor, (KmsgCursor{kBoot, 3}));
  EXPECT_EQ(other.records_lost, 0U);  // nothing to compare with on a new boot
  // An older cursor of this boot: the reader goes back and returns what it has not seen.
  KmsgDrain older = MustDrain(*reader, {kBoot, 1});
  EXPECT_EQ(Seqs(older), (std::vector<uint64_t>{2}));
  EXPECT_EQ(older.cursor, (KmsgCursor{kBoot, 3}));
}

TEST_F(KmsgXidReaderTest, EachDrainReadsAtMostItsBound) {
  for (uint64_t s = 0; s < 7; ++s) Append(Rec(s, XidMsg(static_cast<int>(13 + s))));
  opts_.max_records_per_drain = 3;
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgCursor cursor;
  std::vector<uint64_t> all;
  std::vector<uint64_t> per_call;
  for (int call = 0; call < 5; ++call) {  // bounded: 7 records need 3 calls
    KmsgDrain d = MustDrain(*reader, cursor);
    EXPECT_LE(d.records_read, 3U);
    per_call.push_back(d.xids.size());
    for (uint64_t s : Seqs(d)) all.push_back(s);
    cursor = d.cursor;
    if (!d.more) break;
  }
  EXPECT_EQ(per_call, (std::vector<uint64_t>{3, 3, 1}));
  EXPECT_EQ(all, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(cursor, (KmsgCursor{kBoot, 7}));
}

TEST_F(KmsgXidReaderTest, GarbageAndUserRecordsAreSkippedAndAHalfWrittenLineWaits) {
  Append("this is not a record\n\n");
  Append(Rec(0, XidMsg(13)));
  Append(Rec(1, XidMsg(79), /*priority=*/12));   // written by user space: not trusted
  Append("4,2,2000,-;NVRM: Xid (PCI:0000:3b:");  // the writer is not done yet
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgDrain first = MustDrain(*reader, {});
  EXPECT_EQ(Seqs(first), (std::vector<uint64_t>{0}));
  EXPECT_EQ(first.cursor, (KmsgCursor{kBoot, 2}));
  Append("00): 79, GPU has fallen off the bus.\n");
  KmsgDrain second = MustDrain(*reader, first.cursor);
  ASSERT_EQ(Seqs(second), (std::vector<uint64_t>{2}));
  EXPECT_EQ(second.xids[0].detail, "GPU has fallen off the bus.");
  EXPECT_EQ(second.xids[0].pci_bus_id, "00000000:3B:00.0");
}

TEST_F(KmsgXidReaderTest, MissingSequenceNumbersAreCountedAsLost) {
  Append(Rec(0, "a") + Rec(1, "b"));
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgDrain first = MustDrain(*reader, {});
  ASSERT_EQ(first.cursor, (KmsgCursor{kBoot, 2}));
  Append(Rec(9, XidMsg(79)) + Rec(10, "c"));  // 2..8 were overwritten before this read
  KmsgDrain second = MustDrain(*reader, first.cursor);
  EXPECT_EQ(Seqs(second), (std::vector<uint64_t>{9}));
  EXPECT_EQ(second.records_lost, 7U);
  EXPECT_EQ(second.cursor, (KmsgCursor{kBoot, 11}));
}

TEST_F(KmsgXidReaderTest, AGapAfterAnEmptyFirstReadIsNotALoss) {
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgDrain empty = MustDrain(*reader, {});
  ASSERT_EQ(empty.cursor, (KmsgCursor{kBoot, 0}));
  Append(Rec(900, XidMsg(79)) + Rec(901, "c"));  // nothing before 900 was ever seen
  KmsgDrain next = MustDrain(*reader, empty.cursor);
  EXPECT_EQ(Seqs(next), (std::vector<uint64_t>{900}));
  EXPECT_EQ(next.records_lost, 0U);
  EXPECT_EQ(next.cursor, (KmsgCursor{kBoot, 902}));
}

TEST_F(KmsgXidReaderTest, CreateErrorsNameThePath) {
  KmsgXidReaderOptions missing = opts_;
  missing.path = dir_ + "/no-such-kmsg";
  auto r = KmsgXidReader::Create(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find(missing.path), std::string::npos) << r.error().message;

  KmsgXidReaderOptions no_boot = opts_;
  no_boot.boot_id_path = dir_ + "/no-boot-id";
  r = KmsgXidReader::Create(no_boot);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("no-boot-id"), std::string::npos) << r.error().message;

  Write(opts_.boot_id_path, "\n");
  r = KmsgXidReader::Create(opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  Write(opts_.boot_id_path, kBoot + "\n");

  KmsgXidReaderOptions dir = opts_;
  dir.path = dir_;
  r = KmsgXidReader::Create(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition) << r.error().ToString();

  KmsgXidReaderOptions zero = opts_;
  zero.max_records_per_drain = 0;
  r = KmsgXidReader::Create(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(KmsgXidReaderTest, UnreadableLogIsPermissionDenied) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(opts_.boot_id_path.c_str(), 0644), 0);
  ASSERT_EQ(::chmod(opts_.path.c_str(), 0000), 0);
  if (::geteuid() != 0) {
    auto r = KmsgXidReader::Create(opts_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
    return;
  }
  // Root reads any file: drop to an unprivileged uid in a child and report through its exit
  // status (0 = PermissionDenied naming the path, 2 = opened, 3 = another error, 4 = setuid).
  pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(4);
    auto r = KmsgXidReader::Create(opts_);
    if (r.ok()) ::_exit(2);
    bool good = r.error().code == ErrorCode::kPermissionDenied &&
                r.error().message.find(opts_.path) != std::string::npos;
    ::_exit(good ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- KmsgXidReader on a character device, with scripted answers -----------------------------

// Plays /dev/kmsg: each read() returns one scripted record, or fails with a scripted errno.
struct ScriptedDevice {
  struct Answer {
    std::string record;  // returned when err == 0
    int err = 0;
  };
  std::deque<Answer> answers;
  int reads = 0;
  std::function<ssize_t(int, char*, size_t)> Fn() {
    return [this](int, char* buf, size_t len) -> ssize_t {
      ++reads;
      if (answers.empty()) {
        errno = EAGAIN;
        return -1;
      }
      Answer a = answers.front();
      answers.pop_front();
      if (a.err != 0) {
        errno = a.err;
        return -1;
      }
      if (a.record.size() > len) {
        errno = EINVAL;
        return -1;
      }
      std::copy(a.record.begin(), a.record.end(), buf);
      return static_cast<ssize_t>(a.record.size());
    };
  }
};

TEST_F(KmsgXidReaderTest, DeviceRecordsEagainAndEpipe) {
  ScriptedDevice dev;
  dev.answers = {
      {Rec(40, XidMsg(13)) + " SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n"},
      {Rec(41, "not an xid")},
      {"", EPIPE},  // 42..49 overwritten while we were away
      {"", EINTR},
      {Rec(50, XidMsg(79))},
      {"", EAGAIN},
      {Rec(51, XidMsg(94))},  // arrives after the end: the next Drain's
  };
  opts_.path = "/dev/null";  // a character device: the reader takes one record per read()
  opts_.read = dev.Fn();
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  KmsgDrain first = MustDrain(*reader, {kBoot, 40});
  EXPECT_EQ(Seqs(first), (std::vector<uint64_t>{40, 50}));
  EXPECT_EQ(first.records_lost, 8U);
  EXPECT_EQ(first.records_read, 3U);
  EXPECT_EQ(first.cursor, (KmsgCursor{kBoot, 51}));
  EXPECT_FALSE(first.more);
  EXPECT_EQ(dev.reads, 6);
  KmsgDrain second = MustDrain(*reader, first.cursor);
  EXPECT_EQ(Seqs(second), (std::vector<uint64_t>{51}));
  EXPECT_EQ(second.records_lost, 0U);
}

TEST_F(KmsgXidReaderTest, DeviceReadErrorIsUnavailableAndTheNextDrainGoesOn) {
  ScriptedDevice dev;
  dev.answers = {{Rec(0, XidMsg(13))}, {"", EIO}, {Rec(1, XidMsg(79))}};
  opts_.path = "/dev/null";
  opts_.read = dev.Fn();
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  auto failed = reader->Drain({});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(failed.error().message.find("/dev/null"), std::string::npos);
  // The caller kept its old cursor; the reader goes back to the start and reads it all again.
  KmsgDrain d = MustDrain(*reader, {});
  EXPECT_EQ(Seqs(d), (std::vector<uint64_t>{1}));  // the script has no rewind: 0 was consumed
  EXPECT_EQ(d.cursor, (KmsgCursor{kBoot, 2}));
}

// ---- The real /dev/kmsg, read only ---------------------------------------------------------

TEST(KmsgXidReaderDeviceTest, ReadsTheRealKernelLog) {
  KmsgXidReaderOptions opts;  // /dev/kmsg and the real boot id
  auto reader = KmsgXidReader::Create(opts);
  if (!reader.ok() && (reader.error().code == ErrorCode::kNotFound ||
                       reader.error().code == ErrorCode::kPermissionDenied)) {
    GTEST_SKIP() << reader.error().ToString();
  }
  ASSERT_TRUE(reader.ok()) << reader.error().ToString();
  KmsgCursor cursor;
  uint64_t read = 0;
  bool more = true;
  for (int call = 0; call < 1000 && more; ++call) {  // the ring holds far fewer records
    auto d = (*reader)->Drain(cursor);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    for (const auto& x : d->xids) EXPECT_EQ(x.pci_bus_id.size(), 16U) << x.message;
    EXPECT_GE(d->cursor.next_seq, cursor.next_seq);
    read += d->records_read;
    cursor = d->cursor;
    more = d->more;
  }
  EXPECT_FALSE(more);
  EXPECT_GT(read, 0U);  // the ring always holds records
  EXPECT_EQ(cursor.boot_id, (*reader)->boot_id());
  EXPECT_EQ(cursor.boot_id.size(), 36U);  // a UUID
  // A fresh reader with the cursor skips all that was read.
  auto again = KmsgXidReader::Create(opts);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  KmsgCursor next = cursor;
  for (int call = 0; call < 1000; ++call) {
    auto d = (*again)->Drain(next);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    for (const auto& x : d->xids) EXPECT_GE(x.seq, cursor.next_seq);
    next = d->cursor;
    if (!d->more) break;
  }
  EXPECT_GE(next.next_seq, cursor.next_seq);
}

}  // namespace
}  // namespace taolie::host
