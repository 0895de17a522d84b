"""End-to-end tests of the openai generator against tests/e2e/fake_llm.py (a
local OpenAI-compatible server that misbehaves on demand; never the
network), and of streamed answers (server-sent events): deltas then one
done equal to what GET messages returns; every misbehaviour of the model
server gives a clear error or a graceful "no answer", a failed generation
record and nothing half-stored; a client that disconnects mid-stream
cancels the upstream request; keep-alive comments while the model is
silent; the context budget trims an over-long prompt instead of failing;
the notebook's language is used for retrieval."""
import json
import socket
import time

from fake_llm import FakeLLM
import harness
from harness import Server, check, eq, wait_until

srv = None
fake = None
NO_ANSWER = "I could not find anything in this notebook's sources that answers this question."
TEXT = ("A candle burns because the heat of the flame melts the wax near the wick. "
        "The liquid wax is drawn up the wick by capillary action. "
        "In the flame the wax vapour reacts with oxygen and gives off heat and light. ") * 3
ctx = {}


def setup_module():
    global srv, fake
    fake = FakeLLM().start()
    srv = Server(primary=True, env=llm_env())


def llm_env():
    return {
        "NOTEBOOKD_GENERATOR": "openai",
        "NOTEBOOKD_LLM_URL": fake.url,
        "NOTEBOOKD_LLM_MODEL": "fake-model",
        "NOTEBOOKD_LLM_API_KEY": "sk-test",
        "NOTEBOOKD_LLM_IDLE_TIMEOUT_MS": "1500",
        "NOTEBOOKD_LLM_RETRIES": "2",
        "NOTEBOOKD_LLM_CONTEXT_TOKENS": "2048",
        "NOTEBOOKD_LLM_MAX_TOKENS": "512",
        "NOTEBOOKD_CHAT_KEEPALIVE_MS": "300",
    }


def teardown_module():
    eq(srv.stop(), 0)
    fake.stop()


def user():
    return harness.register(srv, "llm")["access_token"]


def notebook_with_text(tok, text=TEXT, language=None):
    body = {"title": "llm"}
    if language:
        body["language"] = language
    r = srv.post("/v1/notebooks", body, token=tok)
    eq(r.status, 201, r.body)
    nb = r.json["id"]
    r = srv.post("/v1/notebooks/%s/sources" % nb, {"kind": "text", "title": "t", "content": text}, token=tok)
    eq(r.status, 202, r.body)
    sid = r.json["source"]["id"]

    def ready():
        s = srv.get("/v1/sources/" + sid, token=tok).json
        check(s["status"] != "failed", s)
        return s["status"] == "ready"
    wait_until(ready, 60, "the source to be ready")

    # A ready source enqueues its source guide, a structured request to the
    # model server that may come after the test's own (fake.requests[-1]) or
    # take a mode planned for it: wait until that job has ended.
    def guide_done():
        jobs = srv.get("/v1/jobs?limit=100", token=tok).json["items"]
        return (any(j["kind"] == "generate_source_guide" for j in jobs)
                and all(j["status"] in ("succeeded", "dead") for j in jobs))
    wait_until(guide_done, 60, "the source guide's job to end")
    return nb


def setup():
    """A user, a notebook with a ready source, a new conversation; the model server behaves."""
    fake.plan([])
    fake.mode = "ok"
    if not ctx:
        tok = user()
        ctx.update(tok=tok, nb=notebook_with_text(tok))
    r = srv.post("/v1/notebooks/%s/conversations" % ctx["nb"], {}, token=ctx["tok"])
    eq(r.status, 201)
    return ctx["tok"], ctx["nb"], r.json["id"]


def messages(tok, conv):
    r = srv.get("/v1/conversations/%s/messages" % conv, token=tok)
    eq(r.status, 200)
    return r.json["items"]


def last_generation(tok, nb):
    return srv.get("/v1/generations?notebook_id=" + nb, token=tok).json["items"][0]


def parse_sse(text):
    """[(event, data)] and the number of comment lines."""
    events, comments = [], 0
    for block in text.split("\n\n"):
        ev, data = None, None
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if ev:
            events.append((ev, data))
    return events, comments


def ask_sse(tok, conv, content="How does a candle burn?"):
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": content}, token=tok,
                 headers={"Accept": "text/event-stream"})
    return r


