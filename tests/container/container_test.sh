#!/usr/bin/env bash
# The agent's container image, end to end (issue 9, item 3), as root:
#
#   1. deploy/docker-compose.yml and deploy/docker-stack.yml pass `docker-compose config` with
#      deploy/compose.env.example;
#   2. the shared libraries the binary links are all in the release Dockerfile's runtime list;
#   3. a Debian 12 base is made offline with debootstrap (minbase + the binary's runtime
#      libraries + iptables; cached under /var/cache/taolie-container), imported into the
#      PRIVATE test dockerd, and deploy/container/Dockerfile.ci is built FROM it with the
#      host-built binary;
#   4. the image runs as the compose file runs it (host network, CAP_NET_ADMIN, /dev/kmsg, the
#      Docker socket, the host's /proc, /sys, /etc/os-release and Docker data root under /host,
#      secrets in /run/secrets, PostgreSQL through a socket directory) against a simulator and
#      a PostgreSQL this test starts, the fake NVML library mounted in; within 90 s the
#      simulator has its registration, with the host name and OS read under /host, and, when
#      the binary has the `healthcheck` subcommand, Docker reports the container healthy.
#
#   tests/container/container_test.sh [BUILD_DIR]     (default build/)
#
# Needs the test services (tests/fixtures/services.sh start) and, for step 3, Debian's archive
# (the first ".../debian" mirror of /etc/apt/sources.list*) unless the base is cached. Never
# uses the machine's default dockerd. Removes its container, images, database and simulator.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin=$build/taolie-host-agent
fake_nvml=$build/fake_nvml/libnvidia-ml.so.1
scenario=$root/tests/fake_nvml/scenarios/two_gpus.ini
cache=${TAOLIE_CONTAINER_CACHE:-/var/cache/taolie-container}
tag=$$
image=taolie-host-agent:ci-$tag
base=taolie-base:ci-$tag
name=taolie-agent-ci-$tag

