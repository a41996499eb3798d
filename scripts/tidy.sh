#!/usr/bin/env bash
# Runs clang-tidy (checks in .clang-tidy) over the compile database of a build.
#
#   scripts/tidy.sh                 the folders kept clean; exits 1 on any finding
#   scripts/tidy.sh src/agent ...   those folders (files under them, and their headers)
#   scripts/tidy.sh --all           every folder under src/; prints the count per folder
#
# Environment: BUILD_DIR (default build/; must hold compile_commands.json, i.e. be configured),
# JOBS (default nproc). Findings are printed once each (a header's finding is reported once,
# however many files include it), then a count per folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
clean=(src/common src/config src/host src/gpu src/docker src/telemetry)

if [ "${1:-}" = --all ]; then
  folders=()
  for d in src/*/; do folders+=("${d%/}"); done
elif [ $# -gt 0 ]; then
  folders=("${@%/}")
else
  folders=("${clean[@]}")
fi

command -v clang-tidy >/dev/null || { echo "clang-tidy not installed (scripts/install-deps.sh)" >&2; exit 2; }
db="$build/compile_commands.json"
[ -f "$db" ] || { echo "no $db: configure a build first (cmake -S . -B $build -G Ninja)" >&2; exit 2; }

# Source files of the compile database that lie under the chosen folders.
regex=$(printf '%s|' "${folders[@]}")
regex="^$root/(${regex%|})/"
mapfile -t files < <(python3 - "$db" "$regex" <<'EOF'
import json, re, sys, os
db, rx = sys.argv[1], re.compile(sys.argv[2])
seen = set()
for e in json.load(open(db)):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    if rx.match(f) and f not in seen:
        seen.add(f)
        print(f)
EOF
)
[ ${#files[@]} -gt 0 ] || { echo "no compiled files under: ${folders[*]}" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "clang-tidy: ${#files[@]} files under ${folders[*]} (-j$jobs)" >&2
# Headers count when they belong to a chosen folder; generated and system headers never do.
# A file clang-tidy cannot process (compile error, crash) fails the run: its findings are unknown.
failed=0
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -n 1 clang-tidy -p "$build" --quiet --header-filter="$regex" \
  >"$out" 2> >(grep -vE '^[0-9]+ warnings? generated|^Suppressed |^Use -header-filter' >&2) ||
  failed=1

(python3 - "$out" "$root" "$regex" "${folders[@]}" <<'EOF'
import collections, re, sys
out, root, rx = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
folders = sys.argv[4:]
diag = re.compile(r"^(/[^:]+):(\d+):(\d+): (warning|error): (.*)$")
seen, blocks, cur = set(), [], None
for line in open(out, errors="replace"):
    m = diag.match(line)
    if m:
        key = (m.group(1), m.group(2), m.group(3), m.group(5))
        cur = None
        if rx.match(m.group(1)) and key not in seen:
            seen.add(key)
            cur = [line.replace(root + "/", "")]
            blocks.append((m.group(1), cur))
    elif cur is not None and not line.startswith(("Suppressed ", "Use -header-filter")):
        cur.append(line)
counts = collections.Counter()
for path, lines in blocks:
    sys.stdout.write("".join(lines))
    rel = path[len(root) + 1:]
    counts[next((f for f in folders if rel.startswith(f + "/")), rel)] += 1
print("clang-tidy findings per folder:")
for f in sorted(set(folders) | set(counts)):
    print(f"  {f}: {counts[f]}")
print(f"  total: {sum(counts.values())}")
sys.exit(1 if counts else 0)
EOF
) || exit 1
if [ $failed = 1 ]; then
  echo "clang-tidy failed on some files (messages above): findings incomplete" >&2
  exit 1
fi
