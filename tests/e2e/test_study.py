"""End-to-end tests of quizzes, study guides and source guides: the quality
bar on the chat fixture corpus (every answer among its choices, distinct
choices, citations that are exact spans of live chunks and hold the answer,
key terms cited with their term, Markdown that cmark renders without raw
HTML from the sources), bad input (0, 21, "five" questions, unknown and
another user's source ids, a notebook in the trash or without ready
sources), a job run twice or rescued from a killed worker (replaced, never
duplicated), a job that died, a generator that fails (the resource fails
with the reason), generation records, the trash, export and erasure."""
import ctypes
import os
import uuid

import harness
from harness import Server, check, eq, psql, wait_until

srv = None
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "chat")
FILES = ("candle.txt", "water_cycle.txt", "printing.txt")
corpus = {}


def setup_module():
    global srv
    srv = Server(primary=True)


def teardown_module():
    eq(srv.stop(), 0)


def user(server=None):
    j = harness.register(server or srv, "study")
    return j["access_token"], j["user"]["id"]


def notebook(tok, title="study", server=None):
    r = (server or srv).post("/v1/notebooks", {"title": title}, token=tok)
    eq(r.status, 201, r.body)
    return r.json["id"]


def add_text(tok, nb, title, text, server=None):
    r = (server or srv).post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "title": title, "content": text},
                             token=tok)
    eq(r.status, 202, r.body)
    return r.json["source"]["id"]


def wait_source(tok, sid, server=None, guide=True):
    """Ready, and (guide) with its source guide made."""
    def ready():
        r = (server or srv).get("/v1/sources/" + sid, token=tok)
        eq(r.status, 200)
        check(r.json["status"] != "failed", r.json)
        return r.json["status"] == "ready" and (not guide or r.json["summary"] is not None) and r.json
    return wait_until(ready, 60, "source %s to be ready" % sid)


def all_chunks(tok, sid):
    out, cursor = [], None
    while True:
        r = srv.get("/v1/sources/%s/chunks?limit=100%s" % (sid, "&cursor=" + cursor if cursor else ""), token=tok)
        eq(r.status, 200, r.body)
        out += r.json["items"]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


def fixture_notebook():
    if corpus:
        return corpus
    tok, uid = user()
    nb = notebook(tok, "fixture corpus")
    sids = {}
    for name in FILES:
        with open(os.path.join(FIX, name), encoding="utf-8") as f:
            sids[name] = add_text(tok, nb, name, f.read())
    sources = {name: wait_source(tok, sid) for name, sid in sids.items()}
    chunks = {}
    for sid in sids.values():
        for c in all_chunks(tok, sid):
            chunks[c["id"]] = c
    corpus.update(tok=tok, uid=uid, nb=nb, sids=sids, chunks=chunks, sources=sources)
    return corpus


def wait_done(tok, path, server=None):
    def done():
        r = (server or srv).get(path, token=tok)
        eq(r.status, 200, r.body)
        return r.json["status"] != "pending" and r.json
    return wait_until(done, 60, path + " to be made")


def make(tok, nb, what, body=None, server=None):
    r = (server or srv).post("/v1/notebooks/%s/%s" % (nb, what), body if body is not None else {}, token=tok)
    eq(r.status, 202, r.body)
    eq(r.json["status"], "pending")
    check(r.json["job_id"], r.json)
    return r.json


def cite_ok(c, chunks):
    """The citation is exactly its span of a live chunk (code points)."""
    ch = chunks.get(c["chunk_id"])
    return (ch is not None and c["source_id"] == ch["source_id"] and
            0 <= c["char_start"] < c["char_end"] <= len(ch["text"]) and
            ch["text"][c["char_start"]:c["char_end"]] == c["quote"])


def question_problems(q, chunks):
    p = []
    if q["answer"] not in q["choices"] or q["choices"][q["answer_index"]] != q["answer"]:
        p.append("answer not among its choices")
    if len(set(x.lower() for x in q["choices"])) != len(q["choices"]):
        p.append("choices not distinct")
    if any(not x.strip() for x in q["choices"]):
        p.append("an empty choice")
    if any(x.lower() == q["answer"].lower() for i, x in enumerate(q["choices"]) if i != q["answer_index"]):
        p.append("a distractor equals the answer")
    if not q["citations"] or not all(cite_ok(c, chunks) for c in q["citations"]):
        p.append("citation not at its offsets in a live chunk")
    elif q["answer"].lower() not in q["citations"][0]["quote"].lower():
        p.append("citation does not hold the answer")
    return p