log() { echo "container_test: $*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, the test dockerd)"
[ -x "$bin" ] || die "no $bin (build the taolie-host-agent target)"
[ -f "$fake_nvml" ] || die "no $fake_nvml (build the fake_nvml target)"
for tool in docker docker-compose debootstrap curl objdump; do
  command -v "$tool" >/dev/null || die "$tool not installed (scripts/install-deps.sh)"
done
eval "$("$root/tests/fixtures/services.sh" env)"
export DOCKER_HOST=$TAOLIE_TEST_DOCKER_HOST # the private test dockerd, never the default one
export DOCKER_BUILDKIT=0                     # the classic builder: no network, no buildx
docker version >/dev/null 2>&1 || die "test dockerd not reachable at $DOCKER_HOST (services.sh start)"

work=$(mktemp -d /tmp/taolie-container-XXXXXX)
chmod 0755 "$work"
sim_pid=""
pg_data=$work/pg/data
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && docker inspect "$name" >/dev/null 2>&1; then
    log "container log (last 40 lines):"
    docker logs --tail 40 "$name" 2>&1 | sed 's/^/  | /' >&2 || true
  fi
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  docker rmi "$image" "$base" >/dev/null 2>&1 || true
  [ -z "$sim_pid" ] || kill "$sim_pid" 2>/dev/null || true
  if [ -f "$pg_data/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'log "FAIL: line $LINENO: $BASH_COMMAND"' ERR

free_port() {  # a loopback TCP port nobody listens on (with the next $1-1 free too)
  local n=${1:-1} p i
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    for ((i = 0; i < n; i++)); do
      (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null && continue 2
    done
    echo "$p"
    return 0
  done
  die "no free port"
}

# --- 1. compose files ----------------------------------------------------------------------
t0=$SECONDS
for f in docker-compose.yml docker-stack.yml; do
  (cd "$root/deploy" && docker-compose --env-file compose.env.example -f "$f" config -q) ||
    die "docker-compose config rejects deploy/$f"
done
log "ok: docker-compose config accepts deploy/docker-compose.yml and deploy/docker-stack.yml"

# --- 2. runtime libraries ------------------------------------------------------------------
pkg_of() {  # path -> the Debian package that ships it (usrmerge: try /lib and /usr/lib forms)
  local p=$1 real
  real=$(readlink -f "$p")
  for c in "$p" "$real" "${p#/usr}" "/usr${p}" "${real#/usr}"; do
    dpkg -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  return 1
}
ldd_out=$(ldd "$bin")
all_pkgs=()
while read -r lib; do
  all_pkgs+=("$(pkg_of "$lib" || die "no package ships $lib")")
done < <(awk '/=> \//{print $3}' <<<"$ldd_out")
mapfile -t all_pkgs < <(printf '%s\n' "${all_pkgs[@]}" | sort -u)
runtime_list=$(awk '/^FROM debian:12-slim/{f=1} f' "$root/Dockerfile" | tr -s ' \\\n' '\n')
for lib in $(objdump -p "$bin" | awk '/NEEDED/{print $2}'); do
  path=$(awk -v l="$lib" '$1 == l {print $3}' <<<"$ldd_out")
  pkg=$(pkg_of "$path") || die "no package ships $path"
  case $pkg in libc6 | libgcc-s1) continue ;; esac # in every Debian image
  grep -qx "$pkg" <<<"$runtime_list" || die "Dockerfile's runtime stage lacks $pkg (for $lib)"
done
# Every package either stage of the release Dockerfile installs is one Debian 12 has (this
# machine's apt lists are bookworm's): the file is not built here (its FROM needs Docker Hub).
dockerfile_pkgs=$(awk '/apt-get install/ {f=1; next} f && /&&/ {f=0} f' "$root/Dockerfile" |
  tr -s ' \\\n' '\n' | grep -v '^$')
# shellcheck disable=SC2086 # one word per package
apt-cache show --no-all-versions $dockerfile_pkgs >/dev/null ||
  die "the release Dockerfile names a package Debian 12 does not have"
log "ok: the release Dockerfile installs every library the binary links; its $(wc -l <<<"$dockerfile_pkgs") packages exist in Debian 12"

# --- 3. base image from Debian packages, then the CI image ---------------------------------
mirror=$({ grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null ||
  true; } | awk '$2 ~ /\/debian\/?$/ {print $2; exit}')
mirror=${mirror:-http://deb.debian.org/debian}
include=$(printf '%s\n' "${all_pkgs[@]}" iptables | sort -u | paste -sd, -)
key=$(printf '%s %s' "$include" "$mirror" | sha256sum | cut -c1-16)
tarball=$cache/bookworm-minbase-$key.tar
t1=$SECONDS
if [ ! -s "$tarball" ]; then
  log "debootstrap bookworm from $mirror (+ $include)"
  mkdir -p "$cache"
  rootfs=$work/rootfs
  debootstrap --variant=minbase --include="$include" bookworm "$rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # Bases made for an older package list are not used again.
  find "$cache" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -name "${tarball##*/}" -delete
  rm -rf "$rootfs"
else
  log "base from cache $tarball"
fi
docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$tarball" "$base" >/dev/null
ctx=$work/ctx
mkdir -p "$ctx"
cp "$bin" "$ctx/taolie-host-agent"
cp "$root/deploy/container/entrypoint.sh" "$root/deploy/container/config.yaml" "$ctx/"
docker build -q --build-arg BASE="$base" -f "$root/deploy/container/Dockerfile.ci" -t "$image" \
  "$ctx" >/dev/null || die "docker build of Dockerfile.ci failed"
log "ok: image $image built from a debootstrap base ($(docker image inspect -f '{{.Size}}' "$image" |
  awk '{printf "%.0f MB", $1 / 1e6}'), base $((SECONDS - t1)) s including import and build)"

# --- 4. run it with the test services -------------------------------------------------------
# PostgreSQL on a socket directory only (no TCP), password required, as the compose file's.
pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$work/pg/socket" "$work/secrets"
chown postgres: "$work/pg" "$work/pg/socket"
db_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$db_password" >"$work/pg/pwfile"
chown postgres: "$work/pg/pwfile"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -U postgres --auth-local=scram-sha-256 \
  --auth-host=reject --pwfile="$work/pg/pwfile" >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -w -t 30 -l "$work/pg/log" \
  -o "-c listen_addresses= -c unix_socket_directories=$work/pg/socket" start >/dev/null
PGPASSWORD=$db_password "$pg_bin/psql" -h "$work/pg/socket" -U postgres -d postgres -qAt \
  -v ON_ERROR_STOP=1 -c "CREATE ROLE agent LOGIN PASSWORD '$db_password'" \
  -c "CREATE DATABASE taolie_host_agent OWNER agent" >/dev/null
printf '%s\n' "$db_password" >"$work/secrets/db_password"

sim_port=$(free_port)
"$bin" sim --port "$sim_port" >"$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do
  grep -q 'api key: ' "$work/sim.out" && break
  sleep 0.1
done
api_key=$(sed -n 's/.*(api key: \(.*\))$/\1/p' "$work/sim.out")
[ -n "$api_key" ] || die "simulator did not start: $(cat "$work/sim.out")"
printf '%s\n' "$api_key" >"$work/secrets/api_key"
chmod 0600 "$work/secrets/"*

ports=$(free_port 3)
api_port=$(free_port)
data_root=$(docker info -f '{{.DockerRootDir}}')
host_name=taolie-ci-host-$tag # a host name only /host/etc/hostname carries
mkdir -p "$work/host/etc"
printf '%s\n' "$host_name" >"$work/host/etc/hostname"
cat >"$work/config.yaml" <<EOF
agent:
  host_root: /host
network:
  public_ip: 127.0.0.1
  bind_ip: 127.0.0.1
  ports: {ssh: $ports, rental_port_1: $((ports + 1)), rental_port_2: $((ports + 2))}
server:
  url: http://127.0.0.1:$sim_port
  timeout: 5
monitoring:
  heartbeat_interval: 2
  command_poll_interval: 2
database:
  mode: external
  host: /run/postgresql
gpu:
  nvml_library: /opt/fake-nvml/libnvidia-ml.so.1
logging:
  file: ""
  journal: false
docker:
  host: unix:///var/run/docker.sock
api:
  listen: 127.0.0.1
  port: $api_port
data_dir: /var/lib/taolie-host-agent
EOF
docker run -d --name "$name" --init --network host --cap-add NET_ADMIN --cap-add SYSLOG \
  --device /dev/kmsg:/dev/kmsg \
  --health-interval 3s --health-start-period 60s \
  -e TAOLIE_FAKE_NVML_SCENARIO=/opt/fake-nvml/scenario.ini \
  -v "$work/config.yaml:/etc/taolie-host-agent/config.yaml:ro" \
  -v "$work/secrets:/run/secrets:ro" \
  -v "${DOCKER_HOST#unix://}:/var/run/docker.sock" \
  -v "$work/pg/socket:/run/postgresql" \
  -v "$fake_nvml:/opt/fake-nvml/libnvidia-ml.so.1:ro" \
  -v "$scenario:/opt/fake-nvml/scenario.ini:ro" \
  -v "$work/host/etc/hostname:/host/etc/hostname:ro" \
  -v /etc/os-release:/host/etc/os-release:ro \
  -v /proc:/host/proc:ro -v /sys:/host/sys:ro \
  -v "$data_root:/host$data_root:ro" \
  "$image" >/dev/null || die "docker run failed"

t2=$SECONDS
registration=""
registered_after=""
health=""
while ((SECONDS - t2 < 90)); do
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] ||
    die "the container stopped (exit $(docker inspect -f '{{.State.ExitCode}}' "$name"))"
  if [ -z "$registration" ]; then
    agents=$(curl -fsS --max-time 5 "http://127.0.0.1:$sim_port/sim/agents" || true)
    if [ -n "$agents" ] && [ "$agents" != "[]" ]; then
      registration=$agents
      registered_after=$((SECONDS - t2))
    fi
  fi
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name")
  if [ -n "$registration" ] && [ "$health" = healthy ]; then
    break
  fi
  sleep 1
