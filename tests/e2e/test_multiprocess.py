"""End-to-end test of a real multi-process deployment: two `notebookd serve`
(no job workers in them) on two ports and two `notebookd worker` processes
against one PostgreSQL database (an isolated one, from the template), with a
mixed load through both servers — sign-ups, notebooks, sources of every kind
(text, Markdown, HTML, URL, PDF upload), searches — bounded in count and
time, on loopback.

Phase 1 checks that no request fails, a token minted by one server works on
the other, every source ends ready exactly once and every job succeeded
once. Phase 2 kills one worker and one server with SIGKILL in the middle of
the load: clients retry on the surviving server (POSTs with the same
Idempotency-Key), nothing is lost, nothing is duplicated, and the survivors
finish the work."""
import concurrent.futures
import http.client
import http.server
import os
import signal
import threading
import time
import uuid

import harness
from harness import Server, check, eq, wait_until
from test_sources import make_pdf, multipart

PAGES = {
    "/cells.html": ("text/html; charset=utf-8",
                    b"<html><head><title>Cells</title></head><body><h1>Cells</h1><p>Mitochondria make ATP."
                    b"</p><p>Ribosomes build proteins from amino acids.</p></body></html>"),
    "/plates.txt": ("text/plain", b"Tectonic plates drift a few centimetres each year over the mantle."),
}

ENV = {
    "NOTEBOOKD_WORKERS": "0",
    "NOTEBOOKD_JOB_POLL_MS": "200",
    "NOTEBOOKD_JOB_LEASE_S": "3",
    "NOTEBOOKD_ALLOW_PRIVATE_URLS": "1",
    "NOTEBOOKD_CHUNK_CHARS": "300",
}


