"""End-to-end tests of chat: conversations and messages (keyset lists with a
fixed number of statements, the trash, another user's conversation), asking
with the extractive generator against a fixture corpus (the answer cites the
chunk holding the known sentence for at least 80 % of the questions; every
citation is an exact span of a live chunk), follow-ups, bad input, the
generation history, the openai generator without a URL, export and
erasure."""
import json
import os
import subprocess
import threading
import uuid

import harness
from harness import DB_URL, Server, check, eq, psql, wait_until

srv = None
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "chat")
NO_ANSWER = "I could not find anything in this notebook's sources that answers this question."
corpus = {}  # the shared fixture notebook: token, notebook id, source ids by file


def setup_module():
    global srv
    srv = Server(primary=True)


def teardown_module():
    eq(srv.stop(), 0)


def user():
    j = harness.register(srv, "chat")
    return j["access_token"], j["user"]["id"]


def notebook(tok, title="chat"):
    r = srv.post("/v1/notebooks", {"title": title}, token=tok)
    eq(r.status, 201, r.body)
    return r.json["id"]


def conversation(tok, nb, body=None):
    r = srv.post("/v1/notebooks/%s/conversations" % nb, body if body is not None else {}, token=tok)
    eq(r.status, 201, r.body)
    return r.json


def add_text(tok, nb, title, text):
    r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "title": title, "content": text}, token=tok)
    eq(r.status, 202, r.body)
    return r.json["source"]["id"]


def wait_ready(tok, sid):
    def ready():
        r = srv.get("/v1/sources/" + sid, token=tok)
        eq(r.status, 200)
        check(r.json["status"] != "failed", r.json)
        return r.json["status"] == "ready" and r.json
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


def ask(tok, conv_id, content, status=201):
    r = srv.post("/v1/conversations/%s/messages" % conv_id, {"content": content}, token=tok)
    eq(r.status, status, r.body)
    return r.json


def fixture_notebook():
    """One notebook with the three fixture texts, ready (made once)."""
    if corpus:
        return corpus
    tok, uid = user()
    nb = notebook(tok, "fixture corpus")
    sids = {}
    for name in ("candle.txt", "water_cycle.txt", "printing.txt"):
        with open(os.path.join(FIX, name), encoding="utf-8") as f:
            sids[name] = add_text(tok, nb, name, f.read())
    for sid in sids.values():
        wait_ready(tok, sid)
    chunks = {}
    for name, sid in sids.items():
        for c in all_chunks(tok, sid):
            chunks[c["id"]] = dict(c, file=name)
    corpus.update(tok=tok, uid=uid, nb=nb, sids=sids, chunks=chunks)
    return corpus


def check_citations(msg, chunks, source_ids):
    """Every citation is exactly its span of a live chunk of the notebook (code points)."""
    for c in msg["citations"]:
        eq(sorted(c.keys()), ["char_end", "char_start", "chunk_id", "quote", "source_id"])
        check(c["chunk_id"] in chunks, "citation of a chunk that is not live in the notebook: %r" % c)
        ch = chunks[c["chunk_id"]]
        eq(c["source_id"], ch["source_id"])
        check(c["source_id"] in source_ids)
        check(0 <= c["char_start"] < c["char_end"] <= len(ch["text"]), c)
        eq(ch["text"][c["char_start"]:c["char_end"]], c["quote"], "quote at its offsets")


# ---- conversations -----------------------------------------------------------

def test_conversation_create_get_and_shape():
    tok, _ = user()
    nb = notebook(tok)
    c = conversation(tok, nb, {"title": "Revision"})
    eq(sorted(c.keys()), sorted(["id", "notebook_id", "title", "message_count", "last_message",
                                 "created_at", "updated_at"]))
    eq(c["title"], "Revision")
    eq(c["notebook_id"], nb)
    eq(c["message_count"], 0)
    eq(c["last_message"], None)
    eq(srv.get("/v1/conversations/" + c["id"], token=tok).json, c)
    untitled = conversation(tok, nb)
    eq(untitled["title"], None)
    # no body at all is fine too (the title is optional)
    eq(srv.request("POST", "/v1/notebooks/%s/conversations" % nb, token=tok).status, 201)
    for body, field in [({"title": "x" * 201}, "title"), ({"title": 5}, "title"), ({"titel": "typo"}, "titel"),
                        ({"title": "a\u202eb"}, "title"), ({"title": ""}, "title")]:
        r = srv.post("/v1/notebooks/%s/conversations" % nb, body, token=tok)
        eq(r.status, 422, body)
        eq(r.json["error"]["field"], field)
    eq(srv.post("/v1/notebooks/%s/conversations" % uuid.uuid4(), {}, token=tok).status, 404)
    eq(srv.post("/v1/notebooks/%s/conversations" % nb, {}).status, 401)


