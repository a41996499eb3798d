#!/usr/bin/env bash
# Prints the agent's idle footprint with 8 (simulated) GPUs and its deploy overhead on top
# of Docker's own container start, each next to a baseline measured in the same run.
#   bench/footprint.sh [idle_seconds]      (needs a build and tests/fixtures/services.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
idle=${1:-60}
eval "$("$root/tests/fixtures/services.sh" start 2>/dev/null)"
work=$(mktemp -d /tmp/taolie-bench-XXXXXX)
chmod 755 "$work"
port=$(( 20000 + RANDOM % 10000 ))
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  [ -n "${sim:-}" ] && kill "$sim" 2>/dev/null || true
  [ -n "${base:-}" ] && kill "$base" 2>/dev/null || true
  [ -n "${floor:-}" ] && kill "$floor" 2>/dev/null || true
  docker_rm_all || true
  rm -rf "$work"
}
export DOCKER_HOST=$TAOLIE_TEST_DOCKER_HOST
docker_rm_all() { ids=$(docker ps -aq --filter label=taolie.bench=1; docker ps -aq --filter label=taolie.managed=true); [ -z "$ids" ] || docker rm -f $ids >/dev/null; }
trap cleanup EXIT

"$build/taolie-host-agent" sim --port "$port" >"$work/sim.log" 2>&1 &
sim=$!
cat >"$work/config.yaml" <<YAML
agent: {api_key: sim-key}
network: {public_ip: 127.0.0.1, bind_ip: 127.0.0.1, ports: {ssh: 43022, rental_port_1: 43023, rental_port_2: 43024}, port_range: "43100-43199"}
server: {url: "http://127.0.0.1:$port"}
monitoring: {command_poll_interval: 1}
database: {mode: managed}
gpu: {nvml_library: "$build/fake_nvml/libnvidia-ml.so.1"}
logging: {file: "", journal: false, level: warning}
docker: {host: "$TAOLIE_TEST_DOCKER_HOST"}
data_dir: $work/data
YAML
TAOLIE_FAKE_NVML_SCENARIO="$root/tests/fake_nvml/scenarios/eight_gpus.ini" \
  "$build/taolie-host-agent" run --config "$work/config.yaml" >"$work/agent.log" 2>&1 &
agent=$!
# Baselines for memory, same run: an empty program loading the agent's shared libraries (the
# floor any agent built on Debian's libcurl/libpq/OpenSSL stands on), and a bare Python
# interpreter (the floor the first, Python, agent stood on).
g++ -O2 "$root/bench/library_floor.cc" -o "$work/floor" \
  $(pkg-config --cflags --libs libcurl libpq yaml-cpp spdlog libsystemd cpp-httplib) -lfmt
"$work/floor" &
floor=$!
python3 -c 'import time; time.sleep(3600)' &
base=$!

# CPU time of all the agent's threads in nanoseconds (schedstat: precise, unlike clock ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
# The managed PostgreSQL (the agent's child) works for the agent: count it separately.
pg_ns() {
  local pm; pm=$(pgrep -P "$1" -x postgres | head -1)
  [ -n "$pm" ] || { echo 0; return; }
  cat /proc/"$pm"/task/*/schedstat $(for c in $(pgrep -P "$pm"); do echo /proc/"$c"/task/*/schedstat; done) 2>/dev/null |
    awk '{s += $1} END {printf "%d", s}'
}
sleep 15  # registration, first rounds of every loop
t0=$(cpu_ns "$agent"); p0=$(pg_ns "$agent"); s0=$(date +%s.%N)
sleep "$idle"
t1=$(cpu_ns "$agent"); p1=$(pg_ns "$agent"); s1=$(date +%s.%N)
rss=$(kb "$agent" Rss); pss=$(kb "$agent" Pss); priv=$(( $(kb "$agent" Private_Clean) + $(kb "$agent" Private_Dirty) ))
base_rss=$(kb "$base" Rss)
floor_rss=$(kb "$floor" Rss)
threads=$(awk '/^Threads:/ {print $2}' "/proc/$agent/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" 'BEGIN {printf "%.4f", (b - a) / 1e9 / (e - s) * 100}')
echo "idle, 8 simulated GPUs, ${idle}s window, default intervals:"
printf '  agent RSS %.1f MB (PSS %.1f MB, private %.1f MB), %s threads\n' "$(echo "$rss/1024" | bc -l)" \
  "$(echo "$pss/1024" | bc -l)" "$(echo "$priv/1024" | bc -l)" "$threads"
