"""End-to-end tests of accounts and authentication: register, login, JWT
access tokens and their attacks, rotating refresh tokens with reuse
detection, one-time codes by mail (files and real SMTP), /v1/me, erasure."""
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import socketserver
import statistics
import threading
import time
import uuid

import harness
from harness import Server, check, eq, psql, raw_http, wait_until

srv = None
SECRET = None


def setup_module():
    global srv, SECRET
    srv = Server(primary=True)
    SECRET = srv.env["NOTEBOOKD_JWT_SECRET"].encode()


def teardown_module():
    eq(srv.stop(), 0)


def email():
    return "user-%s@example.com" % uuid.uuid4().hex[:12]


def register(s=None, e=None, password="correct horse battery", name=None):
    return harness.register(s or srv, email=e, password=password, name=name)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(header, payload, key=None, alg="sha256"):
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(payload).encode())
    digest = getattr(hashlib, alg)
    sig = hmac.new(key or SECRET, (h + "." + p).encode(), digest).digest()
    return h + "." + p + "." + b64(sig)


def claims(sub, **over):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()), "iss": "notebookd", "aud": "notebookd-api"}
    c.update(over)
    return c


# ------------------------------------------------------------------ register

def test_register_returns_tokens_and_user():
    e = email()
    t = register(e=e, name="Ada")
    for k in ["access_token", "refresh_token", "token_type", "expires_in", "user"]:
        check(k in t, k)
    eq(t["token_type"], "Bearer")
    eq(t["expires_in"], 900)
    u = t["user"]
    eq(u["email"], e)
    eq(u["display_name"], "Ada")
    eq(u["email_verified_at"], None)
    uuid.UUID(u["id"])
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", u["created_at"]), u["created_at"])
    check("password" not in json.dumps(t["user"]))
    # the password is stored as a full Argon2id string, never in clear
    h = psql("SELECT password_hash FROM users WHERE id = '%s'" % u["id"])
    check(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), h)


def test_register_duplicate_email_is_409_case_insensitive_and_trimmed():
    e = email()
    register(e=e)
    r = srv.post("/v1/auth/register", {"email": "  " + e.upper() + " ", "password": "another password"})
    eq(r.status, 409)
    eq(r.json["error"]["code"], "conflict")


def test_register_bad_input():
    cases = [
        ({"email": "not-an-email", "password": "long enough pw"}, 422, "email"),
        ({"email": email(), "password": "short"}, 422, "password"),
        ({"email": email(), "password": "x" * 1025}, 422, "password"),
        ({"password": "long enough pw"}, 422, "email"),
        ({"email": email()}, 422, "password"),
        ({"email": 42, "password": "long enough pw"}, 422, "email"),
        ({"email": email(), "password": ["list"]}, 422, "password"),
        ({"email": email(), "password": "long enough pw", "display_name": 7}, 422, "display_name"),
        ({"email": email(), "password": "long enough pw", "display_name": "x" * 201}, 422, "display_name"),
        # (under NOTEBOOKD_MAX_JSON_BYTES: a bigger body is 413 before it is read)
        ({"email": "a@b.c" + "x" * (512 * 1024), "password": "long enough pw"}, 422, "email"),
        ({"email": "'; DROP TABLE users; --@example.com", "password": "long enough pw"}, 422, "email"),
    ]
    for body, status, field in cases:
        r = srv.post("/v1/auth/register", body)
        eq(r.status, status, "%r -> %s" % (str(body)[:80], r.body[:200]))
        eq(r.json["error"]["code"], "validation_failed")
        eq(r.json["error"]["field"], field)
    # a body over the JSON limit (1 MiB) is refused before it is parsed
    r = srv.post("/v1/auth/register", {"email": "a@b.c" + "x" * (2 * 1024 * 1024), "password": "long enough pw"})
    eq(r.status, 413, r.body[:200])
    eq(r.json["error"]["code"], "payload_too_large")
    # exactly 10 characters (code points, not bytes) is fine
    register(password="ééééééééé€")
    # SQL in a free-text field is just text
    t = register(name="Robert'); DROP TABLE users;--")
    eq(t["user"]["display_name"], "Robert'); DROP TABLE users;--")
    check(int(psql("SELECT count(*) FROM users")) > 0)


