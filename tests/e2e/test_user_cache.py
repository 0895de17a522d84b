"""End-to-end tests of the live-user cache (src/store/usercache.h): an
authenticated request skips the user check once its user is cached, an
erasure reaches the erasing server at once and another server on the same
database within milliseconds (LISTEN/NOTIFY), and while the LISTEN
connection is down or after it reconnects the cache does not serve."""
import time

import harness
from harness import Server, check, eq, free_port, psql, wait_until

a = None
b = None
PASSWORD = "correct horse battery"


def setup_module():
    global a, b
    a = Server(primary=True)
    b = Server(database_url=a.db_url, env={"NOTEBOOKD_WORKERS": "0"})


def teardown_module():
    eq(b.stop(), 0)
    eq(a.stop(), 0)


def register(s):
    j = harness.register(s, "uc", password=PASSWORD)
    return j["access_token"], j["user"]["id"]


def statements(s, tok):
    r = s.get("/v1/notebooks?limit=1", token=tok)
    eq(r.status, 200, r.body)
    return int(r.header("X-DB-Statements"))


def cached(s, tok):
    """Waits until s serves tok's user from its cache: the list then runs its one statement only."""
    wait_until(lambda: statements(s, tok) == 1, 10, "the user cached (one statement per list)")


def listener_pids():
    return set(psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'notebookd-usercache'"
                    " AND datname = current_database()").split())


def test_cached_user_saves_one_statement_per_request():
    tok, _ = register(a)
    # with the cache off, every request checks the user: list + check
    off = Server(database_url=a.db_url, env={"NOTEBOOKD_USER_CACHE_SIZE": "0"})
    try:
        eq(statements(off, tok), 2)
        eq(statements(off, tok), 2)
    finally:
        eq(off.stop(), 0)
    cached(a, tok)
    eq(statements(a, tok), 1)


def test_erase_refuses_the_token_on_both_servers():
    tok, uid = register(a)
    cached(a, tok)
    cached(b, tok)  # b would serve this user for the whole TTL (60 s) without the notification
    r = a.request("DELETE", "/v1/me", body={"password": PASSWORD}, token=tok)
    eq(r.status, 204, r.body)
    t0 = time.time()
    eq(a.get("/v1/notebooks", token=tok).status, 401)  # the erasing server: at once
    wait_until(lambda: b.get("/v1/notebooks", token=tok).status == 401, 1.0, "the other server refusing the token")
    check(time.time() - t0 < 1.0, "refused on the other server within 1 s")
    eq(psql("SELECT count(*) FROM users WHERE id = '%s'" % uid), "0")


def test_listener_killed_cache_cleared_until_it_reconnects():
    tok, _ = register(a)
    cached(b, tok)
    before = listener_pids()
    check(len(before) >= 2, "both servers listen: %s" % before)
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
         " WHERE application_name = 'notebookd-usercache' AND datname = current_database()")
    # new listeners come up; whatever was cached before is gone (notifications may have been missed)
    wait_until(lambda: len(listener_pids() - before) >= 2, 10, "the listeners reconnecting")
    eq(statements(b, tok), 2)
    cached(b, tok)


def test_no_caching_while_the_listener_cannot_connect():
    port = free_port()  # nothing listens there: the LISTEN connection never comes up
    s = Server(database_url=a.db_url,
               env={"NOTEBOOKD_LISTEN_DATABASE_URL": "postgresql://notebookd@127.0.0.1:%d/notebookd" % port})
    try:
        tok, uid = register(s)
        for _ in range(5):
            eq(statements(s, tok), 2)  # every request checks the user in the database
        # an erasure elsewhere (no notification can reach s) is still seen at once
        psql("DELETE FROM users WHERE id = '%s'" % uid)
        eq(s.get("/v1/notebooks", token=tok).status, 401)
    finally:
        eq(s.stop(), 0)