def test_conversation_list_most_recent_first_with_fixed_statements():
    tok, uid = user()
    nb = notebook(tok)
    first = conversation(tok, nb, {"title": "first"})
    one = srv.get("/v1/notebooks/%s/conversations?limit=100" % nb, token=tok)
    eq(one.status, 200)
    eq([c["id"] for c in one.json["items"]], [first["id"]])
    # 60 more conversations with 3 messages each, inserted directly
    psql("""
    INSERT INTO conversations (id, user_id, notebook_id, title, created_at)
      SELECT gen_random_uuid(), '%(u)s', '%(n)s', 'bulk ' || i, now() - make_interval(secs => 10 * i)
      FROM generate_series(1, 60) i;
    INSERT INTO messages (id, conversation_id, role, content, created_at)
      SELECT gen_random_uuid(), c.id, CASE WHEN k %% 2 = 1 THEN 'user' ELSE 'assistant' END, 'm' || k,
             c.created_at + make_interval(secs => k)
      FROM conversations c, generate_series(1, 3) k WHERE c.notebook_id = '%(n)s' AND c.title LIKE 'bulk %%';
    UPDATE conversations SET last_message_at = created_at + interval '3 seconds'
      WHERE notebook_id = '%(n)s' AND title LIKE 'bulk %%';
    """ % {"u": uid, "n": nb})
    many = srv.get("/v1/notebooks/%s/conversations?limit=100" % nb, token=tok)
    eq(many.status, 200)
    items = many.json["items"]
    eq(len(items), 61)
    n1, n61 = int(one.header("X-DB-Statements")), int(many.header("X-DB-Statements"))
    eq(n1, n61, "statements for 1 vs 61 conversations")
    check(n61 <= 3, "auth + notebook check + list: %d statements" % n61)
    bulk = [c for c in items if c["title"].startswith("bulk")]
    check(all(c["message_count"] == 3 and c["last_message"]["content"] == "m3" for c in bulk))
    # most recently active first: the untouched "first" (created now) leads, then bulk 1, 2, ...
    eq(items[0]["id"], first["id"])
    eq([c["title"] for c in items[1:4]], ["bulk 1", "bulk 2", "bulk 3"])
    # keyset pages: no repeats, no gaps
    seen, cursor = [], None
    while True:
        r = srv.get("/v1/notebooks/%s/conversations?limit=7%s" % (nb, "&cursor=" + cursor if cursor else ""),
                    token=tok)
        eq(r.status, 200, r.body)
        seen += [c["id"] for c in r.json["items"]]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    eq(seen, [c["id"] for c in items])
    eq(srv.get("/v1/notebooks/%s/conversations?cursor=bogus" % nb, token=tok).status, 422)
    eq(srv.get("/v1/notebooks/%s/conversations?limit=0" % nb, token=tok).status, 422)
    eq(srv.get("/v1/notebooks/%s/conversations" % uuid.uuid4(), token=tok).status, 404)


def test_messages_oldest_first_keyset():
    tok, _ = user()
    nb = notebook(tok)
    c = conversation(tok, nb)
    psql("""INSERT INTO messages (id, conversation_id, role, content, created_at)
      SELECT gen_random_uuid(), '%s', 'user', 'q' || i, now() + make_interval(secs => i)
      FROM generate_series(1, 25) i""" % c["id"])
    got, cursor = [], None
    while True:
        r = srv.get("/v1/conversations/%s/messages?limit=10%s" % (c["id"], "&cursor=" + cursor if cursor else ""),
                    token=tok)
        eq(r.status, 200, r.body)
        got += r.json["items"]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    eq([m["content"] for m in got], ["q%d" % i for i in range(1, 26)])
    eq(sorted(got[0].keys()), sorted(["id", "conversation_id", "role", "content", "citations", "created_at"]))
    eq(got[0]["citations"], [])
    # a fixed number of statements: 25 messages cost what 1 costs
    one = conversation(tok, nb)
    psql("INSERT INTO messages (id, conversation_id, role, content) VALUES (gen_random_uuid(), '%s', 'user', 'x')"
         % one["id"])
    r1 = srv.get("/v1/conversations/%s/messages?limit=100" % one["id"], token=tok)
    r25 = srv.get("/v1/conversations/%s/messages?limit=100" % c["id"], token=tok)
    eq((len(r1.json["items"]), len(r25.json["items"])), (1, 25))
    eq(r1.header("X-DB-Statements"), r25.header("X-DB-Statements"))
    eq(srv.get("/v1/conversations/%s/messages?cursor=x" % c["id"], token=tok).status, 422)
    eq(srv.get("/v1/conversations/%s/messages" % uuid.uuid4(), token=tok).status, 404)