_cmark = ctypes.CDLL("libcmark.so")
_cmark.cmark_markdown_to_html.restype = ctypes.c_void_p
_cmark.cmark_markdown_to_html.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]


def cmark_html(md):
    b = md.encode("utf-8")
    p = _cmark.cmark_markdown_to_html(b, len(b), 0)  # CMARK_OPT_DEFAULT: raw HTML is omitted, not passed
    try:
        return ctypes.string_at(p).decode("utf-8")
    finally:
        _libc.free(p)


def no_raw_html(md):
    html = cmark_html(md)
    return "raw HTML omitted" not in html and "<script" not in html and "<img" not in html, html


# ---- the quality bar -----------------------------------------------------------

def test_quiz_quality_on_fixture_corpus():
    c = fixture_notebook()
    total_ok = 0
    for name in FILES:
        q = make(c["tok"], c["nb"], "quizzes", {"num_questions": 10, "source_ids": [c["sids"][name]],
                                                 "title": "Quiz: " + name})
        q = wait_done(c["tok"], "/v1/quizzes/" + q["id"])
        eq(q["status"], "ready", q)
        eq(q["error"], None)
        ok = 0
        for i, qq in enumerate(q["questions"]):
            probs = question_problems(qq, c["chunks"])
            check(all(ci["source_id"] == c["sids"][name] for ci in qq["citations"]), "cites another source")
            check(not probs, "%s question %d: %s: %r" % (name, i, probs, qq))
            ok += not probs
        print("quiz %s: %d of 10 questions pass all checks (%d made)" % (name, ok, len(q["questions"])))
        eq(len(q["questions"]), 10)
        total_ok += ok
    eq(total_ok, 30)


def test_study_guide_on_fixture_corpus():
    c = fixture_notebook()
    g = make(c["tok"], c["nb"], "study-guides", {"title": "Revision"})
    g = wait_done(c["tok"], "/v1/study-guides/" + g["id"])
    eq(g["status"], "ready", g)
    eq(sorted(g.keys()), sorted(["id", "notebook_id", "title", "status", "error", "job_id", "summary", "key_terms",
                                 "review_questions", "markdown", "created_at", "updated_at"]))
    check(g["summary"]["text"] and g["summary"]["citations"])
    check(all(cite_ok(x, c["chunks"]) for x in g["summary"]["citations"]))
    check(len(g["key_terms"]) >= 5, g["key_terms"])
    for t in g["key_terms"]:
        check(t["citations"] and all(cite_ok(x, c["chunks"]) for x in t["citations"]), t)
        check(t["term"].lower() in t["citations"][0]["quote"].lower(), "term not in its citation: %r" % t)
    check(g["review_questions"], g)
    for rq in g["review_questions"]:
        check(rq["citations"] and all(cite_ok(x, c["chunks"]) for x in rq["citations"]), rq)
    check(g["markdown"].startswith("# Revision"), g["markdown"][:100])
    ok, html = no_raw_html(g["markdown"])
    check(ok, html[:2000])
    check("<h2>Key terms</h2>" in html, html[:500])


def test_markdown_escapes_html_from_sources():
    tok, _ = user()
    nb = notebook(tok)
    text = ("A Widget is a <script>alert(1)</script> device used in tests of escaping.\n\n"
            "The Gadget is a small <img src=x onerror=alert(2)> tool that pairs with every widget. "
            "Each widget is called a <b>thing</b> by some people who use it every day. "
            "The widget and the gadget both appear in [links](javascript:alert(3)) and `code` fairly often.")
    sid = add_text(tok, nb, "hostile", text)
    wait_source(tok, sid)
    g = wait_done(tok, "/v1/study-guides/" + make(tok, nb, "study-guides")["id"])
    eq(g["status"], "ready", g)
    check("<script>" in g["summary"]["text"] or any("<" in t["definition"] for t in g["key_terms"]), g)
    ok, html = no_raw_html(g["markdown"])
    check(ok, html)
    check("&lt;script&gt;" in html, html)
    check("<a " not in html and "<code>" not in html, html)


