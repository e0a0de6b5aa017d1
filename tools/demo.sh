#!/usr/bin/env bash
# The demo: installs what it needs, builds an optimized frameproxy, starts an
# echo upstream and the proxy on each poller, drives load through them and
# prints the comparison table and the shard sweep (tools/compare --quick),
# then where the tables and plots are.
#   tools/demo.sh               frameproxy (epoll, io_uring, io_uring with write
#                               batching) against the direct run, and the shard
#                               sweep of epoll and io_uring (about 2 minutes)
#   tools/demo.sh --baselines   also HAProxy and nginx, and gnuplot for the
#                               plots (installs them when root)
#   tools/demo.sh --full        the full comparison (about 7.5 minutes with baselines)
# Other arguments go to tools/compare (see tools/compare --help).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--quick)
deps=build
args=()
out=""
prev=""
for a in "$@"; do
	case "$a" in
	--baselines) deps=demo ;;
	--full) mode=() ;;
	-h|--help) exec tools/compare --help ;;
	--out=*) out=${a#--out=}; args+=("$a") ;;
	*) [ "$prev" = --out ] && out=$a; args+=("$a") ;;
	esac
	prev=$a
done
if [ -z "$out" ]; then
	out=bench-out/demo-$(date +%Y%m%d-%H%M%S)
	args+=(--out "$out")
fi

bash tools/deps.sh "$deps"

builddir=build-release
if [ -f "$builddir/build.ninja" ]; then
	meson setup --reconfigure "$builddir" -Dbuildtype=release -Dtests=disabled >/dev/null
else
	meson setup "$builddir" -Dbuildtype=release -Dtests=disabled >/dev/null
fi
ninja -C "$builddir" >/dev/null

targets=()
if [ "$deps" = build ]; then
	targets=(--targets direct,epoll,uring,uring-batch)
fi
status=0
tools/compare --build "$builddir" "${mode[@]}" "${targets[@]}" "${args[@]}" || status=$?
echo
echo "tables: $out/summary.md (per run: $out/results.csv)"
if [ -f "$out/throughput.png" ] || [ -f "$out/p99.png" ]; then
	echo "plots:  $out/throughput.png $out/p99.png (frames/s and p99 against shard count)"
elif ! command -v gnuplot >/dev/null; then
	echo "plots:  none (gnuplot is not installed: apt-get install -y gnuplot-nox, or tools/demo.sh --baselines as root)"
else
	echo "plots:  none (no shard sweep in this run)"
fi
exit $status
