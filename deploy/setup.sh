#!/usr/bin/env bash
# Installs the TAOLIE host agent on this machine (Debian 12; as root) and sets it up as a
# systemd service. Run from a checkout (builds the .deb into build-pkg/) or from a release
# directory that carries taolie-host-agent_<version>_<arch>.deb next to this script. Piped
# (curl ... | bash -s -- ...) it has no directory of its own and needs --deb FILE.
#
#   deploy/setup.sh [--yes] [--deb FILE] [--api-key-file FILE | --api-key - | --api-key KEY]
#                   [--public-ip ADDR] [--ssh-port N] [--rental-port-1 N] [--rental-port-2 N]
#                   [--port-range A-B] [--server-url URL] [--database managed|system]
#
# The API key: --api-key-file FILE (its first line) or --api-key - (one line on stdin) keep it
# out of `ps`; --api-key KEY still works, with a warning that every local user can read it.
# Idempotent: a second run with the same flags changes nothing. Only the keys given change in
# /etc/taolie-host-agent/config.yaml (an existing file, the first agent's included, is kept
# and backed up before any change); secrets go to /etc/taolie-host-agent/env (mode 0600).
# Without --yes and on a terminal, missing values are asked for (Enter keeps the current
# one). Exit status: non-zero only when the install itself failed. docs/install.md explains
# every step. TAOLIE_SETUP_BUILD_DIR: the build directory of the checkout path (default
# build-pkg; an existing one is reused as it is configured).
set -euo pipefail

readonly PKG=taolie-host-agent
readonly UNIT=taolie-host-agent.service
readonly CONFIG_DIR=/etc/taolie-host-agent
readonly CONFIG=$CONFIG_DIR/config.yaml
readonly ENV_FILE=$CONFIG_DIR/env
readonly SYSTEM_DB_MARK=$CONFIG_DIR/system-database
readonly WANTS_LINK=/etc/systemd/system/multi-user.target.wants/$UNIT
# The directory this script is in, or "" when it is not a file (piped: `curl ... | bash`,
# `bash <(curl ...)`): then it has no package or checkout next to it, and the current
# directory is not taken for one.
SCRIPT_DIR=""
if [ -n "${BASH_SOURCE[0]:-}" ] && [ -f "${BASH_SOURCE[0]}" ]; then
  SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi
readonly SCRIPT_DIR

# Build packages for a checkout: the build half of scripts/install-deps.sh (tests off) plus
# dpkg-dev, which cpack needs for the package's library dependencies.
readonly BUILD_PKGS=(g++ cmake ninja-build pkg-config libcurl4-openssl-dev libpq-dev
  nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libcpp-httplib-dev
  libsystemd-dev prometheus-cpp-dev dpkg-dev file)

log() { echo "setup: $*"; }
warn() { echo "setup: warning: $*" >&2; }
die() {
  echo "setup: error: $*" >&2
  exit 1
}

usage() {
  if [ -n "$SCRIPT_DIR" ]; then
    sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  else
    echo "setup.sh (piped): pass --deb FILE; see docs/install.md for every flag"
  fi
}

# ---- arguments --------------------------------------------------------------------------

