"""End-to-end tests of the JWT secret rotation (NOTEBOOKD_JWT_SECRET_PREVIOUS,
src/auth/service.c): a server signs with its current secret only and
verifies against the current one, then the previous one; once the previous
secret is unset, what it signed is refused. The same previous key keeps a
one-time code mailed and a list cursor made before the change working."""
import base64
import hashlib
import hmac
import json
import time
import uuid

from harness import Server, check, eq
from test_auth import read_code

SECRET_A = "rotation-secret-A-" + "a" * 40
SECRET_B = "rotation-secret-B-" + "b" * 40
SECRET_C = "rotation-secret-C-" + "c" * 40  # never given to any server


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signed_with(token, secret):
    """True when token's HS256 signature is the one `secret` makes."""
    h, p, s = token.split(".")
    mac = hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    return hmac.compare_digest(b64(mac), s)


def forge(secret, sub, iss="notebookd", aud="notebookd-api"):
    now = int(time.time())
    h = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    p = b64(json.dumps({"sub": sub, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
                        "iss": iss, "aud": aud}).encode())
    mac = hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64(mac)


def unauthenticated(r):
    eq(r.status, 401, r.body)
    eq(r.json["error"]["code"], "unauthenticated")


def test_rotation_accepts_the_previous_secret_until_it_is_unset():
    mail = None
    s = Server(env={"NOTEBOOKD_JWT_SECRET": SECRET_A})
    try:
        mail = s.mail_dir
        addr = "rot-%s@example.com" % uuid.uuid4().hex[:10]
        r = s.post("/v1/auth/register", {"email": addr, "password": "rotation password"})
        eq(r.status, 201, r.body)
        uid = r.json["user"]["id"]
        old = r.json["access_token"]
        check(signed_with(old, SECRET_A), "the first server signs with A")
        for i in range(2):
            eq(s.post("/v1/notebooks", {"title": "rot %d" % i}, token=old).status, 201)
        page = s.get("/v1/notebooks?limit=1", token=old)
        eq(page.status, 200, page.body)
        cursor = page.json["next_cursor"]
        check(cursor, page.json)
        # a code mailed before the change
        eq(s.post("/v1/auth/otp/request", {"email": addr, "purpose": "login"}).status, 202)
        code = read_code(s, addr, "sign in")
        eq(s.stop(), 0)

        # B current, A previous: A's token, cursor and code still work; new tokens are B's
        s = Server(env={"NOTEBOOKD_JWT_SECRET": SECRET_B, "NOTEBOOKD_JWT_SECRET_PREVIOUS": SECRET_A,
                        "NOTEBOOKD_MAIL_DIR": mail})
        r = s.get("/v1/me", token=old)
        eq(r.status, 200, r.body)
        eq(r.json["id"], uid)
        r = s.get("/v1/notebooks?limit=1&cursor=" + cursor, token=old)
        eq(r.status, 200, r.body)
        eq(len(r.json["items"]), 1)
        r = s.post("/v1/auth/otp/verify", {"email": addr, "purpose": "login", "code": code})
        eq(r.status, 200, r.body)
        new = r.json["access_token"]
        check(signed_with(new, SECRET_B) and not signed_with(new, SECRET_A), "new tokens are signed with B only")
        r = s.post("/v1/auth/login", {"email": addr, "password": "rotation password"})
        eq(r.status, 200, r.body)
        check(signed_with(r.json["access_token"], SECRET_B), "login signs with B")
        eq(s.get("/v1/me", token=new).status, 200)
        # a cursor made now is B's: it works later with B alone
        cursor_b = s.get("/v1/notebooks?limit=1", token=new).json["next_cursor"]
        # a token signed with a key no server has is refused
        unauthenticated(s.get("/v1/me", token=forge(SECRET_C, uid)))
        eq(s.stop(), 0)

        # B alone: A's token, cursor are refused; B's work
        s = Server(env={"NOTEBOOKD_JWT_SECRET": SECRET_B, "NOTEBOOKD_MAIL_DIR": mail})
        unauthenticated(s.get("/v1/me", token=old))
        unauthenticated(s.get("/v1/me", token=forge(SECRET_A, uid)))
        unauthenticated(s.get("/v1/me", token=forge(SECRET_C, uid)))
        eq(s.get("/v1/me", token=new).status, 200)
        r = s.get("/v1/notebooks?limit=1&cursor=" + cursor, token=new)
        eq(r.status, 422, r.body)
        eq(r.json["error"]["field"], "cursor")
        eq(s.get("/v1/notebooks?limit=1&cursor=" + cursor_b, token=new).status, 200)
        # a token of the right key but expired or for another audience is still refused
        unauthenticated(s.get("/v1/me", token=forge(SECRET_B, uid, aud="someone-else")))
        eq(s.stop(), 0)
    finally:
        s.stop()


def test_previous_secret_must_be_long_and_not_the_current_one():
    for prev, why in ((SECRET_A, "is the same as NOTEBOOKD_JWT_SECRET"), ("short", "must be 32 to")):
        try:
            s = Server(env={"NOTEBOOKD_JWT_SECRET": SECRET_A, "NOTEBOOKD_JWT_SECRET_PREVIOUS": prev})
        except RuntimeError as e:
            check(why in str(e), str(e)[-500:])
        else:
            s.stop()
            raise AssertionError("a server started with NOTEBOOKD_JWT_SECRET_PREVIOUS=%r" % prev)


def test_first_step_accepts_the_incoming_key_before_signing_with_it():
    """Step 1 of a planned rotation (docs/operations.md): A signs, B is only
    accepted — so a server already on step 2 can sign with B while this one
    still runs."""
    s = Server(env={"NOTEBOOKD_JWT_SECRET": SECRET_A, "NOTEBOOKD_JWT_SECRET_PREVIOUS": SECRET_B})
    try:
        r = s.post("/v1/auth/register", {"email": "rot1-%s@example.com" % uuid.uuid4().hex[:10],
                                         "password": "rotation password"})
        eq(r.status, 201, r.body)
        uid = r.json["user"]["id"]
        check(signed_with(r.json["access_token"], SECRET_A), "A still signs")
        r = s.get("/v1/me", token=forge(SECRET_B, uid))
        eq(r.status, 200, r.body)
        eq(r.json["id"], uid)
        unauthenticated(s.get("/v1/me", token=forge(SECRET_C, uid)))
        eq(s.stop(), 0)
    finally:
        s.stop()
