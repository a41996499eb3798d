#!/usr/bin/env bash
# Makes the release tarball that deploy/setup.sh installs from without a checkout:
#
#   packaging/make-release.sh BUILD_DIR [OUT_DIR]
#
# packages BUILD_DIR (cpack -G DEB; the agent's target must be built) and writes
# OUT_DIR/taolie-host-agent-<version>-<arch>.tar.gz (OUT_DIR defaults to BUILD_DIR) holding
# taolie-host-agent-<version>-<arch>/ with setup.sh, uninstall.sh, the .deb and install.md.
# On the server: tar xzf ...; sudo ./taolie-host-agent-<version>-<arch>/setup.sh --api-key ...
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [OUT_DIR]" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$1" && pwd)
out=$(mkdir -p "${2:-$build}" && cd "${2:-$build}" && pwd)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
(cd "$build" && cpack -G DEB -B "$stage/cpack" >/dev/null)
deb=$(find "$stage/cpack" -maxdepth 1 -name 'taolie-host-agent_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "cpack made no package" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
name=taolie-host-agent-$version-$arch
mkdir "$stage/$name"
install -m 0755 "$root/deploy/setup.sh" "$root/deploy/uninstall.sh" "$stage/$name/"
install -m 0644 "$deb" "$root/docs/install.md" "$stage/$name/"
tar -C "$stage" --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
