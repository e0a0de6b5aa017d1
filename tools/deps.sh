#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages frameproxy needs.
# Usage: tools/deps.sh [build|demo]   (demo adds the HAProxy and nginx
# baselines of tools/compare)
set -euo pipefail

packages=(meson ninja-build gcc g++ pkg-config liburing-dev libmimalloc-dev
	libinih-dev catch2)
if [ "${1:-build}" = demo ]; then
	packages+=(libboost-context-dev haproxy nginx libnginx-mod-stream)
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "frameproxy needs: ${missing[*]}" >&2
	echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