deb="" yes=0 api_key="" public_ip="" ssh_port="" port1="" port2="" port_range=""
server_url="" database="" api_key_file="" api_key_stdin=0 api_key_in_argv=0
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) need_value "$@"; deb=$2; shift 2 ;;
    --api-key)
      need_value "$@"
      if [ "$2" = - ]; then api_key_stdin=1; else api_key=$2 api_key_in_argv=1; fi
      shift 2 ;;
    --api-key-file) need_value "$@"; api_key_file=$2; shift 2 ;;
    --public-ip) need_value "$@"; public_ip=$2; shift 2 ;;
    --ssh-port) need_value "$@"; ssh_port=$2; shift 2 ;;
    --rental-port-1) need_value "$@"; port1=$2; shift 2 ;;
    --rental-port-2) need_value "$@"; port2=$2; shift 2 ;;
    --port-range) need_value "$@"; port_range=$2; shift 2 ;;
    --server-url) need_value "$@"; server_url=$2; shift 2 ;;
    --database) need_value "$@"; database=$2; shift 2 ;;
    -y | --yes) yes=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_range() {
  [[ "$1" =~ ^([0-9]{1,5})-([0-9]{1,5})$ ]] || return 1
  local first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
  valid_port "$first" && valid_port "$last" && [ "$first" -le "$last" ]
}
# Secrets and addresses go into YAML and a systemd EnvironmentFile: printable, no blanks,
# quotes, backslashes or dollar signs.
valid_token() { [[ "$1" =~ ^[][A-Za-z0-9._~+/=:@%,^*!?\&\|{}\<\>\(\)-]+$ ]]; }
check_values() {
  [ -z "$ssh_port" ] || valid_port "$ssh_port" || die "--ssh-port: not a port: $ssh_port"
  [ -z "$port1" ] || valid_port "$port1" || die "--rental-port-1: not a port: $port1"
  [ -z "$port2" ] || valid_port "$port2" || die "--rental-port-2: not a port: $port2"
  [ -z "$port_range" ] || valid_range "$port_range" ||
    die "--port-range: want FIRST-LAST (e.g. 30000-30999), got $port_range"
  [ -z "$api_key" ] || valid_token "$api_key" ||
    die "--api-key: blanks, quotes, backslashes and \$ are not allowed"
  [ -z "$public_ip" ] || valid_token "$public_ip" || die "--public-ip: not an address: $public_ip"
  [ -z "$server_url" ] || [[ "$server_url" =~ ^https?://[^[:space:]\"\'\\\$]+$ ]] ||
    die "--server-url: want http(s)://host[:port][/path], got $server_url"
  case "$database" in
    "" | managed | system) ;;
    *) die "--database: managed or system, got $database" ;;
  esac
}
# The API key from a file or stdin (not in argv, so not in `ps`).
read_api_key() {
  local sources=$((api_key_in_argv + api_key_stdin)) line=""
  [ -z "$api_key_file" ] || sources=$((sources + 1))
  [ "$sources" -le 1 ] || die "give the API key once: --api-key-file FILE, --api-key - or --api-key KEY"
  if [ "$api_key_in_argv" -eq 1 ]; then
    warn "--api-key KEY shows the key to every local user (ps, /proc) while setup runs;" \
      "prefer --api-key-file FILE or --api-key - (the key on stdin)"
  fi
  if [ -n "$api_key_file" ]; then
    if [ ! -f "$api_key_file" ] || [ ! -r "$api_key_file" ]; then
      die "--api-key-file $api_key_file: no such readable file"
    fi
    IFS= read -r line <"$api_key_file" || [ -n "$line" ] ||
      die "--api-key-file $api_key_file: empty"
    api_key=${line%$'\r'}
    [ -n "$api_key" ] || die "--api-key-file $api_key_file: the first line is empty"
  elif [ "$api_key_stdin" -eq 1 ]; then
    [ -n "$SCRIPT_DIR" ] ||
      die "--api-key -: stdin is this script when it is piped; use --api-key-file FILE"
    [ ! -t 0 ] || die "--api-key -: give the key on stdin (e.g. from a file: < FILE)"
    IFS= read -r line || [ -n "$line" ] || die "--api-key -: nothing on stdin"
    api_key=${line%$'\r'}
    [ -n "$api_key" ] || die "--api-key -: an empty line on stdin"
  fi
}
read_api_key
check_values
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"
[ -n "$SCRIPT_DIR" ] || [ -n "$deb" ] ||
  die "piped (no script file, so no package or checkout next to it): pass --deb FILE" \
    "(a downloaded taolie-host-agent_<version>_<arch>.deb); nothing was changed"
command -v apt-get >/dev/null || die "apt-get not found: this script installs the Debian package"

interactive=0
if [ "$yes" -eq 0 ] && [ -t 0 ] && [ -n "$SCRIPT_DIR" ]; then interactive=1; fi
systemd_running=0
if [ -d /run/systemd/system ]; then systemd_running=1; fi
changed=0  # anything this run changed that a running agent must restart for

