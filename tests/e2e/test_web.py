"""The web app as served by notebookd (src/api/static.c, tools/embed_web.sh)
and the refresh cookie of the auth routes (src/api/auth.c): content types,
caching, gzip, the page's security headers, the first-load size, and the
cookie rules (HttpOnly, SameSite=Strict, Path=/v1/auth, Secure by setting;
taken by refresh/logout only from a JSON request; rotated; cleared)."""
import gzip
import http.client
import os
import re
import uuid

import harness
from harness import Server, check, eq

srv = None
WEB = os.path.join(harness.ROOT, "web")


def setup_module():
    global srv
    srv = Server()


def teardown_module():
    eq(srv.stop(), 0)


def fetch(path, headers=None, server=None):
    """GET returning (status, headers dict lower-cased, raw bytes); checked against the OpenAPI document."""
    s = server or srv
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        hs = r.getheaders()
    finally:
        c.close()
    if not dict((k.lower(), v) for k, v in hs).get("content-encoding"):
        p = harness.openapi().problems("GET", path, r.status, hs, body.decode("utf-8", "replace"))
        eq(p, [])
    return r.status, dict((k.lower(), v) for k, v in hs), body


def assets(page):
    return re.findall(r'(?:src|href)="(/assets/[0-9a-f]{12}/[^"]+)"', page)


