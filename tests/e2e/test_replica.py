"""End-to-end tests of read replicas (DATABASE_READ_URL; src/db/replica.c,
src/api/replica.c). The module makes a PRIVATE primary cluster on loopback
(scripts/pg.sh, TCP on 127.0.0.1; wal_level=replica, max_wal_senders and the
`host replication ... 127.0.0.1/32` line of initdb's pg_hba are PostgreSQL
15's defaults, checked below) and a real streaming replica of it made with
`pg_basebackup -R`, started on another loopback port. Two servers use them:
one with a generous lag bound (60 s) and one with 1 s.

Which database served a read is seen two ways: the data (replay paused on
the replica, a row changed on the primary behind the server's back: a read
that shows the old value came from the replica) and the server's counters
notebookd_db_replica_reads_total / notebookd_db_primary_reads_total, read
around a single request."""
import glob
import os
import shutil
import subprocess
import threading
import uuid

import harness
from harness import BIN, TMP, Server, check, eq, free_port, metrics, psql, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]

METRICS = ("notebookd_db_replica_configured", "notebookd_db_replica_up", "notebookd_db_replica_usable",
           "notebookd_db_replica_lag_seconds", "notebookd_db_replica_reads_total",
           "notebookd_db_primary_reads_total")


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.getuid() == 0 else cmd


