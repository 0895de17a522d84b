"""End-to-end tests of notebooks: create, get, update, list with keyset
pagination and a fixed number of statements, trash and restore, and
object-level authorization (another user's notebook is a 404)."""
import re
import threading
import uuid

import harness
from harness import Server, check, eq, psql

srv = None


def setup_module():
    global srv
    srv = Server(primary=True)


def teardown_module():
    eq(srv.stop(), 0)


def user():
    j = harness.register(srv, "nb")
    return j["access_token"], j["user"]["id"]


def test_create_and_get():
    tok, _ = user()
    r = srv.post("/v1/notebooks", {"title": "Cell biology", "description": "Chapter 3"}, token=tok)
    eq(r.status, 201, r.body)
    nb = r.json
    eq(sorted(nb.keys()), sorted(["id", "title", "description", "language", "created_at", "updated_at",
                                  "deleted_at", "source_count", "sources"]))
    eq(nb["language"], "en")
    eq(nb["title"], "Cell biology")
    eq(nb["source_count"], 0)
    eq(nb["sources"], [])
    eq(nb["deleted_at"], None)
    g = srv.get("/v1/notebooks/" + nb["id"], token=tok)
    eq(g.status, 200)
    eq(g.json, nb)
    # the id in any case works; a malformed id is 404
    eq(srv.get("/v1/notebooks/" + nb["id"].upper(), token=tok).status, 200)
    eq(srv.get("/v1/notebooks/not-a-uuid", token=tok).status, 404)
    eq(srv.get("/v1/notebooks/" + str(uuid.uuid4()), token=tok).status, 404)


def test_validation():
    tok, _ = user()
    for body, field in [({}, "title"), ({"title": ""}, "title"), ({"title": "x" * 201}, "title"),
                        ({"title": 5}, "title"), ({"title": "ok", "description": "d" * 10001}, "description"),
                        ({"title": "ok", "description": []}, "description")]:
        r = srv.post("/v1/notebooks", body, token=tok)
        eq(r.status, 422, body)
        eq(r.json["error"]["field"], field)
    eq(srv.post("/v1/notebooks", {"title": "é" * 200}, token=tok).status, 201)  # characters, not bytes
    eq(srv.post("/v1/notebooks", {"title": "ok"}).status, 401)


def test_unknown_fields_are_named():
    # issue 8.9: a typo must not be silently ignored
    tok, _ = user()
    r = srv.post("/v1/notebooks", {"title": "ok", "descripton": "typo"}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "descripton")
    nb = srv.post("/v1/notebooks", {"title": "ok"}, token=tok).json
    r = srv.patch("/v1/notebooks/" + nb["id"], {"titel": "New"}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "titel")
    eq(srv.get("/v1/notebooks/" + nb["id"], token=tok).json["title"], "ok")
    r = srv.post("/v1/notebooks/%s/restore" % nb["id"], {"deleted": False}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "deleted")


def test_titles_refuse_controls_bidi_and_blank():
    # issue 8.16: a title another user may be shown cannot reorder or hide text
    tok, _ = user()
    nb = srv.post("/v1/notebooks", {"title": "fine"}, token=tok).json
    for bad in ["   ", "\t", "a\nb", "bell\u0007", "evil\u202egnp.exe", "iso\u2066late", "line\u2028sep", "\u0085"]:
        r = srv.post("/v1/notebooks", {"title": bad}, token=tok)
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "title")
        r = srv.patch("/v1/notebooks/" + nb["id"], {"title": bad}, token=tok)
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "title")
    eq(srv.get("/v1/notebooks/" + nb["id"], token=tok).json["title"], "fine")
    eq(srv.post("/v1/notebooks", {"title": "Zellbiologie – Kapitel 3 ✓"}, token=tok).status, 201)


def test_language():
    tok, _ = user()
    r = srv.post("/v1/notebooks", {"title": "Deutsch", "language": "de"}, token=tok)
    eq(r.status, 201, r.body)
    eq(r.json["language"], "de")
    # any ISO 639-1 code is taken (those PostgreSQL does not stem use 'simple')
    eq(srv.post("/v1/notebooks", {"title": "日本語", "language": "ja"}, token=tok).json["language"], "ja")
    for bad in ["xx", "EN", "eng", "english", "", 5]:
        r = srv.post("/v1/notebooks", {"title": "t", "language": bad}, token=tok)
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "language")
    nb = srv.post("/v1/notebooks", {"title": "t"}, token=tok).json
    r = srv.patch("/v1/notebooks/" + nb["id"], {"language": "fr"}, token=tok)
    eq(r.status, 200, r.body)
    eq(r.json["language"], "fr")
    eq(srv.patch("/v1/notebooks/" + nb["id"], {"language": "zz"}, token=tok).status, 422)
    eq(srv.get("/v1/notebooks/" + nb["id"], token=tok).json["language"], "fr")
    # the database keeps the shape too
    refused = None
    try:
        psql("UPDATE notebooks SET language = 'english' WHERE id = '%s'" % nb["id"])
    except AssertionError as e:
        refused = str(e)
    check(refused and "notebooks_language_check" in refused, "the CHECK let a bad language in: %s" % refused)


