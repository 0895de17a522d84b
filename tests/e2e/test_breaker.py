"""End-to-end test of the database circuit breaker (src/db/breaker.c): a
PRIVATE PostgreSQL cluster (scripts/pg.sh, never the shared test cluster) is
stopped in the middle of a stream of requests and started again. The server
must never crash, answer 503 with Retry-After while the database is down
(at once once the breaker is open: no connect is tried), show the breaker's
state in /metrics, and serve 200s again within 5 s of the database's return
with no restart; its job workers pause and resume, and no job is lost or run
twice."""
import os
import socket
import statistics
import threading
import time
import urllib.parse

from harness import Server, check, eq, metrics, psql, wait_until
from test_db_faults import Cluster, migrate, register

ENV = {
    "NOTEBOOKD_WORKERS": "2",
    "NOTEBOOKD_JOB_POLL_MS": "200",
    "NOTEBOOKD_DB_BREAKER_FAILURES": "3",
    "NOTEBOOKD_DB_BREAKER_OPEN_MS": "500",
    "NOTEBOOKD_DB_CONNECT_TIMEOUT_S": "5",
    "NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS": "1000",
}


def connect_attempts(s):
    return sum(1 for l in s.log_lines() if "could not connect to database" in l.get("msg", ""))


def test_breaker_opens_fails_fast_and_closes():
    cluster = Cluster()
    srv = None
    stop = threading.Event()
    results = []  # (t_sent, t_answered, status, retry_after)
    created = []  # sources accepted (202) during the run

    def submit(tok, nb):
        i = 0
        while not stop.is_set():
            t0 = time.time()
            i += 1
            try:
                r = srv.post("/v1/notebooks/%s/sources" % nb,
                             {"kind": "text", "content": "Ribosomes build proteins, during the run %d. " % i * 20},
                             token=tok, timeout=10)
                results.append((t0, time.time(), r.status, r.header("Retry-After")))
                if r.status == 202:
                    created.append(r.json["source"]["id"])
            except OSError as e:
                results.append((t0, time.time(), "error %s" % e, None))
            time.sleep(0.05)

    def stream(tok):
        while not stop.is_set():
            t0 = time.time()
            try:
                r = srv.get("/v1/notebooks", token=tok, timeout=10)
                results.append((t0, time.time(), r.status, r.header("Retry-After")))
            except OSError as e:  # the server must never stop answering
                results.append((t0, time.time(), "error %s" % e, None))
            time.sleep(0.01)

    try:
        migrate(cluster.url)
        srv = Server(database_url=cluster.url, env=ENV)
        tok = register(srv)
        nb = srv.post("/v1/notebooks", {"title": "breaker"}, token=tok).json["id"]
        sids = []
        for i in range(6):
            r = srv.post("/v1/notebooks/%s/sources" % nb,
                         {"kind": "text", "content": "Mitochondria make ATP, source %d. " % i * 20}, token=tok)
            eq(r.status, 202, r.body)
            sids.append(r.json["source"]["id"])
        eq(metrics(srv)["notebookd_db_breaker_state"], 0)
        threads = [threading.Thread(target=stream, args=(tok,)) for _ in range(2)]
        threads.append(threading.Thread(target=submit, args=(tok, nb)))
        for t in threads:
            t.start()
        wait_until(lambda: sum(1 for r in results if r[2] == 200) >= 20, 20, "a stream of 200s")
        t_down = time.time()
        cluster.stop_immediate()
        wait_until(lambda: metrics(srv)["notebookd_db_breaker_state"] == 1, 10, "the breaker to open")
        # while it is open: 503 with Retry-After, answered without a connect attempt
        n503 = lambda: sum(1 for r in results if r[2] == 503 and r[0] > t_down)
        before = n503()
        attempts0 = connect_attempts(srv)
        wait_until(lambda: n503() >= before + 40, 20, "503s while the database is down")
        time.sleep(1.0)  # let the stream run on against the dead database
        attempts = connect_attempts(srv) - attempts0
        served = n503() - before
        # a probe every open period (500 ms) per pool, not one connect per request
        check(attempts < served / 2, "%d connect attempts for %d requests" % (attempts, served))
        down = [r for r in results if r[2] == 503 and r[0] > t_down + 0.5]
        check(down and all(r[3] and int(r[3]) >= 1 for r in down), "503 without Retry-After")
        slow = [r for r in down if r[1] - r[0] > 1.0]
        check(not slow, "503s that waited (the connect timeout is 5 s): %r" % slow[:3])
        check(srv.proc.poll() is None, "notebookd died:\n" + srv.read_log()[-3000:])
        check(metrics(srv)["notebookd_db_breaker_opens_total"] >= 1, "opens not counted")
        # the database comes back: 200s again within 5 s, no restart
        cluster.start()
        t_up = time.time()
        wait_until(lambda: any(r[2] == 200 and r[0] > t_up for r in results), 5, "a 200 within 5 s of the return")
        stop.set()
        for t in threads:
            t.join(15)
        statuses = {r[2] for r in results}
        check(statuses <= {200, 202, 503}, "unexpected answers: %r" % (statuses - {200, 202, 503}))
        sids += created
        eq(metrics(srv)["notebookd_db_breaker_state"], 0)
        # the workers resumed: every source ready, each job succeeded exactly once
        wait_until(lambda: psql("SELECT count(*) FROM sources WHERE status = 'ready'", cluster.url) == str(len(sids)),
                   60, "every source ready")
        eq(psql("SELECT count(*) FROM jobs WHERE kind = 'ingest_source' AND status = 'succeeded'", cluster.url), str(len(sids)))
        eq(psql("SELECT count(*) FROM jobs WHERE kind = 'ingest_source'", cluster.url), str(len(sids)))
        # a job the database's absence interrupted was handed back, not charged an attempt
        eq(psql("SELECT max(attempts) FROM jobs", cluster.url), "1")
        eq(psql("SELECT count(*) FROM (SELECT source_id, chunk_index FROM chunks GROUP BY 1, 2"
                " HAVING count(*) > 1) d", cluster.url), "0")
        eq(srv.stop(), 0)
        srv = None
    finally:
        stop.set()
        if srv:
            srv.stop()
        cluster.destroy()