def run(cmd, what):
    out = subprocess.run(as_pg(cmd), capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise AssertionError("%s failed: %s%s" % (what, out.stdout, out.stderr))
    return out.stdout


class Pair:
    """A primary (scripts/pg.sh, tcp) and its streaming replica (pg_basebackup -R)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.pdir = os.path.join(TMP, "pg-replica-primary-" + tag)
        self.pport = str(free_port())
        out = subprocess.run(["sh", os.path.join(ROOT, "scripts/pg.sh"), "start", self.pdir, self.pport, "tcp"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise AssertionError("could not start the private primary: " + out.stderr)
        self.primary_url = out.stdout.strip()
        check(self.primary_url.startswith("postgresql://notebookd@127.0.0.1:"), self.primary_url)
        eq(psql("SHOW wal_level", self.primary_url), "replica")
        check(int(psql("SHOW max_wal_senders", self.primary_url)) >= 2)
        migrate = subprocess.run([BIN, "migrate"], env=dict(os.environ, DATABASE_URL=self.primary_url),
                                 capture_output=True, text=True, timeout=120)
        eq(migrate.returncode, 0, migrate.stderr)
        # the replica's directory must belong to the postgres account (runuser): /var/tmp is reachable
        self.rdir = "/var/tmp/notebookd-replica-" + tag
        os.makedirs(os.path.join(self.rdir, "run"))
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", self.rdir], check=True)
        self.rdata = os.path.join(self.rdir, "data")
        run([os.path.join(PGBIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", self.pport, "-U", "notebookd",
             "-D", self.rdata, "-R", "-X", "stream", "-c", "fast"], "pg_basebackup")
        check(os.path.exists(os.path.join(self.rdata, "standby.signal")), "pg_basebackup -R wrote no standby.signal")
        self.rport = str(free_port())
        self.replica_url = "postgresql://notebookd@127.0.0.1:%s/notebookd" % self.rport
        self.start_replica()
        eq(psql("SELECT pg_is_in_recovery()", self.replica_url), "t")
        wait_until(lambda: psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                                self.primary_url) == "1", 30, "the replica streaming")

    def pg_ctl_replica(self, *args):
        run([os.path.join(PGBIN, "pg_ctl"), "-D", self.rdata] + list(args), "pg_ctl " + " ".join(args))

    def start_replica(self):
        self.pg_ctl_replica("-l", os.path.join(self.rdir, "postgres.log"), "-w", "-t", "60", "-o",
                            "-p %s -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s"
                            % (self.rport, os.path.join(self.rdir, "run")), "start")
        wait_until(lambda: self.replica_answers(), 30, "the replica accepting connections")

    def stop_replica(self):
        self.pg_ctl_replica("-m", "fast", "-w", "stop")

    def replica_answers(self):
        try:
            return psql("SELECT 1", self.replica_url) == "1"
        except AssertionError:
            return False

    def pause(self):
        psql("SELECT pg_wal_replay_pause()", self.replica_url)
        wait_until(lambda: psql("SELECT pg_get_wal_replay_pause_state()", self.replica_url) == "paused", 20,
                   "replay paused")

    def resume(self):
        psql("SELECT pg_wal_replay_resume()", self.replica_url)

    def destroy(self):
        for d, ctl in ((self.rdata, True), (os.path.join(os.path.realpath(self.pdir), "data"), True)):
            subprocess.run(as_pg([os.path.join(PGBIN, "pg_ctl"), "-D", d, "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=120)
        shutil.rmtree(self.rdir, ignore_errors=True)
        real = os.path.realpath(self.pdir)
        shutil.rmtree(real, ignore_errors=True)
        if os.path.islink(self.pdir):
            os.unlink(self.pdir)


pair = None
srv = None       # lag bound 60 s
srv_tight = None  # lag bound 1 s
users = {}


def server(max_lag_ms):
    return Server(database_url=pair.primary_url, env={
        "DATABASE_READ_URL": pair.replica_url,
        "NOTEBOOKD_REPLICA_MAX_LAG_MS": str(max_lag_ms),
        "NOTEBOOKD_DB_CONNECT_TIMEOUT_S": "2",
        # the users stay in the user cache for the whole module: a miss would check them on the primary
        "NOTEBOOKD_USER_CACHE_TTL_MS": "3600000",
    })


def setup_module():
    global pair, srv, srv_tight
    pair = Pair()
    srv = server(60000)
    srv_tight = server(1000)


def teardown_module():
    problems = []
    for s in (srv, srv_tight):
        if s:
            try:
                s.stop()  # raises on a sanitizer report (make asan)
            except AssertionError as e:
                problems.append(str(e))
    if pair:
        pair.destroy()
    eq(problems, [])


def served_by(s, fn):
    """Runs one read request; returns (its response, "replica" or "primary")
    from the server's counters (no other reads run on s meanwhile)."""
    before = metrics(s)
    r = fn()
    after = metrics(s)
    rep = after["notebookd_db_replica_reads_total"] - before["notebookd_db_replica_reads_total"]
    pri = after["notebookd_db_primary_reads_total"] - before["notebookd_db_primary_reads_total"]
    eq(rep + pri, 1, "one read counted")
    return r, "replica" if rep == 1 else "primary"


def register(s):
    return harness.register(s, "replica")["access_token"]


def user(name):
    """A user with one notebook, made through srv (so that srv and srv_tight both know its token)."""
    if name not in users:
        tok = register(srv)
        nb = srv.post("/v1/notebooks", {"title": "%s's first" % name}, token=tok)
        eq(nb.status, 201, nb.body)
        users[name] = (tok, nb.json["id"])
    return users[name]


def rename_behind_the_servers_back(nb, title):
    psql("UPDATE notebooks SET title = '%s' WHERE id = '%s'" % (title, nb), pair.primary_url)


def title_of(s, tok, nb):
    r = s.get("/v1/notebooks/%s" % nb, token=tok)
    eq(r.status, 200, r.body)
    return r.json["title"]


def until_on_replica(s, tok, nb, what):
    """Waits until the user's reads on s go to the replica (their writes replayed there)."""
    wait_until(lambda: served_by(s, lambda: s.get("/v1/notebooks/%s" % nb, token=tok))[1] == "replica", 20, what)


def no_read_only_errors(s):
    bad = [l for l in s.log_lines() if "read-only transaction" in l.get("msg", "") or "25006" in l.get("msg", "")]
    eq(bad, [], "a write reached the replica")


def test_reads_are_served_by_the_replica_and_writes_never_reach_it():
    tok, nb = user("reader")
    until_on_replica(srv, tok, nb, "the reader's reads on the replica")
    # the replica's own view: the read pool's sessions are there
    wait_until(lambda: int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notebookd-read'",
                                pair.replica_url)) >= 1, 10, "notebookd-read sessions on the replica")
    eq(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notebookd-read'", pair.primary_url),
       "0", "the read pool connected to the primary")
    # the data: replay paused, a change on the primary is not seen through the replica
    pair.pause()
    try:
        rename_behind_the_servers_back(nb, "renamed on the primary")
        eq(psql("SELECT title FROM notebooks WHERE id = '%s'" % nb, pair.replica_url), "reader's first")
        for path in ("/v1/notebooks/%s" % nb, "/v1/notebooks"):
            r, where = served_by(srv, lambda: srv.get(path, token=tok))
            eq((r.status, where), (200, "replica"), path)
            got = r.json["title"] if "title" in r.json else [i["title"] for i in r.json["items"] if i["id"] == nb][0]
            eq(got, "reader's first", path + " was not served by the (paused) replica")
        # every kind of read-only route goes there
        for path in ("/v1/me", "/v1/notebooks/%s/sources" % nb, "/v1/notebooks/%s/conversations" % nb,
                     "/v1/jobs", "/v1/generations", "/v1/notebooks/%s/search?q=anything" % nb,
                     "/v1/me/export"):
            r, where = served_by(srv, lambda: srv.get(path, token=tok))
            eq((r.status, where), (200, "replica"), path)
    finally:
        pair.resume()
    wait_until(lambda: title_of(srv, tok, nb) == "renamed on the primary", 20, "the replica catching up")
    # writes: every one succeeds (a standby would refuse them: 25006) and lands on the primary
    writer_tok, _ = user("writer")
    for i in range(5):
        r = srv.post("/v1/notebooks", {"title": "written %d" % i}, token=writer_tok)
        eq(r.status, 201, r.body)
        eq(srv.patch("/v1/notebooks/%s" % r.json["id"], {"title": "patched %d" % i}, token=writer_tok).status, 200)
    eq(psql("SELECT count(*) FROM notebooks WHERE title LIKE 'patched %'", pair.primary_url), "5")
    no_read_only_errors(srv)


