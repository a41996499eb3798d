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
# Environment: BUILD_DIR (default build-fuzz/), FUZZ_SECONDS, FUZZ_RUNS, JOBS (default nproc).
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
results=()
rc=0
for t in "${targets[@]}"; do
  seeds="$root/fuzz/corpus/$t"
  [ -d "$seeds" ] || { echo "no seed corpus $seeds" >&2; exit 2; }
  # New inputs go to a scratch corpus; the committed seeds are only read.
  work="$build/corpus/$t"
  rm -rf "$work" && mkdir -p "$work"
  log="$build/$t.log"
  start=$SECONDS
  echo "== $t (up to ${seconds} s or ${runs} executions)"
  if "$build/fuzz/$t" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    rc=1
    tail -n 60 "$log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  results+=("$(printf '  %-22s %10s %6d  %s' "$t" "${execs:-?}" $((SECONDS - start)) "$status")")
done

echo
echo "== fuzzing: executions reached ($(nproc) cores)"
printf '  %-22s %10s %6s\n' target executions s
printf '%s\n' "${results[@]}"
exit $rc
