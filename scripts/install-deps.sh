#!/usr/bin/env bash
# Installs what the agent needs to build, test and run in dev mode (Debian 12, as root).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail

BUILD_PKGS=(g++ cmake ninja-build pkg-config libcurl4-openssl-dev libpq-dev nlohmann-json3-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libcpp-httplib-dev libsystemd-dev
  libgtest-dev libgmock-dev prometheus-cpp-dev libssl-dev python3)
# python3 runs the tests of scripts/ (sizes, clock reads) that ctest registers.
# Real services used by dev mode and the integration tests.
RUNTIME_PKGS=(postgresql-15 docker.io docker-registry iptables busybox-static openssh-server
  openssh-client sshpass curl ca-certificates faketime openssl prometheus docker-compose debootstrap)
# prometheus gives promtool and the server the metrics test starts on a free port of its own.
# Extra packages a caller asks for, space separated (e.g. CI's tidy stage: clang-tidy).
read -r -a EXTRA_PKGS <<<"${TAOLIE_EXTRA_PKGS:-}"

missing=()
for p in "${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${EXTRA_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]} (run this script as root)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Do not let package scripts start the system's docker/postgres/ssh services (policy-rc.d).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ "$created_policy" = 1 ] && rm -f "$policy"
# The prometheus package enables its own service (it would listen on :9090); policy-rc.d kept
# it from starting. The tests start their own server on a free port, so it stays disabled.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service
  elif command -v systemctl >/dev/null; then
    systemctl disable prometheus.service
  fi
fi
exit 0