# ---- YAML: read or set one block-style key, keeping every other byte ---------------------
# Paths are dotted (network.ports.ssh). A key that is missing is added under its deepest
# existing parent (or at the end). The value given to set is written as is (quote strings
# with yaml_str). Used on config.yaml as deploy/config.yaml lays it out, which is also the
# first agent's layout.
# shellcheck disable=SC2016 # an awk program: its $ are awk's
readonly YAML_AWK='
function split_value(rest,   n, i, j, c, d) {
  n = length(rest); i = 1
  while (i <= n && substr(rest, i, 1) == " ") i++
  lead = substr(rest, 1, i - 1)
  if (i > n) { val = ""; tail = ""; return }
  c = substr(rest, i, 1)
  if (c == "#") { val = ""; tail = substr(rest, i); return }
  if (c == "\"" || c == "\047") {
    for (j = i + 1; j <= n; j++) {
      d = substr(rest, j, 1)
      if (c == "\"" && d == "\\") { j++; continue }
      if (d == c) {
        if (c == "\047" && substr(rest, j + 1, 1) == "\047") { j++; continue }
        break
      }
    }
    val = substr(rest, i, j - i + 1); tail = substr(rest, j + 1); return
  }
  j = index(substr(rest, i), " #")
  if (j == 0) { val = substr(rest, i); tail = "" }
  else { val = substr(rest, i, j - 1); tail = substr(rest, i + j - 1) }
  while (val ~ / $/) { val = substr(val, 1, length(val) - 1); tail = " " tail }
}
function unquote(v,   c, out, i, ch) {
  c = substr(v, 1, 1)
  if (c == "\047") { v = substr(v, 2, length(v) - 2); gsub(/\047\047/, "\047", v); return v }
  if (c != "\"") return v
  v = substr(v, 2, length(v) - 2); out = ""
  for (i = 1; i <= length(v); i++) {
    ch = substr(v, i, 1)
    if (ch == "\\") { i++; ch = substr(v, i, 1) }
    out = out ch
  }
  return out
}
function spaces(n,   s) { s = ""; while (n-- > 0) s = s " "; return s }
{
  line[NR] = $0; iskey[NR] = 0
  if ($0 ~ /^ *#/ || !match($0, /^ *[A-Za-z0-9_-]+:/)) next
  c = substr($0, RLENGTH + 1, 1)
  if (c != "" && c != " ") next
  ind = match($0, /[^ ]/) - 1
  k = substr($0, ind + 1); sub(/:.*/, "", k)
  while (depth > 0 && sind[depth] >= ind) depth--
  depth++; sind[depth] = ind; skey[depth] = k
  p = skey[1]; for (i = 2; i <= depth; i++) p = p "." skey[i]
  iskey[NR] = 1; path[NR] = p; indent[NR] = ind; level[NR] = depth
  if (p == target && !found) found = NR
}
END {
  if (mode == "get") {
    if (!found) exit 1
    rest = line[found]; sub(/^ *[A-Za-z0-9_-]+:/, "", rest)
    split_value(rest); print unquote(val); exit 0
  }
  if (found) {
    for (l = found + 1; l <= NR; l++)
      if (iskey[l]) { if (index(path[l], target ".") == 1) { print "setup: " target " is a section, not a value" > "/dev/stderr"; exit 3 } break }
    rest = line[found]; head = rest; sub(/^ *[A-Za-z0-9_-]+:/, "", rest)
    head = substr(head, 1, length(head) - length(rest))
    split_value(rest)
    if (lead == "") lead = " "
    if (tail != "") {  # keep the comment in its column when there is room
      match(tail, /^ */); pad = RLENGTH + length(val) - length(value)
      tail = spaces(pad < 1 ? 1 : pad) substr(tail, RLENGTH + 1)
    }
    line[found] = head lead value tail
    for (l = 1; l <= NR; l++) print line[l]
    exit 0
  }
  n = split(target, part, ".")
  at = NR; base = 0; from = 1
  for (d = n - 1; d >= 1; d--) {
    anc = part[1]; for (i = 2; i <= d; i++) anc = anc "." part[i]
    a = 0
    for (l = 1; l <= NR; l++) if (iskey[l] && path[l] == anc) { a = l; break }
    if (!a) continue
    at = a; base = -1
    for (l = a + 1; l <= NR; l++) {
      if (iskey[l]) {
        if (index(path[l], anc ".") != 1) break
        if (base < 0 && level[l] == level[a] + 1) base = indent[l]
        at = l
      } else if (line[l] ~ /[^ ]/ && match(line[l], /[^ ]/) - 1 > indent[a]) at = l
    }
    if (base < 0) base = indent[a] + 2
    from = d + 1
    break
  }
  for (l = 1; l <= NR; l++) {
    print line[l]
    if (l == at)
      for (i = from; i <= n; i++)
        print spaces(base + (i - from) * 2) part[i] ":" (i == n ? " " value : "")
  }
  if (NR == 0) for (i = 1; i <= n; i++) print spaces((i - 1) * 2) part[i] ":" (i == n ? " " value : "")
}'
yaml_get() { awk -v mode=get -v target="$2" "$YAML_AWK" "$1"; }  # file path
yaml_set() {                                                       # file path value
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  awk -v mode=set -v target="$2" -v value="$3" "$YAML_AWK" "$1" >"$tmp" || {
    rm -f "$tmp"
    die "cannot set $2 in $1"
  }
  cat "$tmp" >"$1"
  rm -f "$tmp"
}
yaml_str() {  # a double-quoted YAML string
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# ---- env file (secrets; mode 0600) -------------------------------------------------------
# Never sourced: read as KEY=VALUE lines (the subset of systemd's EnvironmentFile= that
# env_set writes). KEY matches ^[A-Z_][A-Z0-9_]*$, VALUE is taken literally (quotes, $ and
# backquotes included: nothing is expanded or run), blank lines and # comments are skipped;
# any other line, or a key that would change how a shell or the loader behaves (PATH, IFS,
# LD_*, BASH_*, ...), is an error naming the line.
readonly ENV_KEY_RE='^[A-Z_][A-Z0-9_]*$'
env_file_pairs() {  # prints KEY=VALUE lines, or dies naming the first bad line
  [ -f "$ENV_FILE" ] || return 0
  local line n=0 key
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
    key=${line%%=*}
    if [ "$key" = "$line" ] || ! [[ "$key" =~ $ENV_KEY_RE ]]; then
      die "$ENV_FILE line $n: not KEY=VALUE with KEY of A-Z, 0-9 and _ (fix or remove the line)"
    fi
    case "$key" in
      PATH | IFS | ENV | BASH_ENV | SHELLOPTS | BASHOPTS | PS4 | CDPATH | LD_* | BASH_*)
        die "$ENV_FILE line $n: $key is not taken from the env file (it changes how programs run)" ;;
    esac
    printf '%s\n' "$line"
  done <"$ENV_FILE"
}
export_env_file() {  # in a subshell: exports every pair of the env file
  local pairs pair
  pairs=$(env_file_pairs) || exit 1
  while IFS= read -r pair; do
    [ -z "$pair" ] || export "${pair%%=*}=${pair#*=}"
  done <<<"$pairs"
}
env_get() {  # key: prints the value, or nothing
  [ -f "$ENV_FILE" ] || return 0
  sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1
}
env_set() {  # key value: writes KEY=value unless already so; never prints the value
  local key=$1 value=$2 tmp
  if [ -f "$ENV_FILE" ] && grep -qxF "$key=$value" "$ENV_FILE"; then return 0; fi
  (umask 077 && touch "$ENV_FILE")
  tmp=$(umask 077 && mktemp "$ENV_FILE.XXXXXX")
  { grep -v "^$key=" "$ENV_FILE" || true; echo "$key=$value"; } >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
  log "set $key in $ENV_FILE (mode 0600)"
  changed=1
}

# ---- 1. the package ----------------------------------------------------------------------

find_or_build_deb() {
  if [ -n "$deb" ]; then
    [ -f "$deb" ] || die "--deb $deb: no such file"
    deb=$(readlink -f "$deb")
    return
  fi
  [ -n "$SCRIPT_DIR" ] || die "piped: pass --deb FILE"  # checked at the start already
  local found
  found=$(find "$SCRIPT_DIR" -maxdepth 1 -name "${PKG}_*.deb" | sort -V | tail -n 1)
  if [ -n "$found" ]; then
    deb=$found
    log "using the package next to this script: $deb"
    return
  fi
  local root
  root=$(cd "$SCRIPT_DIR/.." && pwd)
  if [ ! -f "$root/CMakeLists.txt" ] || [ ! -f "$root/packaging/taolie-host-agent.cmake" ]; then
    die "no ${PKG}_*.deb next to $0 and no checkout around it: pass --deb FILE"
  fi
  local missing=() p
  for p in "${BUILD_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing the build packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" </dev/null
  fi
  local build=${TAOLIE_SETUP_BUILD_DIR:-$root/build-pkg}
  if [ ! -f "$build/CMakeCache.txt" ]; then
    log "configuring $build"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DTAOLIE_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
  fi
  log "building the agent in $build (minutes on a first build)"
  cmake --build "$build" --target taolie-host-agent
  found=$(find "$build" -maxdepth 1 -name "${PKG}_*.deb" | sort -V | tail -n 1)
  if [ -z "$found" ] || [ "$build/taolie-host-agent" -nt "$found" ] ||
    [ "$root/deploy/config.yaml" -nt "$found" ] ||
    [ "$root/deploy/taolie-host-agent.service.in" -nt "$found" ]; then
    log "packaging (cpack -G DEB)"
    (cd "$build" && cpack -G DEB >/dev/null)
    found=$(find "$build" -maxdepth 1 -name "${PKG}_*.deb" | sort -V | tail -n 1)
  fi
  [ -n "$found" ] || die "cpack made no package in $build"
  deb=$found
}

backup_config() {  # copies config.yaml aside before a change
  [ -f "$CONFIG" ] || return 0
  local bak
  bak="$CONFIG.bak-$(date -u +%Y%m%dT%H%M%SZ)"
  [ -e "$bak" ] && bak="$bak-$$"
  cp -p "$CONFIG" "$bak"
  log "backed up $CONFIG to $bak"
}

# The first (Python) agent used the same service name: a unit of its own in /etc/systemd/system
# would hide the package's. It is stopped and moved aside (its containers keep running).
take_over_first_agent_unit() {
  local old=/etc/systemd/system/$UNIT
  [ -f "$old" ] && [ ! -L "$old" ] || return 0
  local keep=$CONFIG_DIR/first-agent.service
  log "found the first agent's unit $old: stopping it and moving it to $keep"
  if [ "$systemd_running" -eq 1 ]; then systemctl stop "$UNIT" || true; fi
  mkdir -p "$CONFIG_DIR"
  mv -f "$old" "$keep"
  # Its boot symlink would keep `systemctl enable` from making ours.
  if [ "$(readlink "$WANTS_LINK" 2>/dev/null)" = "$old" ]; then rm -f "$WANTS_LINK"; fi
  if [ -d "$old.d" ]; then
    warn "$old.d/ holds drop-ins that still apply to the new unit: check them"
  fi
  changed=1
}

install_package() {
  local want_version installed_version="" state
  want_version=$(dpkg-deb -f "$deb" Version)
  state=$(dpkg-query -W -f='${Status} ${Version}' "$PKG" 2>/dev/null || true)
  case "$state" in "install ok installed "*) installed_version=${state##* } ;; esac
  local reinstall=()
  if [ "$installed_version" = "$want_version" ]; then
    # Same version: the same files? (a rebuild from a newer checkout keeps the version)
    if cmp -s <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./md5sums | sort) \
      <(sort "/var/lib/dpkg/info/$PKG.md5sums" 2>/dev/null); then
      log "$PKG $want_version is installed (same files as $deb)"
      return 0
    fi
    reinstall=(--reinstall)
  fi
  take_over_first_agent_unit
  [ -z "$installed_version" ] && backup_config  # e.g. the first agent's config: dpkg keeps it
  log "installing $deb"
  # confold: an edited config.yaml (dpkg conffile) is always kept, never asked about.
  local apt=(apt-get install -y -q "${reinstall[@]}" -o Dpkg::Options::=--force-confdef
    -o Dpkg::Options::=--force-confold "$deb")
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" </dev/null; then
    log "retrying after apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" </dev/null || die "apt-get install $deb failed"
  fi
  changed=1
}

