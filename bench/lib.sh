# Shared set-up for the benchmarks: a throwaway cluster (unix socket only,
# fsync off) and a notebookd on a free port. Source it; call bench_start.
BIN=${NOTEBOOKD_BIN:-build/release/notebookd}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cores=$(nproc)

bench_start() {
	tmp=$(mktemp -d /tmp/notebookd-bench.XXXXXX)
	chmod 755 "$tmp"
	pgport=$((30000 + $$ % 20000))
	trap 'bench_stop' EXIT
	trap 'exit 1' INT TERM
	DATABASE_URL=$(sh scripts/pg.sh start "$tmp/pg" "$pgport" unix)
	export DATABASE_URL
	"$BIN" migrate >/dev/null
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

serve_start() { # extra env as arguments: VAR=value ...
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# API-wide limits: reads stay limited per user (the list benchmark measures their cost), but the
	# load generator is one address sending for thousands of users (so it is not held to the
	# per-address connection cap either), and a few users upload a lot
	env NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT=1000000 NOTEBOOKD_LISTEN="127.0.0.1:$port" NOTEBOOKD_ACCESS_LOG=0 NOTEBOOKD_JWT_SECRET="bench-secret-0123456789abcdef0123456789" \
		NOTEBOOKD_RATE_IP_MULTIPLIER=100000 NOTEBOOKD_RATE_WRITE_PER_MIN=0 NOTEBOOKD_RATE_UPLOAD_PER_MIN=0 \
		NOTEBOOKD_RATE_GENERATE_PER_MIN=0 NOTEBOOKD_MAIL_DIR="$tmp/mail" "$@" "$BIN" serve >"$tmp/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 1 100); do
		python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "notebookd did not start"; cat "$tmp/serve.log"; return 1
}

serve_stop() {
	[ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
	serve_pid=
}

bench_stop() {
	serve_stop
	sh scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}

# wrk_run URL [connections] [seconds] → prints "rps p50 p99 errors"
wrk_run() {
	out=$(wrk -t2 -c"${2:-1000}" -d"${3:-10}" --latency "$1" 2>&1)
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	errs=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4+$6+$8+$10} /Non-2xx/ {n += $5} END {print n+0}')
	echo "$rps $p50 $p99 ${errs:-0}"
}

# pgbench_best FILE → best tps over client counts
pgbench_best() {
	best=0; bestc=0
	for c in 8 16 32 64; do
		t=$("$PGBIN/pgbench" -n -M prepared -f "$1" -c $c -j 2 -T "${PGBENCH_SECONDS:-8}" "$DATABASE_URL" 2>/dev/null | awk '/^tps/ {print int($3)}')
		if [ "${t:-0}" -gt "$best" ]; then best=$t; bestc=$c; fi
	done
	echo "$best $bestc"
}

ratio() { python3 -c "print('%.2f' % (float('$1') / float('$2')))"; }

# bench_seed FIRST LAST NB SNB S CH CV M: users FIRST..LAST and their rows
# (bench/seed.py says which), loaded with COPY into $DATABASE_URL; then
# bench_setup: bench/sql/setup.sql (bench_id() for pgbench's scripts, VACUUM ANALYZE).
bench_seed() {
	for t in users notebooks sources chunks conversations messages; do
		python3 bench/seed.py "$t" "$@" |
			"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "COPY $t ($(python3 bench/seed.py columns $t)) FROM STDIN"
	done
}
bench_setup() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f bench/sql/setup.sql; }

# bench_tokens OUT N...: access tokens signed with $SECRET for users number N
# (bench/seed.py's ids), one a line
bench_tokens() {
	out=$1
	shift
	python3 - "$SECRET" "$@" >"$out" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
secret = sys.argv[1].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
for n in sys.argv[2:]:
    p = b64(json.dumps({"sub": "%08x-0000-4000-8000-%012x" % (1, int(n)), "iat": now, "exp": now + 7200,
                        "jti": str(uuid.uuid4()), "iss": "notebookd", "aud": "notebookd-api"}).encode())
    print(h + "." + p + "." + b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()))
