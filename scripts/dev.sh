#!/usr/bin/env bash
# One command for a fresh machine: build the agent and run it in dev mode with managed
# PostgreSQL, the platform simulator, simulated GPUs (when no NVIDIA driver is present), a
# private Docker daemon with a local registry and a small test image with sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target taolie-host-agent fake_nvml

# The same private daemon and registry as the tests (reused when already running; only one
# dockerd can run per machine). They stay up after the agent stops:
# `tests/fixtures/services.sh stop` ends them.
"$root/tests/fixtures/services.sh" start >/dev/null
eval "$("$root/tests/fixtures/services.sh" env)"

exec "$build/taolie-host-agent" dev --data-dir "${TAOLIE_DEV_DATA:-$root/.dev}" \
  --docker-host "$TAOLIE_TEST_DOCKER_HOST" \
  --fake-nvml "$build/fake_nvml/libnvidia-ml.so.1" \
  --scenario "${TAOLIE_FAKE_NVML_SCENARIO:-$root/tests/fake_nvml/scenarios/two_gpus.ini}" \
  --image "$TAOLIE_TEST_REGISTRY/taolie-test/sshd:1" "$@"
