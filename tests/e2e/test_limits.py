"""End-to-end tests of the API-wide limits (src/api/ratelimit.c): token
buckets per user and per client address for each class of route (read,
write, upload, generate), the 429 answer with Retry-After, RateLimit and
RateLimit-Policy, and the client address taken from X-Forwarded-For only
when the peer is a trusted proxy — the same address the access log and the
door limits of login use."""
import re
import time
import uuid

import harness
from harness import Server, check, eq, wait_until

LIMIT_OFF = {
    "NOTEBOOKD_RATE_READ_PER_MIN": "0",
    "NOTEBOOKD_RATE_WRITE_PER_MIN": "0",
    "NOTEBOOKD_RATE_UPLOAD_PER_MIN": "0",
    "NOTEBOOKD_RATE_GENERATE_PER_MIN": "0",
    "NOTEBOOKD_RATE_SYNC_MS": "0",  # one server: its buckets need not be shared
}


def register(s, headers=None):
    return harness.register(s, "lim", headers=headers)["access_token"]


def check_429(r, policy_name, quota):
    eq(r.status, 429, r.body)
    eq(r.json["error"]["code"], "rate_limited")
    retry = int(r.header("Retry-After"))
    check(1 <= retry <= 60, "Retry-After %r" % retry)
    m = re.fullmatch(r'"([a-z]+-(?:user|ip))";r=0;t=(\d+)', r.header("RateLimit") or "")
    check(m, "RateLimit header: %r" % r.header("RateLimit"))
    eq(m.group(1), policy_name)
    eq(int(m.group(2)), retry)
    check('"%s";q=%d;w=60' % (policy_name, quota) in (r.header("RateLimit-Policy") or ""),
          "RateLimit-Policy: %r" % r.header("RateLimit-Policy"))


def test_each_class_has_its_own_bucket_per_user():
    s = Server(env=dict(LIMIT_OFF, NOTEBOOKD_RATE_WRITE_PER_MIN="5", NOTEBOOKD_RATE_READ_PER_MIN="8",
                        NOTEBOOKD_RATE_UPLOAD_PER_MIN="2", NOTEBOOKD_RATE_IP_MULTIPLIER="100"))
    try:
        a = register(s)
        nb = None
        for i in range(4):  # registration was a write of the address, not of the user: 5 left
            r = s.post("/v1/notebooks", {"title": "n%d" % i}, token=a)
            eq(r.status, 201, r.body)
            nb = r.json["id"]
        # uploads are their own class: 2 per minute, and not counted as writes
        for i in range(2):
            r = s.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "hello %d" % i}, token=a)
            eq(r.status, 202, r.body)
        r = s.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "one too many"}, token=a)
        check_429(r, "upload-user", 2)
        eq(s.psql("SELECT count(*) FROM sources WHERE notebook_id = '%s'" % nb), "2")
        r = s.post("/v1/notebooks", {"title": "fifth"}, token=a)
        eq(r.status, 201, r.body)
        r = s.post("/v1/notebooks", {"title": "sixth"}, token=a)
        check_429(r, "write-user", 5)
        eq(s.psql("SELECT count(*) FROM notebooks WHERE title = 'sixth'"), "0")
        # a refused write is refused before its body is read: a huge body gets the same 429
        r = s.post("/v1/notebooks", {"title": "x" * 200000}, token=a)
        check_429(r, "write-user", 5)
        # reads are another bucket, and another user has buckets of their own
        eq(s.get("/v1/notebooks", token=a).status, 200)
        b = register(s)
        eq(s.post("/v1/notebooks", {"title": "b's"}, token=b).status, 201)
        for _ in range(7):
            eq(s.get("/v1/me", token=a).status, 200)
        check_429(s.get("/v1/me", token=a), "read-user", 8)
        # ops routes are not limited
        eq(s.get("/healthz").status, 200)
        m = s.get("/metrics").body
        check('notebookd_ratelimit_rejections_total{class="write"} 2' in m, m[-800:])
        check('notebookd_ratelimit_rejections_total{class="upload"} 1' in m, m[-800:])
        check('notebookd_ratelimit_rejections_total{class="read"} 1' in m, m[-800:])
        eq(s.stop(), 0)
    finally:
        s.stop()


