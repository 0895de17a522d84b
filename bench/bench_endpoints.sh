#!/bin/sh
# Each hot endpoint against its own ceiling (issue 14, point 3): notebookd at
# CONNS connections (wrk, a Lua script rotating 2,000 users' tokens and their
# own ids) and pgbench running the cheapest SQL that returns the same data
# (bench/sql/<endpoint>.sql, -M prepared). Per endpoint: req/s, p50/p99, the
# CPU each request cost notebookd and PostgreSQL (utime+stime from /proc of
# the server and of every process of the cluster, ended backends included,
# over the run, divided by the requests), pgbench's tx/s and PostgreSQL CPU per transaction, and the ratio.
# The job claim row is `notebookd worker` draining no-op jobs against pgbench
# running its claim and completion statements (as bench_queue.sh).
#
#   knobs: DURATION [10] seconds a run, WARMUP [2], CONNS [1000], PGBENCH_CLIENTS [32],
#          USERS [10000] (each: NB [5] notebooks; S [4] sources of CH [1] chunks and
#          CV [1] conversation of M [10] messages in each), JOBS [20000], ONLY (a name filter),
#          BEFORE_BIN (another notebookd: then also before/after on AB_ENDPOINTS [the
#          conversations and messages lists, search], ROUNDS [3] rounds A B A B .., medians)
#   the data is seeded with COPY (bench/seed.py); the output ends with one table
set -eu
. bench/lib.sh
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-1000}
PGC=${PGBENCH_CLIENTS:-32}
USERS=${USERS:-10000}
NB=${NB:-5}
S=${S:-4}
CH=${CH:-1}
CV=${CV:-1}
M=${M:-10}
JOBS=${JOBS:-20000}
SECRET="bench-secret-0123456789abcdef0123456789"
bench_start
echo "seeding with COPY: $USERS users, $((USERS * NB)) notebooks, $((USERS * NB * S)) sources, $((USERS * NB * S * CH)) chunks, $((USERS * NB * CV)) conversations, $((USERS * NB * CV * M)) messages ..."
bench_seed 1 "$USERS" "$NB" "$NB" "$S" "$CH" "$CV" "$M"
bench_setup

# 2,000 users (or all) spread over the table; the Lua scripts rotate them
NU=$((USERS < 2000 ? USERS : 2000))
users=$(python3 -c "print(' '.join(str(1 + i * $USERS // $NU) for i in range($NU)))")
# shellcheck disable=SC2086
bench_tokens "$tmp/tokens.txt" $users
# lua NAME METHOD PATH-TEMPLATE [BODY]: {u} user, {n} a notebook with sources, {c} its conversation
lua() {
	python3 - "$tmp" "$1" "$2" "$3" "${4:-}" "$NB" "$CV" $users <<'PY'
import sys
tmp, name, method, tpl, body, nb, cv = sys.argv[1:8]
nb, cv = int(nb), int(cv)
users = [int(u) for u in sys.argv[8:]]
toks = open(tmp + "/tokens.txt").read().split()
uid = lambda k, n: "%08x-0000-4000-8000-%012x" % (k, n)
paths = []
for i, u in enumerate(users):
    n = u * 100 + i % nb
    paths.append(tpl.replace("{n}", uid(2, n)).replace("{c}", uid(4, n * 10)))
with open("%s/%s.lua" % (tmp, name), "w") as f:
    f.write("local toks = {%s}\n" % ",".join('"%s"' % t for t in toks))
    f.write("local paths = {%s}\n" % ",".join('"%s"' % p for p in paths))
    f.write("local i = 0\nrequest = function()\n  i = i + 1\n  local k = (i %% %d) + 1\n" % len(toks))
    f.write("  return wrk.format('%s', paths[k], {['Authorization'] = 'Bearer ' .. toks[k],"
            " ['Content-Type'] = 'application/json'}, %s)\nend\n" % (method, "'%s'" % body if body else "nil"))
PY
}
lua notebooks_list GET '/v1/notebooks?limit=20'
lua notebook_get GET '/v1/notebooks/{n}'
lua sources_list GET '/v1/notebooks/{n}/sources'
lua conversations_list GET '/v1/notebooks/{n}/conversations'
lua messages_list GET '/v1/conversations/{c}/messages'
lua search GET '/v1/notebooks/{n}/search?q=cell%20energy'
lua ask POST '/v1/conversations/{c}/messages' '{"content":"How does the cell make energy?"}'