def test_read_your_writes_while_replay_is_paused():
    a_tok, _ = user("author")
    b_tok, b_nb = user("bystander")
    until_on_replica(srv, b_tok, b_nb, "the bystander's reads on the replica")
    a_first = users["author"][1]
    until_on_replica(srv, a_tok, a_first, "the author's reads on the replica")
    pair.pause()
    try:
        rename_behind_the_servers_back(b_nb, "bystander renamed")
        for i in range(3):
            created = srv.post("/v1/notebooks", {"title": "fresh %d" % i}, token=a_tok)
            eq(created.status, 201, created.body)
            # at once: the author sees their own write (the primary serves them)
            r, where = served_by(srv, lambda: srv.get("/v1/notebooks", token=a_tok))
            eq(where, "primary")
            check(created.json["id"] in [n["id"] for n in r.json["items"]], "own write missing from the list")
            r, where = served_by(srv, lambda: srv.get("/v1/notebooks/%s" % created.json["id"], token=a_tok))
            eq((r.status, where), (200, "primary"))
            # meanwhile another user's reads still go to the (paused) replica
            r, where = served_by(srv, lambda: srv.get("/v1/notebooks/%s" % b_nb, token=b_tok))
            eq((where, r.json["title"]), ("replica", "bystander's first"))
        # the new notebook is not on the replica: the author's read could not have come from there
        eq(psql("SELECT count(*) FROM notebooks WHERE title LIKE 'fresh %'", pair.replica_url), "0")
        check(metrics(srv)["notebookd_db_replica_users_tracked"] >= 1)
    finally:
        pair.resume()
    # once the replica has replayed the author's writes, their reads go back to it
    until_on_replica(srv, a_tok, a_first, "the author's reads back on the replica")
    eq(title_of(srv, b_tok, b_nb), "bystander renamed")


