#!/usr/bin/env bash
# Builds the agent and runs the whole test suite (unit + integration) against real
# PostgreSQL, a private dockerd with the fake GPU hook, a local registry and the simulator.
# Extra arguments go to ctest (e.g. `scripts/test.sh -R e2e`).
#
# Environment (all optional; CI's .ci/run sets them):
#   BUILD_DIR              build directory (default build/)
#   TAOLIE_WERROR=ON       build with -Werror
#   TAOLIE_KEEP_SERVICES=1 leave the test services running at exit (the caller stops them)
#   TAOLIE_STAGE_TIMES     file to which "stage seconds" lines are appended (install, build, services, test)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}

stage_start=$SECONDS
stage_done() {  # name
  [ -z "${TAOLIE_STAGE_TIMES:-}" ] || echo "$1 $((SECONDS - stage_start))" >>"$TAOLIE_STAGE_TIMES"
  stage_start=$SECONDS
}

"$root/scripts/install-deps.sh"
stage_done install
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTAOLIE_WERROR="${TAOLIE_WERROR:-OFF}" >/dev/null
cmake --build "$build" -j"$(nproc)"
stage_done build

cleanup() { TAOLIE_AGENT_BIN="$build/taolie-host-agent" "$root/tests/fixtures/services.sh" stop || true; }
[ "${TAOLIE_KEEP_SERVICES:-0}" = 1 ] || trap cleanup EXIT
"$root/tests/fixtures/services.sh" start
eval "$("$root/tests/fixtures/services.sh" env)"
stage_done services

status=0
ctest --test-dir "$build" --output-on-failure --timeout 600 "$@" || status=$?
stage_done test
exit $status