def test_malformed_bodies_are_400_or_415_and_write_nothing():
    before = psql("SELECT count(*) FROM users")
    bad = [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"string"', "application/json", 400),
        (b'{"email": "a\\u0000b@x.io", "password": "long enough pw"}', "application/json", 400),
        (b'{"email": "\xff\xfe@x.io", "password": "long enough pw"}', "application/json", 400),
        (b'{"email": "dup@x.io", "email": "dup2@x.io", "password": "long enough pw"}', "application/json", 400),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
        (b'{"email": "a@b.io", "password": "long enough pw"}', "text/plain", 415),
        (b'{"email": "a@b.io", "password": "long enough pw"}', "application/jsonx", 415),
        (b'{"email": "a@b.io", "password": "long enough pw"}', None, 415),
    ]
    for raw, ctype, status in bad:
        h = {"Content-Type": ctype} if ctype else {}
        r = srv.request("POST", "/v1/auth/register", raw=raw, headers=h)
        eq(r.status, status, "%r %s -> %s" % (raw[:40], ctype, r.body[:120]))
        code = {400: "bad_request", 415: "unsupported_media_type"}[status]
        eq(r.json["error"]["code"], code)
    # no body at all
    r = srv.request("POST", "/v1/auth/register", raw=b"", headers={"Content-Type": "application/json"})
    eq(r.status, 400)
    eq(psql("SELECT count(*) FROM users"), before)
    # charset parameter is fine
    r = srv.request("POST", "/v1/auth/register", raw=json.dumps({"email": email(), "password": "long enough pw"}).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"})
    eq(r.status, 201)


# --------------------------------------------------------------------- login

def test_login_and_identical_failures():
    e = email()
    register(e=e, password="the right password")
    r = srv.post("/v1/auth/login", {"email": e.upper(), "password": "the right password"})
    eq(r.status, 200, r.body)
    eq(r.json["user"]["email"], e)
    wrong = srv.post("/v1/auth/login", {"email": e, "password": "the wrong password"})
    unknown = srv.post("/v1/auth/login", {"email": email(), "password": "the right password"})
    eq(wrong.status, 401)
    eq(unknown.status, 401)
    strip = lambda b: re.sub(r'"request_id":"[^"]*"', "", b)
    eq(strip(wrong.body), strip(unknown.body))
    eq(wrong.header("Content-Type"), unknown.header("Content-Type"))


def test_login_time_does_not_reveal_whether_the_email_exists():
    e = email()
    register(e=e, password="the right password")

    def timed(body):
        t0 = time.perf_counter()
        eq(srv.post("/v1/auth/login", body).status, 401)
        return time.perf_counter() - t0

    # interleaved, so that a change of load on a shared machine hits both alike
    pairs = [(timed({"email": e, "password": "nope nope nope"}), timed({"email": email(), "password": "nope nope nope"}))
             for _ in range(7)]
    wrong = statistics.median(w for w, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    # both run one Argon2id verification: neither is a fraction of the other
    check(unknown > 0.4 * wrong and wrong > 0.4 * unknown, "wrong %.3fs, unknown %.3fs" % (wrong, unknown))


def weak_argon2id(password):
    """An Argon2id hash with weaker parameters (m=8 MiB, t=1), made with libsodium through ctypes."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    eq(lib.sodium_init() >= 0, True)
    out = ctypes.create_string_buffer(128)
    pw = password.encode()
    rc = lib.crypto_pwhash_str_alg(out, pw, ctypes.c_ulonglong(len(pw)), ctypes.c_ulonglong(1),
                                   ctypes.c_size_t(8 * 1024 * 1024), ctypes.c_int(2))
    eq(rc, 0)
    return out.value.decode()


def test_login_burst_does_not_stall_other_requests():
    t = register()
    e = t["user"]["email"]
    finished = []
    lock = threading.Lock()

    def login():
        eq(srv.post("/v1/auth/login", {"email": e, "password": "correct horse battery"}).status, 200)
        with lock:
            finished.append(time.time())

    ths = [threading.Thread(target=login) for _ in range(24)]
    for th in ths:
        th.start()

    def in_flight():
        m = re.search(r"^notebookd_http_requests_in_flight (\d+)$", srv.get("/metrics").body, re.M)
        return m and int(m.group(1)) >= 12

    # the logins are queued on the hashing pool (half of them at least) before the reads start
    wait_until(in_flight, 10, "the logins to be in flight", interval=0.002)
    for _ in range(10):
        eq(srv.get("/v1/me", token=t["access_token"]).status, 200)
    reads_done = time.time()
    for th in ths:
        th.join()
    # 24 Argon2id hashes queue on the hashing pool; the reads did not wait behind them
    check(len(finished) == 24)
    check(reads_done < max(finished), "reads finished after the last login")


def test_login_rehashes_old_parameters():
    e = email()
    t = register(e=e, password="the right password")
    weak = weak_argon2id("the right password")
    check(weak.startswith("$argon2id$v=19$m=8192,t=1,p=1$"), weak)
    psql("UPDATE users SET password_hash = '%s' WHERE id = '%s'" % (weak, t["user"]["id"]))
    eq(srv.post("/v1/auth/login", {"email": e, "password": "the right password"}).status, 200)
    h = psql("SELECT password_hash FROM users WHERE id = '%s'" % t["user"]["id"])
    check(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), h)
    eq(srv.post("/v1/auth/login", {"email": e, "password": "the right password"}).status, 200)


# ------------------------------------------------------------ access tokens

def test_me_requires_a_valid_token():
    t = register()
    uid = t["user"]["id"]
    eq(srv.get("/v1/me", token=t["access_token"]).status, 200)
    eq(srv.get("/v1/me", token=t["access_token"]).json["id"], uid)
    bad_tokens = {
        "none": None,
        "garbage": "garbage",
        "alg none": b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()) + "." + b64(json.dumps(claims(uid)).encode()) + ".",
        "alg none signed": make_jwt({"alg": "none", "typ": "at+jwt"}, claims(uid)),
        "HS512 same key": make_jwt({"alg": "HS512", "typ": "at+jwt"}, claims(uid), alg="sha512"),
        "HS384 same key": make_jwt({"alg": "HS384", "typ": "at+jwt"}, claims(uid), alg="sha384"),
        "RS256 header": make_jwt({"alg": "RS256", "typ": "at+jwt"}, claims(uid)),
        "other key": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(uid), key=b"k" * 40),
        "expired": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(uid, iat=int(time.time()) - 2000, exp=int(time.time()) - 1000)),
        "wrong iss": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(uid, iss="evil")),
        "wrong aud": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(uid, aud="other")),
        "no typ": make_jwt({"alg": "HS256"}, claims(uid)),
        "wrong typ": make_jwt({"alg": "HS256", "typ": "JWT"}, claims(uid)),
        "sub not uuid": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims("1 OR 1=1")),
        "unknown user": make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(str(uuid.uuid4()))),
        "header not json": b64(b"{oops") + "." + b64(json.dumps(claims(uid)).encode()) + ".sig",
        "two parts": "a.b",
        "tampered payload": t["access_token"].split(".")[0] + "." + b64(json.dumps(claims(str(uuid.uuid4()))).encode()) + "." + t["access_token"].split(".")[2],
    }
    for name, tok in bad_tokens.items():
        h = {} if tok is None else {"Authorization": "Bearer " + tok}
        r = srv.get("/v1/me", headers=h)
        eq(r.status, 401, name)
        eq(r.json["error"]["code"], "unauthenticated", name)
    # a correctly made token with our key is accepted (the forger knows the key here: proves the test can pass)
    good = make_jwt({"alg": "HS256", "typ": "at+jwt"}, claims(uid))
    eq(srv.get("/v1/me", headers={"Authorization": "Bearer " + good}).status, 200)
    eq(srv.get("/v1/me", headers={"Authorization": "Basic " + t["access_token"]}).status, 401)


def test_expired_access_token_short_ttl():
    s2 = Server(env={"NOTEBOOKD_ACCESS_TTL_S": "10"})
    try:
        t = register(s=s2)
        eq(t["expires_in"], 10)
        eq(s2.get("/v1/me", token=t["access_token"]).status, 200)
        # the server's token carries exp = iat + 10
        payload = t["access_token"].split(".")[1]
        c = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        eq(c["exp"] - c["iat"], 10)
        # the same claims, signed with the server's key, but 1 s past exp: refused
        # (no need to wait 10 s for the clock)
        hdr = t["access_token"].split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(hdr + "=" * (-len(hdr) % 4)))
        now = int(time.time())
        late = dict(c, iat=now - 11, exp=now - 1)
        eq(s2.get("/v1/me", token=make_jwt(header, late)).status, 401)
        fresh = dict(c, iat=now, exp=now + 10)
        eq(s2.get("/v1/me", token=make_jwt(header, fresh)).status, 200)
    finally:
        eq(s2.stop(), 0)


# ----------------------------------------------------------- refresh tokens

def test_refresh_rotates_and_reuse_revokes_the_family():
    t = register()
    r1 = srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]})
    eq(r1.status, 200, r1.body)
    check(r1.json["refresh_token"] != t["refresh_token"])
    eq(srv.get("/v1/me", token=r1.json["access_token"]).status, 200)
    r2 = srv.post("/v1/auth/refresh", {"refresh_token": r1.json["refresh_token"]})
    eq(r2.status, 200)
    # the attacker replays the first (spent) token
    replay = srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]})
    eq(replay.status, 401)
    # ... and the whole family is revoked: the victim's current token fails too
    eq(srv.post("/v1/auth/refresh", {"refresh_token": r2.json["refresh_token"]}).status, 401)
    # only hashes are stored
    n = psql("SELECT count(*) FROM refresh_tokens WHERE user_id = '%s' AND revoked_at IS NULL" % t["user"]["id"])
    eq(n, "0")
    raw = t["refresh_token"]
    eq(psql("SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%%%s%%'" % raw[:10]), "0")
    # another login is a separate family and still works
    e = t["user"]["email"]
    r = srv.post("/v1/auth/login", {"email": e, "password": "correct horse battery"})
    eq(srv.post("/v1/auth/refresh", {"refresh_token": r.json["refresh_token"]}).status, 200)


def test_concurrent_refresh_exactly_one_wins():
    t = register()
    results = []
    lock = threading.Lock()

    def go():
        r = srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]})
        with lock:
            results.append(r.status)

    ths = [threading.Thread(target=go) for _ in range(12)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    eq(results.count(200), 1, results)
    eq(results.count(401), 11, results)


def test_refresh_bad_tokens():
    for tok in ["", "x" * 43, "short", "a" * 500, "Zm9v" * 10 + "abc"]:
        r = srv.post("/v1/auth/refresh", {"refresh_token": tok})
        eq(r.status, 401, tok)
    eq(srv.post("/v1/auth/refresh", {"refresh_token": 12}).status, 422)
    eq(srv.post("/v1/auth/refresh", {}).status, 422)


def test_refresh_token_expiry():
    s2 = Server(env={"NOTEBOOKD_REFRESH_TTL_S": "60"}, isolated=True)
    try:
        t = register(s=s2)
        s2.psql("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = '%s'" % t["user"]["id"])
        eq(s2.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]}).status, 401)
        # absolute family expiry: a family older than the absolute lifetime cannot rotate
        t2 = register(s=s2)
        s2.psql("UPDATE refresh_tokens SET family_issued_at = now() - interval '100 days' WHERE user_id = '%s'" % t2["user"]["id"])
        eq(s2.post("/v1/auth/refresh", {"refresh_token": t2["refresh_token"]}).status, 401)
    finally:
        eq(s2.stop(), 0)


def test_logout_revokes_the_family():
    t = register()
    r = srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]})
    eq(srv.post("/v1/auth/logout", {"refresh_token": r.json["refresh_token"]}).status, 204)
    eq(srv.post("/v1/auth/refresh", {"refresh_token": r.json["refresh_token"]}).status, 401)
    eq(srv.post("/v1/auth/logout", {"refresh_token": "unknown-token"}).status, 204)


# ----------------------------------------------------------------------- me

def test_me_patch_display_name_and_same_email():
    t = register(name="Old")
    tok = t["access_token"]
    uid = t["user"]["id"]
    r = srv.patch("/v1/me", {"display_name": "New Name"}, token=tok)
    eq(r.status, 200)
    eq(r.json["display_name"], "New Name")
    eq(r.json["pending_email"], None)
    psql("UPDATE users SET email_verified_at = now() WHERE id = '%s'" % uid)
    check(srv.get("/v1/me", token=tok).json["email_verified_at"])
    # the same email in another case is the same address: nothing pending, still verified
    r = srv.patch("/v1/me", {"email": t["user"]["email"].upper()}, token=tok)
    eq(r.status, 200)
    check(r.json["email_verified_at"])
    eq(r.json["pending_email"], None)
    other = register()
    r = srv.patch("/v1/me", {"email": other["user"]["email"]}, token=tok)
    eq(r.status, 409)
    eq(srv.patch("/v1/me", {"email": "bad"}, token=tok).status, 422)
    eq(srv.patch("/v1/me", {"display_name": None}, token=tok).json["display_name"], None)
    eq(srv.patch("/v1/me", {"display_name": 5}, token=tok).status, 422)


def read_mail(s, addr, word, timeout=10):
    """The text of the newest mail to addr containing word (removed once read)."""
    def find():
        for path in sorted(glob.glob(os.path.join(s.mail_dir, "*.eml")), reverse=True):
            with open(path, encoding="utf-8", newline="") as f:
                msg = f.read()
            if ("To: " + addr) in msg and word in msg:
                os.unlink(path)
                return msg
        return None
    return wait_until(find, timeout, "a mail to %s about %r" % (addr, word))


def test_me_email_change_needs_the_code_sent_to_the_new_address():
    t = register()
    tok = t["access_token"]
    old = t["user"]["email"]
    new = email()
    r = srv.patch("/v1/me", {"email": new.upper()}, token=tok)
    eq(r.status, 200, r.body)
    # nothing changed yet: the new address is pending
    eq(r.json["email"], old)
    eq(r.json["pending_email"], new)
    eq(srv.get("/v1/me", token=tok).json["pending_email"], new)
    # a stolen access token alone cannot move the account: login still works with the old address only
    eq(srv.post("/v1/auth/login", {"email": new, "password": "correct horse battery"}).status, 401)
    # the new address gets a code, the old one is told
    code = read_code(srv, new, "confirm your new email")
    notice = read_mail(srv, old, "is being changed")
    check(new in notice)
    check(not re.search(r"\b%s\b" % code, notice.split("\r\n\r\n", 1)[1]), "the old address got the code")
    # wrong code: 401, counted
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    r = srv.post("/v1/me/email/confirm", {"code": wrong}, token=tok)
    eq(r.status, 401)
    eq(r.json["error"]["code"], "unauthenticated")
    eq(srv.post("/v1/me/email/confirm", {}, token=tok).status, 422)
    eq(srv.post("/v1/me/email/confirm", {"code": code}).status, 401)  # no token
    r = srv.post("/v1/me/email/confirm", {"code": code}, token=tok)
    eq(r.status, 200, r.body)
    eq(r.json["email"], new)
    eq(r.json["pending_email"], None)
    check(r.json["email_verified_at"])
    # used: 401
    eq(srv.post("/v1/me/email/confirm", {"code": code}, token=tok).status, 401)
    eq(srv.post("/v1/auth/login", {"email": new, "password": "correct horse battery"}).status, 200)
    eq(srv.post("/v1/auth/login", {"email": old, "password": "correct horse battery"}).status, 401)


def test_me_email_confirm_five_tries_and_taken_meanwhile():
    t = register()
    tok = t["access_token"]
    new = email()
    eq(srv.patch("/v1/me", {"email": new}, token=tok).status, 200)
    code = read_code(srv, new, "confirm your new email")
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    for _ in range(5):
        eq(srv.post("/v1/me/email/confirm", {"code": wrong}, token=tok).status, 401)
    # the right code no longer works after five wrong tries
    eq(srv.post("/v1/me/email/confirm", {"code": code}, token=tok).status, 401)
    eq(srv.get("/v1/me", token=tok).json["email"], t["user"]["email"])

    # a new request, then someone else registers the address meanwhile: 409
    eq(srv.patch("/v1/me", {"email": new}, token=tok).status, 200)
    code = read_code(srv, new, "confirm your new email")
    register(e=new)
    r = srv.post("/v1/me/email/confirm", {"code": code}, token=tok)
    eq(r.status, 409, r.body)
    eq(r.json["error"]["field"], "email")
    eq(srv.get("/v1/me", token=tok).json["email"], t["user"]["email"])
    # and a pending address that is taken at request time is 409 at once
    eq(srv.patch("/v1/me", {"email": new}, token=tok).status, 409)


def test_delete_me_erases_everything_and_tokens_stop_working():
    t = register()
    uid = t["user"]["id"]
    tok = t["access_token"]
    # data owned by the user, inserted directly (the API for it comes later)
    nb = str(uuid.uuid4())
    psql("INSERT INTO notebooks (id, owner_id, title) VALUES ('%s', '%s', 'mine')" % (nb, uid))
    # the password is required, and must be right
    r = srv.delete("/v1/me", token=tok)
    eq(r.status, 422)
    eq(r.json["error"]["field"], "password")
    eq(srv.request("DELETE", "/v1/me", body={}, token=tok).status, 422)
    eq(srv.request("DELETE", "/v1/me", body={"password": 5}, token=tok).status, 422)
    r = srv.request("DELETE", "/v1/me", body={"password": "not the password"}, token=tok)
    eq(r.status, 401)
    eq(r.json["error"]["code"], "unauthenticated")
    eq(psql("SELECT count(*) FROM users WHERE id = '%s'" % uid), "1")
    eq(srv.request("DELETE", "/v1/me", body={"password": "correct horse battery"}, token=tok).status, 204)
    eq(psql("SELECT count(*) FROM users WHERE id = '%s'" % uid), "0")
    eq(psql("SELECT count(*) FROM notebooks WHERE owner_id = '%s'" % uid), "0")
    eq(psql("SELECT count(*) FROM refresh_tokens WHERE user_id = '%s'" % uid), "0")
    eq(srv.get("/v1/me", token=tok).status, 401)
    eq(srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]}).status, 401)
    eq(srv.post("/v1/auth/login", {"email": t["user"]["email"], "password": "correct horse battery"}).status, 401)
    # the email can be registered again
    register(e=t["user"]["email"])


def test_cross_account_token_sees_only_its_own_account():
    a = register()
    b = register()
    eq(srv.get("/v1/me", token=a["access_token"]).json["id"], a["user"]["id"])
    eq(srv.get("/v1/me", token=b["access_token"]).json["id"], b["user"]["id"])
    # b's refresh token cannot be spent to get a's account
    r = srv.post("/v1/auth/refresh", {"refresh_token": b["refresh_token"]})
    eq(r.json["user"]["id"], b["user"]["id"])


# --------------------------------------------------------------------- OTP

def read_code(s, addr, purpose_word, timeout=10):
    msg = read_mail(s, addr, purpose_word, timeout)
    return re.search(r"\b(\d{6})\b", msg.split("\r\n\r\n", 1)[1]).group(1)


def test_otp_request_answers_202_whether_or_not_the_account_exists():
    t = register()
    known = srv.post("/v1/auth/otp/request", {"email": t["user"]["email"], "purpose": "login"})
    unknown = srv.post("/v1/auth/otp/request", {"email": email(), "purpose": "login"})
    eq(known.status, 202)
    eq(unknown.status, 202)
    eq(known.json, {"status": "accepted"})
    eq(known.body, unknown.body)
    read_code(srv, t["user"]["email"], "sign in")
    eq(srv.post("/v1/auth/otp/request", {"email": email(), "purpose": "hack"}).status, 422)
    eq(srv.post("/v1/auth/otp/request", {"email": "nope", "purpose": "login"}).status, 422)


def test_otp_login_single_use():
    t = register()
    e = t["user"]["email"]
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "login"})
    code = read_code(srv, e, "sign in")
    r = srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code})
    eq(r.status, 200, r.body)
    eq(r.json["user"]["id"], t["user"]["id"])
    # the code arrived, so the mailbox is proven (issue 8.7)
    check(r.json["user"]["email_verified_at"], r.json["user"])
    eq(srv.get("/v1/me", token=r.json["access_token"]).status, 200)
    check(srv.get("/v1/me", token=r.json["access_token"]).json["email_verified_at"])
    # replay
    r = srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code})
    eq(r.status, 401)
    # a code for another purpose does not work here
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "verify_email"})
    code2 = read_code(srv, e, "confirm")
    eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code2}).status, 401)


def test_otp_brute_force_locked_after_five():
    t = register()
    e = t["user"]["email"]
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "login"})
    code = read_code(srv, e, "sign in")
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    for _ in range(5):
        eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": wrong}).status, 401)
    # the right code no longer works after five wrong tries
    eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code}).status, 401)
    eq(psql("SELECT max(attempts) FROM otps WHERE user_id = '%s'" % t["user"]["id"]), "5")


def test_otp_new_request_supersedes_and_expiry():
    t = register()
    e = t["user"]["email"]
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "login"})
    old = read_code(srv, e, "sign in")
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "login"})
    new = read_code(srv, e, "sign in")
    if old != new:
        eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": old}).status, 401)
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "login"})
    code = read_code(srv, e, "sign in")
    psql("UPDATE otps SET expires_at = now() - interval '1 second' WHERE user_id = '%s' AND consumed_at IS NULL" % t["user"]["id"])
    eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code}).status, 401)
    # only a hash of the code is stored
    eq(psql("SELECT count(*) FROM otps WHERE user_id = '%s' AND position('%s' in encode(code_hash, 'escape')) > 0"
            % (t["user"]["id"], code)), "0")


def test_otp_verify_email_and_reset_password():
    t = register(password="first password!")
    e = t["user"]["email"]
    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "verify_email"})
    code = read_code(srv, e, "confirm")
    eq(srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "verify_email", "code": code}).status, 204)
    check(srv.get("/v1/me", token=t["access_token"]).json["email_verified_at"])

    srv.post("/v1/auth/otp/request", {"email": e, "purpose": "reset_password"})
    code = read_code(srv, e, "reset")
    # a bad new password is refused before the code is spent
    r = srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "reset_password", "code": code, "new_password": "short"})
    eq(r.status, 422)
    eq(r.json["error"]["field"], "new_password")
    r = srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "reset_password", "code": code})
    eq(r.status, 422)
    r = srv.post("/v1/auth/otp/verify", {"email": e, "purpose": "reset_password", "code": code,
                                         "new_password": "second password!"})
    eq(r.status, 204, r.body)
    eq(srv.post("/v1/auth/login", {"email": e, "password": "first password!"}).status, 401)
    eq(srv.post("/v1/auth/login", {"email": e, "password": "second password!"}).status, 200)
    # every refresh family from before the reset is revoked
    eq(srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]}).status, 401)


def test_otp_verify_unknown_email_and_bad_input():
    eq(srv.post("/v1/auth/otp/verify", {"email": email(), "purpose": "login", "code": "123456"}).status, 401)
    eq(srv.post("/v1/auth/otp/verify", {"email": email(), "purpose": "login"}).status, 422)
    eq(srv.post("/v1/auth/otp/verify", {"email": email(), "purpose": "login", "code": 123456}).status, 422)


# The door limits of one server, counted exactly (back-to-back attempts): not
# shared, so that no lease between syncs applies (test_limits.py tests the
# shared limits of several servers).
ONE_SERVER = {"NOTEBOOKD_RATE_SYNC_MS": "0"}


def test_rate_limits_on_the_door():
    s2 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "3", **ONE_SERVER})
    try:
        e = email()
        statuses = [s2.post("/v1/auth/login", {"email": e, "password": "whatever pw"}).status for _ in range(5)]
        eq(statuses[:3], [401, 401, 401])
        eq(statuses[3], 429)
        r = s2.post("/v1/auth/login", {"email": e, "password": "whatever pw"})
        eq(r.status, 429)
        eq(r.json["error"]["code"], "rate_limited")
        check(int(r.header("Retry-After")) >= 1)
        # per account too: another address from the same client is limited by the client key
        r = s2.post("/v1/auth/otp/request", {"email": email(), "purpose": "login"})
        eq(r.status, 202)
    finally:
        eq(s2.stop(), 0)


def test_register_has_the_door_limits_too():
    s2 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "3", "NOTEBOOKD_AUTH_IP_RATE_PER_MIN": "6", **ONE_SERVER})
    try:
        e = email()
        statuses = [s2.post("/v1/auth/register", {"email": e, "password": "long enough pw"}).status for _ in range(5)]
        # per account: the first registers, two more are answered 409, then 429
        eq(statuses, [201, 409, 409, 429, 429])
        r = s2.post("/v1/auth/register", {"email": e.upper(), "password": "long enough pw"})
        eq(r.status, 429)
        check(int(r.header("Retry-After")) >= 1)
        # per client address: 6 per minute whatever the account (6 used above)
        r = s2.post("/v1/auth/register", {"email": email(), "password": "long enough pw"})
        eq(r.status, 429)
        eq(r.json["error"]["code"], "rate_limited")
    finally:
        eq(s2.stop(), 0)


def test_one_address_many_users_do_not_lock_each_other_out():
    # a school behind one NAT: 10 accounts with 3 attempts each from one address
    s2 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "3", **ONE_SERVER})
    try:
        users = [email() for _ in range(10)]
        for e in users:
            eq(s2.post("/v1/auth/register", {"email": e, "password": "long enough pw"}).status, 201)
        statuses = []
        for e in users:
            statuses += [s2.post("/v1/auth/login", {"email": e, "password": "wrong password"}).status for _ in range(2)]
            statuses.append(s2.post("/v1/auth/login", {"email": e, "password": "long enough pw"}).status)
        # 40 door attempts from one address within the default per-address limit of 60
        eq(statuses, [401, 401, 200] * 10)
        # while one account is still limited on its own after 3 attempts
        eq(s2.post("/v1/auth/login", {"email": users[0], "password": "long enough pw"}).status, 429)
    finally:
        eq(s2.stop(), 0)
    # and the per-address limit is its own setting
    s3 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "0", "NOTEBOOKD_AUTH_IP_RATE_PER_MIN": "4", **ONE_SERVER})
    try:
        statuses = [s3.post("/v1/auth/login", {"email": email(), "password": "x" * 12}).status for _ in range(5)]
        eq(statuses, [401, 401, 401, 401, 429])
        eq(s3.post("/v1/auth/otp/request", {"email": email(), "purpose": "login"}).status, 202)  # another door
    finally:
        eq(s3.stop(), 0)


def post_from(s, addr, path, body):
    """POST from the client address addr (any of 127.0.0.0/8 is this machine): a different client to the server."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30, source_address=(addr, 0))
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def case_variants(e, n):
    """n different spellings of e by the case of its letters."""
    out, i = [], 0
    letters = [k for k, ch in enumerate(e) if ch.isalpha()]
    while len(out) < n:
        i += 1
        v = list(e)
        for bit, k in enumerate(letters):
            if (i >> bit) & 1:
                v[k] = v[k].upper()
        v = "".join(v)
        if v not in out and v != e:
            out.append(v)
    return out


def test_case_variants_share_one_account_limit():
    s2 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "10", **ONE_SERVER})
    try:
        e = "variant-" + uuid.uuid4().hex[:8] + "@example.com"
        eq(s2.post("/v1/auth/register", {"email": e, "password": "the right password"}).status, 201)
        variants = case_variants(e, 12)
        # each from another client address, so that only the per-account limit can apply
        statuses = [post_from(s2, "127.0.1.%d" % (i + 1), "/v1/auth/login", {"email": v, "password": "wrong password"})
                    for i, v in enumerate(variants)]
        # before: 12 x 401 (each spelling had a limit of its own); now one account, one limit
        eq(statuses, [401] * 10 + [429] * 2, statuses)
    finally:
        eq(s2.stop(), 0)


