#!/bin/sh
# Container entrypoint of taolie-host-agent: turns Docker secrets into the environment
# variables the agent reads (TAOLIE_API_KEY, TAOLIE_DB_PASSWORD, TAOLIE_SMTP_PASSWORD), then
# runs the agent with the container's arguments. It also points `iptables` at the host's
# backend (the rental firewall hooks into Docker's DOCKER-USER chain, which lives there):
# TAOLIE_IPTABLES=nft or legacy, or auto (default): legacy only when the host's DOCKER-USER
# chain is in the legacy tables and not in nf_tables.
#
# For each VAR: VAR set and non-empty wins; else the file named by VAR_FILE; else
# /run/secrets/<name> when it exists (names: api_key, db_password, smtp_password).
set -eu

load_secret() {  # VAR default-secret-file
  var=$1
  eval "value=\${$var:-}"
  [ -n "$value" ] && return 0
  eval "file=\${${var}_FILE:-}"
  if [ -z "$file" ]; then
    [ -f "$2" ] || return 0
    file=$2
  fi
  if [ ! -r "$file" ]; then
    echo "entrypoint: ${var}_FILE=$file is not readable" >&2
    exit 1
  fi
  # The first line, without its newline (secret files are often written with one).
  value=$(head -n 1 "$file" | tr -d '\r\n')
  export "$var=$value"
  unset "${var}_FILE"
}

load_secret TAOLIE_API_KEY /run/secrets/api_key
load_secret TAOLIE_DB_PASSWORD /run/secrets/db_password
load_secret TAOLIE_SMTP_PASSWORD /run/secrets/smtp_password
unset value file var

backend=${TAOLIE_IPTABLES:-auto}
if [ "$backend" = auto ]; then
  backend=nft
  if command -v iptables-legacy >/dev/null && iptables-legacy -S DOCKER-USER >/dev/null 2>&1 &&
     ! iptables-nft -S DOCKER-USER >/dev/null 2>&1; then
    backend=legacy
  fi
fi
case $backend in
  nft | legacy)
    if [ -x "/usr/sbin/iptables-$backend" ]; then
      update-alternatives --quiet --set iptables "/usr/sbin/iptables-$backend" ||
        echo "entrypoint: could not select iptables-$backend" >&2
    fi
    if [ -x "/usr/sbin/ip6tables-$backend" ]; then
      update-alternatives --quiet --set ip6tables "/usr/sbin/ip6tables-$backend" ||
        echo "entrypoint: could not select ip6tables-$backend" >&2
    fi
    ;;
  *)
    echo "entrypoint: TAOLIE_IPTABLES must be auto, nft or legacy, got $backend" >&2
    exit 1
    ;;
esac
unset backend

exec /usr/bin/taolie-host-agent "$@"
