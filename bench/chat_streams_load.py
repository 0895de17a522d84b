"""chat_streams_load.py — the load side of bench_chat_streams.sh.

Opens N streamed chats at once (POST /v1/conversations/{id}/messages with
Accept: text/event-stream, one conversation each), reads every stream to its
`done` (or `error`), and meanwhile probes another endpoint (GET /v1/me) every
100 ms and samples notebookd's resident memory. asyncio, stdlib only, so one
process holds thousands of streams.

usage: chat_streams_load.py PORT PID N
Prints one JSON line of figures.
"""
import asyncio
import json
import sys
import time
import urllib.request

PORT, PID, N = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def api(method, path, body=None, tok=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (PORT, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def rss_kib():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


async def stream(tok, conv, results):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT, limit=1 << 20)
        body = json.dumps({"content": "How does a candle burn?"}).encode()
        writer.write(b"POST /v1/conversations/%s/messages HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer %s\r\n"
                     b"Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (conv.encode(), tok.encode(), len(body)) + body)
        await writer.drain()
        data = b""
        first = None
        while True:
            b = await reader.read(65536)
            if not b:
                break
            if first is None and b"event: delta" in data + b:
                first = time.monotonic() - t0
            data += b
            if b"event: done" in data or b"event: error" in data:
                if data.endswith(b"0\r\n\r\n"):
                    break
        writer.close()
        ok = b"event: done" in data
        results.append((ok, time.monotonic() - t0, first or 0.0, data.count(b"event: delta")))
    except Exception as e:  # counted as a failure
        results.append((False, time.monotonic() - t0, 0.0, 0))
        print("stream failed: %r" % e, file=sys.stderr)


async def probe(tok, lat, stop):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.write(b"GET /v1/me HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
                         % tok.encode())
            await writer.drain()
            await reader.read()
            writer.close()
            lat.append((time.monotonic() - t0) * 1000)
        except Exception:
            pass
        await asyncio.sleep(0.1)


async def sample_rss(samples, stop):
    while not stop.is_set():
        samples.append(rss_kib())
        await asyncio.sleep(0.25)


async def main():
    email = "bench-%d@example.com" % time.time_ns()
    tok = api("POST", "/v1/auth/register", {"email": email, "password": "long enough pw"})["access_token"]
    nb = api("POST", "/v1/notebooks", {"title": "bench"}, tok)["id"]
    text = ("A candle burns because the heat of the flame melts the wax near the wick. "
            "The liquid wax is drawn up the wick by capillary action. ") * 20
    sid = api("POST", "/v1/notebooks/%s/sources" % nb, {"kind": "text", "title": "candle", "content": text},
              tok)["source"]["id"]
    for _ in range(600):
        if api("GET", "/v1/sources/" + sid, tok=tok)["status"] == "ready":
            break
        time.sleep(0.1)
    convs = [api("POST", "/v1/notebooks/%s/conversations" % nb, {}, tok)["id"] for _ in range(N)]
    # the other endpoint's latency, idle
    idle, stop = [], asyncio.Event()
    t = asyncio.ensure_future(probe(tok, idle, stop))
    await asyncio.sleep(3)
    stop.set()
    await t
    rss_before = rss_kib()
    results, busy, rss = [], [], []
    stop = asyncio.Event()
    side = [asyncio.ensure_future(probe(tok, busy, stop)), asyncio.ensure_future(sample_rss(rss, stop))]
    t0 = time.monotonic()
    await asyncio.gather(*(stream(tok, c, results) for c in convs))
    wall = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*side)
    durs = [d for ok, d, _, _ in results if ok]
    firsts = [f for ok, _, f, _ in results if ok]
    print(json.dumps({
        "streams": N, "completed": sum(1 for r in results if r[0]), "wall_s": round(wall, 2),
        "stream_p50_s": round(pct(durs, 0.5), 2), "stream_max_s": round(max(durs or [0]), 2),
        "first_delta_p50_s": round(pct(firsts, 0.5), 2), "first_delta_p95_s": round(pct(firsts, 0.95), 2),
        "deltas_per_stream_min": min((r[3] for r in results), default=0),
        "rss_before_mib": round(rss_before / 1024, 1), "rss_peak_mib": round(max(rss or [0]) / 1024, 1),
        "rss_after_mib": round(rss_kib() / 1024, 1),
        "me_idle_p50_ms": round(pct(idle, 0.5), 2), "me_idle_p95_ms": round(pct(idle, 0.95), 2),
        "me_busy_p50_ms": round(pct(busy, 0.5), 2), "me_busy_p95_ms": round(pct(busy, 0.95), 2),
        "me_busy_samples": len(busy)}))


asyncio.run(main())