def ratelimit_of(r):
    """(bucket name, r, t) of a RateLimit header, or None when absent."""
    v = r.header("RateLimit")
    if v is None:
        return None
    m = re.fullmatch(r'"([a-z]+-(?:user|ip))";r=(\d+);t=(\d+)', v)
    check(m, "RateLimit header: %r" % v)
    return m.group(1), int(m.group(2)), int(m.group(3))


def test_ratelimit_headers_on_every_answer():
    """Every answer of a limited route says where its client stands, not only
    a 429: RateLimit-Policy lists the class's buckets, RateLimit names the one
    with the fewest tokens left (r) and the seconds until it is full again (t)."""
    s = Server(env=dict(LIMIT_OFF, NOTEBOOKD_RATE_READ_PER_MIN="10", NOTEBOOKD_RATE_WRITE_PER_MIN="6",
                        NOTEBOOKD_RATE_IP_MULTIPLIER="100"))
    try:
        # an anonymous route: the address's bucket only
        r = s.post("/v1/auth/register", {"email": "hdr-%s@example.com" % uuid.uuid4().hex[:10],
                                         "password": "long enough pw"})
        eq(r.status, 201, r.body)
        tok = r.json["access_token"]
        eq(r.header("RateLimit-Policy"), '"write-ip";q=600;w=60')
        eq(ratelimit_of(r), ("write-ip", 599, 1))
        # authenticated reads: the user's bucket is the tighter one; r counts down, t grows
        seen = []
        for _ in range(3):
            r = s.get("/v1/me", token=tok)
            eq(r.status, 200, r.body)
            eq(r.header("RateLimit-Policy"), '"read-user";q=10;w=60, "read-ip";q=1000;w=60')
            seen.append(ratelimit_of(r))
        eq([x[:2] for x in seen], [("read-user", 9), ("read-user", 8), ("read-user", 7)])
        check(1 <= seen[0][2] <= seen[1][2] <= seen[2][2] <= 60, seen)
        check(seen[2][2] >= 15, "three tokens of ten a minute take 18 s to come back: %r" % (seen,))
        # an error answer of a limited route carries them too
        r = s.get("/v1/notebooks/%s" % uuid.uuid4(), token=tok)
        eq(r.status, 404, r.body)
        eq(ratelimit_of(r)[:2], ("read-user", 6))
        r = s.post("/v1/notebooks", {"title": ""}, token=tok)
        eq(r.status, 422, r.body)
        eq(ratelimit_of(r)[:2], ("write-user", 5))
        # the last token, then the refusal (r=0, t = Retry-After)
        for left in range(5, -1, -1):
            r = s.get("/v1/me", token=tok)
            eq(r.status, 200, r.body)
            eq(ratelimit_of(r)[:2], ("read-user", left))
        check_429(s.get("/v1/me", token=tok), "read-user", 10)
        # routes outside the limits carry none
        for path in ("/healthz", "/openapi.json"):
            r = s.get(path)
            eq(r.status, 200)
            eq((r.header("RateLimit"), r.header("RateLimit-Policy")), (None, None))
        eq(s.stop(), 0)
    finally:
        s.stop()
    # a class whose limit is off says nothing
    s = Server(env=dict(LIMIT_OFF, NOTEBOOKD_RATE_WRITE_PER_MIN="6"))
    try:
        r = s.post("/v1/auth/register", {"email": "hdr-%s@example.com" % uuid.uuid4().hex[:10],
                                         "password": "long enough pw"})
        eq(r.status, 201, r.body)
        check(ratelimit_of(r) is not None, "writes are limited")
        r = s.get("/v1/me", token=r.json["access_token"])
        eq(r.status, 200)
        eq((r.header("RateLimit"), r.header("RateLimit-Policy")), (None, None))
        eq(s.stop(), 0)
    finally:
        s.stop()


