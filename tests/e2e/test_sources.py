"""End-to-end tests of sources and ingestion: every format (text, Markdown,
HTML, PDF upload, URL), deduplication, chunks, failures with readable
reasons, limits, the jobs API and full-text search."""
import http.server
import json
import socket
import threading
import time
import uuid

import harness
from harness import ADMIN_URL, DB_URL, Server, check, eq, free_port, psql, wait_until

srv = None
web = None
web_port = None
flaky_ok = threading.Event()  # /flaky.txt answers 404 until set


class Pages(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        routes = {
            "/article.html": ("text/html; charset=utf-8",
                              b"<html><head><title>Volcanoes</title><script>var x='nope';</script></head><body>"
                              b"<nav>menu menu</nav><h1>Volcanoes</h1><p>Magma rises through the crust and erupts "
                              b"as lava.</p><p>Basalt forms when lava cools quickly.</p></body></html>"),
            "/notes.txt": ("text/plain", b"Tectonic plates drift a few centimetres each year."),
            "/image.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        }
        if self.path == "/flaky.txt":
            routes[self.path] = ("text/plain", b"The flaky page is up now: photosynthesis in chloroplasts.")
            if not flaky_ok.is_set():
                del routes[self.path]
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/notes.txt")
            self.end_headers()
            return
        if self.path not in routes:
            self.send_response(404)
            self.end_headers()
            return
        ctype, body = routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def setup_module():
    global srv, web, web_port
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    web_port = web.server_address[1]
    threading.Thread(target=web.serve_forever, daemon=True).start()
    srv = Server(env={"NOTEBOOKD_CHUNK_CHARS": "300", "NOTEBOOKD_CHUNK_OVERLAP_CHARS": "40"}, primary=True)


def teardown_module():
    eq(srv.stop(), 0)
    web.shutdown()


def user(s=None):
    return harness.register(s or srv, "src")["access_token"]


def notebook(tok, s=None):
    return (s or srv).post("/v1/notebooks", {"title": "nb"}, token=tok).json["id"]


def wait_source(tok, sid, s=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = (s or srv).get("/v1/sources/" + sid, token=tok)
        eq(r.status, 200)
        if r.json["status"] in ("ready", "failed"):
            return r.json
        time.sleep(0.1)
    raise AssertionError("source %s still %s" % (sid, r.json["status"]))


def add(tok, nb, body, s=None):
    r = (s or srv).post("/v1/notebooks/%s/sources" % nb, body, token=tok)
    eq(r.status, 202, r.body)
    return r.json


def chunks(tok, sid):
    out, cursor = [], None
    while True:
        r = srv.get("/v1/sources/%s/chunks?limit=3%s" % (sid, "&cursor=" + cursor if cursor else ""), token=tok)
        eq(r.status, 200, r.body)
        out += r.json["items"]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


def doc_text(source_id):
    return psql("SELECT d.extracted_text FROM sources s JOIN documents d ON d.id = s.document_id WHERE s.id = '%s'"
                % source_id)


def make_pdf(pages):
    """A small valid PDF with one line of Helvetica text per page."""
    objs = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
    kids = []
    n = 4
    for text in pages:
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode()
        stream = b"BT /F1 12 Tf 72 720 Td (" + esc + b") Tj ET"
        objs[n] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (n + 1)
        objs[n + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        kids.append(b"%d 0 R" % n)
        n += 2
    objs[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(pages)
    out = b"%PDF-1.4\n"
    offsets = {}
    for i in sorted(objs):
        offsets[i] = len(out)
        out += b"%d 0 obj\n" % i + objs[i] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (n)
    for i in range(1, n):
        out += b"%010d 00000 n \n" % offsets[i]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (n, xref)
    return out


def multipart(fields, boundary="----nbtest" + uuid.uuid4().hex):
    body = b""
    for name, (filename, ctype, data) in fields.items():
        body += b"--" + boundary.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else "")
        body += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if ctype:
            body += b"Content-Type: " + ctype.encode() + b"\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, "multipart/form-data; boundary=" + boundary


def upload(tok, nb, fields, s=None):
    body, ctype = multipart(fields)
    return (s or srv).request("POST", "/v1/notebooks/%s/sources" % nb, raw=body, headers={"Content-Type": ctype}, token=tok)


# -------------------------------------------------------------------- formats

def test_text_source_to_ready_chunks():
    tok = user()
    nb = notebook(tok)
    text = " ".join("Sentence number %d talks about photosynthesis and chlorophyll." % i for i in range(40))
    out = add(tok, nb, {"kind": "text", "content": text, "title": "Plants"})
    eq(out["source"]["status"], "pending")
    eq(out["source"]["title"], "Plants")
    eq(out["job"]["kind"], "ingest_source")
    check(out["job"]["status"] in ("pending", "running", "succeeded"))
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "ready", s)
    check(s["chunk_count"] > 3)
    cs = chunks(tok, s["id"])
    eq(len(cs), s["chunk_count"])
    eq([c["index"] for c in cs], list(range(len(cs))))
    full = doc_text(s["id"])
    for c in cs:
        eq(full[c["char_start"]:c["char_end"]], c["text"])
        check(len(c["text"]) <= 300)
        eq(c["page"], None)
        check(c["token_count"] > 0)
    # overlap: consecutive chunks share text
    check(cs[1]["char_start"] < cs[0]["char_end"])
    j = srv.get("/v1/jobs/" + out["job"]["id"], token=tok)
    eq(j.status, 200)
    eq(j.json["status"], "succeeded")
    eq(j.json["attempts"], 1)
    check(j.json["finished_at"])


def test_markdown_and_html_sources():
    tok = user()
    nb = notebook(tok)
    md = add(tok, nb, {"kind": "markdown", "content": "# Genetics\n\nDNA is **double** stranded.\n\n- adenine\n- thymine\n"})
    s = wait_source(tok, md["source"]["id"])
    eq(s["status"], "ready")
    eq(s["title"], "Genetics")
    t = doc_text(s["id"])
    check("DNA is double stranded." in t and "**" not in t and "#" not in t, t)
    html = add(tok, nb, {"kind": "html", "content": "<html><script>alert(1)</script><style>p{}</style><nav>skip</nav>"
                                                      "<h2>Cells</h2><p>Ribosomes &amp; proteins.</p></html>",
                         "title": "Cells"})
    s = wait_source(tok, html["source"]["id"])
    eq(s["status"], "ready")
    t = doc_text(s["id"])
    check("Ribosomes & proteins." in t and "alert" not in t and "skip" not in t and "p{}" not in t, t)


def test_pdf_upload_keeps_pages():
    tok = user()
    nb = notebook(tok)
    pdf = make_pdf(["Mitosis divides one cell into two daughter cells with the same number of chromosomes.",
                    "Meiosis makes gametes with half the chromosomes of the parent cell, in two divisions.",
                    "Crossing over mixes genes between homologous chromosomes during prophase one."])
    r = upload(tok, nb, {"file": ("lecture.pdf", "application/pdf", pdf)})
    eq(r.status, 202, r.body)
    eq(r.json["source"]["kind"], "pdf")
    eq(r.json["source"]["title"], "lecture.pdf")
    eq(r.json["source"]["byte_size"], len(pdf))
    s = wait_source(tok, r.json["source"]["id"])
    eq(s["status"], "ready", s)
    eq(s["page_count"], 3)
    t = doc_text(s["id"])
    check("Meiosis makes gametes" in t, t)
    # small chunks are per page here: the page of each chunk is where it starts
    small = Server(env={"NOTEBOOKD_CHUNK_CHARS": "100", "NOTEBOOKD_CHUNK_OVERLAP_CHARS": "0"}, isolated=True)
    try:
        tok2 = user(small)
        nb2 = notebook(tok2, small)
        r = upload(tok2, nb2, {"file": ("p.pdf", None, pdf), "title": (None, None, "Genetics lecture".encode())}, s=small)
        eq(r.status, 202, r.body)
        eq(r.json["source"]["title"], "Genetics lecture")
        s = wait_source(tok2, r.json["source"]["id"], small)
        cs = small.get("/v1/sources/%s/chunks" % s["id"], token=tok2).json["items"]
        pages = {c["text"].split()[0]: c["page"] for c in cs}
        eq(pages.get("Mitosis"), 1, cs)
        eq(pages.get("Meiosis"), 2, cs)
        eq(pages.get("Crossing"), 3, cs)
    finally:
        eq(small.stop(), 0)


def test_large_upload_is_spooled_and_ingested():
    # bodies over 1 MiB go to a temporary file instead of memory
    tok = user()
    nb = notebook(tok)
    body = ("Large uploads exercise the spooled body path of the server. " * 40000).encode()
    check(len(body) > 2 * 1024 * 1024)
    r = upload(tok, nb, {"file": ("big.txt", "text/plain", body)})
    eq(r.status, 202, r.body[:200])
    eq(r.json["source"]["byte_size"], len(body))
    s = wait_source(tok, r.json["source"]["id"], timeout=60)
    eq(s["status"], "ready", s)
    check(s["chunk_count"] > 100)
    eq(psql("SELECT octet_length(content) FROM documents WHERE id = '%s'" % s["document_id"]), str(len(body)))


def test_upload_text_markdown_html_by_extension():
    tok = user()
    nb = notebook(tok)
    for name, data, kind in [("a.txt", b"plain words here", "text"), ("b.md", b"# Title\n\nbody", "markdown"),
                             ("c.HTM", b"<p>hello there</p>", "html")]:
        r = upload(tok, nb, {"file": (name, "application/octet-stream", data)})
        eq(r.status, 202, name + r.body)
        eq(r.json["source"]["kind"], kind)
        eq(wait_source(tok, r.json["source"]["id"])["status"], "ready")


def test_url_source_and_redirect():
    tok = user()
    nb = notebook(tok)
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/article.html" % web_port})
    eq(out["source"]["kind"], "url")
    eq(out["source"]["url"], "http://127.0.0.1:%d/article.html" % web_port)
    eq(out["source"]["document_id"], None)
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "ready", s)
    check(s["document_id"])
    t = doc_text(s["id"])
    check("Magma rises through the crust" in t and "nope" not in t and "menu" not in t, t)
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/redirect" % web_port, "title": "Plates"})
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "ready", s)
    check("Tectonic plates" in doc_text(s["id"]))


# ------------------------------------------------------------ deduplication

def test_same_bytes_reuse_the_document_and_its_text():
    tok = user()
    nb = notebook(tok)
    body = {"kind": "text", "content": "Identical content about enzymes and substrates. " * 20}
    a = wait_source(tok, add(tok, nb, body)["source"]["id"])
    extracted_at = psql("SELECT extracted_at FROM documents WHERE id = '%s'" % a["document_id"])
    b = wait_source(tok, add(tok, nb, body)["source"]["id"])
    check(a["id"] != b["id"])
    eq(a["document_id"], b["document_id"])
    eq(b["status"], "ready")
    eq(b["chunk_count"], a["chunk_count"])
    # no second extraction: the document's extraction time did not move
    eq(psql("SELECT extracted_at FROM documents WHERE id = '%s'" % a["document_id"]), extracted_at)
    eq(psql("SELECT count(*) FROM documents WHERE id = '%s'" % a["document_id"]), "1")
    # another user with the same bytes gets a document of their own
    tok2 = user()
    c = wait_source(tok2, add(tok2, notebook(tok2), body)["source"]["id"])
    check(c["document_id"] != a["document_id"])


# ------------------------------------------------------------------- failures

def test_bad_inputs_fail_cleanly():
    tok = user()
    nb = notebook(tok)
    cases = [
        ({"kind": "video", "content": "x"}, 422, "kind"),
        ({"kind": "text"}, 422, "content"),
        ({"kind": "text", "content": ""}, 422, "content"),
        ({"kind": "text", "content": 12}, 422, "content"),
        ({"kind": "url"}, 422, "url"),
        ({"kind": "url", "url": "ftp://example.com/x"}, 422, "url"),
        ({"kind": "url", "url": "file:///etc/passwd"}, 422, "url"),
        ({"kind": "url", "url": "not a url"}, 422, "url"),
        ({"kind": "text", "content": "x", "title": ""}, 422, "title"),
        ({"kind": "text", "content": "x", "title": "t" * 501}, 422, "title"),
    ]
    before = psql("SELECT count(*) FROM sources")
    for body, status, field in cases:
        r = srv.post("/v1/notebooks/%s/sources" % nb, body, token=tok)
        eq(r.status, status, "%r: %s" % (body, r.body))
        eq(r.json["error"]["field"], field)
    eq(psql("SELECT count(*) FROM sources"), before)
    # unsupported upload type, missing file part, malformed multipart
    r = upload(tok, nb, {"file": ("x.png", "image/png", b"\x89PNG....")})
    eq(r.status, 415)
    r = upload(tok, nb, {"title": (None, None, b"x")})
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "file")
    r = upload(tok, nb, {"other": (None, None, b"x")})
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "other")
    r = srv.request("POST", "/v1/notebooks/%s/sources" % nb, raw=b"--b\r\ngarbage",
                    headers={"Content-Type": "multipart/form-data; boundary=b"}, token=tok)
    eq(r.status, 400)
    r = srv.request("POST", "/v1/notebooks/%s/sources" % nb, raw=b"hello", headers={"Content-Type": "text/plain"}, token=tok)
    eq(r.status, 415)
    eq(psql("SELECT count(*) FROM sources"), before)


