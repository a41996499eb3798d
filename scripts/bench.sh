#!/usr/bin/env bash
# Builds the agent and its benchmarks and runs them against the test services (private
# dockerd, local registry, simulator), then prints the figures, each next to a baseline
# measured in the same run. Extra arguments go to ctest (e.g. `scripts/bench.sh -R Metrics`).
#
# Environment (all optional):
#   BUILD_DIR                    build directory (default build/)
#   TAOLIE_KEEP_SERVICES=1       leave the test services running at exit
#   TAOLIE_BENCH_WINDOW_SECONDS  length of each jitter window (default 30)
#   TAOLIE_BENCH_SAMPLES         buffered metric samples to deliver (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target taolie-host-agent fake_nvml agent_bench \
  fake_nvidia_smi gpu_probe_bench

report=$(mktemp /tmp/taolie-bench-report-XXXXXX)
cleanup() {
  rm -f "$report"
  [ "${TAOLIE_KEEP_SERVICES:-0}" = 1 ] || "$root/tests/fixtures/services.sh" stop || true
}
trap cleanup EXIT
"$root/tests/fixtures/services.sh" start
eval "$("$root/tests/fixtures/services.sh" env)"

status=0
TAOLIE_BENCH_REPORT=$report ctest --test-dir "$build" -C bench -L bench --output-on-failure \
  --timeout 1200 "$@" || status=$?
echo
echo "==== figures ($(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)) ===="
cat "$report"
exit $status