# ---- 2. config.yaml ----------------------------------------------------------------------

detect_ip() {  # the source address of the default route (a routing lookup; sends nothing)
  ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1
}

ask() {  # var prompt current [secret]
  local __var=$1 prompt=$2 current=$3 answer
  if [ "${4:-}" = secret ]; then
    read -r -s -p "$prompt: " answer
    echo
  else
    read -r -p "$prompt [$current]: " answer
  fi
  [ -z "$answer" ] || printf -v "$__var" '%s' "$answer"
}

prompt_missing() {
  [ "$interactive" -eq 1 ] || return 0
  if [ -z "$api_key" ] && [ -z "$(env_get TAOLIE_API_KEY)" ]; then
    ask api_key "API key from the platform (input hidden; Enter to skip)" "" secret
  fi
  local cur detected
  if [ -z "$public_ip" ]; then
    cur=$(yaml_get "$CONFIG" network.public_ip || true)
    detected=$(detect_ip)
    [ -n "$cur" ] || cur=$detected
    [ -z "$detected" ] || log "detected address: $detected (behind NAT, give the public one)"
    ask public_ip "Address renters connect to" "$cur"
    [ -n "$public_ip" ] || public_ip=$cur
  fi
  [ -n "$ssh_port" ] || ask ssh_port "Host port for the rentals' SSH" \
    "$(yaml_get "$CONFIG" network.ports.ssh || true)"
  [ -n "$port1" ] || ask port1 "Rental port 1 (Jupyter, web UI)" \
    "$(yaml_get "$CONFIG" network.ports.rental_port_1 || true)"
  [ -n "$port2" ] || ask port2 "Rental port 2 (APIs)" \
    "$(yaml_get "$CONFIG" network.ports.rental_port_2 || true)"
  [ -n "$port_range" ] || ask port_range "Extra port range (e.g. 30000-30999, Enter for none)" \
    "$(yaml_get "$CONFIG" network.port_range || true)"
  check_values
}

