#!/usr/bin/env bash
# clang-format (.clang-format: Google, 100 columns) over the project's C++ sources.
#
#   scripts/format.sh           formats every tracked .cc/.h in place
#   scripts/format.sh --check   changes nothing; lists the files that differ and exits 1
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed (scripts/install-deps.sh)" >&2; exit 2; }
mapfile -t files < <(git ls-files -- 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc' 'bench/*.h' 'fuzz/*.cc' 'fuzz/*.h')
if [ "${1:-}" = --check ]; then
  bad=$(printf '%s\n' "${files[@]}" | xargs clang-format --dry-run 2>&1 | grep -oE '^[^: "<]+\.(cc|h):[0-9]+:' | sed 's/:[0-9]*:$//' | sort -u || true)
  if [ -n "$bad" ]; then
    echo "not formatted (run scripts/format.sh):" >&2
    echo "$bad" >&2
    exit 1
  fi
  echo "clang-format: ${#files[@]} files formatted" >&2
else
  printf '%s\n' "${files[@]}" | xargs clang-format -i
fi
