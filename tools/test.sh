#!/usr/bin/env bash
# The whole test suite. Installs what it needs, builds, runs every test.
#   tools/test.sh              release-like build in build/
#   tools/test.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
# Extra arguments after the flags go to `meson test` (e.g. --suite poll).
set -euo pipefail
cd "$(dirname "$0")/.."

builddir=build
setup_args=(--werror)
if [ "${1:-}" = --sanitize ]; then
	shift
	builddir=build-asan
	# mimalloc would replace the allocator ASan needs to intercept.
	setup_args+=(-Db_sanitize=address,undefined -Db_lundef=false
		-Dmimalloc=disabled -Dbuildtype=debug)
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

bash tools/deps.sh test

if [ -f "$builddir/build.ninja" ]; then
	meson setup --reconfigure "$builddir" "${setup_args[@]}" >/dev/null
else
	meson setup "$builddir" "${setup_args[@]}" >/dev/null
fi
ninja -C "$builddir"

status=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@" || status=$?

# One plain closing line CI can read, from meson's own log.
python3 - "$builddir/meson-logs/testlog.json" <<'PY' || true
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"tests: {ok} passed, {bad} failed" + (f", {skip} skipped" if skip else ""))
PY
exit $status
