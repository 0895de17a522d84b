"""Retention runs by itself (issue 13, point 9).

Old rows of every kind the retention keeps in check are planted (trashed
notebooks and sources past the retention, an expired refresh token, an
expired one-time code, a job finished long ago) next to fresh ones. With
NOTEBOOKD_RETENTION_INTERVAL_S=1 and two processes running jobs on the same
database, the old rows go away by themselves in small batches, the fresh ones
stay, the counts show in the log and in /metrics, and the run is taken by one
process per period (scheduled_tasks). `notebookd purge` does the same at once.
"""
import subprocess
import uuid

from harness import Server, check, eq, metrics, wait_until

RET = {"NOTEBOOKD_RETENTION_INTERVAL_S": "1", "NOTEBOOKD_TRASH_RETENTION_DAYS": "7",
       "NOTEBOOKD_JOB_RETENTION_DAYS": "3", "NOTEBOOKD_RETENTION_BATCH": "20"}


def _plant(s, tag, n=25):
    """n old rows of each kind, one fresh of each; returns the user id."""
    uid = str(uuid.uuid4())
    s.psql("INSERT INTO users (id, email, password_hash) VALUES ('%s', 'ret-%s@example.com', 'x')" % (uid, tag))
    s.psql("""
      INSERT INTO notebooks (id, owner_id, title, deleted_at)
        SELECT gen_random_uuid(), '{u}', 'old {t}', now() - interval '8 days' FROM generate_series(1, {n}) g;
      INSERT INTO notebooks (id, owner_id, title, deleted_at) VALUES (gen_random_uuid(), '{u}', 'fresh trash {t}', now() - interval '6 days');
      INSERT INTO notebooks (id, owner_id, title) VALUES (gen_random_uuid(), '{u}', 'live {t}');
      INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
        SELECT gen_random_uuid(), '{u}', gen_random_uuid(), sha256(convert_to('{t}' || g, 'UTF8')), now() - interval '2 days'
        FROM generate_series(1, {n}) g;
      INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
        VALUES (gen_random_uuid(), '{u}', gen_random_uuid(), sha256(convert_to('{t}live', 'UTF8')), now() + interval '1 day');
      INSERT INTO otps (id, user_id, purpose, code_hash, expires_at, consumed_at)
        SELECT gen_random_uuid(), '{u}', 'login', sha256(convert_to('{t}' || g, 'UTF8')), now() - interval '2 days', now() - interval '2 days'
        FROM generate_series(1, {n}) g;
      INSERT INTO otps (id, user_id, purpose, code_hash, expires_at)
        VALUES (gen_random_uuid(), '{u}', 'login', sha256(convert_to('{t}live', 'UTF8')), now() + interval '10 minutes');
      INSERT INTO jobs (id, user_id, kind, status, attempts, finished_at)
        SELECT gen_random_uuid(), '{u}', 'noop', 'succeeded', 1, now() - interval '4 days' FROM generate_series(1, {n}) g;
      INSERT INTO jobs (id, user_id, kind, status, attempts, finished_at)
        VALUES (gen_random_uuid(), '{u}', 'noop', 'succeeded', 1, now() - interval '1 day');
    """.format(u=uid, t=tag, n=n))
    return uid


def _left(s, uid):
    q = ("SELECT (SELECT count(*) FROM notebooks WHERE owner_id = '{u}') || ',' ||"
         " (SELECT count(*) FROM refresh_tokens WHERE user_id = '{u}') || ',' ||"
         " (SELECT count(*) FROM otps WHERE user_id = '{u}') || ',' ||"
         " (SELECT count(*) FROM jobs WHERE user_id = '{u}')").format(u=uid)
    return s.psql(q)


