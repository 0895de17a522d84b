#!/bin/sh
# Read replica A/B, in one run: GET /v1/notebooks?limit=20 over 2,000 users /
# 10k notebooks, served by notebookd without DATABASE_READ_URL (primary: every
# read on the primary) and with it (replica: a streaming replica of the same
# cluster made here with pg_basebackup -R), ROUNDS times each, alternating.
# Per run: req/s, p50/p99, the CPU each request cost the primary's
# PostgreSQL, the replica's PostgreSQL and notebookd (utime+stime from /proc
# over the run, divided by the requests wrk counted), and the share of reads
# the replica served (notebookd_db_replica_reads_total). On one machine the
# replica competes for the same cores as the primary, so req/s shows the
# routing's cost rather than a scaling gain; the primary's CPU per read shows
# the offload.
#
#   sh bench/bench_replica.sh        knobs: ROUNDS [3], SECONDS_RUN [8], CONNS [200]
set -eu
. bench/lib.sh
bench_start
rdir="$tmp/replica"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$rdir/run"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$rdir"
stop_replica() { as_pg "$PGBIN/pg_ctl" -D "$rdir/data" -m immediate -w stop >/dev/null 2>&1 || true; }
trap 'stop_replica; bench_stop' EXIT
SECRET="bench-secret-0123456789abcdef0123456789"
list_seed 2000 0
psock=$(echo "$DATABASE_URL" | sed 's/.*host=\([^&]*\).*/\1/')
as_pg "$PGBIN/pg_basebackup" -h "$psock" -p "$pgport" -U notebookd -D "$rdir/data" -R -X stream -c fast
rport=$((pgport + 1))
as_pg "$PGBIN/pg_ctl" -D "$rdir/data" -l "$rdir/postgres.log" -w -t 60 \
	-o "-p $rport -c listen_addresses='' -c unix_socket_directories=$rdir/run" start >/dev/null
READ_URL="postgresql:///notebookd?host=$rdir/run&port=$rport&user=notebookd"
list_tokens 500
list_lua "$tmp/list.lua"
tree() { pm=$(head -n 1 "$1/postmaster.pid"); echo "$pm"; ps --ppid "$pm" -o pid=; }
metric() { python3 -c "import urllib.request as u,sys
for l in u.urlopen('http://127.0.0.1:$port/metrics').read().decode().splitlines():
    if l.startswith('$1 '): print(l.split()[1])"; }
hz=$(getconf CLK_TCK)
results="$tmp/results.txt"
: > "$results"
run_one() { # LABEL [VAR=value ...]
	label=$1
	shift
	serve_start NOTEBOOKD_WORKERS=0 "$@"
	wrk -t2 -c"${CONNS:-200}" -d2 -s "$tmp/list.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 # warm-up
	ppids=$(tree "$(dirname "$(realpath "$tmp/pg/data/postmaster.pid")")" | tr '\n' ' ')
	rpids=$(tree "$rdir/data" | tr '\n' ' ')
	p0=$(cpu_ticks $ppids); r0=$(cpu_ticks $rpids); s0=$(cpu_ticks "$serve_pid"); rr0=$(metric notebookd_db_replica_reads_total)
	out=$(wrk -t2 -c"${CONNS:-200}" -d"${SECONDS_RUN:-8}" --latency -s "$tmp/list.lua" "http://127.0.0.1:$port" 2>&1)
	p1=$(cpu_ticks $ppids); r1=$(cpu_ticks $rpids); s1=$(cpu_ticks "$serve_pid"); rr1=$(metric notebookd_db_replica_reads_total)
	serve_stop
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	bad=$(echo "$out" | grep -c '^status' || true)
	per() { python3 -c "print('%.3f' % (($2 - $1) * 1000.0 / $hz / max(1, $reqs)))"; }
	share=$(python3 -c "print('%.2f' % min(1.0, ($rr1 - $rr0) / max(1, $reqs)))")
	echo "$label $rps $(per "$p0" "$p1") $(per "$r0" "$r1") $(per "$s0" "$s1") $p50 $p99 $bad $share" >> "$results"
	printf '%-8s %9s req/s  primary PG %s ms/req  replica PG %s ms/req  server %s ms/req  p50 %s  p99 %s  non-200 %s  on replica %s\n' \
		"$label" "$rps" "$(per "$p0" "$p1")" "$(per "$r0" "$r1")" "$(per "$s0" "$s1")" "$p50" "$p99" "$bad" "$share"
}
echo "GET /v1/notebooks?limit=20, 500 users rotating, wrk -t2 -c${CONNS:-200}, ${SECONDS_RUN:-8} s a run, $cores cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "${ROUNDS:-3}"); do
	run_one primary
	run_one replica DATABASE_READ_URL="$READ_URL"
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(label, i): return statistics.median(float(r[i]) for r in rows if r[0] == label)
for name, i in (("req/s", 1), ("primary PG CPU ms/req", 2), ("replica PG CPU ms/req", 3), ("server CPU ms/req", 4)):
    a, b = med("primary", i), med("replica", i)
    print("median %-22s primary-only %8.3f  with replica %8.3f" % (name, a, b) + ("  (x%.2f)" % (b / a) if a else ""))
PY
