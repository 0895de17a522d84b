"""Backups that restore (issue 13, point 6).

A database with real content (accounts, notebooks, a ready source with its
chunks, a conversation, finished jobs) is backed up with ops/backup.sh dump
while the server runs, then destroyed (DROP DATABASE). ops/backup.sh restore
brings it back into a new empty database: `notebookd verify` is green (the
script runs it and fails otherwise), every row of every table is back (counts
and a checksum of each table's rows), and the server started on the restored
database accepts the access token minted before the backup.
"""
import os
import subprocess
import uuid

import harness
from harness import ADMIN_URL, Server, check, eq, psql, wait_until

SCRIPT = os.path.join(harness.ROOT, "ops", "backup.sh")


def _fingerprint(url):
    """Every table of the schema: its row count and an md5 of its rows in id order."""
    tables = psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class"
                  " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace", url).split(",")
    out = {}
    for t in tables:
        order = "id" if psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
                             " AND table_name = '%s' AND column_name = 'id'" % t, url) == "1" else "1"
        out[t] = psql("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY %s)), '')"
                      " FROM %s x" % (order, t), url)
    return out


def _run(args, url, timeout=180):
    env = dict(os.environ, DATABASE_URL=url, NOTEBOOKD_BIN=harness.BIN)
    return subprocess.run(["sh", SCRIPT] + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_backup_destroy_restore_everything_back():
    s = Server(isolated=True)
    dbname, url = s.dbname, s.db_url
    restored_name = "nbr_" + uuid.uuid4().hex[:12]
    restored_url = url.replace("/%s?" % dbname, "/%s?" % restored_name)
    path = os.path.join(harness.TMP, "backup-%s.dump" % uuid.uuid4().hex[:8])
    s2 = None
    try:
        r = s.post("/v1/auth/register", {"email": "bk-%s@example.com" % uuid.uuid4().hex[:8], "password": "long enough pw"})
        eq(r.status, 201)
        tok = r.json["access_token"]
        nb = s.post("/v1/notebooks", {"title": "Backed up"}, token=tok).json["id"]
        text = " ".join("Sentence %d about glaciers and the water cycle." % i for i in range(60))
        sid = s.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": text}, token=tok).json["source"]["id"]
        wait_until(lambda: s.get("/v1/sources/" + sid, token=tok).json["status"] == "ready", 60, "the source ready")
        eq(s.post("/v1/notebooks/%s/conversations" % nb, {"title": "Q"}, token=tok).status, 201)
        before = _fingerprint(url)
        check(int(before["chunks"].split(":")[0]) > 0 and int(before["jobs"].split(":")[0]) > 0, repr(before))

        out = _run(["dump", path], url)  # while the server runs
        eq(out.returncode, 0, out.stderr)
        eq(s.stop(), 0)  # drops the database: destroyed
        s.dbname = None
        eq(psql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % dbname, ADMIN_URL), "0")

        psql("CREATE DATABASE %s" % restored_name, ADMIN_URL)
        out = _run(["restore", path], restored_url)
        eq(out.returncode, 0, out.stdout[-3000:] + out.stderr[-3000:])
        check("0 failed" in out.stdout, out.stdout[-2000:])  # notebookd verify: green
        eq(_fingerprint(restored_url), before)

        # a second restore into a database that is not empty is refused, and changes nothing
        out = _run(["restore", path], restored_url)
        check(out.returncode != 0 and "not empty" in out.stderr, out.stderr)

        s2 = Server(database_url=restored_url, env={"NOTEBOOKD_WORKERS": "0"})
        r = s2.get("/v1/notebooks/" + nb, token=tok)
        eq(r.status, 200)
        eq(r.json["title"], "Backed up")
    finally:
        if s2:
            eq(s2.stop(), 0)
        if s.dbname:
            s.stop()
        psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % restored_name, ADMIN_URL)
        if os.path.exists(path):
            os.unlink(path)
