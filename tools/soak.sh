#!/usr/bin/env bash
# tools/soak.sh — a long mixed load under AddressSanitizer, with reloads.
# Not part of CI (it runs 10 minutes). Run `tools/soak.sh --help`.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: tools/soak.sh [--minutes N] [--build DIR] [--shards N] [--out DIR]

Builds (or reuses) the ASan + UBSan tree (default build-asan, as
tools/test.sh --sanitize makes it) and runs, for N minutes (default 10):
  - frameproxy --shards 2 (default) with an admin endpoint, in front of two
    frameecho upstreams, health-checked every 500 ms (shared between the
    shards, through reloads and kills);
  - steady load: framebench, 20 connections, 4 in flight, 16..4096-byte
    frames, every frame verified;
  - large frames: framebench, 2 connections, 64..256 KiB frames;
  - churn: framebench runs of 200 frames on 10 fresh connections, back to
    back (new connections all the time);
  - a SIGHUP reload every 30 s, a SIGKILL of a random shard every 2 min.
drain_timeout is 90 s, longer than any framebench run (60 s at most), so a
shard retired by a reload serves its connections to their end: a reload
must cut nothing. (With a shorter drain_timeout, connections that outlive
it are closed at a frame boundary, which a pipelining client sees as
unanswered requests.)
Every 10 s it records the resident memory of the supervisor and of each
shard, and the frames the proxy has forwarded (from /metrics).

It fails (exit 1) when: a framebench run reports a lost, corrupt or
unanswered frame (except the runs cut by a shard kill: those are counted,
not failed); an upstream is ever marked down (they never go away); AddressSanitizer or LeakSanitizer reports anything in any
frameproxy process (the shards exit at the end through a normal drain, so
leaks are checked in every process); the supervisor does not exit 0 on
SIGTERM; or the resident memory of the serving shards (samples with no retiring
shard alive) or of the supervisor, in the last quarter of the run, is more
than 1.25x its level in the second quarter (after warm-up). ASan's
quarantine is off, so freed memory is not counted as resident.
Outputs in --out (default bench-out/soak-DATE): rss.csv, the proxy's log,
the framebench logs, summary.txt.
EOF
}

minutes=10 build=build-asan shards=2 out=
while [ $# -gt 0 ]; do
	case $1 in
	--minutes) minutes=$2; shift 2
		[[ $minutes =~ ^[1-9][0-9]*$ ]] || { echo "soak: --minutes takes a whole number" >&2; exit 2; } ;;
	--build) build=$2; shift 2 ;;
	--shards) shards=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "soak: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/.."