def test_case_variants_do_not_mail_more_codes_than_the_limit():
    s2 = Server(env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "3", **ONE_SERVER})
    try:
        e = "mailbox-" + uuid.uuid4().hex[:8] + "@example.com"
        t = register(s=s2, e=e)
        uid = t["user"]["id"]
        statuses = [post_from(s2, "127.0.2.%d" % (i + 1), "/v1/auth/otp/request", {"email": v, "purpose": "login"})
                    for i, v in enumerate(case_variants(e, 7))]
        eq(statuses, [202, 202, 202, 429, 429, 429, 429])
        wait_until(lambda: s2.psql("SELECT count(*) FROM otps WHERE user_id = '%s'" % uid) == "3", 10,
                   "three codes")
        wait_until(lambda: len(glob.glob(os.path.join(s2.mail_dir, "*.eml"))) == 3, 10, "three mails")
        for path in glob.glob(os.path.join(s2.mail_dir, "*.eml")):
            with open(path, encoding="utf-8") as f:
                check("To: " + e in f.read())  # mailed to the canonical address
    finally:
        eq(s2.stop(), 0)


def test_one_canonical_email_kelvin_nfd_and_lookalikes():
    local = "kim" + uuid.uuid4().hex[:6]
    t = register(e=local + "@example.com")
    # a Kelvin sign K (U+212A) is the letter k: the same account, 409
    r = srv.post("/v1/auth/register", {"email": "\u212a" + local[1:] + "@example.com", "password": "long enough pw"})
    eq(r.status, 409, r.body)
    eq(r.json["error"]["field"], "email")
    eq(srv.post("/v1/auth/login", {"email": "\u212a" + local[1:].upper() + "@EXAMPLE.com",
                                   "password": "correct horse battery"}).json["user"]["id"], t["user"]["id"])
    # registered with the Kelvin sign first, the account's address is the canonical "k"
    local2 = "kim" + uuid.uuid4().hex[:6]
    t3 = register(e="\u212a" + local2[1:].upper() + "@Example.com")
    eq(t3["user"]["email"], local2 + "@example.com")
    eq(srv.post("/v1/auth/register", {"email": local2 + "@example.com", "password": "long enough pw"}).status, 409)
    # NFC and NFD spellings are one account, stored in NFC
    tag = uuid.uuid4().hex[:6]
    nfc, nfd = "jos\u00e9" + tag + "@example.com", "jose\u0301" + tag + "@example.com"
    t2 = register(e=nfd)
    eq(t2["user"]["email"], nfc)
    eq(srv.post("/v1/auth/register", {"email": nfc, "password": "long enough pw"}).status, 409)
    eq(srv.post("/v1/auth/register", {"email": nfc.upper(), "password": "long enough pw"}).status, 409)
    eq(srv.post("/v1/auth/login", {"email": nfc, "password": "correct horse battery"}).status, 200)
    eq(psql("SELECT email FROM users WHERE id = '%s'" % t2["user"]["id"]), nfc)
    # a Cyrillic 'а' among Latin letters is refused
    r = srv.post("/v1/auth/register", {"email": "p\u0430ypal" + tag + "@example.com", "password": "long enough pw"})
    eq(r.status, 422)
    eq(r.json["error"]["field"], "email")
    check("mixes scripts" in r.json["error"]["message"])
    # one script of any kind is fine
    register(e="\u0438\u0432\u0430\u043d" + str(uuid.uuid4().int)[:8] + "@example.ru")