def test_client_address_from_trusted_proxies_only():
    env = dict(LIMIT_OFF, NOTEBOOKD_RATE_READ_PER_MIN="3", NOTEBOOKD_RATE_IP_MULTIPLIER="1",
               NOTEBOOKD_TRUSTED_PROXIES="10.9.9.9, 127.0.0.0/8 ,::1")
    s = Server(env=env)
    try:
        users = [register(s) for _ in range(4)]
        a = {"X-Forwarded-For": "203.0.113.7"}
        # three different users behind one address: its bucket (3) refuses the fourth
        for t in users[:3]:
            eq(s.get("/v1/me", token=t, headers=a).status, 200)
        check_429(s.get("/v1/me", token=users[3], headers=a), "read-ip", 3)
        # another address is another bucket; a spoofed left-most entry is not believed:
        # the right-most address that is not a trusted proxy is the client
        b = {"X-Forwarded-For": "203.0.113.7, 198.51.100.4, 127.0.0.5"}
        eq(s.get("/v1/me", token=users[3], headers=b).status, 200)
        remotes = [l.get("remote") for l in s.log_lines() if l.get("path") == "/v1/me"]
        eq(remotes[:4], ["203.0.113.7"] * 4)
        eq(remotes[4], "198.51.100.4")
        eq(s.stop(), 0)
    finally:
        s.stop()
    # without trusted proxies the header is ignored: every request is the peer's
    s = Server(env=dict(env, NOTEBOOKD_TRUSTED_PROXIES="10.9.9.9"))
    try:
        users = [register(s) for _ in range(4)]
        for i, t in enumerate(users[:3]):
            eq(s.get("/v1/me", token=t, headers={"X-Forwarded-For": "203.0.113.%d" % i}).status, 200)
        check_429(s.get("/v1/me", token=users[3], headers={"X-Forwarded-For": "203.0.113.99"}), "read-ip", 3)
        remotes = {l.get("remote") for l in s.log_lines() if l.get("path") == "/v1/me"}
        eq(remotes, {"127.0.0.1"})
        eq(s.stop(), 0)
    finally:
        s.stop()


def test_door_limits_use_the_same_client_address():
    s = Server(env=dict(LIMIT_OFF, NOTEBOOKD_AUTH_IP_RATE_PER_MIN="2", NOTEBOOKD_TRUSTED_PROXIES="127.0.0.1"))
    try:
        body = {"email": "nobody-%s@example.com" % uuid.uuid4().hex[:8], "password": "wrong password 1"}
        a = {"X-Forwarded-For": "192.0.2.10"}
        eq(s.post("/v1/auth/login", body, headers=a).status, 401)
        eq(s.post("/v1/auth/login", dict(body, email="x" + body["email"]), headers=a).status, 401)
        r = s.post("/v1/auth/login", dict(body, email="y" + body["email"]), headers=a)
        eq(r.status, 429, r.body)
        r = s.post("/v1/auth/login", dict(body, email="z" + body["email"]), headers={"X-Forwarded-For": "192.0.2.11"})
        eq(r.status, 401, r.body)
        eq(s.stop(), 0)
    finally:
        s.stop()


def test_a_limit_holds_for_the_deployment():
    """Two servers on one database share a user's write bucket through
    PostgreSQL (rate_buckets): the 201s of both together stay within the
    limit plus the sync slack (each server may spend a lease, a quarter of
    the bucket, ahead of the shared count), where two unshared servers would
    each allow the whole limit. One sync connection per server serves the
    API-wide and the door limits alike."""
    env = dict(LIMIT_OFF, NOTEBOOKD_RATE_WRITE_PER_MIN="20", NOTEBOOKD_RATE_IP_MULTIPLIER="1000",
               NOTEBOOKD_RATE_SYNC_MS="100")
    a = Server(env=env, isolated=True)
    b = None
    try:
        b = Server(env=env, database_url=a.db_url)
        tok = register(a)
        t0 = time.time()
        ok = {a.port: 0, b.port: 0}
        refused = 0
        for i in range(120):
            s = (a, b)[i % 2]
            r = s.post("/v1/notebooks", {"title": "shared %d" % i}, token=tok)
            if r.status == 201:
                ok[s.port] += 1
            else:
                check_429(r, "write-user", 20)
                refused += 1
            time.sleep(0.01)
        elapsed = time.time() - t0
        total = sum(ok.values())
        refill = elapsed * 20 / 60
        slack = 2 * 5  # two servers, a lease of ceil(20 / 4) each
        print("#   shared limit: %d of 120 writes accepted across two servers in %.1f s (limit 20): %r"
              % (total, elapsed, sorted(ok.values())))
        check(total <= 20 + refill + slack, "%d writes allowed across two servers in %.1f s (limit 20 + %.1f refill"
              " + %d slack): %r" % (total, elapsed, refill, slack, ok))
        check(total >= 15, "only %d writes allowed" % total)
        check(ok[a.port] > 0 and ok[b.port] > 0, "one server served nothing: %r" % ok)
        eq(a.psql("SELECT count(*) FROM notebooks WHERE title LIKE 'shared %'"), str(total))
        # the shared row exists and is in debt or near empty
        wait_until(lambda: float(a.psql("SELECT min(tokens) FROM rate_buckets WHERE cap = 20")) < 3, 5,
                   "the shared bucket to be spent")
        # one rate-limit connection per server, for every limiter (the door limits are on too)
        eq(a.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                  " AND application_name LIKE 'notebookd%limit%'"), "2")
        eq(b.stop(), 0)
        b = None
        eq(a.stop(), 0)
    finally:
        if b:
            b.stop()
        a.stop()


