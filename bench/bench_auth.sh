#!/bin/sh
# Login latency: the median of sequential logins (Argon2id, m = 19 MiB, t = 2,
# p = 1), and the latency of an authenticated read while a burst of logins
# queues on the hashing pool, next to the same read on an idle server.
set -eu
. bench/lib.sh
bench_start
serve_start NOTEBOOKD_AUTH_RATE_PER_MIN=0 NOTEBOOKD_WORKERS=0
python3 - "$port" <<'PY'
import json, statistics, sys, threading, time, urllib.request
B = "http://127.0.0.1:%s" % sys.argv[1]
def post(p, body, tok=None):
    h = {"Content-Type": "application/json"}
    if tok: h["Authorization"] = "Bearer " + tok
    r = urllib.request.Request(B + p, data=json.dumps(body).encode(), headers=h)
    with urllib.request.urlopen(r) as f:
        return json.loads(f.read())
def get(p, tok):
    r = urllib.request.Request(B + p, headers={"Authorization": "Bearer " + tok})
    t0 = time.perf_counter()
    urllib.request.urlopen(r).read()
    return time.perf_counter() - t0
tok = post("/v1/auth/register", {"email": "bench@example.com", "password": "long enough pw"})["access_token"]
times = []
for _ in range(30):
    t0 = time.perf_counter()
    post("/v1/auth/login", {"email": "bench@example.com", "password": "long enough pw"})
    times.append(time.perf_counter() - t0)
idle = statistics.median(get("/v1/me", tok) for _ in range(50))
stop = False
def burst():
    while not stop:
        try:
            post("/v1/auth/login", {"email": "bench@example.com", "password": "long enough pw"})
        except Exception:
            pass
ths = [threading.Thread(target=burst) for _ in range(32)]
for t in ths: t.start()
time.sleep(0.5)
busy = statistics.median(get("/v1/me", tok) for _ in range(50))
stop = True
for t in ths: t.join()
print("login, Argon2id m=19 MiB t=2 p=1: median %.1f ms, p90 %.1f ms over %d sequential logins"
      % (statistics.median(times) * 1e3, sorted(times)[int(len(times) * 0.9)] * 1e3, len(times)))
print("GET /v1/me median: idle %.2f ms, during 32 concurrent login loops %.2f ms (ratio %.2f)"
      % (idle * 1e3, busy * 1e3, busy / idle))
PY