def test_corrupt_pdf_huge_tag_and_closed_port_fail_with_reasons():
    tok = user()
    nb = notebook(tok)
    r = upload(tok, nb, {"file": ("broken.pdf", "application/pdf", b"%PDF-1.4\n" + b"\x00garbage" * 100)})
    eq(r.status, 202)
    s = wait_source(tok, r.json["source"]["id"])
    eq(s["status"], "failed")
    check("PDF" in s["error"], s["error"])
    # the source fails inside the job; the job's outcome is recorded just after
    j = wait_until(lambda: (lambda x: x if x["status"] not in ("pending", "running") else None)(
        srv.get("/v1/jobs/" + r.json["job"]["id"], token=tok).json), 30, "the job's outcome")
    eq(j["status"], "dead")
    eq(j["attempts"], 1)
    check(j["last_error"])
    out = add(tok, nb, {"kind": "html", "content": "<div " + "a" * 3000000 + ">"})
    s = wait_source(tok, out["source"]["id"])
    check(s["status"] in ("ready", "failed"), s)
    if s["status"] == "failed":
        check(s["error"])
    closed = free_port()
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/nothing" % closed})
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "failed")
    check("connect" in s["error"].lower(), s["error"])
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/missing" % web_port})
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "failed")
    check("404" in s["error"], s["error"])
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/image.png" % web_port})
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "failed")
    check("image/png" in s["error"], s["error"])
    eq(srv.get("/healthz").status, 200)


