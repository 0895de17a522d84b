#!/bin/sh
# make soak — stable for hours (issue 14, point 7; bench/README.md has the rule).
#
# The load test's dataset and mixed scenario (bench/loadtest.lua) at a
# moderate rate — SOAK_VUS (200) users thinking 1 s ± 50 %, every
# SOAK_SOURCE_EVERY-th (20) loop adding a text source so the job queue and the
# in-process workers move — for SOAK_MINUTES (30), one wrk run. Every
# SOAK_WINDOW_S (300 s) one line: the window's p99 per request class,
# requests/s and errors, notebookd's RSS and open fds (/proc), PostgreSQL's
# client connections (pg_stat_activity), the hot tables' dead-tuple ratio
# (pg_stat_user_tables) and size per live row (pg_total_relation_size), and
# the job queue's depth (jobs not finished). At the end bench/soak_check.py
# fits a least-squares line to each series and fails (exit 1) if one trends
# upward beyond its tolerance. 24 hours: SOAK_MINUTES=1440 (see bench/README.md).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/loadtest_lib.sh
MINUTES=${SOAK_MINUTES:-30}
WINDOW=${SOAK_WINDOW_S:-300}
VUS=${SOAK_VUS:-200}
THREADS=${LOADTEST_THREADS:-2}
export LOADTEST_VUS="$VUS" LOADTEST_PASSWORD="${LOADTEST_PASSWORD:-load test password 14}"
export LOADTEST_RAMP_S="${LOADTEST_RAMP_S:-30}" LT_THREADS="$THREADS"
export LOADTEST_SOURCE_EVERY="${SOAK_SOURCE_EVERY:-20}" LT_WINDOW_S="$WINDOW"
nwin=$((MINUTES * 60 / WINDOW))
if [ "$nwin" -lt 3 ] || [ $((VUS % THREADS)) -ne 0 ]; then
	echo "soak: need at least 3 windows (SOAK_MINUTES * 60 / SOAK_WINDOW_S) and SOAK_VUS a multiple of $THREADS" >&2
	exit 2
fi
command -v wrk >/dev/null || { echo "soak: wrk is missing (sh scripts/deps.sh --bench)" >&2; exit 1; }

bench_start
loadtest_serve
loadtest_seed
mkdir -p "$tmp/soak"
export LT_OUT="$tmp/soak/lat"
t0=$(date +%s)
export LT_T0_MS=$((t0 * 1000))
echo "soak: $VUS users, think ${LOADTEST_THINK_MS:-1000} ms ± 50 %, a source every $LOADTEST_SOURCE_EVERY loops," \
	"$MINUTES min, windows of $WINDOW s ($cores cores)"
# a few seconds past the last window, so that each thread's first answer after it flushes it
wrk -t"$THREADS" -c"$VUS" -d"$((nwin * WINDOW + 5))s" --timeout 60s -s bench/loadtest.lua \
	"http://127.0.0.1:$port" >"$tmp/wrk.txt" 2>&1 &
wrk_pid=$!
trap 'kill $wrk_pid 2>/dev/null || true; bench_stop' EXIT

sample() { # window → one line of server and database figures
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$serve_pid/status")
	fds=$(ls "/proc/$serve_pid/fd" | wc -l)
	"$PGBIN/psql" "$DATABASE_URL" -tA -F' ' <<SQL
SELECT 'proc $1 $rss $fds';
SELECT 'pg', count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();
SELECT 'queue', count(*) FROM jobs WHERE status IN ('pending', 'running', 'failed');
SELECT 'table', relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables
 WHERE relname IN ('notebooks', 'sources', 'chunks', 'conversations', 'messages', 'jobs', 'refresh_tokens',
                   'generation_history', 'idempotency_keys') ORDER BY relname;
SQL
}

w=0
while [ "$w" -lt "$nwin" ]; do
	until [ "$(date +%s)" -ge $((t0 + (w + 1) * WINDOW + 3)) ]; do sleep 1; done
	sample "$w" >"$tmp/soak/sample.$w"
	python3 bench/soak_check.py line "$tmp/soak" "$w" "$WINDOW"
	w=$((w + 1))
done
wait "$wrk_pid" || true
python3 bench/soak_check.py check "$tmp/soak" "$nwin" "$WINDOW"