def test_page_headers_and_no_cache():
    st, h, body = fetch("/")
    eq(st, 200)
    eq(h["content-type"], "text/html; charset=utf-8")
    eq(h["cache-control"], "no-cache")
    csp = h["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                 "object-src 'none'"):
        check(part in csp, "CSP lacks %r: %s" % (part, csp))
    check("unsafe-inline" not in csp and "unsafe-eval" not in csp, csp)
    eq(h["x-content-type-options"], "nosniff")
    eq(h["referrer-policy"], "no-referrer")
    check(re.fullmatch(r'"[0-9a-f]{20}"', h["etag"]), h["etag"])
    page = body.decode()
    # nothing from another origin, no inline script or style
    check(not re.search(r'(?:src|href)="(?:https?:)?//', page), "an external reference in index.html")
    check("<style" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script or style")
    found = assets(page)
    check(any(a.endswith("/app.js") for a in found) and any(a.endswith("/app.css") for a in found), found)
    # a revalidation with the ETag is 304 with no body
    st, h2, body2 = fetch("/", {"If-None-Match": h["etag"]})
    eq((st, body2), (304, b""))
    eq(h2["etag"], h["etag"])


def test_assets_typed_cached_and_gzipped():
    _, _, body = fetch("/")
    page = body.decode()
    version = re.search(r"/assets/([0-9a-f]{12})/", page).group(1)
    want = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    names = sorted(f for f in os.listdir(WEB) if f != "index.html" and not f.startswith("."))
    check("app.js" in names and "api.js" in names, names)
    for name in names:
        path = "/assets/%s/%s" % (version, name)
        st, h, plain = fetch(path)
        eq(st, 200, path)
        eq(h["content-type"], want[os.path.splitext(name)[1]], path)
        eq(h["cache-control"], "public, max-age=31536000, immutable", path)
        check("content-encoding" not in h, path)
        with open(os.path.join(WEB, name), "rb") as f:
            eq(plain, f.read(), "%s is not web/%s" % (path, name))
        st, hz, z = fetch(path, {"Accept-Encoding": "br, gzip;q=0.8"})
        eq((st, hz["content-encoding"], hz["vary"]), (200, "gzip", "Accept-Encoding"), path)
        eq(gzip.decompress(z), plain, path)
        check(len(z) < len(plain), "%s: gzip is not smaller" % path)
        st, _, z0 = fetch(path, {"Accept-Encoding": "gzip;q=0"})
        eq(z0, plain, "gzip;q=0 still got gzip")
        check("default-src 'self'" in h["content-security-policy"], path)
    # an unknown file, or an old version, is 404
    eq(fetch("/assets/%s/nope.js" % version)[0], 404)
    eq(fetch("/assets/000000000000/app.js")[0], 404)


def test_first_load_under_150_kb():
    """HTML + every script and stylesheet, gzip-compressed as served."""
    st, h, page = fetch("/", {"Accept-Encoding": "gzip"})
    total = len(page)
    html = gzip.decompress(page).decode()
    version = re.search(r"/assets/([0-9a-f]{12})/", html).group(1)
    for name in os.listdir(WEB):
        if name.endswith((".js", ".css")):
            st, _, z = fetch("/assets/%s/%s" % (version, name), {"Accept-Encoding": "gzip"})
            eq(st, 200)
            total += len(z)
    print("# first load (HTML + JS + CSS, gzip): %d bytes" % total)
    check(total < 150 * 1024, "first load is %d bytes" % total)


def cookies(r):
    return [v for k, v in r.headers if k.lower() == "set-cookie"]


def refresh_cookie(r):
    cs = [c for c in cookies(r) if c.startswith("nb_refresh=")]
    eq(len(cs), 1, cookies(r))
    return cs[0]


def cookie_value(c):
    return c.split(";", 1)[0].split("=", 1)[1]


def register(server=None):
    s = server or srv
    r = s.post("/v1/auth/register", {"email": "web-%s@example.com" % uuid.uuid4().hex[:10],
                                      "password": "long enough pw"})
    eq(r.status, 201)
    return r


def test_auth_answers_set_the_refresh_cookie():
    r = register()
    c = refresh_cookie(r)
    eq(cookie_value(c), r.json["refresh_token"])
    attrs = [a.strip() for a in c.split(";")[1:]]
    for a in ("Path=/v1/auth", "HttpOnly", "SameSite=Strict", "Max-Age=2592000"):
        check(a in attrs, "%s lacks %s" % (c, a))
    check("Secure" not in attrs, "Secure without NOTEBOOKD_COOKIE_SECURE: %s" % c)
    email = r.json["user"]["email"]
    r2 = srv.post("/v1/auth/login", {"email": email, "password": "long enough pw"})
    eq(r2.status, 200)
    eq(cookie_value(refresh_cookie(r2)), r2.json["refresh_token"])


def test_refresh_from_the_cookie_rotates_it():
    r = register()
    old = r.json["refresh_token"]
    jar = {"Cookie": "other=1; nb_refresh=" + old}
    r2 = srv.post("/v1/auth/refresh", {}, headers=jar)
    eq(r2.status, 200)
    new = cookie_value(refresh_cookie(r2))
    eq(new, r2.json["refresh_token"])
    check(new != old, "the cookie was not rotated")
    eq(srv.get("/v1/me", token=r2.json["access_token"]).status, 200)
    # the old cookie is spent: 401, the cookie is cleared, and the family is revoked
    r3 = srv.post("/v1/auth/refresh", {}, headers={"Cookie": "nb_refresh=" + old})
    eq(r3.status, 401)
    check(refresh_cookie(r3).startswith("nb_refresh=;") and "Max-Age=0" in refresh_cookie(r3), cookies(r3))
    eq(srv.post("/v1/auth/refresh", {}, headers={"Cookie": "nb_refresh=" + new}).status, 401)


def test_cookie_needs_a_json_request():
    """A cross-site form can send the cookie but not a JSON body: such a
    request is refused and spends nothing."""
    r = register()
    tok = r.json["refresh_token"]
    form = srv.request("POST", "/v1/auth/refresh", raw=b"refresh=1",
                       headers={"Cookie": "nb_refresh=" + tok, "Content-Type": "application/x-www-form-urlencoded"})
    eq(form.status, 415)
    plain = srv.request("POST", "/v1/auth/refresh", raw=b"{}",
                        headers={"Cookie": "nb_refresh=" + tok, "Content-Type": "text/plain"})
    eq(plain.status, 415)
    empty = srv.request("POST", "/v1/auth/refresh", headers={"Cookie": "nb_refresh=" + tok})
    eq(empty.status, 400)
    out = srv.request("POST", "/v1/auth/logout", raw=b"", headers={"Cookie": "nb_refresh=" + tok,
                                                                    "Content-Type": "text/plain"})
    eq(out.status, 400)
    # the token is still good: none of the above spent or revoked it
    eq(srv.post("/v1/auth/refresh", {}, headers={"Cookie": "nb_refresh=" + tok}).status, 200)


def test_no_cookie_no_body_token_is_422():
    r = srv.post("/v1/auth/refresh", {})
    eq((r.status, r.json["error"]["field"]), (422, "refresh_token"))


def test_body_token_wins_and_still_works():
    a, b = register(), register()
    # the body names a's token, the cookie b's: the body is used
    r = srv.post("/v1/auth/refresh", {"refresh_token": a.json["refresh_token"]},
                 headers={"Cookie": "nb_refresh=" + b.json["refresh_token"]})
    eq(r.status, 200)
    eq(r.json["user"]["id"], a.json["user"]["id"])
    eq(srv.post("/v1/auth/refresh", {"refresh_token": b.json["refresh_token"]}).status, 200)


def test_logout_with_the_cookie_clears_it():
    r = register()
    tok = r.json["refresh_token"]
    out = srv.post("/v1/auth/logout", {}, headers={"Cookie": "nb_refresh=" + tok})
    eq(out.status, 204)
    c = refresh_cookie(out)
    check(c.startswith("nb_refresh=;") and "Max-Age=0" in c and "Path=/v1/auth" in c, c)
    eq(srv.post("/v1/auth/refresh", {"refresh_token": tok}).status, 401)


def test_secure_cookie_by_setting():
    s = Server(env={"NOTEBOOKD_COOKIE_SECURE": "1"})
    try:
        c = refresh_cookie(register(s))
        check("Secure" in [a.strip() for a in c.split(";")], c)
    finally:
        eq(s.stop(), 0)
