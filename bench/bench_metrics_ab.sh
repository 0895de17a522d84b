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
"$PGBIN/psql" "$DATABASE_URL" -q <<'SQL'
INSERT INTO users (id, email, password_hash)
  SELECT gen_random_uuid(), 'u' || i || '@bench.test', '$argon2id$v=19$m=19456,t=2,p=1$x$y' FROM generate_series(1, 2000) i;
INSERT INTO notebooks (id, owner_id, title, created_at)
  SELECT gen_random_uuid(), u.id, 'notebook ' || k, now() - k * interval '1 minute' FROM users u, generate_series(1, 5) k;
INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count)
  SELECT gen_random_uuid(), n.id, 'source ' || k, 'text', 'ready', 12 FROM notebooks n, generate_series(1, 4) k;
VACUUM ANALYZE users; VACUUM ANALYZE notebooks; VACUUM ANALYZE sources;
SQL
"$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT id FROM users ORDER BY random() LIMIT 1000" > "$tmp/users.txt"
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
PY
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
