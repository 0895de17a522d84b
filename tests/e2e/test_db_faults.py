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

from harness import BIN, TMP, Server, check, eq, free_port, psql, wait_until

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
    r = s.post("/v1/auth/register", {"email": "faults-%s@example.com" % uuid.uuid4().hex[:10],
                                     "password": "long enough pw"})
    eq(r.status, 201, r.body)
    return r.json["access_token"]


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
