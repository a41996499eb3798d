#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan into build-fuzz/, then runs
# each on its seed corpus (fuzz/corpus/<target>/) for FUZZ_SECONDS (60) or FUZZ_RUNS (100000)
# executions, whichever comes first. Any crash, leak, sanitizer report, timeout or violated
# property fails the script; the input is kept under build-fuzz/artifacts/.
# Prints per target the executions reached and the seconds taken.
#
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh fuzz_commands   only these
#
# Environment: BUILD_DIR (default build-fuzz/), FUZZ_SECONDS, FUZZ_RUNS, JOBS (default nproc:
# the build's parallelism and how many targets run side by side).
# Needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh with TAOLIE_EXTRA_PKGS).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-100000}
jobs=${JOBS:-$(nproc)}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_commands fuzz_deploy_payload fuzz_kmsg fuzz_smi fuzz_docker_inspect
    fuzz_pull_progress)
fi

command -v clang++ >/dev/null || { echo "clang++ not installed (TAOLIE_EXTRA_PKGS=\"clang libclang-rt-14-dev\" scripts/install-deps.sh)" >&2; exit 2; }

# -O1 and line tables: the sanitizers' reports name file:line, and the build stays short.
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DTAOLIE_FUZZ=ON -DTAOLIE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
rm -rf "$build/artifacts" && mkdir -p "$build/artifacts"

run_one() {  # target: runs it, writes "<executions> <seconds> <ok|FAILED>" to $build/<target>.result
  local t=$1 start=$SECONDS status=ok
  local seeds="$root/fuzz/corpus/$t" work="$build/corpus/$t" log="$build/$t.log"
  # New inputs go to a scratch corpus; the committed seeds are only read.
  rm -rf "$work" "$build/$t.result" && mkdir -p "$work"
  "$build/fuzz/$t" -max_total_time="$seconds" -runs="$runs" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1 || status=FAILED
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "${execs:-?} $((SECONDS - start)) $status" >"$build/$t.result"
}

# The targets run side by side, JOBS at a time (each is one process on one core).
for t in "${targets[@]}"; do
  [ -d "$root/fuzz/corpus/$t" ] || { echo "no seed corpus fuzz/corpus/$t" >&2; exit 2; }
done
start_all=$SECONDS
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "== $t (up to ${seconds} s or ${runs} executions)"
  run_one "$t" &
  running=$((running + 1))
done
wait

rc=0
results=()
for t in "${targets[@]}"; do
  read -r execs secs status <"$build/$t.result"
  if [ "$status" != ok ]; then
    rc=1
    echo "--- $t failed: the end of $build/$t.log" >&2
    tail -n 60 "$build/$t.log" >&2
  fi
  results+=("$(printf '  %-22s %10s %6s  %s' "$t" "$execs" "$secs" "$status")")
done

echo
echo "== fuzzing: executions reached ($(nproc) cores, $jobs targets at a time, $((SECONDS - start_all)) s in all)"
printf '  %-22s %10s %6s\n' target executions s
printf '%s\n' "${results[@]}"
exit $rc
