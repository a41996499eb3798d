#!/usr/bin/env bash
# The install path, for real, on a disposable Debian 12 machine (root; CI's install stage):
# the .deb (cpack) and the release tarball, apt-get install, systemd-analyze verify and
# security on the unit, dpkg keeping an edited conffile, deploy/setup.sh from the checkout over
# a first agent's install (managed database), again (nothing changes, a hand edit survives),
# with --database system on the distribution's cluster (role, database, password), again,
# piped (refused without --deb), with the key from a file and from stdin, an env file that
# is parsed and never run,
# the first agent's containers listed, then deploy/uninstall.sh (a renter's container kept),
# setup from the tarball, and uninstall.sh --purge-data --remove-containers.
# Prints PASS/FAIL per check and each phase's wall time; exits non-zero on any FAIL.
#
#   CI=true tests/install/install_test.sh      (or TAOLIE_INSTALL_TEST_DISPOSABLE=1)
#
# It installs and removes the taolie-host-agent package and writes /etc/taolie-host-agent,
# /var/lib/taolie-host-agent and /var/log/taolie-host-agent, so it refuses to run elsewhere.
# The agent binary comes from ${TAOLIE_INSTALL_BUILD_DIR:-build} (built there if missing).
# The distribution's PostgreSQL cluster is started with pg_ctlcluster when PID 1 is not
# systemd, and stopped again at the end if it was down. The uninstall steps run under the
# e2e tests' lock (${TAOLIE_E2E_LOCK:-/tmp/taolie-e2e.lock}): `firewall remove` would pull
# the rental firewall from under an e2e test running at the same time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${TAOLIE_INSTALL_BUILD_DIR:-$root/build}
lock=${TAOLIE_E2E_LOCK:-/tmp/taolie-e2e.lock}
readonly CONFIG_DIR=/etc/taolie-host-agent CONFIG=/etc/taolie-host-agent/config.yaml
readonly ENV_FILE=/etc/taolie-host-agent/env
readonly UNIT_FILE=/usr/lib/systemd/system/taolie-host-agent.service
readonly WANTS=/etc/systemd/system/multi-user.target.wants/taolie-host-agent.service
readonly OLD_UNIT=/etc/systemd/system/taolie-host-agent.service
export DEBIAN_FRONTEND=noninteractive

if [ "${CI:-}" != true ] && [ "${TAOLIE_INSTALL_TEST_DISPOSABLE:-}" != 1 ]; then
  echo "install_test: refusing to run: it installs a package and writes /etc; set CI=true" \
    "or TAOLIE_INSTALL_TEST_DISPOSABLE=1 on a disposable machine" >&2
  exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "install_test: run as root" >&2; exit 2; }

fails=0 passes=0
pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() {  # description command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
mode_is() { [ "$(stat -c '%a %U %G' "$1" 2>/dev/null)" = "$2" ]; }       # path "640 root root"
has_line() { grep -qE "$2" "$1"; }                                     # file regex
lacks() { ! grep -qF -- "$2" "$1"; }                                   # file fixed-string
sha() { if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo "no $1"; fi; }
pkg_state() {  # dpkg's status line; "absent" once purged
  local s
  s=$(dpkg-query -W -f='${Status}' taolie-host-agent 2>/dev/null) || s=absent
  case "$s" in *not-installed) s=absent ;; esac
  echo "$s"
}
backups() { find "$CONFIG_DIR" -maxdepth 1 -name 'config.yaml.bak-*' 2>/dev/null | wc -l; }
psql_admin() { runuser -u postgres -- psql -X -tA -p 5432 -d postgres -c "$1" 2>/dev/null || true; }
pkg_installed() { [ "$(pkg_state)" = "install ok installed" ]; }

phase_start=$SECONDS total_start=$SECONDS lock_wait=0
times=""
phase() {
  [ -z "${phase_name:-}" ] || times+="  $(printf '%-46s %4d' "$phase_name" $((SECONDS - phase_start)))\n"
  phase_name=$1
  phase_start=$SECONDS
  [ -z "$1" ] || echo "== $1"
}