hz=$(getconf CLK_TCK)
results="$tmp/results.txt"
: >"$results"
ms_per() { python3 -c "print('%.3f' % (($2 - $1) * 1000.0 / $hz / max(1, $3)))"; }
pgb() { # SCRIPT → "tps pg_ms_per_tx" for DURATION seconds at PGC clients
	p0=$(pg_ticks)
	out=$("$PGBIN/pgbench" -n -M prepared -f "$1" -c "$PGC" -j 2 -T "$DURATION" -D ufirst=1 -D ulast="$USERS" \
		-D nb="$NB" -D snb="$NB" -D s="$S" -D ch="$CH" -D cv="$CV" "$DATABASE_URL" 2>&1) || { echo "$out" >&2; echo "0 0"; return; }
	sleep 1 # pgbench's backends exit after it does: let the postmaster reap them (their CPU moves to its cutime)
	p1=$(pg_ticks)
	tx=$(echo "$out" | awk '/actually processed/ {split($NF, a, "/"); print a[1]}')
	tps=$(echo "$out" | awk '/^tps/ {print int($3)}')
	echo "$tps $(ms_per "$p0" "$p1" "$tx")"
}

serve() { serve_start NOTEBOOKD_JWT_SECRET="$SECRET" NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT=100000 NOTEBOOKD_WORKERS=0 NOTEBOOKD_RATE_READ_PER_MIN=0 NOTEBOOKD_GENERATOR=extractive; }
http_run() { # ENDPOINT → "req/s p50 p99 errors server_ms pg_ms" against the running server
	wrk -t2 -c"$CONNS" -d"$WARMUP" -s "$tmp/$1.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
	pg0=$(pg_ticks)
	sv0=$(cpu_ticks "$serve_pid")
	out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 30s --latency -s "$tmp/$1.lua" "http://127.0.0.1:$port" 2>&1)
	pg1=$(pg_ticks)
	sv1=$(cpu_ticks "$serve_pid")
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
	p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	errs=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4+$6+$8+$10} /Non-2xx/ {n += $5} END {print n+0}')
	echo "$rps $p50 $p99 $errs $(ms_per "$sv0" "$sv1" "$reqs") $(ms_per "$pg0" "$pg1" "$reqs")"
}
HTTP="notebooks_list notebook_get sources_list conversations_list messages_list search ask"
serve
echo "endpoints: wrk -t2 -c$CONNS, $DURATION s a run ($WARMUP s warm-up), pgbench -c$PGC -j2 -M prepared, $cores cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for e in $HTTP; do
	case "$e" in *"${ONLY:-}"*) ;; *) continue ;; esac
	r=$(http_run "$e")
	set -- $(pgb "bench/sql/$e.sql")
	echo "$e $r $1 $2" | tee -a "$results"
done
rss=$(ps -o rss= -p "$serve_pid")
serve_stop