def post_from(s, addr, path, body):
    """POST from the loopback address addr (a different client to the server); (status, Retry-After)."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30, source_address=(addr, 0))
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Retry-After")
    finally:
        conn.close()


def door_attempts(servers, n, account_email=None):
    """n door attempts alternating over servers: logins to one account (each from another client
    address, so only the per-account limit applies) when account_email is given, else OTP
    requests for n different addresses from one client address. Returns how many passed."""
    passed = refused = 0
    for i in range(n):
        s = servers[i % len(servers)]
        if account_email:
            st, retry = post_from(s, "127.0.4.%d" % (i + 1), "/v1/auth/login",
                                  {"email": account_email, "password": "wrong password %d" % i})
            ok = st == 401
        else:
            st, retry = post_from(s, "127.0.0.1", "/v1/auth/otp/request",
                                  {"email": "door-%d-%s@example.com" % (i, uuid.uuid4().hex[:6]), "purpose": "login"})
            ok = st == 202
        if ok:
            passed += 1
        else:
            eq(st, 429)
            check(retry and int(retry) >= 1, "Retry-After %r" % retry)
            refused += 1
        time.sleep(0.01)
    return passed


def test_door_limits_hold_for_the_deployment():
    """The login / OTP / register limits are shared by the servers of a
    deployment like the API-wide buckets (rate_buckets, every
    NOTEBOOKD_RATE_SYNC_MS): attempts spread over two servers are limited at
    about the configured count — the limit plus at most one lease
    (ceil(rate / 10)) per server — where two unshared servers allow twice
    the limit."""
    env = dict(LIMIT_OFF, NOTEBOOKD_AUTH_RATE_PER_MIN="10", NOTEBOOKD_AUTH_IP_RATE_PER_MIN="20",
               NOTEBOOKD_RATE_SYNC_MS="100")
    a = Server(env=env, isolated=True)
    b = c = d = None
    try:
        b = Server(env=env, database_url=a.db_url)
        t0 = time.time()
        acct = door_attempts([a, b], 30, account_email="door-%s@example.com" % uuid.uuid4().hex[:8])
        refill = (time.time() - t0) * 10 / 60
        print("#   per account, shared: %d of 30 logins over two servers passed (limit 10, lease 1)" % acct)
        check(acct <= 10 + 2 * 1 + refill, "%d logins passed for one account over two servers (limit 10)" % acct)
        check(acct >= 5, "only %d logins passed" % acct)
        t0 = time.time()
        addr = door_attempts([a, b], 60)
        refill = (time.time() - t0) * 20 / 60
        print("#   per address, shared: %d of 60 OTP requests over two servers passed (limit 20, lease 2)" % addr)
        check(addr <= 20 + 2 * 2 + refill, "%d OTP requests passed from one address over two servers (limit 20)" % addr)
        check(addr >= 10, "only %d OTP requests passed" % addr)
        # the shared rows exist (keys are hashed; caps 10 and 20)
        eq(a.psql("SELECT count(*) > 0 FROM rate_buckets WHERE cap = 10"), "t")
        eq(a.psql("SELECT count(*) > 0 FROM rate_buckets WHERE cap = 20"), "t")
        eq(b.stop(), 0)
        b = None
        # the same two servers without sharing: each applies the whole limit
        one = dict(env, NOTEBOOKD_RATE_SYNC_MS="0")
        c = Server(env=one, database_url=a.db_url)
        d = Server(env=one, database_url=a.db_url)
        unshared = door_attempts([c, d], 30, account_email="door-%s@example.com" % uuid.uuid4().hex[:8])
        print("#   per account, per process: %d of 30 logins over two servers passed" % unshared)
        eq(unshared, 20)
        eq(c.stop(), 0)
        c = None
        eq(d.stop(), 0)
        d = None
        eq(a.stop(), 0)
    finally:
        for s in (b, c, d):
            if s:
                s.stop()
        a.stop()
