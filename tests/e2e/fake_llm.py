"""fake_llm.py — a small OpenAI-compatible chat-completions server for tests
and benchmarks, which misbehaves on demand.

It speaks POST /v1/chat/completions, streamed (`"stream": true`: SSE
`data: {chunk}` lines with choices[0].delta.content, a usage chunk, then
`data: [DONE]`) and not (one JSON completion). The answer cites the first
numbered source it was given, with words copied from it, in the form the
prompt asks for ([1: "exact words"]).

It is asyncio (stdlib only), so one process holds thousands of open
streams (the 1,000-stream benchmark). Tests run it in a thread
(FakeLLM().start()); benchmarks run it as a program:
    python3 tests/e2e/fake_llm.py --port 0 --mode slow --seconds 5
which prints the port it listens on.

Behaviours (`mode`, or a queue of them with plan([...]), one per request):
  ok        a short streamed answer citing source 1
  slow      the answer in `pieces` deltas spread over `seconds`
  drip      a long answer, one delta every 100 ms (for disconnect tests)
  hang      reads the request and sends nothing, ever
  garbage   200 text/event-stream whose data lines are not JSON
  429       429 Too Many Requests (then the next planned mode)
  500       500 Internal Server Error
  close     a few deltas, then the connection is closed mid-stream
  badcite   cites a source number it was not given, and source 1 correctly
  noanswer  answers NO_ANSWER
  badjson   (non-streamed) content that is not JSON
Every request is recorded (its JSON body); `cancelled` counts requests whose
client went away before the answer ended.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import sys
import threading
import time


def first_source(body):
    """(number, quote) of the first numbered source in the prompt, or (None, None)."""
    for m in body.get("messages", []):
        if m.get("role") != "system":
            continue
        mm = re.search(r"^\[(\d+)\] ([^\n]*)", m.get("content", ""), re.M)
        if mm:
            text = mm.group(2)
            words = text.split(" ")
            quote = " ".join(words[:8])
            quote = quote.split('"')[0].strip()
            if quote and quote in text:
                return int(mm.group(1)), quote
    return None, None


class FakeLLM:
    def __init__(self, mode="ok", seconds=5.0, pieces=20):
        self.mode = mode
        self.seconds = seconds
        self.pieces = pieces
        self.queue = []
        self.requests = []
        self.cancelled = 0
        self.completed = 0
        self.active = 0
        self.port = None
        self._loop = None
        self._thread = None
        self._server = None
        self._lock = threading.Lock()

    def plan(self, modes):
        with self._lock:
            self.queue = list(modes)

    def _next_mode(self):
        with self._lock:
            return self.queue.pop(0) if self.queue else self.mode

    # ---- HTTP --------------------------------------------------------------

    async def _handle(self, reader, writer):
        self.active += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            hdrs = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0"))
            raw = await reader.readexactly(n) if n else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            with self._lock:
                self.requests.append(body)
            if method != "POST" or not path.endswith("/chat/completions"):
                await self._plain(writer, 404, {"error": {"message": "not found"}})
                return
            mode = self._next_mode()
            eof = asyncio.ensure_future(reader.read(1))  # the client closing shows here
            try:
                done = await self._answer(writer, body, mode, eof)
            finally:
                if not eof.done():
                    eof.cancel()
            if done:
                self.completed += 1
            else:
                self.cancelled += 1
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except Exception:  # a bug here must show, not look like a flaky model server
            import traceback
            traceback.print_exc()
        finally:
            self.active -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _plain(self, writer, status, obj):
        data = json.dumps(obj).encode()
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}[status]
        writer.write(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n" % (status, reason, len(data))).encode() + data)
        await writer.drain()

    async def _chunk(self, writer, text, eof):
        if eof.done():
            raise ConnectionResetError("client went away")
        data = text.encode()
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    async def _delta(self, writer, content, eof):
        obj = {"id": "fake", "object": "chat.completion.chunk", "model": "fake",
               "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
        await self._chunk(writer, "data: %s\n\n" % json.dumps(obj), eof)

    async def _answer(self, writer, body, mode, eof):
        """True when the answer was sent whole, False when the client left first."""
        if mode == "429":
            await self._plain(writer, 429, {"error": {"message": "rate limited"}})
            return True
        if mode == "500":
            await self._plain(writer, 500, {"error": {"message": "boom"}})
            return True
        if mode == "hang":
            await eof  # until the client gives up
            return False
        num, quote = first_source(body)
        if mode == "noanswer" or num is None:
            text = "NO_ANSWER"
        elif mode == "badcite":
            text = 'The sources say %s [%d: "%s"] and more [99: "words from nowhere"].' % (quote, num, quote)
        else:
            text = 'The sources say: %s [%d: "%s"].' % (quote, num, quote)
        if not body.get("stream"):
            if mode == "badjson":
                content = "this is not json"
            elif body.get("response_format"):
                content = json.dumps({"answer": text})
            else:
                content = text
            await self._plain(writer, 200, {
                "id": "fake", "object": "chat.completion", "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 111, "completion_tokens": 22, "total_tokens": 133}})
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        await writer.drain()
        try:
            if mode == "garbage":
                await self._chunk(writer, "data: {this is not json\n\n", eof)
                await self._chunk(writer, "", eof)
                return True
            if mode == "drip":
                for i in range(600):
                    await self._delta(writer, "word%d " % i, eof)
                    await asyncio.sleep(0.1)
                return True
            pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
            if mode == "slow":
                n = max(1, self.pieces)
                step = (len(text) + n - 1) // n
                pieces = [text[i:i + step] for i in range(0, len(text), step)]
                delay = self.seconds / len(pieces)
            else:
                delay = 0.005
            for i, p in enumerate(pieces):
                if mode == "close" and i == 3:
                    writer.transport.abort()
                    return True
                await self._delta(writer, p, eof)
                await asyncio.sleep(delay)
            usage = {"id": "fake", "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}}
            await self._chunk(writer, "data: %s\n\n" % json.dumps(usage), eof)
            await self._chunk(writer, "data: [DONE]\n\n", eof)
            await self._chunk(writer, "", eof)
            return True
        except ConnectionError:
            return False

    # ---- running -------------------------------------------------------------

    async def _serve(self, port, ready):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self, port=0):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve(port, ready))
            except asyncio.CancelledError:
                pass

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d/v1" % self.port

    def stop(self):
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._server.close)
            for t in asyncio.all_tasks(self._loop) if False else []:
                t.cancel()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pieces", type=int, default=20)
    a = ap.parse_args()
    f = FakeLLM(a.mode, a.seconds, a.pieces)

    async def run():
        ready = asyncio.Event()
        t = asyncio.ensure_future(f._serve(a.port, ready))
        await ready.wait()
        try:  # one write, so a reader that takes the line and closes never half-reads it
            sys.stdout.write("%d\n" % f.port)
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        while True:
            await asyncio.sleep(5)
            print(json.dumps({"t": time.time(), "active": f.active, "completed": f.completed,
                              "cancelled": f.cancelled}), file=sys.stderr, flush=True)
        await t

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        asyncio.run(run())
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