def test_source_guide_made_when_ready():
    c = fixture_notebook()
    for name, s in c["sources"].items():
        check(s["summary"]["text"] and s["summary"]["citations"], s)
        check(all(cite_ok(x, c["chunks"]) and x["source_id"] == s["id"] for x in s["summary"]["citations"]), s)
        check(isinstance(s["topics"], list) and s["topics"] and all(isinstance(t, str) and t for t in s["topics"]), s)
    r = srv.get("/v1/generations?kind=source_guide&notebook_id=" + c["nb"], token=c["tok"])
    eq(r.status, 200)
    eq(sorted(g["source_id"] for g in r.json["items"]), sorted(c["sids"].values()))
    for g in r.json["items"]:
        eq((g["provider"], g["status"], g["error"], g["dropped_citations"]), ("extractive", "succeeded", None, 0))
        check(g["input_tokens"] > 0 and g["output_tokens"] > 0, g)


def test_source_guide_null_until_made_and_remade_on_retry():
    tok, uid = user()
    nb = notebook(tok)
    r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "title": "t",
                                                   "content": "Evaporation is the process by which water becomes "
                                                              "vapour. Rain falls from clouds every day."}, token=tok)
    eq(r.status, 202)
    sid = r.json["source"]["id"]
    eq((r.json["source"]["summary"], r.json["source"]["topics"]), (None, None))
    s = wait_source(tok, sid)
    check("Evaporation" in s["topics"], s)
    # a failed source retried: the guide is cleared and made again, still one record
    psql("UPDATE sources SET status = 'failed', error = 'test' WHERE id = '%s'" % sid)
    r = srv.post("/v1/sources/%s/retry" % sid, {}, token=tok)
    eq(r.status, 202, r.body)
    s2 = wait_source(tok, sid)
    eq(s2["summary"]["text"], s["summary"]["text"])
    wait_until(lambda: psql("SELECT count(*) FROM jobs WHERE source_id = '%s' AND kind = 'generate_source_guide'"
                            " AND status = 'succeeded'" % sid) == "2", 30, "the second guide job")
    eq(psql("SELECT count(*) FROM generation_history WHERE source_id = '%s' AND kind = 'source_guide'" % sid), "1")
    # gone with the source
    eq(srv.delete("/v1/sources/" + sid, token=tok).status, 204)
    r = srv.get("/v1/generations?kind=source_guide", token=tok)
    eq(r.status, 200)


# ---- bad input -------------------------------------------------------------------

