#!/bin/sh
# The project's load test (docs/architecture.md, Measurements): GET /v1/notebooks?limit=20 (each notebook with
# its sources) for many users at 1,000 connections, over 10k users, 50k
# notebooks and 200k sources, next to pgbench running the two prepared
# statements the server ran before binary rows and the live-user cache (the
# auth check and the list with its JSON built in PostgreSQL) at its best
# client count: kept as the historical yardstick; bench_endpoints.sh has the
# ceilings of today's SQL.
set -eu
. bench/lib.sh
bench_start
SECRET="bench-secret-0123456789abcdef0123456789"
list_seed 10000
list_tokens 2000
list_lua "$tmp/list.lua"
# the same with think time, printing the latencies it saw
{
	cat "$tmp/list.lua"
	cat <<'LUA'
delay = function() return math.random(500, 1500) end
done = function(summary, latency, requests)
  io.write(string.format('think p50 %.2f p95 %.2f p99 %.2f ms\n', latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
LUA
} >"$tmp/think.lua"
# the two statements a list request runs, for pgbench: one script per user for
# 64 of the users, so the ceiling rotates users too (the same rows stay hot
# for a single user, which would flatter it)
list_sql() {
	printf 'SELECT 1 FROM users WHERE id = '"'"'%s'"'"' AND deleted_at IS NULL;\n' "$1"
	cat <<SQL
SELECT json_build_object('id', n.id, 'title', n.title, 'description', n.description,
  'created_at', nb_ts(n.created_at), 'updated_at', nb_ts(n.updated_at), 'deleted_at', nb_ts(n.deleted_at),
  'source_count', (SELECT count(*) FROM sources s WHERE s.notebook_id = n.id AND s.deleted_at IS NULL),
  'sources', coalesce((SELECT json_agg(x.j ORDER BY x.created_at, x.id) FROM (
     SELECT json_build_object('id', s.id, 'notebook_id', s.notebook_id, 'document_id', s.document_id,
       'kind', s.kind, 'title', s.title, 'url', s.url, 'status', s.status, 'error', s.error,
       'byte_size', s.byte_size, 'chunk_count', s.chunk_count, 'page_count', s.page_count,
       'created_at', nb_ts(s.created_at), 'updated_at', nb_ts(s.updated_at)) AS j, s.created_at, s.id
     FROM sources s WHERE s.notebook_id = n.id AND s.deleted_at IS NULL
     ORDER BY s.created_at, s.id LIMIT 50) x), '[]'::json)), n.created_at::text, n.id
FROM notebooks n WHERE n.owner_id = '$1' AND n.deleted_at IS NULL
ORDER BY n.created_at DESC, n.id DESC LIMIT 21;
SQL
}
scripts=""
i=0
for uid in $(head -n 64 "$tmp/users.txt"); do
	list_sql "$uid" > "$tmp/list$i.sql"
	scripts="$scripts -f $tmp/list$i.sql"
	i=$((i + 1))
done
serve_start NOTEBOOKD_JWT_SECRET="$SECRET" NOTEBOOKD_WORKERS=0 NOTEBOOKD_IO_THREADS="${IO_THREADS:-0}" NOTEBOOKD_DB_PIPELINES="${PIPELINES:-2}"
out=$(wrk -t2 -c1000 -d"${SECONDS_RUN:-15}" --latency -s "$tmp/list.lua" "http://127.0.0.1:$port" 2>&1)
# 1,000 users, each thinking 0.5–1.5 s (1 s on average) between requests
think=$(wrk -t2 -c1000 -d"${SECONDS_RUN:-15}" -s "$tmp/think.lua" "http://127.0.0.1:$port" 2>&1 | grep '^think')
rss=$(ps -o rss= -p "$serve_pid")
serve_stop
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
bad=$(echo "$out" | grep -c '^status' || true)
best=0; bestc=0
for c in 8 16 32; do
	# shellcheck disable=SC2086
	t=$("$PGBIN/pgbench" -n -M prepared $scripts -c $c -j 2 -T "${PGBENCH_SECONDS:-8}" "$DATABASE_URL" 2>/dev/null | awk '/^tps/ {print int($3)}')
	if [ "${t:-0}" -gt "$best" ]; then best=$t; bestc=$c; fi
done
pg="$best $bestc"
set -- $pg
echo "GET /v1/notebooks?limit=20, 2,000 users rotating, wrk -t2 -c1000 ($cores cores)"
echo "notebookd:   $rps req/s  p50 $p50  p99 $p99  non-200: $bad  RSS $((rss / 1024)) MiB"
echo "pgbench, the user check and the old JSON list (two prepared statements), 64 users rotating: $1 tx/s at $2 clients"
echo "ratio: $(ratio "$rps" "$1")"
echo "1,000 users thinking 1 s on average (0.5–1.5 s) between requests: $think"