def test_register_answers_a_taken_email_before_hashing():
    e = email()
    register(e=e)

    def timed(addr):
        t0 = time.perf_counter()
        st = srv.post("/v1/auth/register", {"email": addr, "password": "long enough pw"}).status
        return st, time.perf_counter() - t0

    fresh = [timed(email()) for _ in range(5)]
    taken = [timed(e.upper()) for _ in range(20)]
    check(all(st == 201 for st, _ in fresh))
    check(all(st == 409 for st, _ in taken))
    f = statistics.median(d for _, d in fresh)
    tk = statistics.median(d for _, d in taken)
    print("# register: fresh (one Argon2id hash) %.2f ms, taken email %.2f ms" % (f * 1000, tk * 1000))
    # an Argon2id hash (19 MiB, t=2) dominates a fresh registration; a taken one runs none
    check(tk < 0.5 * f, "taken %.4fs vs fresh %.4fs" % (tk, f))


def _median_ms(samples):
    return statistics.median(samples) * 1000


def test_otp_request_and_verify_take_the_same_time_for_unknown_accounts():
    known = register()["user"]["email"]
    conn_known, conn_unknown = [], []
    body = lambda e: {"email": e, "purpose": "login"}
    for i in range(200):  # interleaved, so drift hits both alike
        for addr, out in ((known, conn_known), (email(), conn_unknown)):
            t0 = time.perf_counter()
            eq(srv.post("/v1/auth/otp/request", body(addr)).status, 202)
            out.append(time.perf_counter() - t0)
    k, u = _median_ms(conn_known), _median_ms(conn_unknown)
    print("# otp/request median: existing %.3f ms, unknown %.3f ms" % (k, u))
    check(abs(k - u) < 0.3 or max(k, u) < 1.3 * min(k, u), "existing %.3f ms, unknown %.3f ms" % (k, u))

    vk, vu = [], []
    for i in range(200):
        for addr, out in ((known, vk), (email(), vu)):
            t0 = time.perf_counter()
            eq(srv.post("/v1/auth/otp/verify", {"email": addr, "purpose": "login", "code": "000000"}).status, 401)
            out.append(time.perf_counter() - t0)
    k, u = _median_ms(vk), _median_ms(vu)
    print("# otp/verify median: existing %.3f ms, unknown %.3f ms" % (k, u))
    check(abs(k - u) < 0.3 or max(k, u) < 1.3 * min(k, u), "existing %.3f ms, unknown %.3f ms" % (k, u))