def test_bad_input():
    c = fixture_notebook()
    tok, nb = c["tok"], c["nb"]
    for bad in (0, 21, "five", 5.5, True, -1):
        r = srv.post("/v1/notebooks/%s/quizzes" % nb, {"num_questions": bad}, token=tok)
        eq(r.status, 422, r.body)
        eq(r.json["error"]["field"], "num_questions")
    for bad in ([str(uuid.uuid4())], ["not-a-uuid"], [], "x", [1]):
        for what in ("quizzes", "study-guides"):
            r = srv.post("/v1/notebooks/%s/%s" % (nb, what), {"source_ids": bad}, token=tok)
            eq(r.status, 422, r.body)
            eq(r.json["error"]["field"], "source_ids")
    # another user's source
    tok2, _ = user()
    nb2 = notebook(tok2)
    other = add_text(tok2, nb2, "other", "The lamp is a device that gives light to a room at night.")
    r = srv.post("/v1/notebooks/%s/quizzes" % nb, {"source_ids": [other]}, token=tok)
    eq(r.status, 422, r.body)
    eq(r.json["error"]["field"], "source_ids")
    # unknown fields, a field of the other kind, a long title
    eq(srv.post("/v1/notebooks/%s/quizzes" % nb, {"bogus": 1}, token=tok).status, 422)
    eq(srv.post("/v1/notebooks/%s/study-guides" % nb, {"num_questions": 3}, token=tok).status, 422)
    r = srv.post("/v1/notebooks/%s/quizzes" % nb, {"title": "x" * 201}, token=tok)
    eq((r.status, r.json["error"]["field"]), (422, "title"))
    # a notebook without ready sources
    empty = notebook(tok2, "empty")
    before = psql("SELECT count(*) FROM quizzes")
    r = srv.post("/v1/notebooks/%s/quizzes" % empty, {}, token=tok2)
    eq(r.status, 409, r.body)
    check("ready" in r.json["error"]["message"], r.json)
    eq(srv.post("/v1/notebooks/%s/study-guides" % empty, {}, token=tok2).status, 409)
    eq(psql("SELECT count(*) FROM quizzes"), before)
    # another user's notebook, quiz; a notebook in the trash
    eq(srv.post("/v1/notebooks/%s/quizzes" % nb, {}, token=tok2).status, 404)
    q = make(tok, nb, "quizzes", {"num_questions": 1})
    eq(srv.get("/v1/quizzes/" + q["id"], token=tok2).status, 404)
    eq(srv.delete("/v1/quizzes/" + q["id"], token=tok2).status, 404)
    eq(srv.get("/v1/quizzes/not-a-uuid", token=tok).status, 404)
    trash_nb = notebook(tok2, "trash")
    add_text(tok2, trash_nb, "t", "The lamp is a device that gives light to a room at night.")
    eq(srv.delete("/v1/notebooks/" + trash_nb, token=tok2).status, 204)
    eq(srv.post("/v1/notebooks/%s/quizzes" % trash_nb, {}, token=tok2).status, 404)
    eq(srv.post("/v1/notebooks/%s/study-guides" % trash_nb, {}, token=tok2).status, 404)
    # delete trashes
    wait_done(tok, "/v1/quizzes/" + q["id"])
    eq(srv.delete("/v1/quizzes/" + q["id"], token=tok).status, 204)
    eq(srv.get("/v1/quizzes/" + q["id"], token=tok).status, 404)
    eq(srv.delete("/v1/quizzes/" + q["id"], token=tok).status, 404)


# ---- jobs: re-runs, rescues, deaths, failures ---------------------------------

def test_job_run_twice_replaces_its_output():
    c = fixture_notebook()
    tok = c["tok"]
    q = wait_done(tok, "/v1/quizzes/" + make(tok, c["nb"], "quizzes", {"num_questions": 4})["id"])
    eq(q["status"], "ready")
    g = wait_done(tok, "/v1/study-guides/" + make(tok, c["nb"], "study-guides")["id"])
    for res, path, col in ((q, "/v1/quizzes/", "quiz_id"), (g, "/v1/study-guides/", "study_guide_id")):
        job = res["job_id"]
        # run again, as at-least-once delivery may
        psql("UPDATE jobs SET status = 'pending', attempts = 0, finished_at = NULL, run_at = now()"
             " WHERE id = '%s'" % job)
        wait_until(lambda: psql("SELECT status FROM jobs WHERE id = '%s'" % job) == "succeeded", 30, "the re-run")
        # a worker killed mid-generation: the reaper rescues its lease and the job runs again
        psql("UPDATE jobs SET status = 'running', locked_by = 'killed@nowhere:1/x', attempts = 1,"
             " locked_until = now() - interval '1 second', finished_at = NULL WHERE id = '%s'" % job)
        wait_until(lambda: psql("SELECT status FROM jobs WHERE id = '%s'" % job) == "succeeded", 30, "the rescue")
        again = srv.get(path + res["id"], token=tok).json
        for k in ("status", "questions", "summary", "key_terms", "review_questions", "markdown"):
            eq(again.get(k), res.get(k), k)
        eq(psql("SELECT count(*) FROM generation_history WHERE %s = '%s'" % (col, res["id"])), "1")


def test_dead_job_fails_the_resource_with_its_reason():
    c = fixture_notebook()
    tok = c["tok"]
    q = wait_done(tok, "/v1/quizzes/" + make(tok, c["nb"], "quizzes", {"num_questions": 2})["id"])
    # as if the worker had died on the last attempt and the reaper buried the job
    psql("UPDATE quizzes SET status = 'pending', questions = '[]' WHERE id = '%s'" % q["id"])
    psql("UPDATE jobs SET status = 'dead', last_error = 'the worker died on the last attempt'"
         " WHERE id = '%s'" % q["job_id"])
    r = srv.get("/v1/quizzes/" + q["id"], token=tok)
    eq((r.json["status"], r.json["error"], r.json["questions"]), ("failed", "the worker died on the last attempt", []))


