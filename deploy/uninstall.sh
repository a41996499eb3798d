#!/usr/bin/env bash
# Removes the TAOLIE host agent installed by deploy/setup.sh or the .deb (as root).
#
#   deploy/uninstall.sh [--remove-containers] [--purge-data] [--yes]
#
# Always: stops and disables the unit, removes the rental firewall rules
# (`taolie-host-agent firewall remove`), removes the package (apt-get remove).
# Kept unless asked: /var/lib/taolie-host-agent (the agent's database), the config and the
# env file in /etc/taolie-host-agent, a database on the distribution's PostgreSQL, and the
# renters' containers (label taolie.managed=true), which keep running.
#   --remove-containers  remove the renters' containers (docker rm -f) and the rentals'
#                        network taolie-rentals
#   --purge-data         apt-get purge, and remove /var/lib/taolie-host-agent,
#                        /etc/taolie-host-agent, /var/log/taolie-host-agent and the database
#                        and role setup.sh created on the distribution's PostgreSQL
#   --yes                no question (otherwise --purge-data asks on a terminal)
set -euo pipefail

readonly PKG=taolie-host-agent
readonly UNIT=taolie-host-agent.service
readonly CONFIG_DIR=/etc/taolie-host-agent
readonly CONFIG=$CONFIG_DIR/config.yaml
readonly SYSTEM_DB_MARK=$CONFIG_DIR/system-database
readonly DATA_DIR_DEFAULT=/var/lib/taolie-host-agent
readonly LOG_DIR=/var/log/taolie-host-agent
readonly WANTS_LINK=/etc/systemd/system/multi-user.target.wants/$UNIT
# The labels the agent puts on every container it runs (src/engine/container_spec.h).
readonly LABEL_MANAGED=taolie.managed
readonly LABEL_DEPLOYMENT=taolie.deployment_id
readonly RENTAL_NETWORK=taolie-rentals

log() { echo "uninstall: $*"; }
warn() { echo "uninstall: warning: $*" >&2; }
die() {
  echo "uninstall: error: $*" >&2
  exit 1
}

remove_containers=0 purge=0 yes=0
while [ $# -gt 0 ]; do
  case "$1" in
    --remove-containers) remove_containers=1 ;;
    --purge-data) purge=1 ;;
    -y | --yes) yes=1 ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || die "run as root"

if [ "$purge" -eq 1 ] && [ "$yes" -eq 0 ] && [ -t 0 ]; then
  read -r -p "Remove the agent's database, config and logs for good? Type yes: " answer
  [ "$answer" = yes ] || die "nothing removed"
fi

# section.key of a block-style YAML file (the config's layout), unquoted; empty when absent.
config_get() {
  [ -f "$CONFIG" ] || return 0
  awk -v want="$1" '
    /^[A-Za-z0-9_-]+:/ { sec = $0; sub(/:.*/, "", sec); key = sec }
    /^  [A-Za-z0-9_-]+:/ { key = $0; sub(/^  /, "", key); sub(/:.*/, "", key); key = sec "." key }
    (/^[A-Za-z0-9_-]+:/ || /^  [A-Za-z0-9_-]+:/) && key == want {
      v = $0; sub(/^ *[A-Za-z0-9_-]+: */, "", v); sub(/ +#.*$/, "", v)
      gsub(/^"|"$/, "", v); print v; exit
    }' "$CONFIG"
}

docker_host=$(config_get docker.host)
data_dir=$(config_get data_dir)
[ -n "$data_dir" ] || data_dir=$DATA_DIR_DEFAULT
dk=(docker)
[ -z "$docker_host" ] || dk=(docker -H "$docker_host")

# 1. The unit.
if [ -d /run/systemd/system ]; then
  systemctl disable --now "$UNIT" 2>&1 | sed 's/^/uninstall: /' || true
  log "stopped and disabled $UNIT (renters' containers keep running)"
else
  systemctl disable "$UNIT" >/dev/null 2>&1 || true
  rm -f "$WANTS_LINK"
  if command -v pgrep >/dev/null && pgrep -f 'taolie-host-agent run' >/dev/null; then
    warn "a taolie-host-agent process runs outside systemd: stop it (SIGTERM) yourself"
  fi
  log "disabled $UNIT"
fi

# 2. The rental firewall rules (issue 5), while the binary is still there.
if command -v taolie-host-agent >/dev/null; then
  taolie-host-agent firewall remove 2>&1 | sed 's/^/uninstall: /' ||
    warn "firewall remove failed: list the rules with iptables -S | grep taolie-host-agent"
fi

# 3. Renters' containers.
if command -v docker >/dev/null; then
  if ids=$(timeout 20 "${dk[@]}" ps -aq --filter "label=$LABEL_MANAGED=true" 2>/dev/null); then
    if [ -z "$ids" ]; then
      log "no renters' containers"
    elif [ "$remove_containers" -eq 1 ]; then
      # shellcheck disable=SC2086 # one id per word
      timeout 120 "${dk[@]}" rm -f $ids >/dev/null
      log "removed the renters' containers: $(echo "$ids" | wc -l)"
    else
      log "kept the renters' containers (they keep running; --remove-containers removes them):"
      # shellcheck disable=SC2086
      "${dk[@]}" inspect --format "  {{.Name}}  {{index .Config.Labels \"$LABEL_DEPLOYMENT\"}}  {{.State.Status}}" $ids
    fi
    if [ "$remove_containers" -eq 1 ] &&
      timeout 20 "${dk[@]}" network inspect "$RENTAL_NETWORK" >/dev/null 2>&1; then
      timeout 20 "${dk[@]}" network rm "$RENTAL_NETWORK" >/dev/null && log "removed network $RENTAL_NETWORK"
    fi
  else
    warn "Docker not reachable: renters' containers were not looked at"
  fi
fi

# 4. The database on the distribution's PostgreSQL (read before the purge removes the mark).
system_db=""
[ ! -f "$SYSTEM_DB_MARK" ] || system_db=$(cat "$SYSTEM_DB_MARK")

# 5. The package.
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed\|config-files"; then
  if [ "$purge" -eq 1 ]; then
    apt-get purge -y -q "$PKG"
  else
    apt-get remove -y -q "$PKG"
  fi
else
  log "$PKG is not installed"
fi

# 6. Data.
if [ "$purge" -eq 1 ]; then
  if [ -n "$system_db" ]; then
    # cluster=15/main port=5432 role=agent database=taolie_host_agent (written by setup.sh)
    read -r cluster port role database <<<"$(tr ' ' '\n' <<<"$system_db" | cut -d= -f2 | xargs)"
    if runuser -u postgres -- psql -X -q -p "$port" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
      runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
        -c "DROP DATABASE IF EXISTS \"$database\"" -c "DROP ROLE IF EXISTS \"$role\"" &&
        log "dropped database $database and role $role on PostgreSQL $cluster"
    else
      warn "PostgreSQL $cluster is not running: database $database and role $role were kept"
    fi
  fi
  case "$data_dir" in
    /?*) rm -rf "$data_dir" && log "removed $data_dir" ;;
    *) warn "data_dir '$data_dir' is not an absolute path: not removed" ;;
  esac
  rm -rf "$CONFIG_DIR" "$LOG_DIR"
  log "removed $CONFIG_DIR and $LOG_DIR"
else
  log "kept: $data_dir (database), $CONFIG_DIR (config.yaml, env)${system_db:+, the system database ($system_db)}"
  log "  (deploy/uninstall.sh --purge-data removes them)"
fi
log "done"