def test_trash_and_other_users():
    tok, _ = user()
    nb = notebook(tok)
    c = conversation(tok, nb)
    other, _ = user()
    missing = str(uuid.uuid4())

    def strip(r):
        j = r.json
        j["error"].pop("request_id", None)
        return r.status, j, r.header("Content-Type")

    # another user's conversation is the same 404 as a missing one, on every route
    for method, path, body in [("GET", "/v1/conversations/%s", None), ("DELETE", "/v1/conversations/%s", None),
                               ("GET", "/v1/conversations/%s/messages", None),
                               ("POST", "/v1/conversations/%s/messages", {"content": "hello"})]:
        a = srv.request(method, path % c["id"], body=body, token=other)
        b = srv.request(method, path % missing, body=body, token=other)
        eq(a.status, 404, (method, path))
        eq(strip(a), strip(b))
        eq(len(a.body) - len(a.json["error"].get("request_id", "")),
           len(b.body) - len(b.json["error"].get("request_id", "")))
    eq(srv.get("/v1/notebooks/%s/conversations" % nb, token=other).status, 404)
    eq(srv.post("/v1/notebooks/%s/conversations" % nb, {}, token=other).status, 404)
    # the conversation is untouched
    eq(srv.get("/v1/conversations/" + c["id"], token=tok).status, 200)
    # trash: gone from get, list, messages and asking
    eq(srv.delete("/v1/conversations/" + c["id"], token=tok).status, 204)
    eq(srv.get("/v1/conversations/" + c["id"], token=tok).status, 404)
    eq(srv.delete("/v1/conversations/" + c["id"], token=tok).status, 404)
    eq(srv.get("/v1/conversations/%s/messages" % c["id"], token=tok).status, 404)
    eq(ask(tok, c["id"], "hello", status=404)["error"]["code"], "not_found")
    eq(srv.get("/v1/notebooks/%s/conversations" % nb, token=tok).json["items"], [])
    eq(psql("SELECT count(*) FROM messages WHERE conversation_id = '%s'" % c["id"]), "0")
    # a conversation under a trashed notebook answers 404; back with the notebook
    c2 = conversation(tok, nb)
    eq(srv.delete("/v1/notebooks/" + nb, token=tok).status, 204)
    eq(srv.get("/v1/conversations/" + c2["id"], token=tok).status, 404)
    eq(srv.get("/v1/conversations/%s/messages" % c2["id"], token=tok).status, 404)
    eq(ask(tok, c2["id"], "hello", status=404)["error"]["code"], "not_found")
    eq(srv.post("/v1/notebooks/%s/restore" % nb, token=tok).status, 200)
    eq(srv.get("/v1/conversations/" + c2["id"], token=tok).status, 200)


# ---- asking ------------------------------------------------------------------

