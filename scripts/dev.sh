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

# The managed PostgreSQL runs as the `postgres` user (it refuses root), which must reach its
# cluster under the data directory. Under a checkout it cannot always (a clone under /root,
# mode 0700): the dev data then lives in /var/lib/taolie-dev/<hash of the checkout's path>,
# one directory per checkout; no permission of the checkout is changed.
data=${TAOLIE_DEV_DATA:-}
if [ -z "$data" ]; then
  data="$root/.dev"
  if [ "$(id -u)" = 0 ] && id -u postgres >/dev/null 2>&1 &&
    ! runuser -u postgres -- test -x "$root"; then
    data="/var/lib/taolie-dev/$(printf '%s' "$root" | sha256sum | cut -c1-16)"
    echo "dev.sh: user 'postgres' cannot traverse $root: dev data in $data" >&2
  fi
fi
mkdir -p "$(dirname "$data")"

exec "$build/taolie-host-agent" dev --data-dir "$data" \
  --docker-host "$TAOLIE_TEST_DOCKER_HOST" \
  --fake-nvml "$build/fake_nvml/libnvidia-ml.so.1" \
  --scenario "${TAOLIE_FAKE_NVML_SCENARIO:-$root/tests/fake_nvml/scenarios/two_gpus.ini}" \
  --image "$TAOLIE_TEST_REGISTRY/taolie-test/sshd:1" "$@"