done
[ -n "$registration" ] || die "no registration reached the simulator within 90 s"
log "ok: registered with the simulator ${registered_after} s after docker run"
# What the agent reported is the host's, read under /host.
reg_field() {
  grep -o "\"$1\":\"[^\"]*\"" <<<"$registration" | head -n 1 | cut -d'"' -f4
}
host_os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)
[ "$(reg_field hostname)" = "$host_name" ] ||
  die "registration's hostname is \"$(reg_field hostname)\", not \"$host_name\" from /host/etc/hostname"
[ "$(reg_field os)" = "$host_os" ] || die "registration's os is \"$(reg_field os)\", not \"$host_os\""
log "ok: registration reports hostname \"$host_name\" and os \"$host_os\" (under /host)"
[ "$health" = healthy ] || die "container health is \"$health\" after 90 s, not healthy"
log "ok: docker reports the container healthy (taolie-host-agent healthcheck) $((SECONDS - t2)) s after docker run"
docker logs "$name" 2>&1 | grep 'host facts read under agent.host_root /host' >/dev/null ||
  die "the agent's log does not say it reads under /host"
# The rental firewall from inside the container, on the host's backend (the entrypoint's pick),
# as the agent's own status page reports it.
host_backend=$(iptables --version | grep -o 'nf_tables\|legacy')
isolation=""
for _ in $(seq 1 20); do
  isolation=$(curl -fsS --max-time 5 "http://127.0.0.1:$api_port/status" | python3 -c \
    'import json,sys; i=json.load(sys.stdin)["isolation"]; print(i["ok"], i["firewall_backend"], i["error"])' ||
    true)
  [[ "$isolation" == "True $host_backend"* ]] && break
  sleep 0.5
done
[[ "$isolation" == "True $host_backend"* ]] ||
  die "the agent's isolation is \"$isolation\", not ok on iptables $host_backend"
log "ok: the agent in the container put its firewall rules in place (iptables $host_backend)"
# Warnings the agent logged in the container (the firewall, /dev/kmsg, ...), for the reader.
docker logs "$name" 2>&1 | grep -E '\[(warning|error|critical)\]' | sed 's/^/  agent: /' >&2 || true
log "passed in $((SECONDS - t0)) s"
