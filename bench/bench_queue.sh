#!/bin/sh
# Job queue: `notebookd worker --concurrency 4` draining N no-op jobs (claimed,
# run and recorded succeeded), next to the ceiling: pgbench running the same
# claim statement (same batch size) and the same completion statement, one
# pair per transaction, at its best client count, on the same N jobs.
#
#   QUEUE_JOBS (50000), QUEUE_CONCURRENCY (4)
#
# On no-op jobs the worker claims concurrency + 64 jobs per statement (its
# prefetch adapts to handler durations and is capped at 64; see
# src/jobs/README.md); pgbench uses the same LIMIT. Our time runs from the
# worker's "started" log line to the last finished_at.
set -eu
. bench/lib.sh
bench_start
N=${QUEUE_JOBS:-50000}
CONC=${QUEUE_CONCURRENCY:-4}
BATCH=$((CONC + 64))
USER_ID=00000000-0000-7000-8000-00000000beef
q() { "$PGBIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }

q "INSERT INTO users (id, email, password_hash) VALUES ('$USER_ID', 'bench@example.com', 'x')"
fill() {
	q "TRUNCATE jobs" >/dev/null
	q "INSERT INTO jobs (id, user_id, kind) SELECT gen_random_uuid(), '$USER_ID', 'noop' FROM generate_series(1, $N)"
	q "VACUUM ANALYZE jobs" >/dev/null
}
# Index-only probes, so that watching costs the machine little.
left() { q "SELECT (SELECT count(*) FROM jobs WHERE status IN ('pending', 'failed') AND deleted_at IS NULL) + (SELECT count(*) FROM jobs WHERE status = 'running')"; }

# ---- ours ----------------------------------------------------------------
ours_once() {
	fill
	NOTEBOOKD_DEBUG_ROUTES=1 NOTEBOOKD_LOG_LEVEL=info "$BIN" worker --concurrency "$CONC" 2>"$tmp/worker.log" &
	wpid=$!
	n=0
	while [ "$(left)" != 0 ]; do
		sleep 0.1
		n=$((n + 1))
		[ $n -lt 1200 ] || { echo "worker did not drain the queue"; tail -n 5 "$tmp/worker.log"; kill $wpid; return 1; }
	done
	kill -TERM $wpid
	wait $wpid || true
	started=$(grep -m1 '"job workers .* started' "$tmp/worker.log" | sed 's/.*"ts":"\([^"]*\)".*/\1/')
	q "SELECT round(count(*) / extract(epoch FROM max(finished_at) - '$started'::timestamptz))
	   FROM jobs WHERE status = 'succeeded'"
}
best_ours=0
for _ in 1 2 3; do
	r=$(ours_once)
	[ "$r" -gt "$best_ours" ] && best_ours=$r
done
done_ours=$(q "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempts = 1")
stmts=$(grep -o '[0-9]* claim statements\|[0-9]* outcome statements' "$tmp/worker.log" | tr '\n' ' ')

# ---- the ceiling: pgbench --------------------------------------------------
cat >"$tmp/queue.sql" <<SQL
WITH claimed AS (UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = 'pgbench', locked_until = now() + 60000 * interval '1 millisecond', updated_at = now() WHERE id = ANY (ARRAY(SELECT id FROM jobs WHERE status IN ('pending', 'failed') AND run_at <= now() AND deleted_at IS NULL AND kind = ANY ('{noop,fail}'::text[]) ORDER BY run_at LIMIT $BATCH FOR UPDATE SKIP LOCKED)) RETURNING id, kind, user_id, source_id, document_id, quiz_id, study_guide_id, payload, attempts, max_attempts, run_at) SELECT coalesce(array_agg(id ORDER BY run_at, id), '{}') AS ids FROM claimed
\gset
UPDATE jobs SET status = 'succeeded', finished_at = now(), updated_at = now(), locked_by = NULL, locked_until = NULL WHERE id = ANY (:ids::uuid[]) AND locked_by = 'pgbench' AND status = 'running';
SQL
best_pg=0
best_c=0
for c in 1 2 4 8; do
	fill
	per=$(((N + BATCH * c - 1) / (BATCH * c) + 2))
	out=$("$PGBIN/pgbench" -n -M prepared -f "$tmp/queue.sql" -c $c -j 2 -t $per "$DATABASE_URL" 2>&1)
	tps=$(echo "$out" | awk '/^tps/ {print $3}')
	tx=$(echo "$out" | awk '/actually processed/ {split($NF, a, "/"); print a[1]}')
	done_pg=$(q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
	[ "$done_pg" = "$N" ] || echo "pgbench at $c clients finished $done_pg of $N jobs"
	r=$(python3 -c "print(int($done_pg / ($tx / $tps)))")
	echo "pgbench at $c clients: $r jobs/s"
	if [ "$r" -gt "$best_pg" ]; then best_pg=$r; best_c=$c; fi
done

echo "queue: $N no-op jobs, $cores cores, claim batch $BATCH"
printf '%-56s %10s\n' "notebookd worker --concurrency $CONC (best of 3)" "$best_ours jobs/s"
printf '%-56s %10s (at %s clients)\n' "pgbench: same claim + completion statements (ceiling)" "$best_pg jobs/s" "$best_c"
echo "ratio worker / pgbench: $(ratio "$best_ours" "$best_pg")"
echo "jobs run exactly once (attempts = 1, succeeded) in the last worker run: $done_ours of $N"
echo "worker statements in that run: $stmts"