def test_quality_on_the_fixture_corpus():
    fx = fixture_notebook()
    tok, chunks = fx["tok"], fx["chunks"]
    with open(os.path.join(FIX, "questions.json"), encoding="utf-8") as f:
        questions = json.load(f)
    check(len(questions) >= 20)
    hits = 0
    misses = []
    for q in questions:
        conv = conversation(tok, fx["nb"])
        out = ask(tok, conv["id"], q["question"])
        um, am = out["user_message"], out["assistant_message"]
        eq(um["role"], "user")
        eq(um["content"], q["question"])
        eq(um["citations"], [])
        eq(am["role"], "assistant")
        eq(am["conversation_id"], conv["id"])
        check_citations(am, chunks, set(fx["sids"].values()))
        cited = [chunks[c["chunk_id"]] for c in am["citations"]]
        if any(q["answer"] in ch["text"] and ch["file"] == q["source"] for ch in cited):
            hits += 1
        else:
            misses.append((q["question"], am["content"][:200]))
        # the conversation now shows both messages, the answer last
        g = srv.get("/v1/conversations/" + conv["id"], token=tok).json
        eq(g["message_count"], 2)
        eq(g["last_message"], am)
    score = hits / len(questions)
    print("# chat quality: %d/%d questions (%.0f %%) cite a chunk holding the known sentence"
          % (hits, len(questions), 100 * score))
    for m in misses:
        print("#   missed: %r -> %r" % m)
    check(score >= 0.8, "score %.2f below 0.8" % score)


def test_every_stored_citation_points_into_a_live_chunk():
    fx = fixture_notebook()
    tok = fx["tok"]
    # re-read the chunks through the API now, and every stored message of the notebook
    chunks = {}
    for sid in fx["sids"].values():
        for c in all_chunks(tok, sid):
            chunks[c["id"]] = c
    convs, cursor = [], None
    while True:
        r = srv.get("/v1/notebooks/%s/conversations?limit=100%s" % (fx["nb"], "&cursor=" + cursor if cursor else ""),
                    token=tok)
        convs += r.json["items"]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    check(len(convs) >= 20)
    n = 0
    for conv in convs:
        for m in srv.get("/v1/conversations/%s/messages?limit=100" % conv["id"], token=tok).json["items"]:
            check_citations(m, chunks, set(fx["sids"].values()))
            n += len(m["citations"])
    check(n >= 20, "citations checked: %d" % n)


def test_follow_up_uses_the_previous_question():
    fx = fixture_notebook()
    tok, chunks = fx["tok"], fx["chunks"]
    conv = conversation(tok, fx["nb"])
    first = ask(tok, conv["id"], "What happens to a candle flame under a glass jar?")["assistant_message"]
    check(first["citations"], first)
    # alone, "and why is that?" has no subject; after the first question it has one
    lone = conversation(tok, fx["nb"])
    eq(ask(tok, lone["id"], "And why is that?")["assistant_message"]["content"], NO_ANSWER)
    follow = ask(tok, conv["id"], "And why is that?")["assistant_message"]
    check(follow["content"] != NO_ANSWER, follow)
    check(follow["citations"], follow)
    check_citations(follow, chunks, set(fx["sids"].values()))
    check(any(chunks[c["chunk_id"]]["file"] == "candle.txt" for c in follow["citations"]), follow)
    check(any("oxygen" in c["quote"] for c in follow["citations"]), follow)
    msgs = srv.get("/v1/conversations/%s/messages" % conv["id"], token=tok).json["items"]
    eq([m["role"] for m in msgs], ["user", "assistant", "user", "assistant"])


def test_readme_example():
    tok, _ = user()
    nb = notebook(tok)
    wait_ready(tok, add_text(tok, nb, "Cells", "Mitochondria are the powerhouse of the cell."))
    conv = conversation(tok, nb, {"title": "Revision"})
    am = ask(tok, conv["id"], "What do mitochondria do?")["assistant_message"]
    eq(am["content"], "Mitochondria are the powerhouse of the cell. [1]")
    eq([(c["quote"], c["char_start"], c["char_end"]) for c in am["citations"]],
       [("Mitochondria are the powerhouse of the cell.", 0, 44)])


