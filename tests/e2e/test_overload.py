"""Overload: shed at once what would miss its deadline (issue 14, point 8).

One database connection for the handlers (pool 1, no overflow, one loop, no
pipelines, so every statement needs that connection) and a slow statement
(GET /debug/sleep?ms=1000, a pg_sleep). A burst of 12 such requests is far
beyond what the connection can serve within the 6 s deadline: before, every
request queued for the connection, and those that could not get it in time
were answered 503 at the deadline, 6 s later. Now a request whose predicted
wait (its place in the queue times the measured hold time of a connection,
plus its own) would outlast its deadline is answered 503 `unavailable` with
Retry-After at once, the admitted ones complete, sheds are counted in
/metrics, and a health check is never shed: it waits its turn.
"""
import re
import threading
import time

from harness import Server, check, eq, wait_until

SLEEP_MS = 1000
DEADLINE_MS = 6000
BURST = 12


SHED_SCRAPES = [0]


def _metric(s, name):
    body = s.get("/metrics").body
    # a scrape's own queue query takes a connection too: in a full queue it is
    # shed like any request (counted), and the page says so with a scrape error
    if re.search(r"^notebookd_jobs_queue_scrape_error 1$", body, re.M):
        SHED_SCRAPES[0] += 1
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    check(m, "%s missing from /metrics" % name)
    return int(m.group(1))


def test_a_burst_beyond_capacity_gets_fast_503s_and_the_admitted_complete():
    s = Server(env={"NOTEBOOKD_DEBUG_ROUTES": "1", "NOTEBOOKD_IO_THREADS": "1", "NOTEBOOKD_DB_POOL_SIZE": "1",
                    "NOTEBOOKD_DB_POOL_OVERFLOW": "0", "NOTEBOOKD_DB_PIPELINES": "0",
                    "NOTEBOOKD_REQUEST_TIMEOUT_MS": str(DEADLINE_MS), "NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS": "30000"})
    SHED_SCRAPES[0] = 0
    try:
        # one request alone: the pool learns how long the statement holds its connection
        eq(s.get("/debug/sleep?ms=%d" % SLEEP_MS).status, 200)
        results = [None] * BURST

        def one(i):
            t0 = time.time()
            r = s.get("/debug/sleep?ms=%d" % SLEEP_MS, timeout=60)
            results[i] = (r, time.time() - t0)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(BURST)]
        for t in threads:
            t.start()
        wait_until(lambda: _metric(s, 'notebookd_db_waiting{pool="loops"}') > 0, 30, "requests queued")
        # a health check in the full queue waits its turn instead of being shed
        ready = {}
        health = threading.Thread(target=lambda: ready.update(r=s.get("/readyz", timeout=60)))
        health.start()
        for t in threads + [health]:
            t.join()
        ok = [(r, dt) for r, dt in results if r.status == 200]
        shed = [(r, dt) for r, dt in results if r.status != 200]
        check(ok, "no request of the burst was admitted")
        check(shed, "nothing was shed")
        for r, dt in shed:
            eq(r.status, 503, r.body[:300])
            eq(r.json["error"]["code"], "unavailable")
            check(r.header("Retry-After"), "a shed answer without Retry-After")
            # at once, not at the deadline (generous: the deadline is 6 s)
            check(dt < DEADLINE_MS / 2000.0, "a 503 came after %.2fs, not at once" % dt)
        for r, dt in ok:
            eq(r.json, {"slept_ms": SLEEP_MS})
            check(dt < DEADLINE_MS / 1000.0, "an admitted request took %.2fs" % dt)
        eq(ready["r"].status, 200, ready["r"].body[:300])
        eq(_metric(s, "notebookd_http_shed_total"), len(shed) + SHED_SCRAPES[0])
        # the pool is free again: a new request is served
        eq(s.get("/debug/sleep?ms=0").status, 200)
    finally:
        eq(s.stop(), 0)
