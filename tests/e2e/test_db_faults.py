"""End-to-end tests of database faults: PostgreSQL stopping under a backlog
of jobs (serve's in-process workers and `notebookd worker`), and one locked
table that must not take down the routes that do not touch it.

The stop test runs its OWN PostgreSQL cluster (scripts/pg.sh on a private
directory and port), never the shared test cluster."""
import glob
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid

import harness
from harness import BIN, DB_URL, TMP, Server, check, eq, free_port, metrics, psql, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]


# ---- a private cluster ------------------------------------------------------

class Cluster:
    def __init__(self):
        self.dir = os.path.join(TMP, "pg-faults-" + uuid.uuid4().hex[:8])
        self.port = str(free_port())
        self.url = self.start()

    def start(self):
        out = subprocess.run(["sh", os.path.join(ROOT, "scripts/pg.sh"), "start", self.dir, self.port, "unix"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise AssertionError("could not start the private cluster: " + out.stderr)
        url = out.stdout.strip()
        # pg.sh's unix clusters turn synchronous_commit off (speed), so a crash
        # could forget commits the server acknowledged (a claim, an outcome):
        # this test stops the server -m immediate, so it needs them kept.
        psql("ALTER SYSTEM SET synchronous_commit = on", url)
        psql("SELECT pg_reload_conf()", url)
        return url

    def pg_ctl(self, *args):
        cmd = [os.path.join(PGBIN, "pg_ctl"), "-D", os.path.join(os.path.realpath(self.dir), "data")] + list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise AssertionError("pg_ctl %s failed: %s" % (" ".join(args), out.stderr))

    def stop_immediate(self):
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def destroy(self):
        try:
            self.pg_ctl("-m", "immediate", "-w", "stop")
        except AssertionError:
            pass
        real = os.path.realpath(self.dir)
        shutil.rmtree(real, ignore_errors=True)
        if os.path.islink(self.dir):
            os.unlink(self.dir)


def register(s):
    return harness.register(s, "faults")["access_token"]


def queue_backlog_and_lose_the_database(cluster, api, n_sources, worker_log):
    """With `chunks` locked, queues n_sources text sources, waits until the
    workers hold several of them (some running, blocked on the lock, some
    claimed but not started), then stops PostgreSQL -m immediate."""
    tok = register(api)
    nb = api.post("/v1/notebooks", {"title": "faults"}, token=tok).json["id"]
    locker = subprocess.Popen(["psql", cluster.url, "-c",
                               "BEGIN; LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                            " WHERE c.relname = 'chunks' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                            cluster.url) == "1", 20, "the lock on chunks")
    sids = []
    for i in range(n_sources):
        # same length for every source: each is split into the same number of chunks
        text = ("Source %03d. " % i) + ("Mitochondria make ATP for the cell; ribosomes build proteins. " * 40)
        r = api.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": text, "title": "s%d" % i},
                     token=tok)
        eq(r.status, 202, r.body)
        sids.append(r.json["source"]["id"])
    # handlers blocked on the lock, and more jobs claimed than running
    wait_until(lambda: int(psql("SELECT count(*) FROM jobs WHERE status = 'running'", cluster.url)) >= 3, 30,
               "the workers to hold several jobs")
    wait_until(lambda: int(psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                                cluster.url)) >= 1, 30, "a handler waiting on the lock")
    cluster.stop_immediate()
    locker.wait(30)
    return tok, sids