def test_retention_runs_by_itself_once_per_period():
    a = Server(isolated=True, env=RET)
    b = Server(database_url=a.db_url, env=dict(RET, NOTEBOOKD_WORKERS="1"))
    try:
        uid = _plant(a, uuid.uuid4().hex[:8])
        eq(_left(a, uid), "27,26,26,26")
        # only the fresh rows stay: the trashed notebook of 6 days, the live one, one token, one code, one job
        wait_until(lambda: _left(a, uid) == "2,1,1,1", 30, "the retention to delete the old rows")
        logs = [x for s in (a, b) for x in s.log_lines() if str(x.get("msg", "")).startswith("retention: deleted")]
        check(logs, "the retention logs its counts")
        # batches of 20 rows (2 for notebooks): 25 old tokens took two statements in one run, all gone
        deleted = {}
        for s in (a, b):
            for k, v in metrics(s).items():
                if k.startswith("notebookd_retention_deleted_total"):
                    deleted[k] = deleted.get(k, 0) + v
        check(deleted['notebookd_retention_deleted_total{what="notebooks"}'] >= 25, repr(deleted))
        check(deleted['notebookd_retention_deleted_total{what="refresh_tokens"}'] >= 25, repr(deleted))
        check(deleted['notebookd_retention_deleted_total{what="otps"}'] >= 25, repr(deleted))
        check(deleted['notebookd_retention_deleted_total{what="jobs"}'] >= 25, repr(deleted))
        # one run per period across both processes: the run's row names one of them, and its result is kept
        row = a.psql("SELECT last_started_by IS NOT NULL, last_result ? 'notebooks', next_run_at > now()"
                     " FROM scheduled_tasks WHERE name = 'retention'")
        eq(row, "t|t|t")
        runs = sum(metrics(s).get("notebookd_retention_runs_total", 0) for s in (a, b))
        check(runs >= 1, "runs counted")
        # a second user's old rows are found by a later run
        uid2 = _plant(a, uuid.uuid4().hex[:8], n=3)
        wait_until(lambda: _left(a, uid2) == "2,1,1,1", 30, "a later run")
    finally:
        eq(b.stop(), 0)
        eq(a.stop(), 0)


def test_one_run_per_period_across_processes():
    """Three processes that run jobs, a period of an hour: exactly one of them runs the retention."""
    env = {"NOTEBOOKD_RETENTION_INTERVAL_S": "3600"}
    a = Server(isolated=True, env=env)
    others = [Server(database_url=a.db_url, env=dict(env, NOTEBOOKD_WORKERS="1")) for _ in range(2)]
    procs = [a] + others
    try:
        def runs():
            return sum(metrics(s).get("notebookd_retention_runs_total", 0)
                       for s in procs)
        wait_until(lambda: runs() >= 1, 30, "the period's run")
        # every process has started its scheduler (and so made its first attempt at start)
        for s in procs:
            wait_until(lambda: any("retention scheduled every" in str(x.get("msg")) for x in s.log_lines()), 10,
                       "the scheduler")
        eq(a.psql("SELECT next_run_at > now() + interval '50 minutes' FROM scheduled_tasks"), "t")
        eq(runs(), 1)
    finally:
        for s in reversed(procs):
            eq(s.stop(), 0)


def test_purge_command_does_the_same():
    a = Server(isolated=True, env={"NOTEBOOKD_RETENTION_INTERVAL_S": "0"})
    try:
        uid = _plant(a, uuid.uuid4().hex[:8], n=5)
        env = dict(a.env, **RET)
        r = subprocess.run([a.proc.args[0], "purge"], env=env, capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, r.stderr)
        check("5 notebooks" in r.stdout and "5 expired refresh tokens" in r.stdout and "5 expired one-time codes"
              in r.stdout and "5 jobs finished" in r.stdout, r.stdout)
        eq(_left(a, uid), "2,1,1,1")
        # with the schedule off, nothing ran by itself
        eq(a.psql("SELECT last_started_at IS NULL FROM scheduled_tasks WHERE name = 'retention'"), "t")
    finally:
        eq(a.stop(), 0)
