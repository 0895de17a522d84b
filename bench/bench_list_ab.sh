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
python3 - "$tmp" "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
tmp, secret = sys.argv[1], sys.argv[2].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
toks = []
for uid in open(tmp + "/users.txt").read().split():
    h = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    p = b64(json.dumps({"sub": uid, "iat": now, "exp": now + 7200, "jti": str(uuid.uuid4()),
                        "iss": "notebookd", "aud": "notebookd-api"}).encode())
    s = b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest())
    toks.append(h + "." + p + "." + s)
with open(tmp + "/list.lua", "w") as f:
    f.write("local toks = {" + ",".join('"%s"' % t for t in toks) + "}\n")
    f.write("local i = 0\nrequest = function()\n  i = i + 1\n"
            "  return wrk.format('GET', '/v1/notebooks?limit=20', {['Authorization'] = 'Bearer ' .. toks[(i %% %d) + 1]})\nend\n" % len(toks))
    f.write("response = function(status, headers, body)\n  if status ~= 200 then print('status ' .. status) end\nend\n")
PY
postmaster=$(head -n 1 "$tmp/pg/data/postmaster.pid" 2>/dev/null || head -n 1 "$tmp/pg/postmaster.pid")
# cpu_ticks PID... → the sum of utime+stime (clock ticks) of those processes
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | awk '{s += $1} END {print s + 0}'; }
pg_pids() { echo "$postmaster"; ps --ppid "$postmaster" -o pid= ; }
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