def check_survived_and_resumed(cluster, procs, sids, log_of):
    # The database stays down for 3 s: the runners meet it gone (the pool is in
    # its reconnect backoff) and must survive — this crashed the process before.
    t_end = time.time() + 3.0
    while time.time() < t_end:
        for p in procs:
            check(p.poll() is None, "notebookd died (status %s) while the database was down:\n%s"
                  % (p.poll(), log_of()[-3000:]))
        time.sleep(0.1)
    # the jobs it held are handed back, not failed
    check("lost the database" in log_of(), "no handler noticed the lost database")
    cluster.start()
    try:
        wait_until(lambda: psql("SELECT count(*) FROM sources WHERE status = 'ready'", cluster.url)
                   == str(len(sids)), 90, "every source to be ready after the restart")
    except AssertionError:
        print(psql("SELECT status, attempts, locked_by, last_error FROM jobs WHERE status <> 'succeeded'",
                   cluster.url))
        print(log_of()[-5000:])
        raise
    wait_until(lambda: psql("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND kind = 'ingest_source'",
                            cluster.url) == str(len(sids)),
               30, "every job to be recorded succeeded")
    for p in procs:
        check(p.poll() is None, "notebookd died:\n" + log_of()[-3000:])
    eq(psql("SELECT count(*) FROM jobs WHERE kind = 'ingest_source'", cluster.url), str(len(sids)))
    # not charged an attempt for the database's absence
    eq(psql("SELECT max(attempts) FROM jobs WHERE kind = 'ingest_source'", cluster.url), "1")
    # each source chunked once: the same number of chunks everywhere, no duplicate index
    counts = psql("SELECT count(DISTINCT n) || ',' || min(n) FROM"
                  " (SELECT s.id, count(c.id) AS n FROM sources s LEFT JOIN chunks c ON c.source_id = s.id"
                  "  GROUP BY s.id) t", cluster.url)
    distinct, least = counts.split(",")
    eq(distinct, "1", "sources differ in chunk count")
    check(int(least) > 0, "sources without chunks")
    eq(psql("SELECT count(*) FROM (SELECT source_id, chunk_index FROM chunks GROUP BY 1, 2 HAVING count(*) > 1) d",
            cluster.url), "0")


def migrate(url):
    out = subprocess.run([BIN, "migrate"], env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True,
                         timeout=120)
    eq(out.returncode, 0, out.stderr)


WORKER_ENV = {
    "NOTEBOOKD_JOB_POLL_MS": "200",
    "NOTEBOOKD_DB_CONNECT_TIMEOUT_S": "2",
    "NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS": "1000",
    "NOTEBOOKD_CHUNK_CHARS": "500",
}


def test_serve_workers_survive_postgres_stopping():
    cluster = Cluster()
    srv = None
    try:
        migrate(cluster.url)
        srv = Server(database_url=cluster.url, env=dict(WORKER_ENV, NOTEBOOKD_WORKERS="2"))
        tok, sids = queue_backlog_and_lose_the_database(cluster, srv, 24, None)
        check_survived_and_resumed(cluster, [srv.proc], sids, srv.read_log)
        eq(srv.get("/readyz").status, 200)
        eq(srv.stop(), 0)
        srv = None
    finally:
        if srv:
            srv.stop()
        cluster.destroy()


