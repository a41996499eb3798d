#!/usr/bin/env python3
"""Self-test of scripts/sizes.py:  python3 -m unittest scripts/sizes_test.py  (from the root)."""

import contextlib
import io
import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sizes  # noqa: E402  (the path above first)


def found(source):
    """{name: length} of the functions in `source` (dedented)."""
    return {f.name: f.length for f in sizes.functions(textwrap.dedent(source))}


class FunctionLengthTest(unittest.TestCase):
    def test_brace_to_brace_both_lines_counted(self):
        self.assertEqual(found("""\
            int Add(int a,
                    int b)
            {
              return a + b;
            }
            void Empty() {}
            """), {"Add": 3, "Empty": 1})

    def test_braces_in_comments_and_literals_do_not_count(self):
        self.assertEqual(found("""\
            const char* Text() {
              // a } in a comment
              /* and { here
                 */
              const char* s = "}\\"{";
              char c = '}';
              char q = '\\'';
              auto raw = R"x(
                } )" "(
              )x";
              return s;
            }
            int After() { return 1; }
            """), {"Text": 12, "After": 1})

    def test_digit_separators_are_not_char_literals(self):
        self.assertEqual(found("""\
            long Big() {
              return 1'000'000 + 0x7f'ff + Get('}');
            }
            char Brace() { return '{'; }
            """), {"Big": 3, "Brace": 1})

    def test_preprocessor_lines_are_skipped(self):
        self.assertEqual(found("""\
            #define OPEN {
            #define LONG_ONE(x) \\
              if (x) {
            #include "a{b}.h"
            int F() {
              return 2;
            }
            """), {"F": 3})

    def test_lambdas_and_local_classes_belong_to_their_function(self):
        self.assertEqual(found("""\
            int Outer() {
              auto f = [](int x) {
                return x + 1;
              };
              struct Local {
                int Get() { return 3; }
              };
              return f(Local{}.Get());
            }
            const auto kAtNamespace = [](int x) {
              return x;
            };
            int kTable[] = {1, 2,
                            3};
            """), {"Outer": 9})

    def test_members_constructors_and_operators(self):
        self.assertEqual(found("""\
            namespace a::b {
            class Reader : public ::Base {
             public:
              Reader(int n, int m)
                  : n_{n},
                    m_(m) {
                Check();
              }
              ~Reader() { Close(); }
              bool operator==(const Reader& o) const noexcept(true) {
                return n_ == o.n_;
              }
              int operator()(int x) const { return x; }
              explicit operator bool() const { return n_ > 0; }
              template <typename Fn = int>
              void Each(Fn&& fn) {
                fn(n_);
              }
             private:
              struct Inner {
                int Value() const {
                  return 1;
                }
              };
              int n_{0};
              int m_ = 0;
            };
            }  // namespace a::b
            """), {"Reader::Reader": 3, "Reader::~Reader": 1, "Reader::operator==": 3,
                   "Reader::operator()": 1, "Reader::operator bool": 1, "Reader::Each": 3,
                   "Reader::Inner::Value": 3})

    def test_out_of_class_definitions_and_return_types(self):
        self.assertEqual(found("""\
            extern "C" {
            int CFunc(void) {
              return 0;
            }
            }
            namespace {
            enum class Kind { kA, kB };
            PACKED(1) struct Packed {
              int Size() const { return 1; }
            };
            std::function<void()> Make() {
              return [] {};
            }
            auto Trailing(int x) -> decltype(x) {
              return x;
            }
            std::map<int, std::vector<int>> Nested() { return {}; }
            decltype(auto) Deduced() { return 1; }
            }  // namespace
            Result<int> Store::Load(const std::string& key) const& {
              if (key.empty()) {
                return 0;
              }
              return 1;
            }
            Store::Store(Config c) : Base(std::move(c)), cache_{} {
            }
            """), {"CFunc": 3, "Packed::Size": 1, "Make": 3, "Trailing": 3, "Nested": 1, "Deduced": 1,
                   "Store::Load": 6,
                   "Store::Store": 2})


class MainTest(unittest.TestCase):
    def run_main(self, files, *flags):
        with tempfile.TemporaryDirectory() as root:
            for name, text in files.items():
                with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                    f.write(text)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = sizes.main([*flags, root])
            return rc, out.getvalue()

    @staticmethod
    def function_of(lines):
        return "int F() {\n" + "  x();\n" * (lines - 2) + "}\n"

    def test_within_the_limits_exits_zero_and_lists_long_functions(self):
        rc, out = self.run_main({"a.cc": self.function_of(5), "b.h": "int x;\n"},
                                "--max-file", "10", "--max-function", "5", "--list-over", "4")
        self.assertEqual(rc, 0, out)
        self.assertIn("       5  ", out)
        self.assertRegex(out, r"a\.cc:1  F")
        self.assertIn("No file over 10 lines, no function over 5.", out)

    def test_a_function_over_the_limit_fails(self):
        rc, out = self.run_main({"a.cc": self.function_of(6)}, "--max-function", "5")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"function F at .*a\.cc:1: 6 lines \(limit 5\)")

    def test_a_file_over_the_limit_fails(self):
        rc, out = self.run_main({"big.h": "int x;\n" * 11, "other.txt": "x\n" * 50},
                                "--max-file", "10")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"file .*big\.h: 11 lines \(limit 10\)")
        self.assertNotIn("other.txt", out)


class TreeTest(unittest.TestCase):
    # Issue 18 item 5: the folders already within the limits stay there (config_loader.cc had
    # 1,282 lines and a 411-line Validate; pg_store.cc 1,680 lines and a 211-line
    # ManagedPostgres::Start; loops.cc 990 lines and a 202-line GpuHealthLoop::RunOnce). The
    # last folders over them (agent, engine, gpu) join the list as they are split.
    WITHIN = ["cli", "common", "config", "docker", "doctor", "domain", "health", "host",
              "isolation", "loops", "platform", "rules", "runtime", "sim", "store", "telemetry"]

    def test_these_libraries_are_within_the_limits(self):
        src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
        for folder in self.WITHIN:
            with self.subTest(folder=folder):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    rc = sizes.main([os.path.join(src, folder)])
                self.assertEqual(rc, 0, out.getvalue())


if __name__ == "__main__":
    unittest.main()