ensure_config() {
  if [ "$(stat -c %a "$CONFIG_DIR")" != 750 ]; then chmod 0750 "$CONFIG_DIR"; fi
  [ ! -f "$CONFIG" ] || return 0
  # dpkg does not bring back a deleted conffile: start from the packaged default.
  local default=/usr/share/doc/$PKG/config.yaml
  [ -f "$default" ] || die "no $CONFIG and no $default"
  install -m 0640 -o root -g root "$default" "$CONFIG"
  log "wrote $CONFIG from $default"
  changed=1
}

write_config() {
  local cand
  cand=$(mktemp "$CONFIG.new.XXXXXX")
  cat "$CONFIG" >"$cand"
  [ -z "$public_ip" ] || yaml_set "$cand" network.public_ip "$(yaml_str "$public_ip")"
  [ -z "$ssh_port" ] || yaml_set "$cand" network.ports.ssh "$ssh_port"
  [ -z "$port1" ] || yaml_set "$cand" network.ports.rental_port_1 "$port1"
  [ -z "$port2" ] || yaml_set "$cand" network.ports.rental_port_2 "$port2"
  [ -z "$port_range" ] || yaml_set "$cand" network.port_range "$(yaml_str "$port_range")"
  [ -z "$server_url" ] || yaml_set "$cand" server.url "$(yaml_str "$server_url")"
  case "$database" in
    managed) yaml_set "$cand" database.mode '"managed"' ;;
    system)
      yaml_set "$cand" database.mode '"external"'
      yaml_set "$cand" database.host '"127.0.0.1"'
      yaml_set "$cand" database.port "$db_port"
      ;;
  esac
  if cmp -s "$cand" "$CONFIG"; then
    rm -f "$cand"
    log "$CONFIG: unchanged"
  else
    backup_config
    chmod 0640 "$cand"
    mv -f "$cand" "$CONFIG"
    log "$CONFIG: updated the keys given"
    changed=1
  fi
  # The first agent wrote it world-readable; it may hold secrets.
  if [ "$(stat -c '%a %U %G' "$CONFIG")" != "640 root root" ]; then
    chown root:root "$CONFIG"
    chmod 0640 "$CONFIG"
    log "$CONFIG: mode 0640 root:root"
  fi
  [ -z "$api_key" ] || env_set TAOLIE_API_KEY "$api_key"
}