def test_lagging_replica_is_skipped_and_comes_back():
    tok, nb = user("lagged")
    until_on_replica(srv, tok, nb, "reads on the replica (generous bound)")
    title_of(srv_tight, tok, nb)  # srv_tight checks the user once on the primary
    until_on_replica(srv_tight, tok, nb, "reads on the replica (tight bound)")
    m = metrics(srv_tight)
    eq((m["notebookd_db_replica_usable"], m["notebookd_db_replica_lag_seconds"]), (1, 0))
    pair.pause()
    try:
        # replay paused and the primary writing: the lag grows past 1 s
        rename_behind_the_servers_back(nb, "lagged renamed")
        wait_until(lambda: metrics(srv_tight)["notebookd_db_replica_lag_seconds"] > 1.0, 20, "lag over 1 s")
        m = metrics(srv_tight)
        eq((m["notebookd_db_replica_usable"], m["notebookd_db_replica_up"]), (0, 1))
        for _ in range(3):
            r, where = served_by(srv_tight, lambda: srv_tight.get("/v1/notebooks/%s" % nb, token=tok))
            eq((r.status, where, r.json["title"]), (200, "primary", "lagged renamed"))  # correct, fresh
        # the generous server still reads there (its bound is 60 s)
        r2, where = served_by(srv, lambda: srv.get("/v1/notebooks/%s" % nb, token=tok))
        eq((where, r2.json["title"]), ("replica", "lagged's first"))
        # routing costs no statement: the same read runs as many on either side
        eq(r2.header("X-DB-Statements"), r.header("X-DB-Statements"))
    finally:
        pair.resume()
    wait_until(lambda: metrics(srv_tight)["notebookd_db_replica_usable"] == 1, 20, "the replica usable again")
    eq(metrics(srv_tight)["notebookd_db_replica_lag_seconds"], 0)
    r, where = served_by(srv_tight, lambda: srv_tight.get("/v1/notebooks/%s" % nb, token=tok))
    eq((r.status, where, r.json["title"]), (200, "replica", "lagged renamed"))


def test_replica_down_fails_no_request_and_comes_back():
    tok, nb = user("steady")
    w_tok, _ = user("busy writer")
    until_on_replica(srv, tok, nb, "reads on the replica")
    stop = threading.Event()
    results = []

    def reads():
        while not stop.is_set():
            try:
                r = srv.get("/v1/notebooks/%s" % nb, token=tok, timeout=20)
                results.append(r.status)
                r = srv.get("/v1/notebooks", token=tok, timeout=20)
                results.append(r.status)
            except OSError as e:
                results.append("error %s" % e)

    def writes():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                results.append(srv.post("/v1/notebooks", {"title": "during %d" % i}, token=w_tok, timeout=20).status)
                results.append(srv.get("/v1/notebooks?limit=5", token=w_tok, timeout=20).status)
            except OSError as e:
                results.append("error %s" % e)

    threads = [threading.Thread(target=reads) for _ in range(3)] + [threading.Thread(target=writes)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) > 50, 30, "traffic")
        before = metrics(srv)["notebookd_db_replica_reads_total"]
        check(before > 0)
        pair.stop_replica()
        wait_until(lambda: metrics(srv)["notebookd_db_replica_up"] == 0, 10, "the replica seen down")
        eq(metrics(srv)["notebookd_db_replica_usable"], 0)
        # reads keep being answered, by the primary
        p0 = metrics(srv)["notebookd_db_primary_reads_total"]
        wait_until(lambda: metrics(srv)["notebookd_db_primary_reads_total"] > p0 + 30, 30, "reads on the primary")
        r0 = metrics(srv)["notebookd_db_replica_reads_total"]
        n0 = len(results)
        wait_until(lambda: len(results) > n0 + 30, 30, "more traffic")
        eq(metrics(srv)["notebookd_db_replica_reads_total"], r0, "reads went to a stopped replica")
        pair.start_replica()
        wait_until(lambda: metrics(srv)["notebookd_db_replica_up"] == 1, 20, "the replica seen up again")
        wait_until(lambda: metrics(srv)["notebookd_db_replica_reads_total"] > r0 + 10, 30, "reads back on the replica")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    bad = [x for x in results if x not in (200, 201)]
    eq(bad, [], "requests failed while the replica stopped and started (%d requests)" % len(results))
    no_read_only_errors(srv)


def test_metrics_always_present():
    m = metrics(srv)
    for name in METRICS:
        check(name in m, name)
    eq((m["notebookd_db_replica_configured"], m["notebookd_db_replica_up"]), (1, 1))
    plain = Server()  # the shared test cluster, no DATABASE_READ_URL
    try:
        tok = register(plain)
        eq(plain.get("/v1/notebooks", token=tok).status, 200)
        m = metrics(plain)
        for name in METRICS:
            check(name in m, name)
        eq([m[n] for n in METRICS[:5]], [0, 0, 0, 0, 0])
        check(m["notebookd_db_primary_reads_total"] >= 1)
    finally:
        plain.stop()