def test_private_addresses_refused_without_the_test_flag():
    # issue 8.8: refused when submitted (a literal private address, or a name
    # that resolves to one), with a message naming the setting; issue 8.16:
    # never saying which address a name resolved to
    s2 = Server(env={"NOTEBOOKD_ALLOW_PRIVATE_URLS": "0"}, isolated=True)
    try:
        tok = user(s2)
        nb = notebook(tok, s2)
        for url in ["http://127.0.0.1:%d/notes.txt" % web_port, "http://localhost:%d/notes.txt" % web_port,
                    "http://169.254.169.254/latest/meta-data/", "http://[::1]:%d/" % web_port, "http://10.1.2.3/",
                    "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://192.168.1.1:8080/admin"]:
            r = s2.post("/v1/notebooks/%s/sources" % nb, {"kind": "url", "url": url}, token=tok)
            eq(r.status, 422, url + r.body)
            eq(r.json["error"]["field"], "url")
            check("NOTEBOOKD_ALLOW_PRIVATE_URLS" in r.json["error"]["message"], r.body)
            check(" is a " not in r.body and "127.0.0.1 is" not in r.body, r.body)
        eq(s2.get("/v1/notebooks/%s/sources" % nb, token=tok).json["items"], [])  # nothing was written
        # a name that does not resolve is not refused here: the fetch fails with its reason
        out = add(tok, nb, {"kind": "url", "url": "http://no-such-host.invalid/"}, s=s2)
        s = wait_source(tok, out["source"]["id"], s=s2)
        eq(s["status"], "failed")
        check("resolve" in s["error"], s["error"])
        # the check at fetch time stays: a source whose address became private
        # (DNS rebinding) after submission fails, and says only "address not allowed"
        sid = str(uuid.uuid4())
        s2.psql("INSERT INTO sources (id, notebook_id, title, kind, url) VALUES ('%s', '%s', 'rebound', 'url', "
                "'http://localhost:%d/notes.txt')" % (sid, nb, web_port))
        s2.psql("INSERT INTO jobs (id, user_id, kind, source_id) SELECT '%s', owner_id, 'ingest_source', '%s'"
                " FROM notebooks WHERE id = '%s'; NOTIFY nb_jobs" % (uuid.uuid4(), sid, nb))
        s = wait_source(tok, sid, s=s2)
        eq(s["status"], "failed")
        eq(s["error"], "address not allowed")
    finally:
        eq(s2.stop(), 0)