def test_worker_command_survives_postgres_stopping():
    cluster = Cluster()
    api = None
    worker = None
    log_path = os.path.join(TMP, "worker-faults-%s.log" % uuid.uuid4().hex[:8])
    try:
        migrate(cluster.url)
        api = Server(database_url=cluster.url, env={"NOTEBOOKD_WORKERS": "0"})
        log = open(log_path, "wb")
        worker = subprocess.Popen([BIN, "worker", "--concurrency", "2"],
                                  env=dict(os.environ, DATABASE_URL=cluster.url, **WORKER_ENV),
                                  stdout=log, stderr=log)

        def worker_log():
            if not log.closed:
                log.flush()
            with open(log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")

        tok, sids = queue_backlog_and_lose_the_database(cluster, api, 24, worker_log)
        check_survived_and_resumed(cluster, [worker, api.proc], sids, worker_log)
        worker.send_signal(signal.SIGTERM)
        eq(worker.wait(30), 0)
        log.close()
        check("AddressSanitizer" not in worker_log() and "runtime error:" not in worker_log(), worker_log()[-4000:])
        worker = None
        eq(api.stop(), 0)
        api = None
    finally:
        if worker and worker.poll() is None:
            worker.kill()
        if api:
            api.stop()
        cluster.destroy()


# ---- one locked table ---------------------------------------------------------

def test_locked_table_does_not_take_down_other_routes():
    srv = Server(isolated=True, env={"NOTEBOOKD_REQUEST_TIMEOUT_MS": "3000", "NOTEBOOKD_WORKERS": "0",
                                     "NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS": "10000"})
    locker = None
    try:
        tok = register(srv)
        eq(srv.post("/v1/notebooks", {"title": "locked"}, token=tok).status, 201)
        eq(srv.get("/v1/notebooks", token=tok).status, 200)
        before = metrics(srv)
        locker = subprocess.Popen(["psql", srv.db_url, "-c",
                                   "BEGIN; LOCK TABLE notebooks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(12); COMMIT"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: srv.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                    " WHERE c.relname = 'notebooks' AND l.mode = 'AccessExclusiveLock'"
                                    " AND l.granted") == "1", 10, "the lock on notebooks")
        results = {"blocked": [], "other": []}
        mu = threading.Lock()
        during = {}

        def hammer_notebooks():
            while locker.poll() is None:
                t0 = time.time()
                try:
                    st = srv.get("/v1/notebooks", token=tok, timeout=20).status
                except OSError as e:
                    st = "error %s" % e
                with mu:
                    results["blocked"].append((st, time.time() - t0))

        def other(path, auth):
            while locker.poll() is None:
                t0 = time.time()
                try:
                    st = srv.get(path, token=tok if auth else None, timeout=20).status
                except OSError as e:
                    st = "error %s" % e
                with mu:
                    results["other"].append((path, st, round(time.time() - t0, 3)))

        def sample_metrics():
            # mid-lock: how the pools look while the notebooks requests wait
            time.sleep(6)
            during.update(metrics(srv))

        threads = [threading.Thread(target=hammer_notebooks) for _ in range(6)]
        threads += [threading.Thread(target=other, args=(p, a))
                    for p, a in (("/v1/me", True), ("/v1/jobs", True), ("/readyz", False), ("/v1/me", True))]
        threads.append(threading.Thread(target=sample_metrics))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        locker.wait(30)
        locker = None
        after = metrics(srv)
        bad = [r for r in results["other"] if r[1] != 200]
        check(len(results["other"]) > 30, "too few requests ran: %r" % results["other"])
        eq(bad, [], "routes that do not touch the locked table failed during the lock")
        slowest = max(r[2] for r in results["other"])
        # the notebooks requests did wait on the lock (503 at their deadline)
        statuses = set(st for st, _ in results["blocked"])
        check(statuses <= {200, 503}, "notebooks answered %r" % statuses)
        check(503 in statuses, "the lock never held up GET /v1/notebooks: %r" % statuses)
        check(max(d for _, d in results["blocked"]) < 3.0 + 2.0, "a notebooks request outlived its deadline")
        # healthy afterwards: notebooks again, connections back in the pool
        eq(srv.get("/v1/notebooks", token=tok).status, 200)
        wait_until(lambda: metrics(srv).get('notebookd_db_connections{pool="loops",state="in_use"}') == 0, 10,
                   "every loop connection back in the pool")
        print("# other routes: %d requests, all 200, slowest %.3f s; notebooks: %d requests, %s"
              % (len(results["other"]), slowest, len(results["blocked"]),
                 {s: sum(1 for st, _ in results["blocked"] if st == s) for s in statuses}))
        for k in sorted(set(before) | set(after)):
            if "pipeline" in k or 'pool="loops"' in k:
                print("#   %s: before %s, mid-lock %s, after %s" % (k, before.get(k), during.get(k), after.get(k)))
    except Exception:
        print("exit status: %s" % srv.proc.poll())
        print("\n".join(l[:400] for l in srv.read_log().splitlines()
                        if '"msg":"access"' not in l or '"status":200' not in l)[-15000:])
        raise
    finally:
        if locker:
            locker.kill()
        srv.stop()


# ---- shutdown: one deadline ------------------------------------------------------

def test_shutdown_shares_one_deadline():
    """A request and a job both stuck past the deadline: SIGTERM ends the
    process within NOTEBOOKD_SHUTDOWN_TIMEOUT_MS (plus a small margin), not
    the HTTP drain's timeout and then the workers' again, nor the stuck
    statement's statement_timeout; the job is handed back."""
    timeout_ms = 3000
    # The slow request's own deadline (2.5 s) falls inside the shutdown's: its
    # statement is cancelled then and it is answered 503. (One still running
    # when the drain times out is abandoned by the HTTP server, whose loop
    # stops under it — the process exits on time, but the request's memory is
    # reported as leaked under ASan: that is the HTTP server's part.)
    srv = Server(isolated=True, env={"NOTEBOOKD_SHUTDOWN_TIMEOUT_MS": str(timeout_ms), "NOTEBOOKD_DEBUG_ROUTES": "1",
                                     "NOTEBOOKD_WORKERS": "1", "NOTEBOOKD_JOB_POLL_MS": "200",
                                     "NOTEBOOKD_REQUEST_TIMEOUT_MS": "2500"})
    locker = None
    try:
        tok = register(srv)
        nb = srv.post("/v1/notebooks", {"title": "stop"}, token=tok).json["id"]
        locker = subprocess.Popen(["psql", srv.db_url, "-c",
                                   "BEGIN; LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: srv.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                    " WHERE c.relname = 'chunks' AND l.granted") == "1", 10, "the lock on chunks")
        r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "Stuck behind a lock. " * 50},
                     token=tok)
        eq(r.status, 202, r.body)
        job_id = r.json["job"]["id"]
        wait_until(lambda: int(srv.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                        " AND application_name LIKE 'notebookd%'")) >= 1, 20,
                   "the job's handler to wait on the lock")
        slow_status = []
        slow = threading.Thread(target=lambda: slow_status.append(srv.get("/debug/sleep?ms=20000", timeout=60).status))
        slow.start()
        wait_until(lambda: int(srv.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'"
                                        " AND application_name LIKE 'notebookd%'")) >= 1, 20,
                   "the slow request to reach PostgreSQL")
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(60)
        took = time.time() - t0
        slow.join(30)
        eq(slow_status, [503])
        print("# SIGTERM to exit: %.2f s (NOTEBOOKD_SHUTDOWN_TIMEOUT_MS=%d)" % (took, timeout_ms))
        check(took < timeout_ms / 1000 + 1.5, "shutdown took %.2f s:\n%s" % (took, srv.read_log()[-3000:]))
        # the job was handed back: ready for the next worker, no attempt charged
        eq(srv.psql("SELECT status || ',' || attempts FROM jobs WHERE id = '%s'" % job_id), "pending,0")
    finally:
        if locker:
            locker.kill()
        srv.stop()


