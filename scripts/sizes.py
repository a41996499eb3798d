#!/usr/bin/env python3
"""Source sizes a reader can hold: the largest files and the longest functions under src/.

  scripts/sizes.py                  src/ of this checkout, default limits
  scripts/sizes.py --max-file 1000 --max-function 150 --list-over 80 [--top 10] [DIR ...]

Prints the `--top` largest *.cc/*.h files and every function longer than `--list-over` lines,
then each file over `--max-file` lines and each function over `--max-function` lines; exits 1
when there is any such file or function, 0 otherwise (2 on bad usage).

A function's length counts the lines from its opening brace to its matching closing brace,
both included. Functions are the definitions at file, namespace and class scope (free
functions, member functions in or out of their class, constructors with their initializer
lists, operators, templates, gtest-style macros followed by a body). A lambda, a local class or
a nested block belongs to the function around it. Comments, string and character literals
(raw strings included) and preprocessor lines are blanked before braces and parentheses are
matched, so braces in them do not count.
"""

import argparse
import bisect
import os
import re
import sys

SOURCE_SUFFIXES = (".cc", ".h")

# ---- blanking: comments, literals and preprocessor lines become spaces (newlines kept) ----

_RAW_PREFIXES = ("R", "u8R", "uR", "UR", "LR")


def _word_before(text, i):
    """The run of identifier/number characters (and '.') that ends just before text[i]."""
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_."):
        j -= 1
    return text[j:i]