def test_upload_over_the_limit_is_413():
    s2 = Server(env={"NOTEBOOKD_MAX_UPLOAD_BYTES": "100000"}, isolated=True)
    try:
        tok = user(s2)
        nb = notebook(tok, s2)
        r = upload(tok, nb, {"file": ("big.txt", "text/plain", b"a" * 150000)}, s=s2)
        eq(r.status, 413)
        eq(r.json["error"]["code"], "payload_too_large")
        r = upload(tok, nb, {"file": ("ok.txt", "text/plain", b"word " * 1000)}, s=s2)
        eq(r.status, 202)
    finally:
        eq(s2.stop(), 0)


# --------------------------------------------------------------- reads, jobs

def test_list_get_delete_sources():
    tok = user()
    nb = notebook(tok)
    ids = [add(tok, nb, {"kind": "text", "content": "source %d about osmosis" % i})["source"]["id"] for i in range(3)]
    r = srv.get("/v1/notebooks/%s/sources?limit=2" % nb, token=tok)
    eq([s["id"] for s in r.json["items"]], ids[:2])
    r2 = srv.get("/v1/notebooks/%s/sources?limit=2&cursor=%s" % (nb, r.json["next_cursor"]), token=tok)
    eq([s["id"] for s in r2.json["items"]], ids[2:])
    eq(r2.json["next_cursor"], None)
    for sid in ids:
        wait_source(tok, sid)
    eq(srv.get("/v1/notebooks/" + nb, token=tok).json["source_count"], 3)
    eq(srv.delete("/v1/sources/" + ids[0], token=tok).status, 204)
    eq(srv.get("/v1/sources/" + ids[0], token=tok).status, 404)
    eq(srv.delete("/v1/sources/" + ids[0], token=tok).status, 404)
    eq(srv.get("/v1/notebooks/" + nb, token=tok).json["source_count"], 2)
    other = user()
    eq(srv.get("/v1/sources/" + ids[1], token=other).status, 404)
    eq(srv.get("/v1/sources/%s/chunks" % ids[1], token=other).status, 404)
    eq(srv.delete("/v1/sources/" + ids[1], token=other).status, 404)


def test_jobs_api():
    tok = user()
    nb = notebook(tok)
    jobs = [add(tok, nb, {"kind": "text", "content": "job text %d" % i})["job"]["id"] for i in range(3)]
    # each ready source is followed by its source guide's job
    r = wait_until(lambda: (lambda x: x if len(x.json["items"]) == 6 else None)(
        srv.get("/v1/jobs?status=succeeded", token=tok)), 20, "six succeeded jobs")
    eq(sorted(j["id"] for j in r.json["items"] if j["kind"] == "ingest_source"), sorted(jobs))
    eq(sorted(j["kind"] for j in r.json["items"]), ["generate_source_guide"] * 3 + ["ingest_source"] * 3)
    j = r.json["items"][0]
    eq(sorted(j.keys()), sorted(["id", "kind", "status", "attempts", "max_attempts", "last_error", "run_at",
                                 "created_at", "updated_at", "finished_at"]))
    # newest first, paged
    everything = [x["id"] for x in srv.get("/v1/jobs?limit=100", token=tok).json["items"]]
    eq([x for x in everything if x in jobs], list(reversed(jobs)))
    p1 = srv.get("/v1/jobs?limit=4", token=tok).json
    eq([x["id"] for x in p1["items"]], everything[:4])
    p2 = srv.get("/v1/jobs?limit=4&cursor=" + p1["next_cursor"], token=tok).json
    eq([x["id"] for x in p2["items"]], everything[4:])
    eq(p2["next_cursor"], None)
    eq(srv.get("/v1/jobs?status=bogus", token=tok).status, 422)
    eq(srv.get("/v1/jobs?status=dead", token=tok).json["items"], [])
    eq(srv.get("/v1/jobs/" + jobs[0], token=user()).status, 404)


# ------------------------------------------------------------------- search

def test_search_ranks_and_highlights():
    tok = user()
    nb = notebook(tok)
    a = add(tok, nb, {"kind": "text", "title": "Volcano notes",
                      "content": "Volcanoes erupt when magma pressure builds. Magma is molten rock. "
                                 "Lava is magma that reached the surface. <script> & friends"})
    b = add(tok, nb, {"kind": "text", "title": "Other", "content": "Glaciers carve valleys over millennia."})
    wait_source(tok, a["source"]["id"])
    wait_source(tok, b["source"]["id"])
    r = srv.get("/v1/notebooks/%s/search?q=magma" % nb, token=tok)
    eq(r.status, 200, r.body)
    items = r.json["items"]
    eq(r.json["next_cursor"], None)
    eq(len(items), 1)
    it = items[0]
    eq(sorted(it.keys()), sorted(["chunk_id", "source_id", "source_title", "index", "page", "score", "snippet"]))
    eq(it["source_id"], a["source"]["id"])
    eq(it["source_title"], "Volcano notes")
    check("<mark>Magma</mark>" in it["snippet"] or "<mark>magma</mark>" in it["snippet"], it["snippet"])
    check("<script>" not in it["snippet"])
    check(it["score"] > 0)
    # websearch syntax: quoted phrases, OR, exclusion
    eq(len(srv.get("/v1/notebooks/%s/search?q=magma%%20OR%%20glaciers" % nb, token=tok).json["items"]), 2)
    eq(len(srv.get("/v1/notebooks/%s/search?q=magma%%20-lava" % nb, token=tok).json["items"]), 0)
    eq(len(srv.get("/v1/notebooks/%s/search?q=%%22molten%%20rock%%22" % nb, token=tok).json["items"]), 1)
    # ranking: the chunk with more matches ranks first (issue 9.6: wait until
    # the new source is ingested, and check that both hits are there — before,
    # a sleep stood in for that and the test passed with one hit)
    c = add(tok, nb, {"kind": "text", "content": "A passing mention of valleys."})
    eq(wait_source(tok, c["source"]["id"])["status"], "ready")
    r = srv.get("/v1/notebooks/%s/search?q=valleys%%20OR%%20glaciers" % nb, token=tok)
    eq([i["source_id"] for i in r.json["items"]], [b["source"]["id"], c["source"]["id"]], r.body)
    eq(r.json["match"], "all")
    # trashed sources leave search
    srv.delete("/v1/sources/" + a["source"]["id"], token=tok)
    eq(srv.get("/v1/notebooks/%s/search?q=magma" % nb, token=tok).json["items"], [])


