#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz) for a bounded time.
#   tools/fuzz.sh [SECONDS_PER_TARGET]      default 60
# Builds build-fuzz/ with clang, ASan and UBSan (-Dfuzz=enabled). Each
# target starts from its committed seeds (tests/fuzz/corpus/TARGET/) in a
# scratch corpus, so a run never rewrites the seeds. A crash, leak or
# failed check stops that target, keeps the input under
# bench-out/fuzz/TARGET/ and makes the script exit 1: turn the input into a
# seed and a regression test, then fix.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash tools/deps.sh fuzz

builddir=build-fuzz
setup_args=(-Dfuzz=enabled -Dtests=disabled -Dmimalloc=disabled
	-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized)
if [ -f "$builddir/build.ninja" ]; then
	meson setup --reconfigure "$builddir" "${setup_args[@]}" >/dev/null
else
	CC=clang CXX=clang++ meson setup "$builddir" "${setup_args[@]}" >/dev/null
fi
ninja -C "$builddir" tests/fuzz/fuzz_frame tests/fuzz/fuzz_config tests/fuzz/fuzz_admin \
	tests/fuzz/fuzz_proxy_header >/dev/null

status=0
for target in fuzz_frame fuzz_config fuzz_admin fuzz_proxy_header; do
	name=${target#fuzz_}
	work=$(mktemp -d /tmp/frameproxy-fuzz.XXXXXX)
	out=bench-out/fuzz/$name
	mkdir -p "$out"
	cp tests/fuzz/corpus/"$name"/* "$work"/
	echo "== $target: ${seconds}s from $(ls tests/fuzz/corpus/"$name" | wc -l) seeds"
	if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$builddir/tests/fuzz/$target" -max_total_time="$seconds" -max_len=16384 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$out/" "$work" >"$out/log.txt" 2>&1; then
		echo "FAIL: $target found a problem; input and log in $out/" >&2
		tail -n 30 "$out/log.txt" >&2
		status=1
	else
		grep -E '^stat::(number_of_executed_units|new_units_added)' "$out/log.txt" | tr '\n' ' '
		echo
	fi
	rm -rf "$work"
done
exit $status
