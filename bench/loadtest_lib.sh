# Shared by bench/loadtest.sh and bench/soak.sh (source after bench/lib.sh).

# notebookd for a load test: release build, default tuning, and every limit
# that would throttle one load generator speaking for a thousand users off:
# the API token buckets per user and per address (NOTEBOOKD_RATE_*_PER_MIN=0,
# NOTEBOOKD_RATE_IP_MULTIPLIER), the login door per account and per address
# (NOTEBOOKD_AUTH_RATE_PER_MIN=0, NOTEBOOKD_AUTH_IP_RATE_PER_MIN=0) and the
# connections per client address; access tokens live a day (a soak outlasts
# the default 15 minutes); a connection may wait for its first request (wrk
# opens all of them at once, the users start over the ramp) and stay idle
# (a user thinking) for 10 minutes instead of 5 s and 60 s: the server
# closing it would make wrk re-open it and lose the user's place.
# bench/README.md lists them.
loadtest_serve() {
	serve_start NOTEBOOKD_FIRST_REQUEST_TIMEOUT_MS=600000 NOTEBOOKD_IDLE_TIMEOUT_MS=600000 NOTEBOOKD_RATE_READ_PER_MIN=0 NOTEBOOKD_RATE_WRITE_PER_MIN=0 NOTEBOOKD_RATE_UPLOAD_PER_MIN=0 \
		NOTEBOOKD_RATE_GENERATE_PER_MIN=0 NOTEBOOKD_AUTH_RATE_PER_MIN=0 NOTEBOOKD_AUTH_IP_RATE_PER_MIN=0 \
		NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT=1000000 NOTEBOOKD_ACCESS_TTL_S=86400 "$@"
}

# One Argon2id hash made by the server itself (a registration, then read
# back), reused for every seeded user; then the dataset (bench/loadtest_seed.py).
loadtest_seed() {
	python3 - "$port" "$LOADTEST_PASSWORD" <<'PY'
import json, sys, urllib.request
r = urllib.request.Request("http://127.0.0.1:%s/v1/auth/register" % sys.argv[1], method="POST",
                           data=json.dumps({"email": "seed@load.test", "password": sys.argv[2]}).encode())
r.add_header("Content-Type", "application/json")
urllib.request.urlopen(r, timeout=60).read()
PY
	hash=$("$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT password_hash FROM users WHERE email = 'seed@load.test'")
	t0=$(date +%s)
	python3 bench/loadtest_seed.py "$DATABASE_URL" "$PGBIN/psql" "$hash" "$tmp"
	echo "seeded in $(($(date +%s) - t0)) s"
	export LT_USERS_FILE="$tmp/users.lua"
}

# Where a run's errors came from: the server's own counters (GET /metrics).
loadtest_counters() {
	python3 - "$port" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
keep = ("notebookd_http_responses_total", "notebookd_db_acquire_timeouts_total", "notebookd_http_request_timeouts_total",
        "notebookd_http_timeouts_total", "notebookd_http_shed_total", "notebookd_db_breaker_opens_total")
vals = [l for l in text.split("\n") if l.startswith(keep) and not l.endswith(" 0")]
print("server counters: " + ("; ".join(vals) if vals else "-"))
PY
}