def test_search_bad_and_absurd_queries():
    tok = user()
    nb = notebook(tok)
    wait_source(tok, add(tok, nb, {"kind": "text", "content": "some indexed words"})["source"]["id"])
    for q in ["", "%20%20", "x" * 1001]:
        r = srv.get("/v1/notebooks/%s/search?q=%s" % (nb, q), token=tok)
        eq(r.status, 422, q[:20])
        eq(r.json["error"]["field"], "q")
    eq(srv.get("/v1/notebooks/%s/search" % nb, token=tok).status, 422)
    for q in ["the", "%22unclosed", "-", "OR%20OR%20OR", "!!!", "%27%3B%20DROP%20TABLE%20chunks%3B--", "%E2%9C%93",
              "a%26b%7Cc", "(((", "x" * 1000]:
        r = srv.get("/v1/notebooks/%s/search?q=%s" % (nb, q), token=tok)
        eq(r.status, 200, q[:30] + r.body[:200])
        eq(r.json["next_cursor"], None)
    for lim in ["0", "51", "x"]:
        eq(srv.get("/v1/notebooks/%s/search?q=words&limit=%s" % (nb, lim), token=tok).status, 422)
    eq(len(srv.get("/v1/notebooks/%s/search?q=words&limit=1" % nb, token=tok).json["items"]), 1)


# ------------------------------------------------------------------- titles

def test_default_titles():
    # issue 9.9: an HTML source's title is its <title>, else its first heading,
    # else its first line of text — never the raw first line of markup
    tok = user()
    nb = notebook(tok)
    cases = [
        ({"kind": "html", "content": "<!doctype html><html><head><title>Cell biology</title></head>"
                                     "<body><h1>Chapter 1</h1></body></html>"}, "Cell biology"),
        ({"kind": "html", "content": "<!doctype html><html><body><p>intro</p><h2>The Krebs cycle</h2></body></html>"},
         "The Krebs cycle"),
        ({"kind": "html", "content": "<html><body><p>First line of text</p><p>more</p></body></html>"},
         "First line of text"),
        ({"kind": "markdown", "content": "\n# Osmosis\n\nWater moves."}, "Osmosis"),
        ({"kind": "text", "content": "  Photosynthesis basics  \nmore"}, "Photosynthesis basics"),
    ]
    for body, want in cases:
        out = add(tok, nb, body)
        eq(out["source"]["title"], want, body)
    # truncation never cuts a character: 80 emoji are 320 bytes (was "Untitled")
    out = add(tok, nb, {"kind": "text", "content": "\U0001F600" * 100})
    eq(out["source"]["title"], "\U0001F600" * 80)
    out = add(tok, nb, {"kind": "text", "content": "é" * 200})
    eq(out["source"]["title"], "é" * 80)
    # an uploaded HTML file: its <title> beats the file name; other files keep the name
    r = upload(tok, nb, {"file": ("page.html", "text/html", b"<html><head><title>Mitochondria</title></head></html>")})
    eq(r.json["source"]["title"], "Mitochondria")
    r = upload(tok, nb, {"file": ("notes.txt", "text/plain", b"first line")})
    eq(r.json["source"]["title"], "notes.txt")


def test_url_source_takes_the_page_title():
    tok = user()
    nb = notebook(tok)
    url = "http://127.0.0.1:%d/article.html" % web_port
    out = add(tok, nb, {"kind": "url", "url": url})
    eq(out["source"]["title"], url)  # until the page is fetched
    s = wait_source(tok, out["source"]["id"])
    eq(s["status"], "ready", s)
    eq(s["title"], "Volcanoes")
    # a title the user gave stays
    out = add(tok, nb, {"kind": "url", "url": url, "title": "My volcano page"})
    eq(wait_source(tok, out["source"]["id"])["title"], "My volcano page")
    # a page without a title keeps the URL
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/notes.txt" % web_port})
    eq(wait_source(tok, out["source"]["id"])["title"], "http://127.0.0.1:%d/notes.txt" % web_port)


def test_titles_refuse_controls_bidi_and_blank():
    # issue 8.16
    tok = user()
    nb = notebook(tok)
    sid = add(tok, nb, {"kind": "text", "content": "words", "title": "fine"})["source"]["id"]
    for bad in ["   ", "a\nb", "tab\there", "evil\u202egnp.exe", "\u2067x", "\u2029"]:
        r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "x", "title": bad}, token=tok)
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "title")
        r = srv.patch("/v1/sources/" + sid, {"title": bad}, token=tok)
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "title")
        r = upload(tok, nb, {"file": ("a.txt", "text/plain", b"x"), "title": (None, None, bad.encode())})
        eq(r.status, 422, repr(bad) + r.body)
        eq(r.json["error"]["field"], "title")
    eq(srv.get("/v1/sources/" + sid, token=tok).json["title"], "fine")


