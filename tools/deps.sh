#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages frameproxy needs.
# Usage: tools/deps.sh [build|test|fuzz|demo]   (test adds promtool for the test
# suite; demo adds the HAProxy and nginx baselines of tools/compare; both add
# gnuplot, which draws tools/compare's plots and is checked by its test)
set -euo pipefail

packages=(meson ninja-build gcc g++ pkg-config liburing-dev libmimalloc-dev
	libsystemd-dev libc-ares-dev libssl-dev catch2)
# Installed without their Recommends (prometheus would bring node-exporter).
lean=()
case "${1:-build}" in
test)
	# promtool, from Debian's prometheus package, checks the /metrics text
	# in tests/shard. Its own group, not `build`: the demo builds with
	# `build`, and on a machine with systemd installing the package also
	# starts a Prometheus server, which a benchmark run does not want.
	lean+=(prometheus gnuplot-nox) ;;
fuzz)
	# libFuzzer comes with clang; tools/fuzz.sh builds the targets with it.
	packages+=(clang libfuzzer-14-dev) ;;
demo)
	packages+=(libboost-context-dev haproxy nginx libnginx-mod-stream)
	lean+=(gnuplot-nox) ;;
esac

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
missing_lean=()
for p in "${lean[@]}"; do
	installed "$p" || missing_lean+=("$p")
done
[ $((${#missing[@]} + ${#missing_lean[@]})) -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "frameproxy needs: ${missing[*]} ${missing_lean[*]}" >&2
	echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" \
		"${missing_lean[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]} ${missing_lean[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#missing_lean[@]} -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends "${missing_lean[@]}" >/dev/null
fi
