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
    """n old rows of each kind, one fresh of each; returns the user id and the
    counts _left gives, taken in the planting transaction: the retention runs
    every second and may delete old rows as soon as they are committed."""
    uid = str(uuid.uuid4())
    s.psql("INSERT INTO users (id, email, password_hash) VALUES ('%s', 'ret-%s@example.com', 'x')" % (uid, tag))
    out = s.psql("""
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
    """.format(u=uid, t=tag, n=n) + _left_sql(uid))
    return uid, out.splitlines()[-1]


def _left_sql(uid):
    return ("SELECT (SELECT count(*) FROM notebooks WHERE owner_id = '{u}') || ',' ||"
            " (SELECT count(*) FROM refresh_tokens WHERE user_id = '{u}') || ',' ||"
            " (SELECT count(*) FROM otps WHERE user_id = '{u}') || ',' ||"
            " (SELECT count(*) FROM jobs WHERE user_id = '{u}')").format(u=uid)


def _left(s, uid):
    return s.psql(_left_sql(uid))


def _metric(s, name):
    """The series of server s's /metrics whose name starts with `name`."""
    return {k: v for k, v in metrics(s).items() if k.startswith(name)}


def test_retention_runs_by_itself_once_per_period():
    a = Server(isolated=True, env=RET)
    b = Server(database_url=a.db_url, env=dict(RET, NOTEBOOKD_WORKERS="1"))
    try:
        uid, planted = _plant(a, uuid.uuid4().hex[:8])
        eq(planted, "27,26,26,26")
        # only the fresh rows stay: the trashed notebook of 6 days, the live one, one token, one code, one job
        wait_until(lambda: _left(a, uid) == "2,1,1,1", 30, "the retention to delete the old rows")

        # a run counts, logs and records its result after its last batch: the
        # rows are gone a moment before the run that deleted them says so
        def deleted():
            out = {}
            for s in (a, b):
                for k, v in _metric(s, "notebookd_retention_deleted_total").items():
                    out[k] = out.get(k, 0) + v
            return out

        def logs():
            return [x for s in (a, b) for x in s.log_lines() if str(x.get("msg", "")).startswith("retention: deleted")]

        def recorded():
            d = deleted()
            return (logs() and all(d.get('notebookd_retention_deleted_total{what="%s"}' % w, 0) >= 25
                                   for w in ("notebooks", "refresh_tokens", "otps", "jobs"))
                    and a.psql("SELECT last_result IS NOT NULL FROM scheduled_tasks WHERE name = 'retention'") == "t")
        wait_until(recorded, 30, "the runs' counts in the log, in /metrics and in scheduled_tasks")
        check(logs(), "the retention logs its counts")
        # batches of 20 rows (2 for notebooks): 25 old tokens took two statements in one run, all gone
        d = deleted()
        check(d['notebookd_retention_deleted_total{what="notebooks"}'] >= 25, repr(d))
        check(d['notebookd_retention_deleted_total{what="refresh_tokens"}'] >= 25, repr(d))
        check(d['notebookd_retention_deleted_total{what="otps"}'] >= 25, repr(d))
        check(d['notebookd_retention_deleted_total{what="jobs"}'] >= 25, repr(d))
        # one run per period across both processes: the run's row names one of them, its result is kept, and
        # it set the next run one period after its start (not "after now": at 1 s a loaded test may pass it)
        row = a.psql("SELECT last_started_by IS NOT NULL, last_result ? 'notebooks',"
                     " next_run_at = last_started_at + interval '1 second'"
                     " FROM scheduled_tasks WHERE name = 'retention'")
        eq(row, "t|t|t")
        runs = sum(_metric(s, "notebookd_retention_runs_total").get("notebookd_retention_runs_total", 0) for s in (a, b))
        check(runs >= 1, "runs counted")
        # a second user's old rows are found by a later run
        uid2, planted = _plant(a, uuid.uuid4().hex[:8], n=3)
        eq(planted, "5,4,4,4")
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
            return sum(_metric(s, "notebookd_retention_runs_total").get("notebookd_retention_runs_total", 0)
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
        uid, planted = _plant(a, uuid.uuid4().hex[:8], n=5)
        eq(planted, "7,6,6,6")
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