def test_unknown_fields_and_parts_are_named():
    # issue 8.9
    tok = user()
    nb = notebook(tok)
    r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": "x", "titel": "typo"}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "titel")
    r = upload(tok, nb, {"file": ("a.txt", "text/plain", b"x"), "titel": (None, None, b"typo")})
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "titel")
    sid = add(tok, nb, {"kind": "text", "content": "x"})["source"]["id"]
    r = srv.patch("/v1/sources/" + sid, {"title": "ok", "status": "ready"}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "status")
    eq(srv.get("/v1/notebooks/%s/sources" % nb, token=tok).json["items"][0]["title"], "x")


# ----------------------------------------------------- rename, restore, retry

def test_source_shape_has_summary_and_topics():
    tok = user()
    nb = notebook(tok)
    s = wait_source(tok, add(tok, nb, {"kind": "text", "content": "shape"})["source"]["id"])
    eq(sorted(s.keys()), sorted(["id", "notebook_id", "document_id", "kind", "title", "url", "status", "error",
                                 "byte_size", "chunk_count", "page_count", "summary", "topics", "created_at",
                                 "updated_at"]))
    # null until the source guide's job has run (tests/e2e/test_study.py), then {text, citations} and [string]
    check(s["summary"] is None or sorted(s["summary"].keys()) == ["citations", "text"], s)
    check(s["topics"] is None or isinstance(s["topics"], list), s)


def test_rename_and_restore_a_source():
    tok = user()
    nb = notebook(tok)
    sid = wait_source(tok, add(tok, nb, {"kind": "text", "content": "Restorable words about tides."})["source"]["id"])["id"]
    r = srv.patch("/v1/sources/" + sid, {"title": "Tides"}, token=tok)
    eq(r.status, 200, r.body)
    eq(r.json["title"], "Tides")
    eq(srv.get("/v1/sources/" + sid, token=tok).json["title"], "Tides")
    eq(srv.patch("/v1/sources/" + sid, {}, token=tok).status, 422)
    eq(srv.patch("/v1/sources/" + sid, {"title": "x" * 501}, token=tok).status, 422)
    other = user()
    eq(srv.patch("/v1/sources/" + sid, {"title": "mine"}, token=other).status, 404)
    # restore: also when live; back in the list and in search after the trash
    eq(srv.post("/v1/sources/%s/restore" % sid, token=tok).status, 200)
    for path in ("restore", "retry"):
        r = srv.post("/v1/sources/%s/%s" % (sid, path), {"force": True}, token=tok)
        eq(r.status, 422, r.body)
        eq(r.json["error"]["field"], "force")
    eq(srv.delete("/v1/sources/" + sid, token=tok).status, 204)
    eq(srv.get("/v1/notebooks/%s/search?q=tides" % nb, token=tok).json["items"], [])
    eq(srv.patch("/v1/sources/" + sid, {"title": "gone"}, token=tok).status, 404)
    eq(srv.post("/v1/sources/%s/restore" % sid, token=other).status, 404)
    r = srv.post("/v1/sources/%s/restore" % sid, token=tok)
    eq(r.status, 200, r.body)
    eq(r.json["id"], sid)
    eq(r.json["title"], "Tides")
    eq([x["id"] for x in srv.get("/v1/notebooks/%s/sources" % nb, token=tok).json["items"]], [sid])
    eq(len(srv.get("/v1/notebooks/%s/search?q=tides" % nb, token=tok).json["items"]), 1)
    # not while its notebook is in the trash; not once purged
    eq(srv.delete("/v1/sources/" + sid, token=tok).status, 204)
    eq(srv.delete("/v1/notebooks/" + nb, token=tok).status, 204)
    eq(srv.post("/v1/sources/%s/restore" % sid, token=tok).status, 404)
    eq(srv.post("/v1/notebooks/%s/restore" % nb, token=tok).status, 200)
    psql("DELETE FROM sources WHERE id = '%s'" % sid)
    eq(srv.post("/v1/sources/%s/restore" % sid, token=tok).status, 404)
    eq(srv.post("/v1/sources/%s/restore" % uuid.uuid4(), token=tok).status, 404)


def test_retry_a_failed_source():
    tok = user()
    nb = notebook(tok)
    flaky_ok.clear()
    out = add(tok, nb, {"kind": "url", "url": "http://127.0.0.1:%d/flaky.txt" % web_port})
    sid = out["source"]["id"]
    s = wait_source(tok, sid)
    eq(s["status"], "failed")
    check("404" in s["error"], s["error"])
    flaky_ok.set()
    r = srv.post("/v1/sources/%s/retry" % sid, token=tok)
    eq(r.status, 202, r.body)
    eq(r.json["source"]["status"], "pending")
    eq(r.json["source"]["error"], None)
    check(r.json["job"]["id"] != out["job"]["id"])
    eq(r.json["job"]["kind"], "ingest_source")
    s = wait_source(tok, sid)
    eq(s["status"], "ready", s)
    eq(srv.get("/v1/jobs/" + r.json["job"]["id"], token=tok).json["status"], "succeeded")
    check("chloroplasts" in doc_text(sid))
    # 409 unless failed; 404 for another user's or a missing one
    r = srv.post("/v1/sources/%s/retry" % sid, token=tok)
    eq(r.status, 409, r.body)
    eq(r.json["error"]["code"], "conflict")
    eq(srv.post("/v1/sources/%s/retry" % sid, token=user()).status, 404)
    eq(srv.post("/v1/sources/%s/retry" % uuid.uuid4(), token=tok).status, 404)
    # a failed text source retries with its document
    bad = add(tok, nb, {"kind": "html", "content": "<html><script>only script</script></html>"})
    eq(wait_source(tok, bad["source"]["id"])["status"], "failed")
    r = srv.post("/v1/sources/%s/retry" % bad["source"]["id"], token=tok)
    eq(r.status, 202, r.body)
    eq(wait_source(tok, bad["source"]["id"])["status"], "failed")  # the same bytes fail the same way
    eq(int(psql("SELECT count(*) FROM jobs WHERE source_id = '%s'" % bad["source"]["id"])), 2)