printf '  floor: empty program with the same libraries RSS %.1f MB; the agent adds %.1f MB (ratio %.2f)\n' \
  "$(echo "$floor_rss/1024" | bc -l)" "$(echo "($rss-$floor_rss)/1024" | bc -l)" "$(echo "$rss/$floor_rss" | bc -l)"
printf '  baseline: bare python3 interpreter RSS %.1f MB; agent/python ratio %.2f\n' \
  "$(echo "$base_rss/1024" | bc -l)" "$(echo "$rss/$base_rss" | bc -l)"
pgcpu=$(awk -v a="$p0" -v b="$p1" -v s="$s0" -v e="$s1" 'BEGIN {printf "%.4f", (b - a) / 1e9 / (e - s) * 100}')
echo "  agent CPU ${cpu} % of one core (target < 0.05 %); its managed PostgreSQL ${pgcpu} %"

# Deploy overhead (command polling at 1 s here, so up to 1 s of it is the poll wait): queue -> success (pull, create, start, SSH readiness, report) against a
# plain `docker run` of the same image until its SSH banner answers, same daemon, same run.
image="$TAOLIE_TEST_REGISTRY/taolie-test/sshd:1"
id=$(awk -F'"' '/"host_agent_id"/ {print $4; exit}' <(curl -s "http://127.0.0.1:$port/sim/agents") || true)
[ -n "$id" ] || id=$(grep -o 'agent-[0-9a-f]\{12\}' "$work/agent.log" | head -1)
docker pull -q "$image" >/dev/null
now_ms() { date +%s%3N; }
banner() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c 7 <&3" 2>/dev/null || true; }
runs=3; base_total=0; agent_total=0
for i in $(seq 1 $runs); do
  t=$(now_ms)
  docker run -d --label taolie.bench=1 -p 127.0.0.1:43500:22 --gpus device=GPU-bench "$image" >/dev/null
  for _ in $(seq 1 300); do [ "$(banner 43500)" = "SSH-2.0" ] && break; sleep 0.02; done
  base_ms=$(( $(now_ms) - t )); base_total=$(( base_total + base_ms ))
  docker_rm_all
  t=$(now_ms)
  curl -s -X POST "http://127.0.0.1:$port/sim/agents/$id/deploy" \
    -d "{\"deployment_id\":\"bench-$i\",\"image\":\"$image\",\"ports\":{\"22\":22}}" >/dev/null
  for _ in $(seq 1 1500); do
    curl -s "http://127.0.0.1:$port/sim/events" | grep -q "\"bench-$i\"[^}]*\"running\"\|bench-$i/success" && break
    grep -q . <(curl -s "http://127.0.0.1:$port/sim/deployments" | grep -o "\"deployment_id\":\"bench-$i\",\"latest_kind\":\"success\"") && break
    sleep 0.02
  done
  agent_ms=$(( $(now_ms) - t )); agent_total=$(( agent_total + agent_ms ))
  curl -s -X POST "http://127.0.0.1:$port/sim/agents/$id/terminate/bench-$i" -d '{}' >/dev/null
  for _ in $(seq 1 500); do
    curl -s "http://127.0.0.1:$port/sim/deployments" | grep -q "\"deployment_id\":\"bench-$i\",\"latest_kind\":\"terminated\"" && break
    sleep 0.05
  done
  echo "  run $i: docker run + SSH banner ${base_ms} ms; agent deploy to success event ${agent_ms} ms"
done
echo "deploy: mean docker baseline $(( base_total / runs )) ms, agent $(( agent_total / runs )) ms," \
  "overhead $(( (agent_total - base_total) / runs )) ms per rental" \
  "(ratio $(echo "$agent_total/$base_total" | bc -l | cut -c1-4))"