def check_citations(tok, msg):
    for c in msg["citations"]:
        r = srv.get("/v1/sources/%s/chunks?limit=100" % c["source_id"], token=tok)
        texts = {ch["id"]: ch["text"] for ch in r.json["items"]}
        eq(texts[c["chunk_id"]][c["char_start"]:c["char_end"]], c["quote"])


# ---- the happy paths -----------------------------------------------------------

def test_streamed_answer_deltas_then_done_equal_to_stored():
    tok, nb, conv = setup()
    r = ask_sse(tok, conv)
    eq(r.status, 200, r.body)
    check(r.header("Content-Type").startswith("text/event-stream"), r.headers)
    events, _ = parse_sse(r.body)
    names = [e for e, _ in events]
    check(len(names) >= 3 and set(names[:-1]) == {"delta"} and names[-1] == "done", names)
    done = events[-1][1]
    eq(sorted(done), ["assistant_message", "user_message"])
    stored = messages(tok, conv)
    eq(stored, [done["user_message"], done["assistant_message"]])
    streamed = "".join(d["text"] for e, d in events if e == "delta")
    eq(streamed, done["assistant_message"]["content"])
    check("[1]" in streamed and '"' not in streamed.split("[1]")[1], streamed)  # markers became [n]
    eq(len(done["assistant_message"]["citations"]), 1)
    check_citations(tok, done["assistant_message"])
    g = last_generation(tok, nb)
    eq((g["provider"], g["model"], g["status"], g["input_tokens"], g["output_tokens"], g["dropped_citations"]),
       ("openai", "fake-model", "succeeded", 321, 45, 0))
    # the request the model server saw: streamed, numbered sources, the citation form, the key
    body = fake.requests[-1]
    eq((body["model"], body["stream"]), ("fake-model", True))
    check("[1] " in body["messages"][0]["content"] and '[2: "' in body["messages"][0]["content"])
    eq(body["messages"][-1], {"role": "user", "content": "How does a candle burn?"})


def test_plain_answer_and_follow_up_carries_history():
    tok, nb, conv = setup()
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "How does a candle burn?"}, token=tok)
    eq(r.status, 201, r.body)
    a = r.json["assistant_message"]
    eq(len(a["citations"]), 1)
    check_citations(tok, a)
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "and why is that?"}, token=tok)
    eq(r.status, 201, r.body)
    roles = [m["role"] for m in fake.requests[-1]["messages"]]
    eq(roles, ["system", "user", "assistant", "user"])


def test_429_then_ok_is_retried():
    tok, nb, conv = setup()
    n = len(fake.requests)
    fake.plan(["429", "500", "ok"])
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "How does a candle burn?"}, token=tok)
    eq(r.status, 201, r.body)
    eq(len(fake.requests) - n, 3)
    eq(len(messages(tok, conv)), 2)


# ---- misbehaving model servers ---------------------------------------------------

def failed(tok, nb, conv, status, fragment, stream=False):
    """The answer failed cleanly: 503 (or an error event), a failed record, nothing stored."""
    if stream:
        r = ask_sse(tok, conv)
        eq(r.status, 200, r.body)
        events, comments = parse_sse(r.body)
        eq(events[-1][0], "error", r.body)
        eq(events[-1][1]["error"]["code"], "unavailable")
        check(all(e == "delta" for e, _ in events[:-1]), events)
    else:
        r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "How does a candle burn?"}, token=tok)
        eq(r.status, status, r.body)
        eq(r.json["error"]["code"], "unavailable")
        comments = 0
    eq(messages(tok, conv), [])
    g = last_generation(tok, nb)
    eq((g["provider"], g["status"]), ("openai", "failed"))
    check(fragment in g["error"], g["error"])
    return comments


def test_500_after_retries_fails_cleanly():
    tok, nb, conv = setup()
    fake.plan(["500", "500", "500"])
    failed(tok, nb, conv, 503, "HTTP 500")


def test_429_every_time_fails_cleanly():
    tok, nb, conv = setup()
    fake.mode = "429"
    failed(tok, nb, conv, 503, "HTTP 429", stream=True)


def test_hang_before_first_byte_times_out_with_keepalives():
    tok, nb, conv = setup()
    fake.mode = "hang"
    t0 = time.time()
    comments = failed(tok, nb, conv, 503, "sent nothing", stream=True)
    check(comments >= 2, "keep-alive comments while the model was silent: %d" % comments)
    check(time.time() - t0 < 20)