# ------------------------------------------------------------ search that finds

def test_search_falls_back_to_any_word():
    # issue 9.11: a student's question shares few words with the answer
    tok = user()
    nb = notebook(tok)
    a = add(tok, nb, {"kind": "text", "title": "Cells",
                      "content": "Mitochondria produce ATP by cellular respiration. "
                                 "Ribosomes build proteins from amino acids."})
    b = add(tok, nb, {"kind": "text", "title": "Plants", "content": "Chloroplasts capture light for photosynthesis."})
    wait_source(tok, a["source"]["id"])
    wait_source(tok, b["source"]["id"])
    r = srv.get("/v1/notebooks/%s/search?q=where%%20is%%20ATP%%20made%%3F" % nb, token=tok)
    eq(r.status, 200, r.body)
    eq(r.json["match"], "any")
    eq(len(r.json["items"]), 1, r.body)
    eq(r.json["items"][0]["source_id"], a["source"]["id"])
    check("<mark>ATP</mark>" in r.json["items"][0]["snippet"], r.json["items"][0]["snippet"])
    # all words present: the strict match is used
    r = srv.get("/v1/notebooks/%s/search?q=ATP%%20mitochondria%%20produce" % nb, token=tok)
    eq(r.json["match"], "all")
    eq(len(r.json["items"]), 1)
    # the any-word ranking puts the chunk with more of the words first
    r = srv.get("/v1/notebooks/%s/search?q=light%%20ribosomes%%20proteins%%20zebra" % nb, token=tok)
    eq(r.json["match"], "any")
    eq([i["source_id"] for i in r.json["items"]], [a["source"]["id"], b["source"]["id"]], r.body)
    # operators mean what they say: no fallback
    r = srv.get("/v1/notebooks/%s/search?q=ATP%%20-mitochondria" % nb, token=tok)
    eq((r.json["match"], r.json["items"]), ("all", []))
    r = srv.get("/v1/notebooks/%s/search?q=%%22produce%%20light%%22" % nb, token=tok)
    eq((r.json["match"], r.json["items"]), ("all", []))
    # nothing in common at all
    r = srv.get("/v1/notebooks/%s/search?q=zebra%%20giraffe" % nb, token=tok)
    eq((r.json["match"], r.json["items"]), ("any", []))


def test_search_prefix_of_the_last_word():
    tok = user()
    nb = notebook(tok)
    a = add(tok, nb, {"kind": "text", "content": "The mitochondria are the powerhouse of the cell."})
    b = add(tok, nb, {"kind": "text", "content": "Mitochondrial DNA comes from the mother."})
    c = add(tok, nb, {"kind": "text", "content": "Nothing related here."})
    for x in (a, b, c):
        wait_source(tok, x["source"]["id"])
    r = srv.get("/v1/notebooks/%s/search?q=mitochond" % nb, token=tok)
    eq(r.json["match"], "all")
    eq(sorted(i["source_id"] for i in r.json["items"]), sorted([a["source"]["id"], b["source"]["id"]]), r.body)
    check(any("<mark>" in i["snippet"] for i in r.json["items"]), r.body)
    r = srv.get("/v1/notebooks/%s/search?q=powerhouse%%20mitoch" % nb, token=tok)
    eq([i["source_id"] for i in r.json["items"]], [a["source"]["id"]], r.body)
    # a finished word (trailing space) is matched as a word only
    r = srv.get("/v1/notebooks/%s/search?q=mitochond%%20" % nb, token=tok)
    eq(r.json["items"], [], r.body)


def test_search_in_a_small_notebook_reads_its_rows_not_every_notebooks_postings():
    # issue 14 (make loadtest): a prefix term ('mitoch':*) is a partial match, which the GIN index answers
    # by collecting the matching posting lists of every notebook before keeping this one's — 29 ms for a
    # 20-chunk notebook among a million chunks, in the generic plan PostgreSQL keeps for the prepared
    # statement once notebooks are many and small. A small notebook is searched through its own rows,
    # whatever the plan: here PostgreSQL is made to use the generic plan from the first run.
    name = "nbt_" + uuid.uuid4().hex[:12]
    psql("CREATE DATABASE %s TEMPLATE notebookd_template" % name, ADMIN_URL)
    psql("ALTER DATABASE %s SET plan_cache_mode = force_generic_plan" % name, ADMIN_URL)
    s = Server(database_url=DB_URL.replace("/notebookd?", "/%s?" % name))
    s.dbname = name  # dropped on stop
    try:
        tok, other = user(s), user(s)
        small, big = notebook(tok, s), notebook(other, s)
        owner = s.psql("SELECT owner_id FROM notebooks WHERE id = '%s'" % big)
        # the small notebook: one source of 3 chunks; another user's 2,000 notebooks of 10 chunks, all
        # sharing the word, stored in no order (as a busy server writes them)
        s.psql("INSERT INTO notebooks (id, owner_id, title) SELECT gen_random_uuid(), '%s', 'nb ' || i "
               "FROM generate_series(1, 2000) i" % owner)
        s.psql("INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count) SELECT gen_random_uuid(), "
               "id, 'many', 'text', 'ready', CASE WHEN id = '%s' THEN 3 ELSE 10 END FROM notebooks WHERE id <> '%s'"
               % (small, big))
        chunks_sql = ("INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, "
                      "token_count) SELECT gen_random_uuid(), s.id, s.notebook_id, i, 'Mitochondria number ' || i "
                      "|| ' make energy.', 0, 30, 6 FROM sources s, generate_series(0, s.chunk_count - 1) i "
                      "WHERE s.notebook_id %s '%s' ORDER BY random()")
        s.psql(chunks_sql % ("<>", big))
        s.psql("VACUUM ANALYZE chunks")  # also empties the GIN index's pending list, as autovacuum does

        def scans():
            rows = s.psql("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE indexrelname IN "
                          "('chunks_notebook_tsv_idx', 'chunks_notebook_id_idx')")
            d = dict(line.split("|") for line in rows.split())
            return int(d["chunks_notebook_tsv_idx"]), int(d["chunks_notebook_id_idx"])

        gin0, btree0 = scans()
        for _ in range(5):
            r = s.get("/v1/notebooks/%s/search?q=mitoch" % small, token=tok)
            eq((r.status, len(r.json["items"])), (200, 3), r.body)
            check(all("<mark>Mitochondria</mark>" in i["snippet"] for i in r.json["items"]), r.body)
        # the server's sessions report their index scans when they go idle
        wait_until(lambda: sum(scans()) >= gin0 + btree0 + 5, 15, "the searches' index scans in pg_stat_user_indexes")
        gin1, _ = scans()
        eq(gin1, gin0, "the small notebook's search scanned the GIN index")
        # a big notebook (more than 2,000 chunks) is searched as before
        s.psql("INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count) VALUES "
               "(gen_random_uuid(), '%s', 'big', 'text', 'ready', 2500)" % big)
        s.psql(chunks_sql % ("=", big))
        r = s.get("/v1/notebooks/%s/search?q=mitoch&limit=5" % big, token=other)
        eq((r.status, len(r.json["items"])), (200, 5), r.body)
    finally:
        eq(s.stop(), 0)