# With the secrets the unit gives the agent. A missing API key leaves the agent installed but
# not startable (said, not a failure); any other error is one.
check_config() {
  local out rc=0
  out=$(
    export_env_file
    taolie-host-agent check-config --config "$CONFIG" 2>&1
  ) || rc=$?
  echo "$out" | grep -v ': OK$' | sed 's/^/setup: check-config: /' || true
  [ "$rc" -ne 0 ] || return 0
  if [ "$rc" -eq 1 ] && ! grep '^error: ' <<<"$out" | grep -qv '^error: agent\.api_key'; then
    warn "no API key yet: the agent cannot run until TAOLIE_API_KEY is in $ENV_FILE" \
      "(or run setup.sh again with --api-key)"
    return 0
  fi
  die "$CONFIG does not pass check-config (earlier versions: $CONFIG.bak-*)"
}

# ---- 3. the database ---------------------------------------------------------------------

db_port=""
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
ensure_pg_packages() {
  if have_pg_server && command -v pg_lsclusters >/dev/null && id postgres >/dev/null 2>&1; then
    return 0
  fi
  log "installing PostgreSQL (apt-get install postgresql)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null; } ||
    die "cannot install postgresql"
}

psql_admin() {  # port, SQL on stdin; as the postgres superuser over the local socket
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA -p "$1" -d postgres
}