def blank(text):
    """Returns `text` with comments, string/char literals and preprocessor lines replaced by
    spaces. Newlines are kept and every other character keeps its offset, so positions and line
    numbers stay valid. A literal keeps its quotes so that `extern "C"` stays recognisable."""
    out = list(text)
    n = len(text)
    i = 0
    line_start = True  # only whitespace since the last newline (outside literals/comments)

    def wipe(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    def skip_quoted(i, quote):
        """text[i] is the opening quote; returns the index after the closing one."""
        k = i + 1
        while k < n:
            ch = text[k]
            if ch == "\\":
                k += 2
                continue
            if ch == quote or ch == "\n":  # an unterminated literal ends at the line's end
                return k + 1 if ch == quote else k
            k += 1
        return n

    def skip_block_comment(i):
        end = text.find("*/", i + 2)
        return n if end < 0 else end + 2

    def skip_line_comment(i):
        k = i
        while k < n:
            if text[k] == "\n" and text[k - 1] != "\\":
                return k
            k += 1
        return n

    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "\n":
            line_start = True
            i += 1
            continue
        if ch in " \t\r\f\v":
            i += 1
            continue
        if ch == "/" and nxt == "/":
            end = skip_line_comment(i)
            wipe(i, end)
            i = end
            continue
        if ch == "/" and nxt == "*":
            end = skip_block_comment(i)
            wipe(i, end)
            i = end
            continue
        if ch == "#" and line_start:
            # A directive runs to the first newline not escaped by a backslash; comments and
            # literals inside it are skipped as such so that their newlines do not end it.
            k = i
            while k < n and not (text[k] == "\n" and text[k - 1] != "\\"):
                if text.startswith("/*", k):
                    k = skip_block_comment(k)
                elif text.startswith("//", k):
                    k = skip_line_comment(k)
                elif text[k] in "\"'":
                    k = skip_quoted(k, text[k])
                else:
                    k += 1
            wipe(i, k)
            i = k
            continue
        line_start = False
        if ch == '"':
            prefix = _word_before(text, i)
            if prefix in _RAW_PREFIXES:
                open_paren = text.find("(", i + 1)
                delim = text[i + 1:open_paren] if open_paren >= 0 else ""
                end = text.find(")" + delim + '"', open_paren + 1) if open_paren >= 0 else -1
                end = n if end < 0 else end + len(delim) + 2
                wipe(i + 1, end - 1)
                i = end
                continue
            end = skip_quoted(i, '"')
            wipe(i + 1, end - 1)
            i = end
            continue
        if ch == "'":
            word = _word_before(text, i)
            if word and word[0].isdigit():  # digit separator: 1'000'000
                i += 1
                continue
            end = skip_quoted(i, "'")
            wipe(i + 1, end - 1)
            i = end
            continue
        i += 1
    return "".join(out)


# ---- headers: what the text before a '{' at file/namespace/class scope declares ----

_OPERATOR = re.compile(
    r"\boperator\s*(?:\(\s*\)|\[\s*\]|->\*?|<=>|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||\+\+|--|"
    r"[-+*/%^&|~!=<>,]=?|new\s*(?:\[\s*\])?|delete\s*(?:\[\s*\])?|\"\s*\"\s*\w+|"
    r"[A-Za-z_][\w:<>,\s*&]*?(?=\s*\())"
)
_NOT_A_NAME = {"decltype", "alignas", "alignof", "sizeof", "noexcept", "__attribute__",
               "__declspec", "requires", "static_assert"}
_TAIL = re.compile(
    r"^(?:\s+|const\b|volatile\b|noexcept\b(?:\s*\(\))?|override\b|final\b|mutable\b|"
    r"constexpr\b|try\b|&&|&|\[\[[^\]]*\]\]|__attribute__\s*\(\))*(?:(?:~~|requires\b).*)?$",
    re.S,
)
_CLASS = re.compile(r"\b(?:class|struct|union)\b(?:\s*\[\[[^\]]*\]\])?\s*([A-Za-z_]\w*)?")
_NAMESPACE = re.compile(r"(?:\bnamespace\b|\bextern\s*\")")


def _normalize(header):
    """Operators become plain names (`__opN__`, N indexing the returned list of their texts) and
    '->' loses its '>', so that parentheses and angle brackets can be counted."""
    ops = []

    def rename(m):
        symbol = re.sub(r"\s+", " ", m.group(0)[len("operator"):]).strip()
        ops.append("operator" + (" " if symbol[:1].isalpha() else "") + symbol)
        return f"__op{len(ops) - 1}__"

    return _OPERATOR.sub(rename, header).replace("->", "~~"), ops


def _top_level_groups(header):
    """(open, close) of each parenthesised group outside any (), <> or []."""
    groups = []
    paren = angle = square = 0
    start = -1
    for i, ch in enumerate(header):
        if ch == "(":
            if paren == 0 and angle == 0 and square == 0:
                start = i
            paren += 1
        elif ch == ")":
            paren = max(paren - 1, 0)
            if paren == 0 and start >= 0:
                groups.append((start, i))
                start = -1
        elif paren == 0 and ch == "<":
            angle += 1
        elif paren == 0 and ch == ">":
            angle = max(angle - 1, 0)
        elif paren == 0 and ch == "[":
            square += 1
        elif paren == 0 and ch == "]":
            square = max(square - 1, 0)
    return groups


def _collapse_parens(text):
    """'noexcept(a(b))' -> 'noexcept()': the contents of every group dropped."""
    out = []
    depth = 0
    for ch in text:
        if ch == "(":
            if depth == 0:
                out.append("(")
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
            if depth == 0:
                out.append(")")
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def classify(header):
    """('function', name, in_initializer_list) | ('container', class_name_or_None) | ('other',)."""
    h, ops = _normalize(header)

    def restore(name):
        name = re.sub(r"\s+", "", name)  # "a :: b" -> "a::b"
        return re.sub(r"__op(\d+)__", lambda m: ops[int(m.group(1))], name)

    for open_, close in _top_level_groups(h):
        # The parameter list follows the name; `x = [](int) {` has none, nor `decltype(...)`.
        before = h[:open_].rstrip()
        name = re.search(r"([~\w]+(?:\s*::\s*[~\w]+)*)\s*(?:<[^()]*>)?$", before)
        if not name or name.group(1).split("::")[-1].strip() in _NOT_A_NAME:
            continue
        tail = _collapse_parens(h[close + 1:])
        stripped = tail.lstrip()
        if stripped.startswith(":") and not stripped.startswith("::"):
            return ("function", restore(name.group(1)), True)
        if _TAIL.match(tail):
            return ("function", restore(name.group(1)), False)
        break
    if _NAMESPACE.search(h):
        return ("container", None)
    m = _CLASS.search(h)
    if m:
        return ("container", m.group(1))
    return ("other",)


# ---- the scan ----


class Function:
    def __init__(self, name, first_line, last_line):
        self.name = name
        self.first_line = first_line  # line of the opening brace, 1-based
        self.last_line = last_line    # line of the matching closing brace

    @property
    def length(self):
        return self.last_line - self.first_line + 1

    def __repr__(self):
        return f"Function({self.name!r}, {self.first_line}, {self.last_line})"


def _matching_brace(code, i):
    depth = 0
    for k in range(i, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def functions(text):
    """Every function definition at file, namespace or class scope of C++ source `text`."""
    code = blank(text)
    newlines = [i for i, ch in enumerate(code) if ch == "\n"]

    def line_of(pos):
        return bisect.bisect_right(newlines, pos - 1) + 1

    found = []
    scopes = []  # class name (or None for a namespace) of each open container
    header_start = 0
    i = 0
    n = len(code)
    while i < n:
        ch = code[i]
        if ch == ";":
            header_start = i + 1
        elif ch == "}":
            if scopes:
                scopes.pop()
            header_start = i + 1
        elif ch == "{":
            kind = classify(code[header_start:i])
            if kind[0] == "function":
                _, name, in_init_list = kind
                prev = code[header_start:i].rstrip()[-1:]
                if in_init_list and (prev.isalnum() or prev in "_>"):
                    i = _matching_brace(code, i) + 1  # a member's brace initializer
                    continue
                end = _matching_brace(code, i)
                owner = "::".join(s for s in scopes if s)
                found.append(Function(f"{owner}::{name}" if owner else name, line_of(i),
                                      line_of(end)))
                i = end + 1
                header_start = i
                continue
            if kind[0] == "container":
                scopes.append(kind[1])
                header_start = i + 1
            else:
                i = _matching_brace(code, i) + 1
                header_start = i
                continue
        i += 1
    return found


def count_lines(text):
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


# ---- the report ----


def source_files(roots):
    for root in roots:
        for directory, subdirs, names in os.walk(root):
            subdirs.sort()
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(directory, name)


def main(argv=None):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="*", help="folders to walk (default: src/ of the checkout)")
    parser.add_argument("--max-file", type=int, default=1000, help="most lines a file may have")
    parser.add_argument("--max-function", type=int, default=150,
                        help="most lines a function may have")
    parser.add_argument("--list-over", type=int, default=80,
                        help="list every function longer than this")
    parser.add_argument("--top", type=int, default=10, help="how many of the largest files")
    args = parser.parse_args(argv)
    roots = args.roots or [os.path.join(repo, "src")]
    for root in roots:
        if not os.path.isdir(root):
            parser.error(f"not a directory: {root}")

    files = []  # (lines, path)
    funcs = []  # (length, path, Function)
    for path in source_files(roots):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        shown = os.path.relpath(path)
        files.append((count_lines(text), shown))
        funcs.extend((fn.length, shown, fn) for fn in functions(text))
    files.sort(key=lambda e: (-e[0], e[1]))
    funcs.sort(key=lambda e: (-e[0], e[1], e[2].first_line))

    print(f"{len(files)} files, {sum(n for n, _ in files)} lines, {len(funcs)} functions")
    print(f"\nThe {min(args.top, len(files))} largest files:")
    for lines, path in files[:args.top]:
        print(f"  {lines:6d}  {path}")
    long_funcs = [e for e in funcs if e[0] > args.list_over]
    print(f"\nFunctions over {args.list_over} lines: {len(long_funcs)}")
    for length, path, fn in long_funcs:
        print(f"  {length:6d}  {path}:{fn.first_line}  {fn.name}")

    over = [f"file {p}: {n} lines (limit {args.max_file})" for n, p in files if n > args.max_file]
    over += [f"function {fn.name} at {p}:{fn.first_line}: {n} lines (limit {args.max_function})"
             for n, p, fn in funcs if n > args.max_function]
    if over:
        print(f"\nOver the limits ({len(over)}):")
        for line in over:
            print(f"  {line}")
        return 1
    print(f"\nNo file over {args.max_file} lines, no function over {args.max_function}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