def test_search_in_the_notebooks_language():
    tok = user()
    de = srv.post("/v1/notebooks", {"title": "Biologie", "language": "de"}, token=tok).json["id"]
    en = notebook(tok)
    text = "Die Häuser der Zellen wurden von den Mitochondrien versorgt."
    for nb in (de, en):
        wait_source(tok, add(tok, nb, {"kind": "text", "content": text})["source"]["id"])
    # German stemming: Haus finds Häuser, and German stop words are dropped
    r = srv.get("/v1/notebooks/%s/search?q=Haus%%20" % de, token=tok)
    eq(len(r.json["items"]), 1, r.body)
    eq(r.json["match"], "all")
    check("<mark>Häuser</mark>" in r.json["items"][0]["snippet"], r.body)
    eq(srv.get("/v1/notebooks/%s/search?q=Haus%%20" % en, token=tok).json["items"], [])
    # changing the language re-indexes the notebook's chunks (a job)
    r = srv.patch("/v1/notebooks/" + en, {"language": "de"}, token=tok)
    eq(r.status, 200, r.body)
    wait_until(lambda: srv.get("/v1/notebooks/%s/search?q=Haus%%20" % en, token=tok).json["items"], 30,
               "the re-indexed notebook to find Haus")
    jobs = srv.get("/v1/jobs", token=tok).json["items"]
    eq(jobs[0]["kind"], "reindex_notebook")
    wait_until(lambda: srv.get("/v1/jobs/" + jobs[0]["id"], token=tok).json["status"] == "succeeded", 30,
               "the re-index job to succeed")
    # the same language again enqueues nothing
    eq(srv.patch("/v1/notebooks/" + en, {"language": "de"}, token=tok).status, 200)
    eq(srv.get("/v1/jobs", token=tok).json["items"][0]["id"], jobs[0]["id"])


# ----------------------------------------------------------- statement counts

def count_of(r):
    eq(r.status, 200, r.body)
    return int(r.header("X-DB-Statements"))


def test_lists_run_a_fixed_number_of_statements():
    # issue 9.7: the same number of statements for one item as for many
    tok = user()
    nb = notebook(tok)
    first = add(tok, nb, {"kind": "text", "content": "one source"})
    sid = wait_source(tok, first["source"]["id"])["id"]
    one = {
        "sources": count_of(srv.get("/v1/notebooks/%s/sources?limit=100" % nb, token=tok)),
        "chunks": count_of(srv.get("/v1/sources/%s/chunks?limit=100" % sid, token=tok)),
        "jobs": count_of(srv.get("/v1/jobs?limit=100", token=tok)),
    }
    eq(len(srv.get("/v1/sources/%s/chunks?limit=100" % sid, token=tok).json["items"]), 1)
    uid = psql("SELECT owner_id FROM notebooks WHERE id = '%s'" % nb)
    psql("""
    INSERT INTO sources (id, notebook_id, title, kind, status)
      SELECT gen_random_uuid(), '%(nb)s', 's' || k, 'text', 'ready' FROM generate_series(1, 99) k;
    INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count)
      SELECT gen_random_uuid(), '%(sid)s', '%(nb)s', k, 'chunk ' || k, 0, 5, 2 FROM generate_series(1, 99) k;
    INSERT INTO jobs (id, user_id, kind, status, finished_at)
      SELECT gen_random_uuid(), '%(uid)s', 'noop', 'succeeded', now() FROM generate_series(1, 99) k;
    """ % {"nb": nb, "sid": sid, "uid": uid})
    many_r = {
        "sources": srv.get("/v1/notebooks/%s/sources?limit=100" % nb, token=tok),
        "chunks": srv.get("/v1/sources/%s/chunks?limit=100" % sid, token=tok),
        "jobs": srv.get("/v1/jobs?limit=100", token=tok),
    }
    for k, r in many_r.items():
        eq(len(r.json["items"]), 100, k)
        eq(count_of(r), one[k], "statements for 1 vs 100 %s" % k)
        check(one[k] <= 3, "%s: %d statements" % (k, one[k]))
