#!/usr/bin/env bash
# Builds the agent and runs the whole test suite (unit + integration) against real
# PostgreSQL, a private dockerd with the fake GPU hook, a local registry and the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

cleanup() { "$root/tests/fixtures/services.sh" stop || true; }
trap cleanup EXIT
"$root/tests/fixtures/services.sh" start
eval "$("$root/tests/fixtures/services.sh" env)"

ctest --test-dir "$build" --output-on-failure --timeout 600 "$@"
