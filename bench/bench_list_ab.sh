#!/bin/sh
# Before/after on the notebook list, in one run: GET /v1/notebooks?limit=20
# at 1,000 connections over 10k users / 50k notebooks / 200k sources (the
# seed of bench_list.sh), served in turn by two binaries on the same
# database — BEFORE_BIN (e.g. main's build) and BIN (this checkout's) —
# ROUNDS times each, alternating (A B A B ...) so that drift in the load of a
# shared machine hits both. Per run: req/s, p50/p99, and the CPU each request
# cost notebookd and PostgreSQL (utime+stime from /proc of the server and of
# every backend of the cluster, over the run, divided by the requests wrk
# counted). Prints the ratios after/before of the medians.
#
#   BEFORE_BIN=/path/to/old/notebookd sh bench/bench_list_ab.sh
#   knobs: ROUNDS [3], SECONDS_RUN [10], CONNS [1000], NOCACHE [0] (1: also BIN with
#   NOTEBOOKD_USER_CACHE_SIZE=0, to tell the two changes of issue 14 apart)
set -eu
. bench/lib.sh
: "${BEFORE_BIN:?set BEFORE_BIN to the notebookd to compare against}"
AFTER_BIN=$BIN
bench_start
SECRET="bench-secret-0123456789abcdef0123456789"
list_seed 10000
list_tokens 2000
list_lua "$tmp/list.lua"
hz=$(getconf CLK_TCK)
results="$tmp/results.txt"
: > "$results"
run_one() { # LABEL BINARY [VAR=value ...]
	label=$1 bin=$2
	shift 2
	BIN=$bin serve_start NOTEBOOKD_JWT_SECRET="$SECRET" NOTEBOOKD_WORKERS=0 "$@"
	wrk -t2 -c"${CONNS:-1000}" -d3 -s "$tmp/list.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 # warm-up
	pids=$(pg_pids | tr '\n' ' ')
	pg0=$(cpu_ticks $pids); sv0=$(cpu_ticks "$serve_pid")
	out=$(wrk -t2 -c"${CONNS:-1000}" -d"${SECONDS_RUN:-10}" --latency -s "$tmp/list.lua" "http://127.0.0.1:$port" 2>&1)
	pg1=$(cpu_ticks $pids); sv1=$(cpu_ticks "$serve_pid")
	serve_stop
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	bad=$(echo "$out" | grep -c '^status' || true)
	pgms=$(python3 -c "print('%.3f' % (($pg1 - $pg0) * 1000.0 / $hz / max(1, $reqs)))")
	svms=$(python3 -c "print('%.3f' % (($sv1 - $sv0) * 1000.0 / $hz / max(1, $reqs)))")
	echo "$label $rps $pgms $svms $p50 $p99 $bad" >> "$results"
	printf '%-8s %9s req/s  PG %s ms/req  server %s ms/req  p50 %s  p99 %s  non-200 %s\n' "$label" "$rps" "$pgms" "$svms" "$p50" "$p99" "$bad"
}
echo "GET /v1/notebooks?limit=20, 2,000 users rotating, wrk -t2 -c${CONNS:-1000}, ${SECONDS_RUN:-10} s a run, $cores cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "${ROUNDS:-3}"); do
	run_one before "$BEFORE_BIN"
	run_one after "$AFTER_BIN"
	[ "${NOCACHE:-0}" = 1 ] && run_one nocache "$AFTER_BIN" NOTEBOOKD_USER_CACHE_SIZE=0
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(label, i): return statistics.median(float(r[i]) for r in rows if r[0] == label)
labels = [l for l in ("after", "nocache") if any(r[0] == l for r in rows)]
for name, i in (("req/s", 1), ("PostgreSQL CPU ms/req", 2), ("server CPU ms/req", 3)):
    b = med("before", i)
    print("median %-22s before %9.3f  " % (name, b) +
          "  ".join("%s %9.3f (x%.2f)" % (l, med(l, i), med(l, i) / b) for l in labels))
PY