def test_unknown_body_fields_are_422_on_auth_and_me_routes():
    t = register()
    tok = t["access_token"]
    e = t["user"]["email"]
    cases = [
        ("POST", "/v1/auth/register", {"email": email(), "password": "long enough pw", "displayname": "x"}, None, "displayname"),
        ("POST", "/v1/auth/login", {"email": e, "password": "correct horse battery", "remember": True}, None, "remember"),
        ("POST", "/v1/auth/refresh", {"refresh_token": t["refresh_token"], "x": 1}, None, "x"),
        ("POST", "/v1/auth/logout", {"refresh_token": t["refresh_token"], "all": True}, None, "all"),
        ("POST", "/v1/auth/otp/request", {"email": e, "purpose": "login", "lang": "en"}, None, "lang"),
        ("POST", "/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": "123456", "cde": "1"}, None, "cde"),
        ("PATCH", "/v1/me", {"displayname": "Typo"}, tok, "displayname"),
        ("POST", "/v1/me/email/confirm", {"code": "123456", "email": e}, tok, "email"),
        ("DELETE", "/v1/me", {"password": "correct horse battery", "force": True}, tok, "force"),
    ]
    for method, path, body, token, unknown in cases:
        r = srv.request(method, path, body=body, token=token)
        eq(r.status, 422, "%s %s -> %s" % (method, path, r.body))
        eq(r.json["error"]["field"], unknown, path)
        check("unknown field" in r.json["error"]["message"])
    # nothing happened: the account, its name and its refresh token are as they were
    me = srv.get("/v1/me", token=tok).json
    eq(me["display_name"], None)
    eq(srv.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]}).status, 200)