work=$(mktemp -d /tmp/taolie-install-test.XXXXXX)
chmod 0755 "$work"
cluster_was_down=0 cluster=""
cleanup() {
  local rc=$?
  if [ "$cluster_was_down" -eq 1 ]; then
    pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop >/dev/null 2>&1 || true
  fi
  if [ -n "${TAOLIE_TEST_DOCKER_HOST:-}" ]; then
    timeout 60 docker -H "$TAOLIE_TEST_DOCKER_HOST" rm -f deployment-install-test-first \
      deployment-install-test-rental >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

wipe() {  # a clean slate (this machine is disposable)
  if [ "$(pkg_state)" != absent ]; then apt-get purge -y -qq taolie-host-agent >/dev/null 2>&1 || true; fi
  rm -rf "$CONFIG_DIR" /var/lib/taolie-host-agent /var/log/taolie-host-agent "$OLD_UNIT" "$WANTS"
}

setup() {  # log-name args...: runs deploy/setup.sh non-interactively, output kept in $work
  local name=$1 rc=0
  shift
  "$root/deploy/setup.sh" "$@" </dev/null >"$work/$name.log" 2>&1 || rc=$?
  sed 's/^/    | /' "$work/$name.log"
  return $rc
}

# ---- the package ---------------------------------------------------------------------------
phase "build + cpack"
for p in dpkg-dev file; do  # cpack's DEB generator: dpkg-shlibdeps, file
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    apt-get install -y -qq --no-install-recommends "$p" >/dev/null </dev/null ||
    { apt-get update -qq </dev/null &&
      apt-get install -y -qq --no-install-recommends "$p" >/dev/null </dev/null; }
done
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTAOLIE_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target taolie-host-agent >/dev/null
(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb=$(find "$work/pkg" -maxdepth 1 -name 'taolie-host-agent_*.deb' | head -n 1)
check "cpack -G DEB made taolie-host-agent_<version>_<arch>.deb" test -f "$deb"
dpkg-deb -f "$deb" Package Version Depends Recommends | sed 's/^/    /'
check "Depends computed by dpkg-shlibdeps (libpq5, libcurl4)" \
  bash -c "dpkg-deb -f '$deb' Depends | grep -q libpq5 && dpkg-deb -f '$deb' Depends | grep -q libcurl4"
check "Recommends docker.io | docker-ce" bash -c "dpkg-deb -f '$deb' Recommends | grep -qF 'docker.io | docker-ce'"
check "config.yaml is a conffile of the package" \
  bash -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx $CONFIG"
check "setup.sh's build packages are install-deps.sh's (plus dpkg-dev, file)" bash -c "
  want=\$(sed -n '/^BUILD_PKGS=(/,/)/p' '$root/scripts/install-deps.sh' | tr -d '()' | sed 's/BUILD_PKGS=//' | tr ' ' '\n')
  have=\$(sed -n '/^readonly BUILD_PKGS=(/,/)/p' '$root/deploy/setup.sh' | tr -d '()' | sed 's/readonly BUILD_PKGS=//' | tr ' ' '\n')
  for p in \$have; do [ \"\$p\" = dpkg-dev ] || [ \"\$p\" = file ] || grep -qx \"\$p\" <<<\"\$want\" || exit 1; done"

tarball=$("$root/packaging/make-release.sh" "$build" "$work/release" 2>/dev/null | tail -n 1)
check "make-release.sh: setup.sh, uninstall.sh and the .deb in a tarball" \
  bash -c "tar tzf '$tarball' | grep -q '/setup.sh$' && tar tzf '$tarball' | grep -q '/uninstall.sh$' && tar tzf '$tarball' | grep -q '/taolie-host-agent_.*\.deb$'"
tar -C "$work/release" -xzf "$tarball"
release_dir=${tarball%.tar.gz}

phase "apt-get install ./deb"
wipe
if (cd "$work/pkg" && apt-get install -y -q "./$(basename "$deb")" >"$work/apt.log" 2>&1); then
  pass "apt-get install ./$(basename "$deb")"
else
  cat "$work/apt.log"
  fail "apt-get install ./$(basename "$deb")"
fi
check "binary /usr/bin/taolie-host-agent 0755" mode_is /usr/bin/taolie-host-agent "755 root root"
check "taolie-host-agent version runs" taolie-host-agent version
check "unit $UNIT_FILE 0644" mode_is "$UNIT_FILE" "644 root root"
check "unit's ExecStart is /usr/bin/taolie-host-agent run" \
  has_line "$UNIT_FILE" '^ExecStart=/usr/bin/taolie-host-agent run --config /etc/taolie-host-agent/config.yaml$'
check "config.yaml 0640 root:root, the default" \
  bash -c "[ \"\$(stat -c '%a %U %G' $CONFIG)\" = '640 root root' ] && cmp -s $CONFIG '$root/deploy/config.yaml'"
check "$CONFIG_DIR 0750" mode_is "$CONFIG_DIR" "750 root root"
check "dpkg lists config.yaml as a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' taolie-host-agent | grep -q ' $CONFIG '"
check "/var/lib/taolie-host-agent 0750" mode_is /var/lib/taolie-host-agent "750 root root"
check "/var/log/taolie-host-agent 0750" mode_is /var/log/taolie-host-agent "750 root root"
check "docs in /usr/share/doc/taolie-host-agent" test -f /usr/share/doc/taolie-host-agent/docs/configuration.md
check "postinst without systemd says how to start" \
  bash -c "[ -d /run/systemd/system ] || grep -q 'taolie-host-agent run --config' '$work/apt.log'"

phase "systemd-analyze verify"
if systemd-analyze verify "$UNIT_FILE" >"$work/verify.log" 2>&1 &&
  ! grep -q taolie-host-agent "$work/verify.log"; then
  pass "systemd-analyze verify $UNIT_FILE (no finding on the unit)"
else
  sed 's/^/    /' "$work/verify.log"
  fail "systemd-analyze verify $UNIT_FILE"
fi
grep -v taolie "$work/verify.log" | sed 's/^/    (other units) /' || true
exposure=$(systemd-analyze security --offline=yes "$UNIT_FILE" 2>/dev/null | tail -n 1 || true)
echo "    $exposure"
check "systemd-analyze security: not EXPOSED/UNSAFE (6.5 MEDIUM when written)" \
  bash -c "grep -q 'MEDIUM\|OK\|SAFE' <<<'$exposure' && ! grep -q 'UNSAFE\|EXPOSED' <<<'$exposure'"

phase "conffile kept by dpkg"
echo "# edited by hand" >>"$CONFIG"
edited=$(sha "$CONFIG")
apt-get install -y -q --reinstall "$deb" >"$work/reinstall.log" 2>&1 || cat "$work/reinstall.log"
check "apt-get install --reinstall keeps an edited config.yaml" test "$(sha "$CONFIG")" = "$edited"
apt-get purge -y -q taolie-host-agent >"$work/purge.log" 2>&1 || cat "$work/purge.log"
check "apt-get purge removes the package and config.yaml" \
  bash -c "[ \"\$(dpkg-query -W -f='\${Status}' taolie-host-agent 2>/dev/null || echo absent)\" != 'install ok installed' ] && [ ! -e $CONFIG ]"

# ---- setup.sh over the first agent --------------------------------------------------------
phase "setup.sh 1 (first agent, managed)"
wipe
rm -f "$build"/taolie-host-agent_*.deb  # setup packages the build itself below
mkdir -p "$CONFIG_DIR"
cat >"$CONFIG" <<'EOF'
# written by the first agent's setup
agent:
  api_key: "first-agent-key"
network:
  public_ip: "198.51.100.1"
  ports:
    ssh: 22022
    rental_port_1: 8888
    rental_port_2: 9999
provider:
  name: "first agent owner"
monitoring:
  heartbeat_interval: 30
EOF
chmod 0644 "$CONFIG"
first_config=$(sha "$CONFIG")
cat >"$OLD_UNIT" <<'EOF'
[Unit]
Description=first TAOLIE agent
[Service]
ExecStart=/usr/bin/python3 /opt/taolie/agent.py
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$(dirname "$WANTS")"
ln -sfn "$OLD_UNIT" "$WANTS"  # the first agent's unit was enabled
key=test-api-key-6a1f
flags=(--yes --api-key "$key" --public-ip 203.0.113.10 --ssh-port 2022
  --rental-port-1 8890 --rental-port-2 9001 --port-range 30000-30099
  --server-url http://127.0.0.1:9)
# From the checkout: setup packages the build directory itself (cpack), as without --deb.
rc=0
TAOLIE_SETUP_BUILD_DIR=$build setup run1 "${flags[@]}" --database managed || rc=$?
check "setup.sh exits 0" test "$rc" = 0
check "setup.sh packaged the checkout's build (no --deb)" grep -q 'packaging (cpack -G DEB)' "$work/run1.log"
check "package installed" pkg_installed
check "the first agent's config backed up unchanged" \
  bash -c "for f in $CONFIG.bak-*; do [ \"\$(sha256sum \"\$f\" | cut -d' ' -f1)\" = $first_config ] && exit 0; done; exit 1"
check "the first agent's unit moved aside" bash -c "[ ! -e $OLD_UNIT ] && [ -f $CONFIG_DIR/first-agent.service ]"
check "its untouched keys and comment kept" \
  bash -c "grep -qx '# written by the first agent.s setup' $CONFIG && grep -qx '  name: \"first agent owner\"' $CONFIG && grep -qx '  api_key: \"first-agent-key\"' $CONFIG"
check "network.public_ip set" has_line "$CONFIG" '^  public_ip: "203\.0\.113\.10"'
check "network.ports.ssh set" has_line "$CONFIG" '^    ssh: 2022$'
check "network.ports.rental_port_1 set" has_line "$CONFIG" '^    rental_port_1: 8890$'
check "network.ports.rental_port_2 set" has_line "$CONFIG" '^    rental_port_2: 9001$'
check "network.port_range added" has_line "$CONFIG" '^  port_range: "30000-30099"$'
check "server.url added" has_line "$CONFIG" '^  url: "http://127\.0\.0\.1:9"$'
check "database.mode managed" has_line "$CONFIG" '^  mode: "managed"$'
check "config.yaml 0640 root:root (was 0644)" mode_is "$CONFIG" "640 root root"
check "env file 0600 root:root" mode_is "$ENV_FILE" "600 root root"
check "API key in the env file" grep -qx "TAOLIE_API_KEY=$key" "$ENV_FILE"
check "API key not in config.yaml" lacks "$CONFIG" "$key"
check "API key not printed" lacks "$work/run1.log" "$key"
check "unit enabled (multi-user.target.wants symlink)" \
  bash -c "[ -L $WANTS ] && [ \"\$(readlink -f $WANTS)\" = \"\$(readlink -f $UNIT_FILE)\" ]"
check "check-config passes with the env file" \
  bash -c "set -a; . $ENV_FILE; set +a; taolie-host-agent check-config --config $CONFIG"
check "without systemd: says so and how to run the agent now" \
  bash -c "[ -d /run/systemd/system ] || { grep -q 'systemd is not running' '$work/run1.log' && grep -q 'taolie-host-agent run --config' '$work/run1.log'; }"
check "ends with doctor's verdict (its FAIL here, no Docker at the default socket, fails nothing)" \
  bash -c "! taolie-host-agent doctor --help 2>&1 | grep -q '^Usage: .* doctor' || grep -q 'verdict:' '$work/run1.log'"
check "ufw: no rule unless active, the Docker note printed" \
  bash -c "grep -q 'bypass ufw' '$work/run1.log'"

phase "setup.sh 2 (again, hand edit)"
sed -i 's/^  heartbeat_interval: 30$/  heartbeat_interval: 45/' "$CONFIG"
before_config=$(sha "$CONFIG") before_env=$(sha "$ENV_FILE") before_baks=$(backups)
if setup run2 --deb "$deb" "${flags[@]}" --database managed; then pass "setup.sh exits 0"; else fail "setup.sh exits 0"; fi
check "config.yaml byte-identical" test "$(sha "$CONFIG")" = "$before_config"
check "hand-edited heartbeat_interval: 45 kept" has_line "$CONFIG" '^  heartbeat_interval: 45$'
check "env file byte-identical" test "$(sha "$ENV_FILE")" = "$before_env"
check "no new backup" test "$(backups)" = "$before_baks"
check "package not reinstalled" grep -q 'is installed (same files' "$work/run2.log"
check "unit still enabled" test -L "$WANTS"

phase "setup.sh 3 (--database system)"
read -r cluster status <<<"$(pg_lsclusters -h | awk '$3 == 5432 { print $1 "/" $2, $4; exit }')"
if [ -n "$cluster" ] && [ "$status" != online ]; then cluster_was_down=1; fi
if ss -ltn 'sport = :5432' | grep -q LISTEN && [ "$status" != online ]; then
  fail "port 5432 is taken by something else than the distribution's cluster"
fi
before_baks=$(backups)
if setup run3 --deb "$deb" "${flags[@]}" --database system; then pass "setup.sh exits 0"; else fail "setup.sh exits 0"; fi
check "the distribution's cluster runs" bash -c "pg_lsclusters -h | awk '\$3 == 5432' | grep -q online"
check "role agent exists" test "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'agent'")" = 1
check "database taolie_host_agent owned by agent" \
  test "$(psql_admin "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'taolie_host_agent'")" = agent
password=$(sed -n 's/^TAOLIE_DB_PASSWORD=//p' "$ENV_FILE" 2>/dev/null || true)
check "TAOLIE_DB_PASSWORD generated into the env file (>= 32 chars)" test ${#password} -ge 32
check "env file still 0600" mode_is "$ENV_FILE" "600 root root"
check "password not printed" bash -c "[ -n '$password' ] && ! grep -qF '$password' '$work/run3.log'"
check "password not in config.yaml" bash -c "[ -n '$password' ] && ! grep -qF '$password' $CONFIG"
check "the role logs in with it on 127.0.0.1" \
  env PGPASSWORD="$password" psql -X -h 127.0.0.1 -p 5432 -U agent -d taolie_host_agent -tAc 'SELECT 1'
check "database.mode external, host 127.0.0.1, port 5432" bash -c "
  grep -qx '  mode: \"external\".*' $CONFIG && grep -q '^  host: \"127.0.0.1\"' $CONFIG && grep -q '^  port: 5432' $CONFIG"
check "config backed up before the change" test "$(backups)" -gt "$before_baks"
check "hand edit still there" has_line "$CONFIG" '^  heartbeat_interval: 45$'
check "check-config passes with the env file" \
  bash -c "set -a; . $ENV_FILE; set +a; taolie-host-agent check-config --config $CONFIG"

phase "setup.sh 4 (--database system again)"
before_config=$(sha "$CONFIG") before_env=$(sha "$ENV_FILE") before_baks=$(backups)
if setup run4 --deb "$deb" "${flags[@]}" --database system; then pass "setup.sh exits 0"; else fail "setup.sh exits 0"; fi
check "config.yaml byte-identical" test "$(sha "$CONFIG")" = "$before_config"
check "env file byte-identical (password kept)" test "$(sha "$ENV_FILE")" = "$before_env"
check "no new backup" test "$(backups)" = "$before_baks"
check "role kept, the password still works" \
  env PGPASSWORD="$password" psql -X -h 127.0.0.1 -p 5432 -U agent -d taolie_host_agent -tAc 'SELECT 1'

phase "setup.sh piped, key from a file / stdin, env file parsed"
# Issue 17 item 8. The same install again, each way, so every run must change nothing.
nokey=(--yes "${flags[@]:3}" --database system)
printf '%s\n' "$key" >"$work/api-key" && chmod 0600 "$work/api-key"
mkdir -p "$work/cwd"
touch "$work/cwd/taolie-host-agent_99.0.0_amd64.deb"  # a file lying where setup is piped
before_config=$(sha "$CONFIG") before_env=$(sha "$ENV_FILE") before_pkg=$(pkg_state)
rc=0
(cd "$work/cwd" && bash -s -- "${nokey[@]}" --api-key-file "$work/api-key" \
  <"$root/deploy/setup.sh" >"$work/piped.log" 2>&1) || rc=$?
sed 's/^/    | /' "$work/piped.log"
check "piped without --deb: refused" test "$rc" != 0
check "piped without --deb: says to pass --deb FILE" grep -q 'pass --deb FILE' "$work/piped.log"
check "piped without --deb: the .deb in the current directory is not taken" \
  lacks "$work/piped.log" "using the package"
check "piped without --deb: nothing changed" \
  test "$(sha "$CONFIG") $(sha "$ENV_FILE") $(pkg_state)" = "$before_config $before_env $before_pkg"
rc=0
(cd "$work/cwd" && bash -s -- --deb "$deb" "${nokey[@]}" --api-key-file "$work/api-key" \
  <"$root/deploy/setup.sh" >"$work/piped2.log" 2>&1) || rc=$?
check "piped with --deb and --api-key-file: exits 0" test "$rc" = 0
check "piped with --deb: that package (same files: not reinstalled)" \
  grep -q 'is installed (same files' "$work/piped2.log"
check "--api-key-file: env file byte-identical (the same key)" test "$(sha "$ENV_FILE")" = "$before_env"
check "--api-key-file: no warning about ps" lacks "$work/piped2.log" "shows the key"
rc=0
"$root/deploy/setup.sh" --deb "$deb" "${nokey[@]}" --api-key - <<<"$key" >"$work/stdin.log" 2>&1 || rc=$?
check "--api-key - (stdin): exits 0, env file byte-identical" \
  test "$rc $(sha "$ENV_FILE")" = "0 $before_env"
check "--api-key KEY: warned that it shows in ps" grep -q 'shows the key to every local user' "$work/run1.log"
# The env file is parsed, not sourced: a value is taken literally, nothing in it runs.
cp -p "$ENV_FILE" "$work/env.saved"
# shellcheck disable=SC2016 # the $(...) is the point: it must stay text
printf 'TAOLIE_TEST_LITERAL=$(touch %s/pwned)`touch %s/pwned2`\n' "$work" "$work" >>"$ENV_FILE"
rc=0
setup envlit --deb "$deb" "${nokey[@]}" || rc=$?
check "env file with \$(...) in a value: setup exits 0" test "$rc" = 0
check "env file with \$(...) in a value: nothing ran" \
  bash -c "[ ! -e '$work/pwned' ] && [ ! -e '$work/pwned2' ]"
printf 'this line is not a pair\n' >>"$ENV_FILE"
before_config=$(sha "$CONFIG")
rc=0
setup envbad --deb "$deb" "${nokey[@]}" || rc=$?
check "env file with a bad line: refused naming the line" \
  bash -c "[ $rc != 0 ] && grep -q 'env line [0-9]*: not KEY=VALUE' '$work/envbad.log'"
check "env file with a bad line: nothing changed" \
  bash -c "[ '$(sha "$CONFIG")' = '$before_config' ] && ! grep -q 'apt-get\|backed up' '$work/envbad.log'"
printf 'LD_PRELOAD=/tmp/x.so\n' >"$ENV_FILE.bad" && cat "$work/env.saved" >>"$ENV_FILE.bad"
mv -f "$ENV_FILE.bad" "$ENV_FILE" && chmod 0600 "$ENV_FILE"
rc=0
setup envld --deb "$deb" "${nokey[@]}" || rc=$?
check "env file setting LD_PRELOAD: refused" \
  bash -c "[ $rc != 0 ] && grep -q 'LD_PRELOAD is not taken' '$work/envld.log'"
cp -p "$work/env.saved" "$ENV_FILE"

# ---- containers, uninstall.sh --------------------------------------------------------------
# From here on under the e2e tests' lock: containers on the test dockerd and `firewall remove`
# must not meet an e2e test.
exec {lock_fd}>>"$lock"
if ! flock -n "$lock_fd"; then
  echo "    (waiting for $lock: an e2e test runs)"
  waited=$SECONDS
  flock -w 900 "$lock_fd"
  lock_wait=$((SECONDS - waited))
  phase_start=$((phase_start + lock_wait))
fi

phase "containers (first agent's, a renter's)"
[ -n "${TAOLIE_TEST_DOCKER_HOST:-}" ] || eval "$("$root/tests/fixtures/services.sh" env)"
dk() { timeout 60 docker -H "$TAOLIE_TEST_DOCKER_HOST" "$@"; }
running() { [ "$(dk inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
image=$TAOLIE_TEST_REGISTRY/taolie-test/busybox:1
first=deployment-install-test-first rental=deployment-install-test-rental
if dk version >/dev/null 2>&1; then
  pass "test dockerd reachable ($TAOLIE_TEST_DOCKER_HOST)"
  dk image inspect "$image" >/dev/null 2>&1 || dk pull -q "$image" >/dev/null
  dk rm -f "$first" "$rental" >/dev/null 2>&1 || true
  dk run -d --name "$first" "$image" >/dev/null
  dk run -d --name "$rental" --label taolie.managed=true \
    --label taolie.deployment_id=install-test-rental "$image" >/dev/null
else
  fail "test dockerd reachable ($TAOLIE_TEST_DOCKER_HOST): run tests/fixtures/services.sh start"
fi
# The owner points the agent at that dockerd (a section added by hand: the first agent's
# config had none).
printf 'docker:\n  host: "%s"\n' "$TAOLIE_TEST_DOCKER_HOST" >>"$CONFIG"
before_config=$(sha "$CONFIG")
if setup run4b --deb "$deb" "${flags[@]}" --database system; then pass "setup.sh exits 0"; else fail "setup.sh exits 0"; fi
check "setup lists the first agent's container" grep -q "^  $first " "$work/run4b.log"
check "setup does not list a container with the agent's label" lacks "$work/run4b.log" "$rental"
check "both still running (listed, not adopted)" bash -c "$(declare -f dk running); running $first && running $rental"
check "config.yaml byte-identical (the hand edit kept)" test "$(sha "$CONFIG")" = "$before_config"
before_env=$(sha "$ENV_FILE")

phase "uninstall.sh"
rc=0
"$root/deploy/uninstall.sh" </dev/null >"$work/uninstall.log" 2>&1 || rc=$?
sed 's/^/    | /' "$work/uninstall.log"
check "uninstall.sh exits 0" test "$rc" = 0
check "package removed (config files kept)" \
  bash -c "dpkg-query -W -f='\${Status}' taolie-host-agent | grep -q config-files"
check "binary gone" test ! -e /usr/bin/taolie-host-agent
check "unit disabled" test ! -e "$WANTS"
check "firewall rules removed" grep -q 'firewall: removed the rules' "$work/uninstall.log"
check "config.yaml kept" test "$(sha "$CONFIG")" = "$before_config"
check "env file kept" test "$(sha "$ENV_FILE")" = "$before_env"
check "/var/lib/taolie-host-agent kept" test -d /var/lib/taolie-host-agent
check "database role kept" test "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'agent'")" = 1
check "renter's container kept, running, listed" \
  bash -c "$(declare -f dk running); running $rental && grep -q '/$rental' '$work/uninstall.log'"

phase "uninstall.sh --purge-data --remove-containers"
# Reinstalled first (from the release tarball: the .deb next to setup.sh), so that the purge
# runs with the package present.
rc=0
"$release_dir/setup.sh" "${flags[@]}" </dev/null >"$work/run5.log" 2>&1 || rc=$?
check "the release tarball's setup.sh installs the .deb next to it" \
  bash -c "[ $rc = 0 ] && grep -q 'using the package next to this script' '$work/run5.log' && dpkg-query -W -f='\${Status}' taolie-host-agent | grep -q 'ok installed'"
rc=0
"$root/deploy/uninstall.sh" --purge-data --remove-containers --yes </dev/null \
  >"$work/purge-data.log" 2>&1 || rc=$?
sed 's/^/    | /' "$work/purge-data.log"
check "uninstall.sh --purge-data exits 0" test "$rc" = 0
check "package purged" test "$(pkg_state)" = absent
check "$CONFIG_DIR removed" test ! -e "$CONFIG_DIR"
check "/var/lib/taolie-host-agent removed" test ! -e /var/lib/taolie-host-agent
check "/var/log/taolie-host-agent removed" test ! -e /var/log/taolie-host-agent
check "role and database dropped" \
  test "$(psql_admin "SELECT count(*) FROM pg_roles WHERE rolname = 'agent'")$(psql_admin "SELECT count(*) FROM pg_database WHERE datname = 'taolie_host_agent'")" = 00
check "renter's container removed" bash -c "$(declare -f dk); ! dk inspect $rental"
check "the first agent's container left alone (no label of ours)" \
  bash -c "$(declare -f dk running); running $first"
dk rm -f "$first" >/dev/null 2>&1 || true
phase ""

echo
echo "== phase wall times (s)"
printf '%b' "$times"
printf '  %-46s %4d\n' total $((SECONDS - total_start - lock_wait))
[ "$lock_wait" -eq 0 ] || printf '  %-46s %4d\n' "(not counted: waiting for the e2e lock)" "$lock_wait"
echo "install_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