# ---- a database that hangs instead of refusing ------------------------------

class Proxy:
    """TCP on loopback in front of the private cluster's Unix socket. cut()
    closes every relayed connection and makes new ones hang (accepted, never
    answered: a connect waits for its timeout, as with a host that drops
    packets); heal() relays again and drops the hanging ones."""

    def __init__(self, unix_path):
        self.path = unix_path
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.mu = threading.Lock()
        self.black = False
        self.pairs = []
        self.held = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.mu:
                if self.black:
                    self.held.append(c)
                    continue
            up = socket.socket(socket.AF_UNIX)
            try:
                up.connect(self.path)
            except OSError:
                c.close()
                continue
            with self.mu:
                self.pairs.append((c, up))
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.mu:
            self.black = True
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def heal(self):
        with self.mu:
            self.black = False
            held, self.held = self.held, []
        for c in held:
            c.close()

    def close(self):
        self.cut()
        self.heal()
        self.lsock.close()


def test_breaker_answers_at_once_when_connects_hang():
    """When the database does not refuse but hangs (connects wait their
    5 s timeout), the open breaker answers 503 at once instead of making
    each request wait for a connect or for the pool."""
    cluster = Cluster()
    srv = proxy = None
    stop = threading.Event()
    results = []
    try:
        migrate(cluster.url)
        q = urllib.parse.parse_qs(urllib.parse.urlparse(cluster.url).query)
        proxy = Proxy(os.path.join(q["host"][0], ".s.PGSQL.%s" % q["port"][0]))
        url = "postgresql://notebookd@127.0.0.1:%d/notebookd?sslmode=disable" % proxy.port
        srv = Server(database_url=url, env=dict(ENV, NOTEBOOKD_WORKERS="0", NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS="3000",
                                                 NOTEBOOKD_REQUEST_TIMEOUT_MS="20000"))
        tok = register(srv)
        eq(srv.get("/v1/notebooks", token=tok).status, 200)

        def stream():
            while not stop.is_set():
                t0 = time.time()
                try:
                    r = srv.get("/v1/notebooks", token=tok, timeout=30)
                    results.append((t0, time.time() - t0, r.status, r.header("Retry-After")))
                except OSError as e:
                    results.append((t0, time.time() - t0, "error %s" % e, None))

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(results) > 20, 10, "a stream of requests")
        proxy.cut()
        wait_until(lambda: metrics(srv)["notebookd_db_breaker_state"] != 0, 30, "the breaker to open")
        t_open = time.time()
        wait_until(lambda: sum(1 for r in results if r[0] > t_open) >= 100, 30, "requests while open")
        while_open = [r for r in results if r[0] > t_open]
        lat = [r[1] for r in while_open]
        fast = sum(1 for x in lat if x < 0.5)
        print("#   hanging database, breaker open: %d requests, median %.1f ms, %d under 0.5 s"
              % (len(lat), statistics.median(lat) * 1000, fast))
        eq({r[2] for r in while_open}, {503})
        check(all(r[3] for r in while_open), "a 503 without Retry-After")
        # only the half-open probes wait for the connect timeout
        check(fast >= 0.9 * len(lat), "%d of %d answered at once" % (fast, len(lat)))
        proxy.heal()
        t_up = time.time()
        wait_until(lambda: any(r[2] == 200 and r[0] > t_up for r in results), 5, "a 200 within 5 s of the return")
        stop.set()
        for t in threads:
            t.join(30)
        check(srv.proc.poll() is None, "notebookd died")
        eq(metrics(srv)["notebookd_db_breaker_state"], 0)
        eq(srv.stop(), 0)
        srv = None
    finally:
        stop.set()
        if srv:
            srv.stop()
        if proxy:
            proxy.close()
        cluster.destroy()