def test_display_names_refuse_controls_bidi_and_blank():
    t = register()
    tok = t["access_token"]
    for bad in ["   ", "\t", "Ada\u202eecilA", "\u2066Ada\u2069", "Ada\u0007", "\u3000", "a\nb"]:
        r = srv.post("/v1/auth/register", {"email": email(), "password": "long enough pw", "display_name": bad})
        eq(r.status, 422, repr(bad))
        eq(r.json["error"]["field"], "display_name")
        r = srv.patch("/v1/me", {"display_name": bad}, token=tok)
        eq(r.status, 422, repr(bad))
        eq(r.json["error"]["field"], "display_name")
    eq(srv.patch("/v1/me", {"display_name": "Zoë \U0001F98A"}, token=tok).json["display_name"], "Zoë \U0001F98A")


def test_crafted_cursors_are_422_never_500():
    t = register()
    tok = t["access_token"]
    nbs = [srv.post("/v1/notebooks", {"title": "n%d" % i}, token=tok).json["id"] for i in range(3)]
    for i in range(3):
        eq(srv.post("/v1/notebooks/%s/sources" % nbs[0], {"kind": "text", "content": "hello %d" % i}, token=tok).status, 202)
    u = str(uuid.uuid4())
    crafted = [b64(("0|" + u).encode()), b64(("j|" + u).encode()), b64(("99999-99-99|" + u).encode()),
               b64(("2026-11-28 05:00:00+00|" + u).encode()), b64(("5|" + u).encode()),
               b64(("2026-02-30 00:00:00+00|" + u).encode()), b64(b"\x00" * 40), "", "%%%", "A" * 600]
    lists = ["/v1/notebooks", "/v1/notebooks/%s/sources" % nbs[0], "/v1/jobs"]
    real = {}
    for path in lists:
        r = srv.get(path + "?limit=1", token=tok)
        eq(r.status, 200, r.body)
        real[path] = r.json["next_cursor"]
        check(real[path], path)
        # a real cursor works on its list
        eq(srv.get(path + "?limit=1&cursor=" + real[path], token=tok).status, 200)
        for c in crafted:
            r = srv.get(path + "?limit=1&cursor=" + c, token=tok)
            eq(r.status, 422, "%s cursor %r -> %s" % (path, c, r.body))
            eq(r.json["error"]["field"], "cursor")
        # tampered: one character changed
        c = real[path]
        bad = c[:5] + ("A" if c[5] != "A" else "B") + c[6:]
        eq(srv.get(path + "?cursor=" + bad, token=tok).status, 422)
    # a cursor made for one list is not good on another
    for a in lists:
        for b in lists:
            if a != b:
                r = srv.get(b + "?cursor=" + real[a], token=tok)
                eq(r.status, 422, "%s cursor on %s -> %s" % (a, b, r.body))
    # nothing above was a database error
    check(not any(l.get("status") == 500 for l in srv.log_lines()), "a 500 in the log")


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to receive a message: EHLO, MAIL, RCPT, DATA, QUIT."""
    def handle(self):
        w = lambda s: self.wfile.write((s + "\r\n").encode())
        w("220 test ESMTP")
        rcpts, sender = [], None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO") or up.startswith("HELO"):
                w("250-test\r\n250 8BITMIME")
            elif up.startswith("MAIL FROM:"):
                sender = cmd[10:].strip()
                w("250 OK")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:].strip())
                w("250 OK")
            elif up == "DATA":
                w("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline()
                    if l in (b".\r\n", b".\n", b""):
                        break
                    data.append(l)
                self.server.messages.append((sender, rcpts, b"".join(data).decode("utf-8", "replace")))
                w("250 queued")
            elif up == "QUIT":
                w("221 bye")
                return
            else:
                w("250 OK")


def test_otp_mail_over_real_smtp():
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    smtp.messages = []
    smtp.daemon_threads = True
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    port = smtp.server_address[1]
    s2 = Server(env={"NOTEBOOKD_SMTP_URL": "smtp://127.0.0.1:%d" % port, "NOTEBOOKD_MAIL_FROM": "Notebookd <no-reply@notebookd.test>"})
    try:
        t = register(s=s2)
        e = t["user"]["email"]
        eq(s2.post("/v1/auth/otp/request", {"email": e, "purpose": "login"}).status, 202)
        wait_until(lambda: smtp.messages, 10, "the mail over SMTP")
        eq(len(smtp.messages), 1)
        sender, rcpts, data = smtp.messages[0]
        eq(sender, "<no-reply@notebookd.test>")
        eq(rcpts, ["<%s>" % e])
        check("Subject: Your notebookd code:" in data)
        code = re.search(r"\b(\d{6})\b", data.split("\r\n\r\n", 1)[1]).group(1)
        eq(s2.post("/v1/auth/otp/verify", {"email": e, "purpose": "login", "code": code}).status, 200)
        # no file was written when SMTP is configured
        eq(glob.glob(os.path.join(s2.mail_dir, "*.eml")), [])
    finally:
        eq(s2.stop(), 0)
        smtp.shutdown()


# ------------------------------------------------------------------- export

def test_export_streams_everything_the_user_owns():
    t = register(name="Exporter")
    uid = t["user"]["id"]
    other = register()
    # 250 notebooks (more than one cursor batch), each with sources; some with conversations and quizzes
    psql("""
    INSERT INTO notebooks (id, owner_id, title, created_at)
      SELECT gen_random_uuid(), '%(u)s', 'nb ' || i, now() - i * interval '1 second' FROM generate_series(1, 250) i;
    INSERT INTO documents (id, user_id, sha256, mime_type, byte_size, content, extracted_text)
      SELECT gen_random_uuid(), '%(u)s', sha256(i::text::bytea), 'text/plain', 5, 'hello'::bytea, 'text of ' || i
      FROM generate_series(1, 3) i;
    INSERT INTO sources (id, notebook_id, document_id, title, kind, status)
      SELECT gen_random_uuid(), n.id, (SELECT id FROM documents WHERE user_id = '%(u)s' ORDER BY id LIMIT 1),
             'src of ' || n.title, 'text', 'ready'
      FROM notebooks n, generate_series(1, 2) k WHERE n.owner_id = '%(u)s';
    INSERT INTO conversations (id, user_id, notebook_id, title)
      SELECT gen_random_uuid(), '%(u)s', n.id, 'talk' FROM notebooks n WHERE n.owner_id = '%(u)s' AND n.title LIKE 'nb 1%%';
    INSERT INTO messages (id, conversation_id, role, content)
      SELECT gen_random_uuid(), c.id, r, 'said ' || r FROM conversations c, unnest(ARRAY['user', 'assistant']) r
      WHERE c.user_id = '%(u)s';
    INSERT INTO quizzes (id, notebook_id, title, status)
      SELECT gen_random_uuid(), n.id, 'quiz', 'ready' FROM notebooks n WHERE n.owner_id = '%(u)s' AND n.title = 'nb 7';
    INSERT INTO notebooks (id, owner_id, title) VALUES (gen_random_uuid(), '%(o)s', 'not mine');
    """ % {"u": uid, "o": other["user"]["id"]})
    r = srv.get("/v1/me/export", token=t["access_token"])
    eq(r.status, 200, r.body[:300])
    check(r.header("Transfer-Encoding") == "chunked")
    doc = r.json
    eq(doc["user"]["id"], uid)
    check(re.match(r"^\d{4}-\d\d-\d\dT.*Z$", doc["exported_at"]))
    eq(len(doc["notebooks"]), 250)
    titles = {n["title"] for n in doc["notebooks"]}
    check("not mine" not in titles)
    for n in doc["notebooks"]:
        eq(len(n["sources"]), 2, n["title"])
        eq(n["source_count"], 2)
        eq(n["sources"][0]["text"], "text of 1" if False else n["sources"][0]["text"])
        check(n["sources"][0]["text"].startswith("text of "))
        for s in n["sources"]:
            eq(s["notebook_id"], n["id"])
    convs = [c for n in doc["notebooks"] for c in n["conversations"]]
    eq(len(convs), int(psql("SELECT count(*) FROM conversations WHERE user_id = '%s'" % uid)))
    for c in convs:
        eq([m["role"] for m in c["messages"]], sorted([m["role"] for m in c["messages"]], key=lambda x: 0))
        eq(len(c["messages"]), 2)
    quizzes = [q for n in doc["notebooks"] for q in n["quizzes"]]
    eq(len(quizzes), 1)
    eq(doc["generations"], [])
    # never a secret
    for needle in ["password_hash", "argon2", "token_hash", "code_hash", "refresh_token"]:
        check(needle not in r.body, needle)


def test_export_of_an_empty_account():
    t = register()
    r = srv.get("/v1/me/export", token=t["access_token"])
    eq(r.status, 200)
    eq(r.json["notebooks"], [])
    eq(r.json["generations"], [])
    eq(srv.get("/v1/me/export").status, 401)