# The distribution's cluster (Debian's postgresql-common): the one on 5432, else the first.
setup_system_database() {
  ensure_pg_packages
  local line ver name status
  line=$(pg_lsclusters -h | awk '$3 == 5432' | head -n 1)
  [ -n "$line" ] || line=$(pg_lsclusters -h | head -n 1)
  if [ -z "$line" ]; then
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    log "no PostgreSQL cluster: creating $ver/main"
    pg_createcluster "$ver" main >/dev/null
    line=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"')
  fi
  read -r ver name db_port status _ <<<"$line"
  if [ "$status" != online ]; then
    if [ "$systemd_running" -eq 1 ]; then
      log "starting PostgreSQL $ver/$name (systemctl start postgresql@$ver-$name)"
      systemctl start "postgresql@$ver-$name"
    else
      log "starting PostgreSQL $ver/$name with pg_ctlcluster (systemd is not running: it will" \
        "not come back by itself after a reboot)"
      pg_ctlcluster "$ver" "$name" start
    fi
  fi
  local role dbname
  role=$(yaml_get "$CONFIG" database.user || echo agent)
  dbname=$(yaml_get "$CONFIG" database.name || echo taolie_host_agent)
  [[ "$role" =~ ^[a-z_][a-z0-9_]*$ ]] || die "database.user '$role': use [a-z0-9_] for a system role"
  [[ "$dbname" =~ ^[a-z_][a-z0-9_]*$ ]] || die "database.name '$dbname': use [a-z0-9_]"

  local password role_exists
  password=$(env_get TAOLIE_DB_PASSWORD)
  role_exists=$(echo "SELECT 1 FROM pg_roles WHERE rolname = '$role'" | psql_admin "$db_port")
  if [ "$role_exists" = 1 ] && [ -n "$password" ] &&
    PGPASSWORD=$password PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$db_port" -U "$role" \
      -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    log "database role $role: exists, the password in $ENV_FILE works"
  else
    [ -n "$password" ] || password=$( (openssl rand -hex 24 2>/dev/null ||
      od -An -N24 -tx1 /dev/urandom | tr -d ' \n') | tr -d '\n')
    [ ${#password} -ge 32 ] || die "could not generate a password"
    if [ "$role_exists" = 1 ]; then
      log "database role $role: exists; setting the password kept in $ENV_FILE"
      echo "ALTER ROLE \"$role\" WITH LOGIN PASSWORD '$password'" | psql_admin "$db_port"
    else
      log "database role $role: creating it (password generated into $ENV_FILE)"
      echo "CREATE ROLE \"$role\" WITH LOGIN PASSWORD '$password'" | psql_admin "$db_port"
    fi
    env_set TAOLIE_DB_PASSWORD "$password"
    changed=1
  fi
  if [ "$(echo "SELECT 1 FROM pg_database WHERE datname = '$dbname'" |
    psql_admin "$db_port")" != 1 ]; then
    log "database $dbname: creating it, owned by $role"
    echo "CREATE DATABASE \"$dbname\" OWNER \"$role\"" | psql_admin "$db_port"
    changed=1
  else
    log "database $dbname: exists"
  fi
  PGPASSWORD=$password PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$db_port" -U "$role" \
    -d "$dbname" -tAc 'SELECT 1' >/dev/null ||
    die "role $role cannot log in to $dbname on 127.0.0.1:$db_port with its password: check" \
      "pg_hba.conf of $ver/$name (a 'host all all 127.0.0.1/32 scram-sha-256' line)"
  local mark="cluster=$ver/$name port=$db_port role=$role database=$dbname"
  if [ "$(cat "$SYSTEM_DB_MARK" 2>/dev/null)" != "$mark" ]; then
    echo "$mark" >"$SYSTEM_DB_MARK"
    chmod 0600 "$SYSTEM_DB_MARK"
  fi
}

setup_managed_database() {
  ensure_pg_packages
  log "database: managed (the agent runs its own PostgreSQL under $(yaml_get "$CONFIG" data_dir ||
    echo /var/lib/taolie-host-agent), as user postgres)"
}

# ---- 4. ufw ------------------------------------------------------------------------------

open_ufw() {
  if ! command -v ufw >/dev/null || ! ufw status 2>/dev/null | grep -q '^Status: active'; then
    log "ufw is not active: no firewall rule added (setup never enables a firewall)"
  else
    local ports=() p range
    for p in ssh rental_port_1 rental_port_2 rental_port_3; do
      p=$(yaml_get "$CONFIG" "network.ports.$p" || true)
      if [ -n "$p" ] && [ "$p" != 0 ]; then ports+=("$p/tcp"); fi
    done
    range=$(yaml_get "$CONFIG" network.port_range || true)
    [ -z "$range" ] || ports+=("${range/-/:}/tcp")
    for p in "${ports[@]}"; do
      ufw allow "$p" comment taolie-host-agent | sed 's/^/setup: ufw: /'
    done
  fi
  log "note: ports Docker publishes bypass ufw (Docker's own iptables rules come first);" \
    "the agent's rental firewall (chains TAOLIE-RENTALS*) is what guards the rentals"
}

# ---- 5. the unit -------------------------------------------------------------------------