PY
}

# The list benchmarks' data: list_seed USERS [SOURCES] — USERS users with five
# notebooks each and SOURCES (4) sources per notebook, then VACUUM ANALYZE.
list_seed() {
	echo "seeding $1 users, $(($1 * 5)) notebooks, $(($1 * 5 * ${2:-4})) sources ..."
	"$PGBIN/psql" "$DATABASE_URL" -q -v users="$1" -v sources="${2:-4}" <<'SQL'
INSERT INTO users (id, email, password_hash)
  SELECT gen_random_uuid(), 'u' || i || '@bench.test', '$argon2id$v=19$m=19456,t=2,p=1$x$y' FROM generate_series(1, :users) i;
INSERT INTO notebooks (id, owner_id, title, created_at)
  SELECT gen_random_uuid(), u.id, 'notebook ' || k, now() - k * interval '1 minute' FROM users u, generate_series(1, 5) k;
INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count)
  SELECT gen_random_uuid(), n.id, 'source ' || k, 'text', 'ready', 12 FROM notebooks n, generate_series(1, :sources) k;
VACUUM ANALYZE users; VACUUM ANALYZE notebooks; VACUUM ANALYZE sources;
SQL
}

# list_tokens N: N random users to $tmp/users.txt and their access tokens,
# signed with $SECRET (valid two hours), to $tmp/tokens.txt, one a line
list_tokens() {
	"$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT id FROM users ORDER BY random() LIMIT $1" >"$tmp/users.txt"
	python3 - "$SECRET" "$tmp/users.txt" >"$tmp/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
secret = sys.argv[1].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
for uid in open(sys.argv[2]).read().split():
    p = b64(json.dumps({"sub": uid, "iat": now, "exp": now + 7200, "jti": str(uuid.uuid4()),
                        "iss": "notebookd", "aud": "notebookd-api"}).encode())
    print(h + "." + p + "." + b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()))
PY
}

# list_lua OUT: a wrk script that sends GET /v1/notebooks?limit=20 with the
# tokens of $tmp/tokens.txt in turn and prints the status of an answer not 200
list_lua() {
	python3 - "$tmp/tokens.txt" "$1" <<'PY'
import sys
toks = open(sys.argv[1]).read().split()
with open(sys.argv[2], "w") as f:
    f.write("local toks = {" + ",".join('"%s"' % t for t in toks) + "}\n")
    f.write("local i = 0\nrequest = function()\n  i = i + 1\n"
            "  return wrk.format('GET', '/v1/notebooks?limit=20', {['Authorization'] = 'Bearer ' .. toks[(i %% %d) + 1]})\nend\n" % len(toks))
    f.write("response = function(status, headers, body)\n  if status ~= 200 then print('status ' .. status) end\nend\n")
PY
}

# cpu_ticks PID... → the sum of utime+stime (clock ticks) of those processes
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | awk '{s += $1} END {print s + 0}'; }
# pg_pids → the postmaster and every process of the cluster
pg_pids() {
	pm=$(head -n 1 "$tmp/pg/data/postmaster.pid" 2>/dev/null || head -n 1 "$tmp/pg/postmaster.pid")
	echo "$pm"
	ps --ppid "$pm" -o pid=
}
# pg_ticks → CPU (clock ticks) the cluster has used so far: its live processes'
# utime+stime plus what the postmaster's children that ended used (its
# cutime+cstime), so that backends started and ended within a run (pgbench's)
# count too
pg_ticks() {
	pm=$(head -n 1 "$tmp/pg/data/postmaster.pid" 2>/dev/null || head -n 1 "$tmp/pg/postmaster.pid")
	{
		awk '{print $16 + $17}' "/proc/$pm/stat" 2>/dev/null || echo 0
		# shellcheck disable=SC2046
		cpu_ticks $(pg_pids)
	} | awk '{s += $1} END {print s + 0}'
}