# job claim: the worker draining JOBS no-op jobs, then pgbench's claim + completion on as many
if case "job_claim" in *"${ONLY:-}"*) true ;; *) false ;; esac; then
	q() { "$PGBIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }
	owner=$(python3 bench/seed.py id 1 1)
	fill() { q "DELETE FROM jobs; INSERT INTO jobs (id, user_id, kind) SELECT gen_random_uuid(), '$owner', 'noop' FROM generate_series(1, $JOBS)" >/dev/null; q "VACUUM ANALYZE jobs"; }
	left() { q "SELECT count(*) FROM jobs WHERE status IN ('pending', 'failed', 'running')"; }
	fill
	pg0=$(pg_ticks)
	t0=$(date +%s.%N)
	NOTEBOOKD_DEBUG_ROUTES=1 NOTEBOOKD_LOG_LEVEL=warn "$BIN" worker --concurrency 4 2>"$tmp/worker.log" &
	wpid=$!
	i=0
	while [ "$(left)" != 0 ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
	t1=$(date +%s.%N)
	w1=$(cpu_ticks "$wpid")
	pg1=$(pg_ticks)
	kill -TERM "$wpid"
	wait "$wpid" || true
	jps=$(python3 -c "print(int($JOBS / ($t1 - $t0)))")
	batch=68
	cat >"$tmp/claim.sql" <<SQL
WITH claimed AS (UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = 'pgbench', locked_until = now() + 60000 * interval '1 millisecond', updated_at = now() WHERE id = ANY (ARRAY(SELECT id FROM jobs WHERE status IN ('pending', 'failed') AND run_at <= now() AND deleted_at IS NULL AND kind = ANY ('{noop,fail}'::text[]) ORDER BY run_at LIMIT $batch FOR UPDATE SKIP LOCKED)) RETURNING id, kind, user_id, source_id, document_id, quiz_id, study_guide_id, payload, attempts, max_attempts, run_at) SELECT coalesce(array_agg(id ORDER BY run_at, id), '{}') AS ids FROM claimed
\gset
UPDATE jobs SET status = 'succeeded', finished_at = now(), updated_at = now(), locked_by = NULL, locked_until = NULL WHERE id = ANY (:ids::uuid[]) AND locked_by = 'pgbench' AND status = 'running';
SQL
	fill
	q0=$(pg_ticks)
	b0=$(date +%s.%N)
	"$PGBIN/pgbench" -n -M prepared -f "$tmp/claim.sql" -c 4 -j 2 -t $((JOBS / batch / 4 + 2)) "$DATABASE_URL" >/dev/null 2>&1
	b1=$(date +%s.%N)
	q1=$(pg_ticks)
	done_pg=$(q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
	pgjps=$(python3 -c "print(int($done_pg / ($b1 - $b0)))")
	echo "job_claim $jps - - 0 $(ms_per 0 "$w1" "$JOBS") $(ms_per "$pg0" "$pg1" "$JOBS") $pgjps $(ms_per "$q0" "$q1" "$done_pg")" | tee -a "$results"
fi

# before/after: BEFORE_BIN and BIN served in turn on this database, ROUNDS rounds, medians (reads only)
if [ -n "${BEFORE_BIN:-}" ]; then
	ab="$tmp/ab.txt"
	: >"$ab"
	after_bin=$BIN
	for _ in $(seq 1 "${ROUNDS:-3}"); do
		for label in before after; do
			if [ $label = before ]; then BIN=$BEFORE_BIN; else BIN=$after_bin; fi
			serve
			for e in ${AB_ENDPOINTS:-conversations_list messages_list search}; do
				echo "$label $e $(http_run "$e")" | tee -a "$ab"
			done
			serve_stop
		done
	done
	BIN=$after_bin
	echo
	python3 - "$ab" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("| median of the rounds | req/s before → after | server CPU ms/req | PostgreSQL CPU ms/req |")
print("|---|---|---|---|")
for e in dict.fromkeys(r[1] for r in rows):
    m = lambda lab, i: statistics.median(float(r[i]) for r in rows if r[0] == lab and r[1] == e)
    cell = lambda i, f: "%s → %s (×%.2f)" % (f % m("before", i), f % m("after", i), m("after", i) / max(1e-9, m("before", i)))
    print("| %s | %s | %s | %s |" % (e, cell(2, "%.0f"), cell(6, "%.3f"), cell(7, "%.3f")))
PY
fi

echo
echo "notebookd RSS after the HTTP runs: $((${rss:-0} / 1024)) MiB; $cores cores; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("| endpoint | req/s | p50 | p99 | errors | server CPU ms/req | PostgreSQL CPU ms/req | pgbench tx/s | pgbench PostgreSQL CPU ms/tx | ÷ pgbench |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    ratio = "%.2f" % (float(r[1]) / float(r[7])) if float(r[7]) > 0 else "-"
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % tuple(r[:9] + [ratio]))
PY
