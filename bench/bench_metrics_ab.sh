#!/bin/sh
# Does the per-request metrics work show? Two notebookd serve running at once
# on one database — BEFORE_BIN (e.g. main's build) and BIN (this checkout's) —
# loaded in turn with wrk in A B B A order, ROUNDS times, on /healthz (the
# bare HTTP path: what the route counters and the latency histogram add
# weighs most there) and on GET /v1/notebooks?limit=20 (the list benchmark's
# request, over 2k users / 10k notebooks / 40k sources). Per run: req/s and
# the server's CPU per request (utime+stime from /proc over the run). Prints
# the medians' ratios after/before; only ratios mean anything on a shared
# machine.
#
#   BEFORE_BIN=/path/to/old/notebookd sh bench/bench_metrics_ab.sh
#   knobs: ROUNDS [4], SECONDS_RUN [5], CONNS [200]
set -eu
. bench/lib.sh
: "${BEFORE_BIN:?set BEFORE_BIN to the notebookd to compare against}"
AFTER_BIN=$BIN
bench_start
SECRET="bench-secret-0123456789abcdef0123456789"
list_seed 2000
list_tokens 1000
list_lua "$tmp/list.lua"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
BIN=$BEFORE_BIN serve_start NOTEBOOKD_WORKERS=0 NOTEBOOKD_RATE_READ_PER_MIN=0
pa=$port pid_a=$serve_pid
serve_pid=
BIN=$AFTER_BIN serve_start NOTEBOOKD_WORKERS=0 NOTEBOOKD_RATE_READ_PER_MIN=0
pb=$port pid_b=$serve_pid
trap 'kill $pid_a $pid_b 2>/dev/null; bench_stop' EXIT
results="$tmp/results.txt"
: > "$results"
run_one() { # LABEL PORT PID WHAT
	case $4 in
	healthz) args="http://127.0.0.1:$2/healthz" ;;
	list) args="-s $tmp/list.lua http://127.0.0.1:$2" ;;
	esac
	# shellcheck disable=SC2086
	wrk -t2 -c"${CONNS:-200}" -d1 $args >/dev/null 2>&1 # warm-up
	t0=$(cpu_ticks "$3")
	# shellcheck disable=SC2086
	out=$(wrk -t2 -c"${CONNS:-200}" -d"${SECONDS_RUN:-5}" $args 2>&1)
	t1=$(cpu_ticks "$3")
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	us=$(python3 -c "print('%.2f' % (($t1 - $t0) * 1e6 / $hz / max(1, $reqs)))")
	echo "$4 $1 $rps $us" >> "$results"
	printf '%-8s %-7s %10s req/s  server %s us/req\n' "$4" "$1" "$rps" "$us"
}
echo "wrk -t2 -c${CONNS:-200}, ${SECONDS_RUN:-5} s a run, A B B A x ${ROUNDS:-4}, $cores cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "${ROUNDS:-4}"); do
	for what in healthz list; do
		run_one before "$pa" "$pid_a" $what
		run_one after "$pb" "$pid_b" $what
		run_one after "$pb" "$pid_b" $what
		run_one before "$pa" "$pid_a" $what
	done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(what, label, i): return statistics.median(float(r[i]) for r in rows if r[0] == what and r[1] == label)
for what in ("healthz", "list"):
    for name, i in (("req/s", 2), ("server CPU us/req", 3)):
        b, a = med(what, "before", i), med(what, "after", i)
        print("median %-8s %-18s before %10.2f  after %10.2f  (x%.3f)" % (what, name, b, a, a / b))
PY