def test_failing_generator_fails_the_resource_with_its_reason():
    s = Server(isolated=True, env={"NOTEBOOKD_GENERATOR": "openai"})
    try:
        tok, _ = user(s)
        nb = notebook(tok, server=s)
        sid = add_text(tok, nb, "t", open(os.path.join(FIX, "candle.txt"), encoding="utf-8").read(), server=s)

        def ready():
            r = s.get("/v1/sources/" + sid, token=tok)
            return r.json["status"] == "ready" and r.json
        wait_until(ready, 60, "the source")
        q = wait_done(tok, "/v1/quizzes/" + make(tok, nb, "quizzes", server=s)["id"], server=s)
        eq((q["status"], q["questions"]), ("failed", []))
        check(q["error"] and "generator" in q["error"], q)
        g = wait_done(tok, "/v1/study-guides/" + make(tok, nb, "study-guides", server=s)["id"], server=s)
        eq(g["status"], "failed")
        r = s.get("/v1/generations?kind=quiz", token=tok)
        eq(len(r.json["items"]), 1)
        gen = r.json["items"][0]
        eq((gen["quiz_id"], gen["provider"], gen["status"], gen["error"]), (q["id"], "openai", "failed", q["error"]))
        j = s.get("/v1/jobs/" + q["job_id"], token=tok).json
        eq(j["status"], "dead")
        check("generator" in j["last_error"], j)
        eq(s.get("/v1/sources/" + sid, token=tok).json["summary"], None)  # the source guide failed too
    finally:
        eq(s.stop(), 0)


# ---- history, trash, export, erasure -----------------------------------------

def test_history_trash_export_and_erasure():
    tok, uid = user()
    nb = notebook(tok)
    sid = add_text(tok, nb, "candle", open(os.path.join(FIX, "candle.txt"), encoding="utf-8").read())
    wait_source(tok, sid)
    q = wait_done(tok, "/v1/quizzes/" + make(tok, nb, "quizzes", {"num_questions": 3})["id"])
    g = wait_done(tok, "/v1/study-guides/" + make(tok, nb, "study-guides")["id"])
    r = srv.get("/v1/generations?notebook_id=" + nb, token=tok)
    eq(sorted(x["kind"] for x in r.json["items"]), ["quiz", "source_guide", "study_guide"])
    gq = [x for x in r.json["items"] if x["kind"] == "quiz"][0]
    eq((gq["quiz_id"], gq["provider"], gq["model"], gq["status"]), (q["id"], "extractive", "extractive-v1", "succeeded"))
    # export
    doc = srv.get("/v1/me/export", token=tok).json
    n = doc["notebooks"][0]
    eq([x["id"] for x in n["quizzes"]], [q["id"]])
    eq(n["quizzes"][0]["questions"], q["questions"])
    eq([x["id"] for x in n["study_guides"]], [g["id"]])
    eq(n["study_guides"][0]["markdown"], g["markdown"])
    check(n["sources"][0]["summary"] and n["sources"][0]["topics"], n["sources"][0])
    eq(sorted(x["kind"] for x in doc["generations"]), ["quiz", "source_guide", "study_guide"])
    # the notebook's trash hides them
    eq(srv.delete("/v1/notebooks/" + nb, token=tok).status, 204)
    eq(srv.get("/v1/quizzes/" + q["id"], token=tok).status, 404)
    eq(srv.get("/v1/study-guides/" + g["id"], token=tok).status, 404)
    eq(srv.delete("/v1/quizzes/" + q["id"], token=tok).status, 404)
    eq(srv.get("/v1/generations", token=tok).json["items"], [])
    eq(srv.post("/v1/notebooks/%s/restore" % nb, {}, token=tok).status, 200)
    eq(srv.get("/v1/quizzes/" + q["id"], token=tok).status, 200)
    # erasure
    eq(srv.request("DELETE", "/v1/me", body={"password": "long enough pw"}, token=tok).status, 204)
    eq(psql("SELECT count(*) FROM quizzes WHERE id = '%s'" % q["id"]), "0")
    eq(psql("SELECT count(*) FROM study_guides WHERE id = '%s'" % g["id"]), "0")
    eq(psql("SELECT count(*) FROM generation_history WHERE user_id = '%s'" % uid), "0")