def test_update():
    tok, _ = user()
    nb = srv.post("/v1/notebooks", {"title": "Old", "description": "desc"}, token=tok).json
    r = srv.patch("/v1/notebooks/" + nb["id"], {"title": "New"}, token=tok)
    eq(r.status, 200)
    eq(r.json["title"], "New")
    eq(r.json["description"], "desc")
    r = srv.patch("/v1/notebooks/" + nb["id"], {"description": None}, token=tok)
    eq(r.json["description"], None)
    eq(r.json["title"], "New")
    eq(srv.patch("/v1/notebooks/" + nb["id"], {"title": ""}, token=tok).status, 422)
    check(r.json["updated_at"] >= nb["updated_at"])


def test_other_users_notebook_is_an_identical_404():
    a, _ = user()
    b, _ = user()
    nb = srv.post("/v1/notebooks", {"title": "private"}, token=a).json
    missing = str(uuid.uuid4())
    strip = lambda body: re.sub(r'"request_id":"[^"]*"', "", body)
    for method, path, body in [("GET", "/v1/notebooks/%s", None), ("PATCH", "/v1/notebooks/%s", {"title": "x"}),
                               ("DELETE", "/v1/notebooks/%s", None), ("POST", "/v1/notebooks/%s/restore", None),
                               ("GET", "/v1/notebooks/%s/sources", None),
                               ("POST", "/v1/notebooks/%s/sources", {"kind": "text", "content": "hi"}),
                               ("GET", "/v1/notebooks/%s/search?q=x", None)]:
        theirs = srv.request(method, path % nb["id"], body=body, token=b)
        nothing = srv.request(method, path % missing, body=body, token=b)
        eq(theirs.status, 404, path)
        eq(strip(theirs.body), strip(nothing.body), path)
    # and it is untouched
    eq(srv.get("/v1/notebooks/" + nb["id"], token=a).json["title"], "private")


def test_list_newest_first_with_keyset_pages():
    tok, _ = user()
    ids = [srv.post("/v1/notebooks", {"title": "n%d" % i}, token=tok).json["id"] for i in range(5)]
    seen = []
    cursor = None
    pages = 0
    while True:
        q = "/v1/notebooks?limit=2" + ("&cursor=" + cursor if cursor else "")
        r = srv.get(q, token=tok)
        eq(r.status, 200, r.body)
        seen += [n["id"] for n in r.json["items"]]
        pages += 1
        cursor = r.json["next_cursor"]
        if pages == 1:
            # a notebook inserted meanwhile never makes a page repeat or skip
            srv.post("/v1/notebooks", {"title": "late"}, token=tok)
        if not cursor:
            break
    eq(seen, list(reversed(ids)))
    eq(pages, 3)
    r = srv.get("/v1/notebooks?limit=100", token=tok)
    eq(len(r.json["items"]), 6)
    eq(r.json["next_cursor"], None)


def test_list_bad_parameters():
    tok, _ = user()
    for q in ["limit=0", "limit=101", "limit=abc", "limit=", "cursor=garbage", "cursor=" + "A" * 300,
              "cursor=Zm9vfGJhcg", "trashed=maybe"]:
        r = srv.get("/v1/notebooks?" + q, token=tok)
        eq(r.status, 422, q)
        eq(r.json["error"]["code"], "validation_failed")
        check(r.json["error"]["field"] in ("limit", "cursor", "trashed"))


def test_list_runs_a_fixed_number_of_statements():
    tok, uid = user()
    srv.post("/v1/notebooks", {"title": "one"}, token=tok)
    one = srv.get("/v1/notebooks?limit=100", token=tok)
    eq(len(one.json["items"]), 1)
    # 99 more notebooks with 3 sources each, inserted directly
    psql("""
    INSERT INTO notebooks (id, owner_id, title) SELECT gen_random_uuid(), '%s', 'bulk ' || i FROM generate_series(1, 99) i;
    INSERT INTO sources (id, notebook_id, title, kind, status)
      SELECT gen_random_uuid(), n.id, 's' || k, 'text', 'ready' FROM notebooks n, generate_series(1, 3) k
      WHERE n.owner_id = '%s';
    """ % (uid, uid))
    many = srv.get("/v1/notebooks?limit=100", token=tok)
    eq(len(many.json["items"]), 100)
    check(all(len(n["sources"]) == 3 and n["source_count"] == 3 for n in many.json["items"]))
    n1 = int(one.header("X-DB-Statements"))
    n100 = int(many.header("X-DB-Statements"))
    eq(n1, n100, "statements for 1 vs 100 notebooks")
    check(n100 <= 2, "list + auth check: %d statements" % n100)


