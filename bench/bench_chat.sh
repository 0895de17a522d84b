#!/bin/sh
# Chat with the extractive generator over one notebook of 1M chunks (issue
# 10): the chunks are made from the fixture corpus's sentences, shuffled, and
# loaded with COPY (the GIN index built after); then a question's p50/p95
# latency, asked one at a time (each in a new conversation), and requests/s
# with 100 concurrent askers (each on its own connection and conversation).
# CHUNKS=N changes the size.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
CHUNKS=${CHUNKS:-1000000}
bench_start
serve_start NOTEBOOKD_WORKERS=0 NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT=100000 NOTEBOOKD_AUTH_RATE_PER_MIN=0 \
	NOTEBOOKD_AUTH_IP_RATE_PER_MIN=0 NOTEBOOKD_IO_THREADS="$cores"
python3 - "$port" "$tmp" <<'PY'
import json, sys, urllib.request
port, tmp = sys.argv[1], sys.argv[2]
def api(m, p, b=None, tok=None):
    r = urllib.request.Request("http://127.0.0.1:%s%s" % (port, p), method=m, data=json.dumps(b).encode() if b is not None else None)
    r.add_header("Content-Type", "application/json")
    if tok: r.add_header("Authorization", "Bearer " + tok)
    return json.loads(urllib.request.urlopen(r, timeout=60).read() or b"null")
tok = api("POST", "/v1/auth/register", {"email": "chatbench@example.com", "password": "long enough pw"})["access_token"]
nb = api("POST", "/v1/notebooks", {"title": "1M chunks"}, tok)["id"]
open(tmp + "/ids", "w").write("%s %s\n" % (tok, nb))
PY
read -r TOK NB < "$tmp/ids"
echo "seeding $CHUNKS chunks in one notebook (COPY) ..."
t0=$(date +%s)
"$PGBIN/psql" "$DATABASE_URL" -q -c "INSERT INTO sources (id, notebook_id, title, kind, status, chunk_count)
  SELECT gen_random_uuid(), '$NB', 'source ' || k, 'text', 'ready', $CHUNKS / 100 FROM generate_series(1, 100) k" \
	-c "DROP INDEX chunks_notebook_tsv_idx"
"$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT id FROM sources WHERE notebook_id = '$NB' ORDER BY id" > "$tmp/sources"
python3 - "$CHUNKS" "$NB" "$tmp/sources" <<'PY' | "$PGBIN/psql" "$DATABASE_URL" -q -c "COPY chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count) FROM STDIN"
import random, re, sys, uuid
n, nb, srcs = int(sys.argv[1]), sys.argv[2], open(sys.argv[3]).read().split()
sents = []
for f in ("candle.txt", "water_cycle.txt", "printing.txt"):
    t = open("tests/fixtures/chat/" + f, encoding="utf-8").read()
    sents += [s.strip() for s in re.split(r"(?<=[.!?])\s+", t) if len(s.strip()) > 20]
rnd = random.Random(1)
out = sys.stdout
per = n // len(srcs) + 1
for i in range(n):
    text = " ".join(rnd.choice(sents) for _ in range(3)).replace("\\", " ").replace("\t", " ").replace("\n", " ")
    out.write("%s\t%s\t%s\t%d\t%s\t0\t%d\t%d\n" % (uuid.UUID(int=rnd.getrandbits(128), version=4), srcs[i // per], nb,
                                                i % per, text, len(text), len(text) // 4))
PY
"$PGBIN/psql" "$DATABASE_URL" -q -c "CREATE INDEX chunks_notebook_tsv_idx ON chunks USING gin (notebook_id, tsv) WHERE deleted_at IS NULL" \
	-c "VACUUM ANALYZE chunks"
echo "seeded in $(( $(date +%s) - t0 )) s"
python3 - "$port" "$TOK" "$NB" "$tmp" <<'PY'
import json, sys, time, urllib.request
port, tok, nb, tmp = sys.argv[1:5]
def api(m, p, b=None):
    r = urllib.request.Request("http://127.0.0.1:%s%s" % (port, p), method=m, data=json.dumps(b).encode() if b is not None else None)
    r.add_header("Content-Type", "application/json")
    r.add_header("Authorization", "Bearer " + tok)
    return json.loads(urllib.request.urlopen(r, timeout=120).read() or b"null")
qs = [q["question"] for q in json.load(open("tests/fixtures/chat/questions.json"))]
lat, cited = [], 0
for i in range(60):
    conv = api("POST", "/v1/notebooks/%s/conversations" % nb, {})["id"]
    t0 = time.monotonic()
    r = api("POST", "/v1/conversations/%s/messages" % conv, {"content": qs[i % len(qs)]})
    lat.append((time.monotonic() - t0) * 1000)
    cited += bool(r["assistant_message"]["citations"])
lat.sort()
print("one question at a time (60): p50 %.1f ms, p95 %.1f ms, max %.1f ms; %d answers cite something" % (
    lat[len(lat) // 2], lat[int(len(lat) * 0.95)], lat[-1], cited))
convs = [api("POST", "/v1/notebooks/%s/conversations" % nb, {})["id"] for _ in range(100)]
# 100 concurrent askers, each on a keep-alive connection and a conversation of its own, for 20 s (asyncio:
# wrk is not on every machine)
import asyncio
async def asker(conv, k, lat, bad, until):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    i = k
    while time.monotonic() < until:
        body = json.dumps({"content": qs[i % len(qs)]}).encode()
        i += 1
        t0 = time.monotonic()
        writer.write(b"POST /v1/conversations/%s/messages HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer %s\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (conv.encode(), tok.encode(), len(body)) + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        await reader.readexactly(n)
        lat.append((time.monotonic() - t0) * 1000)
        if not head.startswith(b"HTTP/1.1 201"):
            bad.append(head[:40])
    writer.close()
async def load():
    lat, bad = [], []
    t0 = time.monotonic()
    await asyncio.gather(*(asker(c, k, lat, bad, t0 + 20) for k, c in enumerate(convs)))
    wall = time.monotonic() - t0
    lat.sort()
    import collections
    print("100 concurrent askers, 20 s: %.1f answers/s, p50 %.0f ms, p95 %.0f ms, %d not 201 %s" % (
        len(lat) / wall, lat[len(lat) // 2], lat[int(len(lat) * 0.95)], len(bad),
        dict(collections.Counter(b.split(b"\r\n")[0].decode() for b in bad))))
asyncio.run(load())
PY
echo "notebookd RSS: $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$serve_pid/status)"