have_api_key() {
  [ -n "$(env_get TAOLIE_API_KEY)" ] && return 0
  local k
  k=$(yaml_get "$CONFIG" agent.api_key || true)
  [ -n "$k" ] && [ "$k" != your-api-key-here ]
}

unit_path() { readlink -f "/usr/lib/systemd/system/$UNIT"; }
wants_ours() { [ -L "$WANTS_LINK" ] && [ "$(readlink -f "$WANTS_LINK")" = "$(unit_path)" ]; }

start_unit() {
  if [ "$systemd_running" -eq 1 ]; then
    systemctl daemon-reload
    systemctl enable "$UNIT" 2>&1 | sed 's/^/setup: /'
    if ! have_api_key; then
      log "no API key yet: enabled, not started. Add TAOLIE_API_KEY=... to $ENV_FILE, then:" \
        "systemctl start $PKG"
    elif ! systemctl is-active -q "$UNIT"; then
      systemctl start "$UNIT" || warn "the agent did not start: journalctl -u $PKG -e"
      log "started $UNIT"
    elif [ "$changed" -eq 1 ]; then
      systemctl restart "$UNIT" || warn "the agent did not restart: journalctl -u $PKG -e"
      log "restarted $UNIT (its configuration changed)"
    else
      log "$UNIT is running"
    fi
  else
    log "systemd is not running here (PID 1 is $(ps -o comm= -p 1 2>/dev/null || echo unknown))"
    if wants_ours; then
      log "$UNIT is enabled for the next boot"
    else
      # systemctl enable works offline; the symlink by hand where it does not.
      systemctl enable "$UNIT" >/dev/null 2>&1 || true
      if ! wants_ours; then
        mkdir -p "$(dirname "$WANTS_LINK")"
        ln -sfn "$(unit_path)" "$WANTS_LINK"
      fi
      log "$UNIT enabled for the next boot ($WANTS_LINK)"
    fi
    log "to run the agent now:"
    echo "  set -a; . $ENV_FILE; set +a; taolie-host-agent run --config $CONFIG"
  fi
}

# ---- 6. the first agent's containers -----------------------------------------------------
# Renters' containers of the first agent: named deployment-<id> (the platform's naming, ours
# too) but without our label taolie.managed. They are listed, never adopted or stopped.
list_first_agent_containers() {
  command -v docker >/dev/null || return 0
  local host
  host=$(yaml_get "$CONFIG" docker.host || true)
  local dk=(docker)
  [ -z "$host" ] || dk=(docker -H "$host")
  local out
  out=$(timeout 10 "${dk[@]}" ps --filter name=deployment- \
    --format '{{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Label "taolie.managed"}}' 2>/dev/null) ||
    { log "Docker not reachable: the first agent's containers were not looked for"; return 0; }
  out=$(awk -F'\t' '$1 ~ /^deployment-/ && $4 == "" { print "  " $1 "  " $2 "  " $3 }' <<<"$out")
  if [ -n "$out" ]; then
    log "running containers of the first agent (not adopted: they keep running until their" \
      "renters' time ends; stop them with docker stop when it has):"
    echo "$out"
  fi
}

# ---- 7. doctor ---------------------------------------------------------------------------

run_doctor() {
  # A binary without the subcommand prints its general help (exit 0) for `doctor --help`.
  if ! taolie-host-agent doctor --help 2>&1 | grep -q '^Usage: .* doctor'; then
    log "(this build has no 'taolie-host-agent doctor': no checks run)"
    return 0
  fi
  log "taolie-host-agent doctor:"
  if (
    export_env_file
    timeout 120 taolie-host-agent doctor --config "$CONFIG" </dev/null
  ); then
    log "doctor: no failure"
  else
    log "doctor found problems (above); the install itself is done"
  fi
}

# ---- main --------------------------------------------------------------------------------
# One function, read whole before it runs: piped, bash reads this script from stdin as it goes,
# so nothing below may start before the last line has been read.
main() {
  env_file_pairs >/dev/null  # a bad env file stops setup before it changes anything
  find_or_build_deb
  install_package
  command -v taolie-host-agent >/dev/null || die "taolie-host-agent is not on PATH after the install"
  ensure_config
  prompt_missing
  case "$database" in
    system) setup_system_database ;;
    managed) setup_managed_database ;;
    "") if [ "$(yaml_get "$CONFIG" database.mode || true)" != external ]; then
        setup_managed_database
      fi ;;
  esac
  write_config
  check_config
  open_ufw
  start_unit
  list_first_agent_containers
  run_doctor
  log "done: $(taolie-host-agent version 2>/dev/null | head -n 1)"
}
main
