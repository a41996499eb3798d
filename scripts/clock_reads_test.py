"""Issue 18 item 2: nothing outside src/common reads std::chrono's clocks directly. Logic reads
the Clock seam (src/common/clock.h); real-time waits on the operating system use SteadyNow /
WallNow (src/common/real_time.h). Run: python3 -m unittest clock_reads_test (in scripts/)."""
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRECT = re.compile(r"\b(?:steady_clock|system_clock|high_resolution_clock|file_clock|"
                    r"file_time_type::clock|utc_clock|[A-Za-z_]*Clock)::now\s*\(")


def direct_reads(src):
    found = []
    for folder, _, files in os.walk(src):
        rel = os.path.relpath(folder, src)
        if rel == "common" or rel.startswith("common" + os.sep):
            continue
        for name in files:
            if not name.endswith((".cc", ".h")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    code = line.split("//", 1)[0]
                    if DIRECT.search(code):
                        found.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    return found


class ClockReadsTest(unittest.TestCase):
    def test_the_pattern_catches_what_it_should(self):
        for line in ["auto t = std::chrono::steady_clock::now();", "Clock::now() + d",
                     "SteadyClock::now()", "std::chrono::system_clock::now()",
                     "std::filesystem::file_time_type::clock::now()"]:
            self.assertTrue(DIRECT.search(line), line)
        for line in ["clock_.Now()", "SteadyNow()", "d_.clock.Monotonic()"]:
            self.assertFalse(DIRECT.search(line), line)

    def test_no_direct_clock_read_outside_common(self):
        found = direct_reads(os.path.join(ROOT, "src"))
        self.assertEqual(found, [], "\n".join(found))


if __name__ == "__main__":
    unittest.main()