def test_clean_shutdown_logs_no_warning():
    srv = Server(isolated=True, env={"NOTEBOOKD_WORKERS": "2"})
    tok = register(srv)
    nb = srv.post("/v1/notebooks", {"title": "quiet"}, token=tok).json["id"]
    r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "A short note on cells. " * 30},
                 token=tok)
    eq(r.status, 202)
    wait_until(lambda: srv.get("/v1/sources/" + r.json["source"]["id"], token=tok).json["status"] == "ready", 30,
               "the source to be ingested")
    for _ in range(20):  # statements through the pipelines
        eq(srv.get("/v1/notebooks", token=tok).status, 200)
    eq(srv.stop(), 0)
    warns = [l for l in srv.log_lines() if l.get("level") in ("warn", "error")]
    eq(warns, [], "a clean stop logged warnings")


# ---- the LISTEN connection's own URL -----------------------------------------------

def test_listen_database_url_is_used_by_the_listener():
    """NOTEBOOKD_LISTEN_DATABASE_URL, not DATABASE_URL, is where the workers'
    LISTEN connection goes (behind a transaction-pooling PgBouncer it must go
    straight to PostgreSQL); the pools keep using DATABASE_URL."""
    # a database that does not exist: only the listener can fail on it
    bogus = DB_URL.replace("/notebookd?", "/nb_no_such_listen_db?")
    srv = Server(isolated=True, env={"NOTEBOOKD_LISTEN_DATABASE_URL": bogus, "NOTEBOOKD_WORKERS": "1",
                                     "NOTEBOOKD_JOB_POLL_MS": "100"})
    try:
        wait_until(lambda: any("job listener could not connect" in l.get("msg", "") and "nb_no_such_listen_db"
                               in l.get("msg", "") for l in srv.log_lines()), 10, "the listener to try the LISTEN URL")
        # the API and the workers' pool use DATABASE_URL: jobs still run (by polling)
        tok = register(srv)
        nb = srv.post("/v1/notebooks", {"title": "listen"}, token=tok).json["id"]
        r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "Polling still works. " * 20},
                     token=tok)
        eq(r.status, 202, r.body)
        wait_until(lambda: srv.get("/v1/sources/" + r.json["source"]["id"], token=tok).json["status"] == "ready",
                   20, "the source to be ingested")
        eq(srv.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notebookd-listen'"
                    " AND datname = current_database()"), "0")
    finally:
        srv.stop()
    # and by default it is DATABASE_URL
    srv = Server(isolated=True, env={"NOTEBOOKD_WORKERS": "1"})
    try:
        wait_until(lambda: srv.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                                    " 'notebookd-listen' AND datname = current_database()") == "1", 10,
                   "the listener on DATABASE_URL")
    finally:
        srv.stop()