class Pages(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/slow.txt":  # a fetch that keeps its job running a while
            time.sleep(1.5)
            body = b"Slow pages still arrive: enzymes speed reactions up."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path not in PAGES:
            self.send_response(404)
            self.end_headers()
            return
        ctype, body = PAGES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def Worker(db_url):
    return harness.Worker(db_url, env=ENV, name="worker-mp")


class Client:
    """One user's session: each call goes to a preferred server and, if that
    one cannot be reached or dies mid-request, to the other (POSTs carry an
    Idempotency-Key so the retry cannot create twice; register, which takes
    none, logs in when its retry finds the account made)."""

    def __init__(self, servers, first, stats):
        self.servers = servers
        self.first = first
        self.stats = stats
        self.tok = None

    def call(self, method, path, prefer, body=None, raw=None, ctype=None, idem=False, after_lost=()):
        """after_lost: statuses that are an answer, not a failure, once an
        attempt was lost (its server died after it may have done the work)."""
        headers = {}
        if ctype:
            headers["Content-Type"] = ctype
        if idem:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        order = [self.servers[(prefer + k) % len(self.servers)] for k in range(len(self.servers))]
        lost = False
        for n, s in enumerate(order * 2):
            try:
                r = s.request(method, path, body=body, raw=raw, headers=headers, token=self.tok, timeout=30)
            except (OSError, http.client.HTTPException):
                lost = True
                with self.stats["lock"]:
                    self.stats["retries"] += 1
                continue
            if r.status >= 400 and not (lost and r.status in after_lost):
                with self.stats["lock"]:
                    self.stats["failed"].append((method, path, r.status, r.body[:200]))
            return r
        raise AssertionError("%s %s: no server answered" % (method, path))


def session(servers, i, stats, web_port, pdf):
    c = Client(servers, i % 2, stats)
    mine, other = i % 2, (i + 1) % 2
    creds = {"email": "mp-%s@example.com" % uuid.uuid4().hex[:10], "password": "long enough pw"}
    r = c.call("POST", "/v1/auth/register", mine, creds, after_lost=(409,))
    if r.status == 409:
        # register takes no Idempotency-Key: a server killed after it made the account and before it
        # answered leaves the retry a 409 (the email is taken by that very account); log in to it
        eq(r.json["error"]["code"], "conflict", r.body)
        r = c.call("POST", "/v1/auth/login", mine, creds)
        eq(r.status, 200, r.body)
    else:
        eq(r.status, 201, r.body)
    c.tok = r.json["access_token"]
    # the token minted by one server works on the other
    eq(c.call("GET", "/v1/me", other).status, 200)
    nb = c.call("POST", "/v1/notebooks", other, {"title": "deployment %d" % i}, idem=True).json["id"]
    sids = []
    path = "/v1/notebooks/%s/sources" % nb
    bodies = [
        {"kind": "text", "content": "Photosynthesis in chloroplasts, user %d. " % i * 10},
        {"kind": "markdown", "content": "# Genetics\n\nDNA is copied before **cell division**, user %d." % i},
        {"kind": "html", "content": "<p>Volcanoes erupt basalt lava, user %d.</p>" % i},
        {"kind": "url", "url": "http://127.0.0.1:%d/cells.html" % web_port},
        {"kind": "url", "url": "http://127.0.0.1:%d/plates.txt" % web_port},
        {"kind": "url", "url": "http://127.0.0.1:%d/slow.txt" % web_port},
    ]
    for k, body in enumerate(bodies):
        r = c.call("POST", path, k % 2, body, idem=True)
        eq(r.status, 202, r.body)
        sids.append(r.json["source"]["id"])
    raw, ctype = multipart({"file": ("lecture-%d.pdf" % i, "application/pdf", pdf)})
    r = c.call("POST", path, mine, raw=raw, ctype=ctype, idem=True)
    eq(r.status, 202, r.body)
    sids.append(r.json["source"]["id"])
    eq(c.call("GET", "/v1/notebooks/%s/search?q=chloroplasts" % nb, other).status, 200)
    eq(c.call("GET", path, mine).status, 200)
    return c, nb, sids


def run_load(servers, users, first_user, web_port, stats, during=None):
    pdf = make_pdf(["Enzymes lower the activation energy of reactions.", "Second page on catalysis."])
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        futs = [ex.submit(session, servers, first_user + i, stats, web_port, pdf) for i in range(users)]
        if during:
            during()
        return [f.result() for f in futs]


def check_all_done(db, results, max_attempts):
    sids = [sid for _, _, s in results for sid in s]
    nbs = ",".join("'%s'" % nb for _, nb, _ in results)
    expected = len(sids)
    wait_until(lambda: db.psql("SELECT count(*) FROM sources WHERE notebook_id IN (%s) AND status = 'ready'" % nbs)
               == str(expected), 90, "every source ready")
    # exactly the sources the clients were told about: none lost, none extra
    eq(db.psql("SELECT count(*) FROM sources WHERE notebook_id IN (%s)" % nbs), str(expected))
    eq(sorted(db.psql("SELECT id FROM sources WHERE notebook_id IN (%s)" % nbs).split()), sorted(sids))
    # one job per source, each succeeded
    q = "FROM jobs j JOIN sources s ON s.id = j.source_id WHERE j.kind = 'ingest_source' AND s.notebook_id IN (%s)" % nbs
    eq(db.psql("SELECT count(*) %s" % q), str(expected))
    wait_until(lambda: db.psql("SELECT count(*) %s AND j.status = 'succeeded'" % q) == str(expected), 30,
               "every job succeeded")
    check(int(db.psql("SELECT max(j.attempts) %s" % q)) <= max_attempts, "a job ran more often than allowed")
    # ingested once: no chunk twice
    eq(db.psql("SELECT count(*) FROM (SELECT c.source_id, c.chunk_index FROM chunks c JOIN sources s"
               " ON s.id = c.source_id WHERE s.notebook_id IN (%s) GROUP BY 1, 2 HAVING count(*) > 1) d" % nbs), "0")


def test_two_servers_two_workers_one_database():
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    web_port = web.server_address[1]
    a = Server(isolated=True, env=ENV)
    b = w1 = w2 = None
    try:
        b = Server(database_url=a.db_url, env=ENV)
        w1, w2 = Worker(a.db_url), Worker(a.db_url)
        servers = [a, b]

        # phase 1: everything through both servers, nothing fails
        stats = {"lock": threading.Lock(), "retries": 0, "failed": []}
        results = run_load(servers, 8, 0, web_port, stats)
        eq(stats["failed"], [])
        eq(stats["retries"], 0)
        check_all_done(a, results, 1)

        # phase 2: kill -9 one worker and one server while the load runs
        stats = {"lock": threading.Lock(), "retries": 0, "failed": []}

        def kill_mid_load():
            wait_until(lambda: int(a.psql("SELECT count(*) FROM users WHERE email LIKE 'mp-%'")) >= 12, 30,
                       "the second load to start")
            # while the worker to be killed holds a running job
            wait_until(lambda: int(a.psql("SELECT count(*) FROM jobs WHERE status = 'running'"
                                          " AND locked_by LIKE '%%:%d/%%'" % w1.proc.pid)) >= 1, 30,
                       "the first worker to hold a job")
            os.kill(w1.proc.pid, signal.SIGKILL)
            os.kill(b.proc.pid, signal.SIGKILL)

        results2 = run_load(servers, 8, 100, web_port, stats, during=kill_mid_load)
        check(b.proc.wait(10) == -signal.SIGKILL and w1.proc.wait(10) == -signal.SIGKILL, "not killed")
        print("#   phase 2: %d requests retried on the surviving server" % stats["retries"])
        eq(stats["failed"], [])
        # the survivors finish: a killed worker's jobs come back after their lease
        check_all_done(a, results2, 2)
        twice = int(a.psql("SELECT count(*) FROM jobs WHERE attempts > 1"))
        print("#   phase 2: %d jobs ran again after the killed worker's lease expired" % twice)
        check(twice >= 1, "the killed worker held no job")
        check(w2.proc.poll() is None and a.proc.poll() is None, "a survivor died")
        eq(w2.stop(), 0)
        w2 = None
        eq(b.stop(), -signal.SIGKILL)  # already dead: closes its log
        b = None
        w1.log.close()
        w1 = None
        eq(a.stop(), 0)
    finally:
        for w in (w1, w2):
            if w and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
        if b:
            b.stop()
        a.stop()
        web.shutdown()