def test_garbage_fails_cleanly():
    tok, nb, conv = setup()
    fake.mode = "garbage"
    failed(tok, nb, conv, 503, "garbage")


def test_close_mid_stream_fails_cleanly_plain_and_streamed():
    tok, nb, conv = setup()
    fake.mode = "close"
    failed(tok, nb, conv, 503, "model server")
    failed(tok, nb, conv, 503, "model server", stream=True)


def test_citing_a_chunk_not_given_is_dropped_and_counted():
    tok, nb, conv = setup()
    fake.mode = "badcite"
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "How does a candle burn?"}, token=tok)
    eq(r.status, 201, r.body)
    a = r.json["assistant_message"]
    eq(len(a["citations"]), 1)
    check("[1]" in a["content"] and "[2]" not in a["content"] and "99" not in a["content"], a["content"])
    check_citations(tok, a)
    eq(last_generation(tok, nb)["dropped_citations"], 1)


def test_no_answer_is_graceful():
    tok, nb, conv = setup()
    fake.mode = "noanswer"
    r = ask_sse(tok, conv)
    events, _ = parse_sse(r.body)
    eq(events[-1][0], "done")
    a = events[-1][1]["assistant_message"]
    eq((a["content"], a["citations"]), (NO_ANSWER, []))
    check("NO_ANSWER" not in r.body, r.body)


def test_client_disconnect_cancels_the_upstream_request():
    tok, nb, conv = setup()
    fake.mode = "drip"
    before = fake.cancelled
    body = json.dumps({"content": "How does a candle burn?"}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /v1/conversations/%s/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (conv.encode(), tok.encode(), len(body)) + body)
    got = b""
    while got.count(b"event: delta") < 3:
        b = s.recv(4096)
        check(b, "the stream ended early: %r" % got)
        got += b
    check(got.startswith(b"HTTP/1.1 200"), got[:100])
    s.close()
    wait_until(lambda: fake.cancelled > before, 15, "the model server to see its request cancelled")
    eq(messages(tok, conv), [])
    g = wait_until(lambda: (lambda x: x["status"] == "failed" and x)(last_generation(tok, nb)), 10,
                   "the failed generation record")
    check("cancelled" in g["error"], g)


def test_deadline_cancels_a_plain_answer():
    # a non-streamed answer past the request deadline: 503, the upstream request cancelled, nothing stored
    fake.mode = "drip"
    tok = user()
    nb = notebook_with_text(tok)
    s = Server(env=dict(llm_env(), NOTEBOOKD_REQUEST_TIMEOUT_MS="1000"))
    try:
        conv = s.post("/v1/notebooks/%s/conversations" % nb, {}, token=tok).json["id"]
        before = fake.cancelled
        r = s.post("/v1/conversations/%s/messages" % conv, {"content": "How does a candle burn?"}, token=tok)
        eq(r.status, 503, r.body)
        wait_until(lambda: fake.cancelled > before, 15, "the model server to see its request cancelled")
        wait_until(lambda: last_generation(tok, nb)["status"] == "failed", 10, "the failed generation record")
        eq(messages(tok, conv), [])
    finally:
        fake.mode = "ok"
        eq(s.stop(), 0)


def test_context_budget_trims_instead_of_failing():
    tok, nb, conv = setup()
    question = ("candle wax wick flame " * 500)[:9000]
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": question}, token=tok)
    eq(r.status, 201, r.body)
    sent = sum(len(m["content"]) for m in fake.requests[-1]["messages"])
    check(sent // 4 <= 2048 - 512, "prompt of about %d tokens for a 2048-token model" % (sent // 4))


def test_notebook_language_is_used_for_retrieval():
    # German stemming matches "Häuser" in the question with "Haus" in the text; English would not
    fake.mode = "ok"
    tok = user()
    nb = notebook_with_text(tok, "Das alte Haus stand lange am Fluss. " * 3, language="de")
    r = srv.post("/v1/notebooks/%s/conversations" % nb, {}, token=tok)
    conv = r.json["id"]
    r = srv.post("/v1/conversations/%s/messages" % conv, {"content": "Häuser"}, token=tok)
    eq(r.status, 201, r.body)
    check("[1] Das alte Haus" in fake.requests[-1]["messages"][0]["content"], fake.requests[-1]["messages"][0])
