"""End-to-end tests of sources and ingestion: every format (text, Markdown,
HTML, PDF upload, URL), deduplication, chunks, failures with readable
reasons, limits, the jobs API and full-text search."""
import http.server
import json
import socket
import threading
import time
import uuid

from harness import Server, check, eq, free_port, psql

srv = None
web = None
web_port = None


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
    s = s or srv
    r = s.post("/v1/auth/register", {"email": "src-%s@example.com" % uuid.uuid4().hex[:10], "password": "long enough pw"})
    eq(r.status, 201)
    return r.json["access_token"]


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
    r = upload(tok, nb, {"other": (None, None, b"x")})
    eq(r.status, 422)
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
    j = srv.get("/v1/jobs/" + r.json["job"]["id"], token=tok).json
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
    s2 = Server(env={"NOTEBOOKD_ALLOW_PRIVATE_URLS": "0"}, isolated=True)
    try:
        tok = user(s2)
        nb = notebook(tok, s2)
        for url in ["http://127.0.0.1:%d/notes.txt" % web_port, "http://localhost:%d/notes.txt" % web_port,
                    "http://169.254.169.254/latest/meta-data/", "http://[::1]:%d/" % web_port, "http://10.1.2.3/"]:
            out = add(tok, nb, {"kind": "url", "url": url}, s=s2)
            s = wait_source(tok, out["source"]["id"], s=s2)
            eq(s["status"], "failed", url)
            check("not allowed" in s["error"], s["error"])
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
    deadline = time.time() + 20
    while time.time() < deadline:
        r = srv.get("/v1/jobs?status=succeeded", token=tok)
        if len(r.json["items"]) == 3:
            break
        time.sleep(0.1)
    eq(sorted(j["id"] for j in r.json["items"]), sorted(jobs))
    j = r.json["items"][0]
    eq(sorted(j.keys()), sorted(["id", "kind", "status", "attempts", "max_attempts", "last_error", "run_at",
                                 "created_at", "updated_at", "finished_at"]))
    # newest first, paged
    p1 = srv.get("/v1/jobs?limit=2", token=tok).json
    eq([x["id"] for x in p1["items"]], list(reversed(jobs))[:2])
    p2 = srv.get("/v1/jobs?limit=2&cursor=" + p1["next_cursor"], token=tok).json
    eq([x["id"] for x in p2["items"]], [jobs[0]])
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
    # ranking: the chunk with more matches ranks first
    add(tok, nb, {"kind": "text", "content": "A passing mention of valleys."})
    time.sleep(1)
    r = srv.get("/v1/notebooks/%s/search?q=valleys%%20glaciers" % nb, token=tok)
    check(r.json["items"][0]["source_id"] == b["source"]["id"], r.body)
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
