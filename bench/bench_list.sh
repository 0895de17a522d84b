#!/bin/sh
# The project's load test (docs/architecture.md, Measurements): GET /v1/notebooks?limit=20 (each notebook with
# its sources) for many users at 1,000 connections, over 10k users, 50k
# notebooks and 200k sources, next to pgbench running the same two prepared
# statements (the auth check and the list) at its best client count.
set -eu
. bench/lib.sh
bench_start
SECRET="bench-secret-0123456789abcdef0123456789"
echo "seeding 10k users, 50k notebooks, 200k sources ..."
"$PGBIN/psql" "$DATABASE_URL" -q <<'SQL'
INSERT INTO users (id, email, password_hash)
  SELECT gen_random_uuid(), 'u' || i || '@bench.test', '$argon2id$v=19$m=19456,t=2,p=1$x$y' FROM generate_series(1, 10000) i;
INSERT INTO notebooks (id, owner_id, title, created_at)
  SELECT gen_random_uuid(), u.id, 'notebook ' || k, now() - k * interval '1 minute' FROM users u, generate_series(1, 5) k;
INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count)
  SELECT gen_random_uuid(), n.id, 'source ' || k, 'text', 'ready', 12 FROM notebooks n, generate_series(1, 4) k;
VACUUM ANALYZE users; VACUUM ANALYZE notebooks; VACUUM ANALYZE sources;
SQL
"$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT id FROM users ORDER BY random() LIMIT 2000" > "$tmp/users.txt"
# access tokens signed with the server's key, and a wrk script that rotates them
python3 - "$tmp" "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
tmp, secret = sys.argv[1], sys.argv[2].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
toks = []
for uid in open(tmp + "/users.txt").read().split():
    h = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    p = b64(json.dumps({"sub": uid, "iat": now, "exp": now + 3600, "jti": str(uuid.uuid4()),
                        "iss": "notebookd", "aud": "notebookd-api"}).encode())
    s = b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest())
    toks.append(h + "." + p + "." + s)
with open(tmp + "/list.lua", "w") as f:
    f.write("local toks = {" + ",".join('"%s"' % t for t in toks) + "}\n")
    f.write("local i = 0\nrequest = function()\n  i = i + 1\n"
            "  return wrk.format('GET', '/v1/notebooks?limit=20', {['Authorization'] = 'Bearer ' .. toks[(i %% %d) + 1]})\nend\n" % len(toks))
    f.write("response = function(status, headers, body)\n  if status ~= 200 then print('status ' .. status) end\nend\n")
with open(tmp + "/think.lua", "w") as f:
    f.write(open(tmp + "/list.lua").read())
    f.write("delay = function() return math.random(500, 1500) end\n")
    f.write("done = function(summary, latency, requests)\n"
            "  io.write(string.format('think p50 %.2f p95 %.2f p99 %.2f ms\\n', latency:percentile(50) / 1000,"
            " latency:percentile(95) / 1000, latency:percentile(99) / 1000))\nend\n")
with open(tmp + "/users.sql", "w") as f:
    f.write("\\set n random(1, %d)\n" % len(toks))
PY
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
echo "pgbench, the same two prepared statements, 64 users rotating (ceiling): $1 tx/s at $2 clients"
echo "ratio: $(ratio "$rps" "$1")"
echo "1,000 users thinking 1 s on average (0.5–1.5 s) between requests: $think"