out=${out:-bench-out/soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

if [ ! -x "$build/proxy/frameproxy" ]; then
	echo "soak: building $build (ASan + UBSan)" >&2
	meson setup "$build" --werror -Db_sanitize=address,undefined -Db_lundef=false \
		-Dmimalloc=disabled -Dbuildtype=debug >/dev/null
fi
ninja -C "$build" proxy/frameproxy tools/frameecho tools/framebench >/dev/null
# No quarantine: ASan would otherwise keep up to 256 MiB of freed memory
# resident, and the memory curve would show its quarantine, not the proxy.
# Leak checking and out-of-bounds detection are unaffected.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:quarantine_size_mb=0:log_path=$PWD/$out/asan
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$PWD/$out/ubsan

pids=()       # everything started here, ended by PID
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_line() { # FILE REGEX -> the line, within 30 s
	local i
	for i in $(seq 300); do
		grep -m1 -E "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

echo_ports=()
for i in 1 2; do
	"$build/tools/frameecho" --listen 127.0.0.1:0 --quiet >"$out/echo$i.out" 2>&1 &
	pids+=($!)
	line=$(wait_line "$out/echo$i.out" '^listening on') || { echo "soak: frameecho did not start" >&2; exit 1; }
	echo_ports+=("${line##*:}")
done

"$build/proxy/frameproxy" --shards "$shards" --admin 127.0.0.1:0 --listen 127.0.0.1:0 \
	--server "127.0.0.1:${echo_ports[0]}" --server "127.0.0.1:${echo_ports[1]}" \
	--idle-timeout 10m --drain-timeout 90s --health-interval 500ms 2>"$out/proxy.log" &
sup=$!
pids+=($sup)
line=$(wait_line "$out/proxy.log" 'msg="listening"') || { echo "soak: frameproxy did not start" >&2; exit 1; }
port=${line##*address=127.0.0.1:}; port=${port%% *}
line=$(wait_line "$out/proxy.log" 'msg="admin listening"')
admin=${line##*address=127.0.0.1:}; admin=${admin%% *}
wait_line "$out/proxy.log" 'msg="ready"' >/dev/null

shard_pids() { cat /proc/"$sup"/task/"$sup"/children 2>/dev/null || true; }
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }
forwarded() { # frames client->upstream, from /metrics
	exec 3<>/dev/tcp/127.0.0.1/"$admin" || { echo 0; return; }
	printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
	awk '/^frameproxy_frames_total\{.*client_to_upstream/ {s += $2} END {printf "%d\n", s}' <&3
	exec 3<&-
}

end=$((SECONDS + minutes * 60))
bench=("$build/tools/framebench" --target "127.0.0.1:$port" --grace 10s)
# Long runs end with the soak; a shard kill cuts their connections, so they
# are restarted in a loop and each run's result is kept.
loop_bench() { # NAME ARGS...
	local name=$1 n=0; shift
	while [ $SECONDS -lt $end ]; do
		n=$((n + 1))
		local left=$((end - SECONDS))
		[ $left -gt 60 ] && left=60
		[ $left -lt 1 ] && break
		"${bench[@]}" --duration "${left}s" "$@" >"$out/$name-$n.log" 2>&1 || echo "$n" >>"$out/$name.failed"
	done
}
loop_bench steady -c 20 -d 4 --size 16-4096 &
pids+=($!)
loop_bench large -c 2 -d 2 --size 64K-256K &
pids+=($!)
( n=0; while [ $SECONDS -lt $end ]; do n=$((n + 1))
	"${bench[@]}" -c 10 --frames 200 --size 100 >"$out/churn-last.log" 2>&1 || echo "$n" >>"$out/churn.failed"
  done; echo "$n" >"$out/churn.runs" ) &
pids+=($!)

echo "time_s,supervisor_kib,shards_kib,shards,frames_forwarded" >"$out/rss.csv"
reloads=0 kills=0 next_reload=$((SECONDS + 30)) next_kill=$((SECONDS + 120)) start=$SECONDS
kill_times=()
while [ $SECONDS -lt $end ]; do
	sleep 10
	total=0 count=0
	for p in $(shard_pids); do total=$((total + $(rss_kib "$p"))); count=$((count + 1)); done
	echo "$((SECONDS - start)),$(rss_kib "$sup"),$total,$count,$(forwarded)" >>"$out/rss.csv"
	tail -n1 "$out/rss.csv"
	if [ $SECONDS -ge $next_reload ]; then
		kill -HUP "$sup"; reloads=$((reloads + 1)); next_reload=$((SECONDS + 30))
	fi
	# Not in the last 15 s: a shard that dies during the final drain
	# rightly makes the supervisor's exit status 1.
	if [ $SECONDS -ge $next_kill ] && [ $((SECONDS + 15)) -lt $end ]; then
		victims=($(shard_pids))
		if [ ${#victims[@]} -gt 0 ]; then
			kill -KILL "${victims[$((RANDOM % ${#victims[@]}))]}" 2>/dev/null || true
			kills=$((kills + 1)); kill_times+=($SECONDS)
		fi
		next_kill=$((SECONDS + 120))
	fi
done
wait "${pids[@]:3}" 2>/dev/null || true

kill -TERM "$sup"
status=0
if wait "$sup"; then sup_rc=0; else sup_rc=$?; fi
pids=("${pids[@]:0:2}")

fail() { echo "FAIL: $*" >>"$out/summary.txt"; status=1; }
: >"$out/summary.txt"
[ "$sup_rc" -eq 0 ] || fail "supervisor exited $sup_rc on SIGTERM"
if ls "$out"/asan.* >/dev/null 2>&1 || ls "$out"/ubsan.* >/dev/null 2>&1; then
	fail "sanitizer reports: $(ls "$out"/asan.* "$out"/ubsan.* 2>/dev/null | tr '\n' ' ')"
fi
downs=$(grep -c 'msg="upstream down"' "$out/proxy.log" || true)
[ "$downs" -eq 0 ] || fail "an upstream was marked down $downs times (they never went away)"
checked=$(grep -c 'checked_by=' "$out/proxy.log" || true)
echo "health: 0 upstream down lines expected, $downs seen; $checked adopted verdict changes" >>"$out/summary.txt"
# Runs that failed: allowed only as many as shard kills could cut (a kill
# cuts at most one run of each loop).
for name in steady large churn; do
	failed=0
	[ -f "$out/$name.failed" ] && failed=$(wc -l <"$out/$name.failed")
	if [ "$failed" -gt "$kills" ]; then
		fail "$name: $failed framebench runs failed, only $kills shard kills"
	fi
	corrupt=$(cat "$out/$name"-*.log 2>/dev/null | grep -c -E 'mismatches [1-9]' || true)
	[ "$corrupt" -eq 0 ] || fail "$name: $corrupt runs saw corrupt frames"
done
python3 - "$out/rss.csv" "$shards" >>"$out/summary.txt" <<'PY' || status=1
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
shards = int(sys.argv[2])
# Only samples where the configured number of shards was alive: during a
# reload, retiring shards are counted too, and the sum says nothing.
steady = [r for r in rows if int(r["shards"]) == shards]
if len(steady) < 8:
    print("FAIL: too few samples with only the serving shards:", len(steady)); sys.exit(1)
def growth(series, name):
    q = len(series) // 4
    second = statistics.median(series[q:2 * q])
    last = statistics.median(series[3 * q:])
    print(f"{name} RSS median, 2nd quarter {second} KiB, last quarter {last} KiB: {last / second:.2f}x")
    return last / second
bad = growth([int(r["shards_kib"]) for r in steady], f"{shards} serving shards") > 1.25
bad |= growth([int(r["supervisor_kib"]) for r in rows], "supervisor") > 1.25
print(f"frames forwarded (last sample): {rows[-1]['frames_forwarded']}")
if bad:
    print("FAIL: memory grew"); sys.exit(1)
PY
echo "reloads $reloads, shard kills $kills, churn runs $(cat "$out/churn.runs" 2>/dev/null || echo ?)" >>"$out/summary.txt"
cat "$out/summary.txt"
[ $status -eq 0 ] && echo "soak: passed ($out)" || echo "soak: FAILED ($out)"
exit $status