def test_concurrent_questions_in_one_conversation_never_interleave():
    fx = fixture_notebook()
    tok = fx["tok"]
    conv = conversation(tok, fx["nb"])
    questions = ["What is soot?", "What is surface runoff?", "What was Gutenberg's key invention?",
                 "What is the water table?", "How does the melted wax get up the wick?", "What is transpiration?"]
    results = {}

    def one(q):
        r = srv.post("/v1/conversations/%s/messages" % conv["id"], {"content": q}, token=tok)
        results[q] = r

    threads = [threading.Thread(target=one, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(all(r.status == 201 for r in results.values()), results)
    msgs = srv.get("/v1/conversations/%s/messages?limit=100" % conv["id"], token=tok).json["items"]
    eq(len(msgs), 2 * len(questions))
    # each question is followed by its own answer: the pairs are stored whole, one after the other
    for i in range(0, len(msgs), 2):
        q, a = msgs[i], msgs[i + 1]
        eq((q["role"], a["role"]), ("user", "assistant"))
        eq(results[q["content"]].json["assistant_message"]["id"], a["id"])
    eq(srv.get("/v1/conversations/" + conv["id"], token=tok).json["message_count"], 12)


def test_citations_that_no_longer_check_out_are_dropped_and_counted():
    """The chunk text changes (a re-ingestion) between retrieval and storing:
    the claims are checked against the text read back in the storing
    transaction, so they are dropped, never shown, and counted."""
    tok, _ = user()
    nb = notebook(tok)
    sid = add_text(tok, nb, "candle", "The flame of a candle is hollow. Melted wax rises up the wick.")
    wait_ready(tok, sid)
    conv = conversation(tok, nb)
    # a second session locks the conversation (the ask will wait for it) and rewrites the chunk, uncommitted
    hold = subprocess.Popen(["psql", DB_URL, "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        hold.stdin.write("BEGIN;\nSELECT 1 FROM conversations WHERE id = '%s' FOR UPDATE;\n"
                         "UPDATE chunks SET text = 'Rewritten. ' || text WHERE source_id = '%s';\n" % (conv["id"], sid))
        hold.stdin.flush()
        wait_until(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                " WHERE c.relname = 'chunks' AND l.mode = 'RowExclusiveLock' AND l.granted") != "0",
                   10, "the second session to hold its locks")
        out = {}
        t = threading.Thread(target=lambda: out.update(r=srv.post("/v1/conversations/%s/messages" % conv["id"],
                                                                  {"content": "Why is the candle flame hollow?"},
                                                                  token=tok)))
        t.start()
        wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND query LIKE '%FOR UPDATE OF c%'") != "0", 20, "the ask to wait on the lock")
        hold.stdin.write("COMMIT;\n")
        hold.stdin.close()
        t.join(30)
    finally:
        hold.wait(10)
    r = out["r"]
    eq(r.status, 201, r.body)
    am = r.json["assistant_message"]
    eq(am["citations"], [])
    eq(am["content"], NO_ANSWER)  # nothing checked out behind the answer: it says so instead
    g = srv.get("/v1/generations?kind=chat&notebook_id=" + nb, token=tok).json["items"]
    eq(len(g), 1)
    check(g[0]["dropped_citations"] >= 1, g[0])
    eq(g[0]["status"], "succeeded")


def test_bad_questions():
    fx = fixture_notebook()
    tok = fx["tok"]
    conv = conversation(tok, fx["nb"])
    path = "/v1/conversations/%s/messages" % conv["id"]
    for body, field in [({"content": ""}, "content"), ({"content": "   \n "}, "content"),
                        ({"content": "x" * 100 * 1024}, "content"), ({"content": "é" * 10001}, "content"),
                        ({}, "content"), ({"content": 42}, "content"), ({"content": "hi", "stream": True}, "stream")]:
        r = srv.post(path, body, token=tok)
        eq(r.status, 422, (str(body)[:60], r.body))
        eq(r.json["error"]["field"], field)
    eq(srv.post(path, raw=b"not json", headers={"Content-Type": "application/json"}, token=tok).status, 400)
    eq(srv.request("POST", path, token=tok).status, 400)
    # nothing was stored by any of them
    eq(srv.get("/v1/conversations/" + conv["id"], token=tok).json["message_count"], 0)
    # exactly 10,000 characters is accepted
    eq(srv.post(path, {"content": "é" * 10000}, token=tok).status, 201)


def test_no_ready_sources_and_other_languages_answer_gracefully():
    tok, _ = user()
    nb = notebook(tok)
    conv = conversation(tok, nb)
    out = ask(tok, conv["id"], "How does a candle burn?")
    eq(out["assistant_message"]["content"], NO_ANSWER)
    eq(out["assistant_message"]["citations"], [])
    # chunks of a source that is not ready (still processing) are not used either
    sid = str(uuid.uuid4())
    psql("""INSERT INTO sources (id, notebook_id, title, kind, status) VALUES ('%(s)s', '%(n)s', 'wip', 'text', 'processing');
      INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count)
      VALUES (gen_random_uuid(), '%(s)s', '%(n)s', 0, 'A candle burns wax vapour in its flame.', 0, 39, 10)"""
         % {"s": sid, "n": nb})
    out = ask(tok, conv["id"], "How does a candle burn?")
    eq(out["assistant_message"]["content"], NO_ANSWER)
    eq(out["assistant_message"]["citations"], [])
    psql("UPDATE sources SET status = 'ready' WHERE id = '%s'" % sid)  # once ready, it answers
    out = ask(tok, conv["id"], "How does a candle burn?")
    eq([c["source_id"] for c in out["assistant_message"]["citations"]], [sid])
    # a question in another language than the notebook's (English): graceful, nothing invented
    fx = fixture_notebook()
    for q in ["Pourquoi la flamme d'une bougie est-elle brillante ?", "Почему пламя свечи яркое?",
              "蜡烛的火焰为什么明亮？"]:
        c = conversation(fx["tok"], fx["nb"])
        am = ask(fx["tok"], c["id"], q)["assistant_message"]
        eq(am["content"], NO_ANSWER, q)
        eq(am["citations"], [])


def test_generations_history():
    tok, uid = user()
    nb = notebook(tok)
    nb2 = notebook(tok)
    c1 = conversation(tok, nb)
    c2 = conversation(tok, nb2)
    for i in range(3):
        ask(tok, c1["id"], "question %d about candles" % i)
    ask(tok, c2["id"], "another question")
    r = srv.get("/v1/generations", token=tok)
    eq(r.status, 200, r.body)
    items = r.json["items"]
    eq(len(items), 4)
    g = items[0]
    eq(sorted(g.keys()), sorted(["id", "kind", "notebook_id", "conversation_id", "quiz_id", "study_guide_id",
                                 "source_id", "provider", "model", "input_tokens", "output_tokens", "latency_ms",
                                 "dropped_citations", "status", "error", "created_at"]))
    eq(g["conversation_id"], c2["id"])  # newest first
    eq(g["kind"], "chat")
    eq(g["provider"], "extractive")
    eq(g["status"], "succeeded")
    eq(g["error"], None)
    eq(g["dropped_citations"], 0)
    check(g["output_tokens"] > 0 and g["input_tokens"] > 0 and g["latency_ms"] >= 0)
    eq([x["created_at"] for x in items], sorted([x["created_at"] for x in items], reverse=True))
    eq(len(srv.get("/v1/generations?notebook_id=" + nb, token=tok).json["items"]), 3)
    eq(len(srv.get("/v1/generations?kind=chat&notebook_id=" + nb2, token=tok).json["items"]), 1)
    eq(srv.get("/v1/generations?kind=quiz", token=tok).json["items"], [])
    pages, cursor = [], None
    while True:
        r = srv.get("/v1/generations?limit=3%s" % ("&cursor=" + cursor if cursor else ""), token=tok)
        pages += [x["id"] for x in r.json["items"]]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    eq(pages, [x["id"] for x in items])
    for q, field in [("kind=poem", "kind"), ("notebook_id=nope", "notebook_id"), ("limit=101", "limit"),
                     ("cursor=zz", "cursor")]:
        r = srv.get("/v1/generations?" + q, token=tok)
        eq(r.status, 422, q)
        eq(r.json["error"]["field"], field)
    # another user sees none of them; a trashed notebook's records leave the list
    other, _ = user()
    eq(srv.get("/v1/generations", token=other).json["items"], [])
    eq(srv.get("/v1/generations?notebook_id=" + nb, token=other).json["items"], [])
    eq(srv.delete("/v1/notebooks/" + nb2, token=tok).status, 204)
    eq(len(srv.get("/v1/generations", token=tok).json["items"]), 3)
    eq(srv.get("/v1/generations").status, 401)


def test_openai_generator_without_url():
    # openai without NOTEBOOKD_LLM_URL: asking answers 503 and stores only a failed generation record
    tok, _ = user()
    nb = notebook(tok)
    conv = conversation(tok, nb)
    s = Server(env={"NOTEBOOKD_GENERATOR": "openai"})
    try:
        r = s.post("/v1/conversations/%s/messages" % conv["id"], {"content": "How does a candle burn?"}, token=tok)
        eq(r.status, 503, r.body)
        eq(r.json["error"]["code"], "unavailable")
        check("generator not configured" in r.json["error"]["message"], r.body)
    finally:
        eq(s.stop(), 0)
    eq(srv.get("/v1/conversations/" + conv["id"], token=tok).json["message_count"], 0)
    g = srv.get("/v1/generations?kind=chat&notebook_id=" + nb, token=tok).json["items"]
    eq(len(g), 1)
    eq((g[0]["provider"], g[0]["status"]), ("openai", "failed"))
    check("not configured" in g[0]["error"])
    # an unknown generator is refused at start-up with a one-line reason
    try:
        Server(env={"NOTEBOOKD_GENERATOR": "gpt"})
        raise AssertionError("notebookd started with NOTEBOOKD_GENERATOR=gpt")
    except RuntimeError as e:
        check("NOTEBOOKD_GENERATOR" in str(e), str(e))


def test_export_includes_chat_and_erasure_removes_it():
    tok, uid = user()
    nb = notebook(tok)
    sid = add_text(tok, nb, "candle", open(os.path.join(FIX, "candle.txt"), encoding="utf-8").read())
    wait_ready(tok, sid)
    conv = conversation(tok, nb, {"title": "export me"})
    out = ask(tok, conv["id"], "What is soot?")
    r = srv.get("/v1/me/export", token=tok)
    eq(r.status, 200)
    doc = r.json
    convs = doc["notebooks"][0]["conversations"]
    eq([c["id"] for c in convs], [conv["id"]])
    eq(convs[0]["message_count"], 2)
    eq(convs[0]["last_message"], out["assistant_message"])
    eq(convs[0]["deleted_at"], None)
    eq([m["id"] for m in convs[0]["messages"]], [out["user_message"]["id"], out["assistant_message"]["id"]])
    eq(convs[0]["messages"][1]["citations"], out["assistant_message"]["citations"])
    chat = [g for g in doc["generations"] if g["kind"] == "chat"]  # the source guide has one too
    eq(len(chat), 1)
    eq(chat[0]["conversation_id"], conv["id"])
    eq(chat[0]["dropped_citations"], 0)
    # erasure: the account and its conversations, messages and generation records are gone
    eq(srv.request("DELETE", "/v1/me", body={"password": "long enough pw"}, token=tok).status, 204)
    eq(psql("SELECT count(*) FROM conversations WHERE id = '%s'" % conv["id"]), "0")
    eq(psql("SELECT count(*) FROM messages WHERE conversation_id = '%s'" % conv["id"]), "0")
    eq(psql("SELECT count(*) FROM generation_history WHERE user_id = '%s'" % uid), "0")


def test_streamed_answer_with_the_extractive_generator():
    # Accept: text/event-stream: deltas, then one done equal to what GET messages returns
    fx = fixture_notebook()
    conv = conversation(fx["tok"], fx["nb"])
    r = srv.post("/v1/conversations/%s/messages" % conv["id"], {"content": "How does a candle burn?"},
                 token=fx["tok"], headers={"Accept": "text/event-stream"})
    eq(r.status, 200, r.body)
    events = []
    for block in r.body.split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln and not ln.startswith(":")]
        if lines:
            eq(lines[0][:7], "event: ")
            eq(lines[1][:6], "data: ")
            events.append((lines[0][7:], json.loads(lines[1][6:])))
    names = [e for e, _ in events]
    check(len(names) >= 2 and set(names[:-1]) == {"delta"} and names[-1] == "done", names)
    done = events[-1][1]
    eq("".join(d["text"] for e, d in events[:-1]), done["assistant_message"]["content"])
    items = srv.get("/v1/conversations/%s/messages" % conv["id"], token=fx["tok"]).json["items"]
    eq(items, [done["user_message"], done["assistant_message"]])
    check_citations(done["assistant_message"], fx["chunks"], set(fx["sids"].values()))
    # errors before the stream begins are plain JSON
    r = srv.post("/v1/conversations/%s/messages" % uuid.uuid4(), {"content": "x"}, token=fx["tok"],
                 headers={"Accept": "text/event-stream"})
    eq((r.status, r.json["error"]["code"]), (404, "not_found"))
    r = srv.post("/v1/conversations/%s/messages" % conv["id"], {"content": ""}, token=fx["tok"],
                 headers={"Accept": "text/event-stream"})
    eq((r.status, r.json["error"]["field"]), (422, "content"))
