#!/usr/bin/env bash
# The demo: installs what it needs, builds an optimized frameproxy, starts an
# echo upstream and the proxy on each poller, drives load through them and
# prints the comparison table (tools/compare --quick).
#   tools/demo.sh               frameproxy (epoll, io_uring, io_uring with write
#                               batching) against the direct run
#   tools/demo.sh --baselines   also HAProxy and nginx (installs them when root)
#   tools/demo.sh --full        the full comparison (about 9.5 minutes with baselines)
# Other arguments go to tools/compare (see tools/compare --help).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--quick)
deps=build
args=()
for a in "$@"; do
	case "$a" in
	--baselines) deps=demo ;;
	--full) mode=() ;;
	*) args+=("$a") ;;
	esac
done

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
exec tools/compare --build "$builddir" "${mode[@]}" "${targets[@]}" "${args[@]}"
