#!/bin/sh
# Container entrypoint of taolie-host-agent: turns Docker secrets into the environment
# variables the agent reads (TAOLIE_API_KEY, TAOLIE_DB_PASSWORD, TAOLIE_SMTP_PASSWORD), then
# runs the agent with the container's arguments.
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

exec /usr/bin/taolie-host-agent "$@"