def test_trash_and_restore():
    tok, _ = user()
    nb = srv.post("/v1/notebooks", {"title": "bin me"}, token=tok).json
    src = srv.post("/v1/notebooks/%s/sources" % nb["id"], {"kind": "text", "content": "some text"}, token=tok)
    eq(src.status, 202)
    sid = src.json["source"]["id"]
    eq(srv.delete("/v1/notebooks/" + nb["id"], token=tok).status, 204)
    # the notebook and everything under it answer 404
    eq(srv.get("/v1/notebooks/" + nb["id"], token=tok).status, 404)
    eq(srv.get("/v1/sources/" + sid, token=tok).status, 404)
    eq(srv.get("/v1/sources/%s/chunks" % sid, token=tok).status, 404)
    eq(srv.get("/v1/notebooks/%s/sources" % nb["id"], token=tok).status, 404)
    eq(srv.get("/v1/notebooks/%s/search?q=text" % nb["id"], token=tok).status, 404)
    eq(srv.delete("/v1/notebooks/" + nb["id"], token=tok).status, 404)
    live = [n["id"] for n in srv.get("/v1/notebooks", token=tok).json["items"]]
    check(nb["id"] not in live)
    trash = srv.get("/v1/notebooks?trashed=true", token=tok).json["items"]
    eq([n["id"] for n in trash], [nb["id"]])
    check(trash[0]["deleted_at"])
    r = srv.post("/v1/notebooks/%s/restore" % nb["id"], token=tok)
    eq(r.status, 200)
    eq(r.json["deleted_at"], None)
    eq(srv.get("/v1/sources/" + sid, token=tok).status, 200)
    # restoring a live notebook is fine; a purged one is 404
    eq(srv.post("/v1/notebooks/%s/restore" % nb["id"], token=tok).status, 200)
    eq(srv.post("/v1/notebooks/%s/restore" % uuid.uuid4(), token=tok).status, 404)


def test_purge_hard_deletes_old_trash():
    import os
    import subprocess
    tok, uid = user()
    old = srv.post("/v1/notebooks", {"title": "old"}, token=tok).json
    new = srv.post("/v1/notebooks", {"title": "recent"}, token=tok).json
    src = srv.post("/v1/notebooks/%s/sources" % old["id"], {"kind": "text", "content": "purge me " + uid}, token=tok).json
    doc = src["source"]["document_id"]
    eq(srv.delete("/v1/notebooks/" + old["id"], token=tok).status, 204)
    eq(srv.delete("/v1/notebooks/" + new["id"], token=tok).status, 204)
    psql("UPDATE notebooks SET deleted_at = now() - interval '91 days' WHERE id = '%s'" % old["id"])
    psql("UPDATE documents SET created_at = now() - interval '91 days' WHERE id = '%s'" % doc)
    env = dict(srv.env)
    r = subprocess.run([srv.proc.args[0], "purge"], env=env, capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    check("notebooks" in r.stdout, r.stdout)
    eq(psql("SELECT count(*) FROM notebooks WHERE id = '%s'" % old["id"]), "0")
    eq(psql("SELECT count(*) FROM sources WHERE id = '%s'" % src["source"]["id"]), "0")  # by cascade
    eq(psql("SELECT count(*) FROM notebooks WHERE id = '%s'" % new["id"]), "1")
    eq(psql("SELECT count(*) FROM documents WHERE id = '%s'" % doc), "0")  # no source uses it any more
    eq(srv.post("/v1/notebooks/%s/restore" % old["id"], token=tok).status, 404)


def test_concurrent_creates_all_land():
    tok, _ = user()
    codes = []
    lock = threading.Lock()

    def go(i):
        r = srv.post("/v1/notebooks", {"title": "c%d" % i}, token=tok)
        with lock:
            codes.append(r.status)

    ths = [threading.Thread(target=go, args=(i,)) for i in range(30)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    eq(codes.count(201), 30)
    eq(len(srv.get("/v1/notebooks?limit=100", token=tok).json["items"]), 30)
