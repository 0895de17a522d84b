"""End-to-end tests of the HTTP core: routing, errors, limits, concurrency,
deadlines, readiness, graceful shutdown and the command line."""
import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import uuid

from harness import (ADMIN_URL, BIN, DB_URL, PG_PORT, PG_SOCKET, Server, check, eq, free_port, psql,
                     raw_http, wait_until)


def _sleeping(n=1):
    """At least n /debug/sleep statements run on the database (the request is in flight)."""
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%'"
                    " AND state = 'active' AND pid <> pg_backend_pid()")) >= n

srv = None


def setup_module():
    global srv
    # every test client comes from 127.0.0.1: lift the per-client cap for the shared server
    srv = Server(env={"NOTEBOOKD_DEBUG_ROUTES": "1", "NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT": "100000"},
                 primary=True)


def teardown_module():
    eq(srv.stop(), 0, "serve must exit 0 on SIGTERM")


def test_healthz_and_readyz():
    r = srv.get("/healthz")
    eq(r.status, 200)
    eq(r.json, {"status": "ok"})
    r = srv.get("/readyz")
    eq(r.status, 200)
    eq(r.json, {"status": "ready"})
    check(r.header("Content-Type").startswith("application/json"))


def test_unknown_path_is_404_envelope():
    r = srv.get("/v1/nothing-here")
    eq(r.status, 404)
    err = r.json["error"]
    eq(err["code"], "not_found")
    check(err["message"])
    eq(err["request_id"], r.header("X-Request-Id"))
    # with or without a token, routing comes first
    r2 = srv.get("/v1/nothing-here", token="garbage")
    eq(r2.status, 404)


def test_wrong_method_is_405_with_allow():
    r = srv.request("DELETE", "/healthz")
    eq(r.status, 405)
    eq(r.json["error"]["code"], "method_not_allowed")
    eq(r.header("Allow"), "GET")


def test_request_id_kept_or_made():
    r = srv.get("/healthz", headers={"X-Request-Id": "abc.DEF_123-x"})
    eq(r.header("X-Request-Id"), "abc.DEF_123-x")
    for bad in ["has space", "x" * 65, "semi;colon", ""]:
        r = srv.get("/healthz", headers={"X-Request-Id": bad})
        rid = r.header("X-Request-Id")
        check(rid and rid != bad, "invalid request id %r must be replaced, got %r" % (bad, rid))
        uuid.UUID(rid)  # a made id is a UUID
    # the id is in the access log line
    rid = "trace-" + uuid.uuid4().hex
    srv.get("/healthz", headers={"X-Request-Id": rid})
    # the access line is written once the answer is sent: the client may read it first
    lines = wait_until(lambda: [l for l in srv.log_lines() if l.get("request_id") == rid], 10,
                       "the access log line with the request id")
    eq(lines[0]["msg"], "access")
    eq(lines[0]["status"], 200)
    eq(lines[0]["path"], "/healthz")


def test_body_over_limit_is_413():
    s2 = Server(env={"NOTEBOOKD_MAX_JSON_BYTES": "2048"})
    try:
        # announced size over the limit: answered before the body is read
        out = raw_http(s2.port, b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 999999999\r\n\r\n{")
        check(out.startswith(b"HTTP/1.1 413"), out[:100])
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        eq(body["error"]["code"], "payload_too_large")
        # chunked body that grows past the limit
        chunk = b"x" * 1500
        data = (b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
        out = raw_http(s2.port, data)
        check(out.startswith(b"HTTP/1.1 413"), out[:100])
        # the server is fine afterwards
        eq(s2.get("/healthz").status, 200)
    finally:
        eq(s2.stop(), 0)


def test_malformed_http_is_400_and_server_survives():
    for junk in [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\x03\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n"]:
        out = raw_http(srv.port, junk)
        check(out == b"" or out.startswith(b"HTTP/1.1 400"), "answer to %r: %r" % (junk, out[:80]))
    eq(srv.get("/healthz").status, 200)


def test_pipelined_requests_answered_in_order():
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: one\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: two\r\n\r\n"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Request-Id: three\r\nConnection: close\r\n\r\n")
    out = raw_http(srv.port, data)
    parts = out.split(b"HTTP/1.1 ")[1:]
    eq(len(parts), 3, out)
    check(parts[0].startswith(b"200") and b"X-Request-Id: one" in parts[0])
    check(parts[1].startswith(b"404") and b"X-Request-Id: two" in parts[1])
    check(parts[2].startswith(b"200") and b"X-Request-Id: three" in parts[2])


def _read_until_closed(s, timeout=10):
    s.settimeout(timeout)
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def test_requests_sent_while_one_is_answered_wait_their_turn():
    """Bytes of the next requests arrive while a slow one is handled: they wait, then are answered in order."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(b"GET /debug/sleep?ms=300 HTTP/1.1\r\nHost: x\r\nX-Request-Id: slow\r\n\r\n")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: next\r\n\r\nGET /nope HTTP/1.1\r\n")
        s.sendall(b"Host: x\r\nX-Request-Id: last\r\nConnection: close\r\n\r\n")
        out = _read_until_closed(s)
    finally:
        s.close()
    parts = out.split(b"HTTP/1.1 ")[1:]
    eq(len(parts), 3, out)
    check(parts[0].startswith(b"200") and b"X-Request-Id: slow" in parts[0], parts[0][:200])
    check(parts[1].startswith(b"200") and b"X-Request-Id: next" in parts[1], parts[1][:200])
    check(parts[2].startswith(b"404") and b"X-Request-Id: last" in parts[2], parts[2][:200])


def test_a_client_that_half_closes_after_its_request_gets_the_answer():
    """shutdown(SHUT_WR) right after the request (as `nc -N` does): the end of input is not an abort."""
    for path, status in [(b"/debug/sleep?ms=200", b"200"), (b"/healthz", b"200")]:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            out = _read_until_closed(s)  # the server closes once it has answered
        finally:
            s.close()
        check(out.startswith(b"HTTP/1.1 " + status), out[:200])
        eq(out.count(b"HTTP/1.1 "), 1, out[:400])
    eq(srv.get("/healthz").status, 200)


def test_keep_alive_serves_many_requests_on_one_connection():
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    for i in range(50):
        c.request("GET", "/readyz" if i % 2 else "/healthz")
        r = c.getresponse()
        r.read()
        eq(r.status, 200)
    c.close()


def _open_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
    return socks


def test_holds_1500_connections_and_answers_them_all():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    n = min(1500, hard - 200)  # as many as this process may open, 1,500 at most
    socks = _open_many(srv.port, n)
    try:
        for i, s in enumerate(socks):
            path = b"/readyz" if i % 3 == 0 else b"/healthz"
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        pending = {s.fileno(): s for s in socks}
        got = {}
        deadline = time.time() + 60
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        while pending and time.time() < deadline:
            for fd, _ in poller.poll(1000):
                s = pending.get(fd)
                if s is None:
                    continue
                data = s.recv(65536)
                got[fd] = got.get(fd, b"") + data
                if b"\r\n\r\n" in got[fd] and got[fd].endswith(b"}"):
                    poller.unregister(fd)
                    del pending[fd]
        eq(len(pending), 0, "connections without an answer")
        ok = sum(1 for v in got.values() if v.startswith(b"HTTP/1.1 200"))
        eq(ok, n)
    finally:
        for s in socks:
            s.close()


def test_slow_database_wait_does_not_stall_others():
    result = {}

    def slow():
        result["r"] = srv.get("/debug/sleep?ms=2000")

    t = threading.Thread(target=slow)
    t.start()
    wait_until(_sleeping, 10, "the slow request on the database")
    t0 = time.time()
    for _ in range(50):
        eq(srv.get("/readyz").status, 200)
    elapsed = time.time() - t0
    t.join()
    eq(result["r"].status, 200)
    check(elapsed < 1.8, "50 quick requests took %.2fs while one waited on the database" % elapsed)


def test_request_deadline_gives_503():
    s2 = Server(env={"NOTEBOOKD_DEBUG_ROUTES": "1", "NOTEBOOKD_REQUEST_TIMEOUT_MS": "400"})
    try:
        t0 = time.time()
        r = s2.get("/debug/sleep?ms=3000")
        eq(r.status, 503)
        eq(r.json["error"]["code"], "unavailable")
        check(r.header("Retry-After"))
        check(time.time() - t0 < 2.5)
        eq(s2.get("/healthz").status, 200)
        time.sleep(3)  # the late answer of the worker is dropped without harm
        eq(s2.get("/readyz").status, 200)
    finally:
        eq(s2.stop(), 0)


def test_bad_query_parameter_is_422():
    r = srv.get("/debug/sleep?ms=abc")
    eq(r.status, 422)
    eq(r.json["error"]["field"], "ms")


def test_graceful_shutdown_finishes_in_flight_requests():
    s2 = Server(env={"NOTEBOOKD_DEBUG_ROUTES": "1"})
    result = {}

    def slow():
        result["r"] = s2.get("/debug/sleep?ms=3000")

    t = threading.Thread(target=slow)
    t.start()
    wait_until(_sleeping, 10, "the slow request on the database")
    idle = socket.create_connection(("127.0.0.1", s2.port))  # an idle keep-alive client
    s2.proc.send_signal(signal.SIGTERM)

    # no longer accepting, once the server has taken the signal (a loaded machine may take a moment)
    def refused():
        try:
            s2.get("/healthz", timeout=2)
        except OSError:
            return True
        return False
    wait_until(refused, 10, "new connections to be refused while draining")
    check(t.is_alive(), "the in-flight request ended before new connections were refused")
    t.join(10)
    eq(result["r"].status, 200)
    eq(s2.proc.wait(10), 0)
    idle.close()
    eq(s2.stop(), 0)


def _tcp_proxy(listen_port, unix_path, stop):
    """A TCP → Unix-socket proxy in front of the test cluster."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(64)
    ls.settimeout(0.2)

    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        u = socket.socket(socket.AF_UNIX)
        u.connect(unix_path)
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()
    ls.close()


def test_unreachable_database_503_then_reconnects():
    port = free_port()
    url = "postgresql://notebookd@127.0.0.1:%d/notebookd?connect_timeout=2" % port
    s2 = Server(database_url=url)
    stop = threading.Event()
    try:
        eq(s2.get("/healthz").status, 200)
        r = s2.get("/readyz")
        eq(r.status, 503)
        eq(r.json["error"]["code"], "unavailable")
        check(r.header("Retry-After"))
        # the database comes up: readiness follows within the backoff
        sock_path = os.path.join(PG_SOCKET, ".s.PGSQL.%s" % PG_PORT)
        threading.Thread(target=_tcp_proxy, args=(port, sock_path, stop), daemon=True).start()
        deadline = time.time() + 15
        status = None
        while time.time() < deadline:
            status = s2.get("/readyz").status
            if status == 200:
                break
            time.sleep(0.2)
        eq(status, 200, "readyz after the database came up")
    finally:
        stop.set()
        eq(s2.stop(), 0)


def test_readyz_503_when_migrations_not_current():
    name = "nb_unmigrated_" + uuid.uuid4().hex[:8]
    psql("CREATE DATABASE " + name, ADMIN_URL)
    try:
        url = DB_URL.replace("/notebookd?", "/%s?" % name)
        s2 = Server(database_url=url)
        try:
            r = s2.get("/readyz")
            eq(r.status, 503)
            check("version" in r.json["error"]["message"] or "migrated" in r.json["error"]["message"], r.body)
        finally:
            eq(s2.stop(), 0)
    finally:
        psql("DROP DATABASE " + name, ADMIN_URL)


def _run(args, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=60)


def test_cli_help_lists_commands_and_variables():
    r = _run(["--help"], {})
    eq(r.returncode, 0)
    for word in ["serve", "migrate", "DATABASE_URL", "NOTEBOOKD_LISTEN", "NOTEBOOKD_DB_POOL_SIZE"]:
        check(word in r.stdout, word)
    r = _run(["serve", "--help"], {})
    eq(r.returncode, 0)
    check("SIGTERM" in r.stdout and "NOTEBOOKD_LISTEN" in r.stdout)
    r = _run(["bogus"], {})
    check(r.returncode != 0)


def test_cli_migrate_errors_are_one_line():
    r = _run(["migrate"], {"DATABASE_URL": "postgresql://nobody@127.0.0.1:%d/x?connect_timeout=2" % free_port()})
    check(r.returncode != 0)
    eq(len(r.stderr.strip().splitlines()), 1, r.stderr)
    check("could not connect" in r.stderr)
    r = _run(["migrate"], {"DATABASE_URL": "this is :: not a url"})
    check(r.returncode != 0)
    eq(len(r.stderr.strip().splitlines()), 1, r.stderr)
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    r = subprocess.run([BIN, "migrate"], env=env, capture_output=True, text=True)
    check(r.returncode != 0 and "DATABASE_URL" in r.stderr)
    r = _run(["migrate"], {"NOTEBOOKD_DB_POOL_SIZE": "lots", "DATABASE_URL": DB_URL})
    check(r.returncode != 0 and "NOTEBOOKD_DB_POOL_SIZE" in r.stderr)


def test_cli_migrate_twice_is_a_noop():
    r = _run(["migrate"], {"DATABASE_URL": DB_URL})
    eq(r.returncode, 0, r.stderr)
    check("0 applied" in r.stdout, r.stdout)
    count = psql("SELECT count(*) FROM schema_migrations")
    r = _run(["migrate"], {"DATABASE_URL": DB_URL})
    eq(r.returncode, 0)
    eq(psql("SELECT count(*) FROM schema_migrations"), count)


def test_serve_with_bad_listen_address_fails_cleanly():
    r = _run(["serve"], {"DATABASE_URL": DB_URL, "NOTEBOOKD_LISTEN": "nonsense"})
    check(r.returncode != 0)
    check("NOTEBOOKD_LISTEN" in r.stderr, r.stderr)
    r = _run(["serve"], {"DATABASE_URL": DB_URL, "NOTEBOOKD_LISTEN": "127.0.0.1:%d" % srv.port})
    check(r.returncode != 0, "binding a port in use must fail")


def test_metrics_in_prometheus_text_format():
    srv.get("/readyz")
    r = srv.get("/metrics")
    eq(r.status, 200)
    check(r.header("Content-Type").startswith("text/plain; version=0.0.4"), r.header("Content-Type"))
    values = {}
    for line in r.body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    for name in ["notebookd_http_requests_total", "notebookd_http_connections_open",
                 'notebookd_http_responses_total{class="2xx"}', 'notebookd_db_connections{pool="loops",state="idle"}',
                 "notebookd_db_pipeline_statements_total"]:
        check(name in values, name)
    check(values["notebookd_http_requests_total"] >= 1)
    check(values["notebookd_db_pipeline_statements_total"] >= 1)


def test_slow_and_idle_clients_are_cut_off():
    s2 = Server(env={"NOTEBOOKD_READ_TIMEOUT_MS": "400", "NOTEBOOKD_IDLE_TIMEOUT_MS": "400"})
    try:
        def closed_within(sock, seconds):
            sock.settimeout(seconds)
            try:
                data = sock.recv(100)
                return data == b""
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True

        idle = socket.create_connection(("127.0.0.1", s2.port))
        slow = socket.create_connection(("127.0.0.1", s2.port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        check(closed_within(idle, 3), "an idle connection must be closed")
        check(closed_within(slow, 3), "a request that never finishes arriving must be dropped")
        # a keep-alive connection is closed after its idle time too, having answered first
        ka = socket.create_connection(("127.0.0.1", s2.port))
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        ka.settimeout(3)
        check(ka.recv(4096).startswith(b"HTTP/1.1 200"))
        check(closed_within(ka, 3))
        for s in (idle, slow, ka):
            s.close()
        eq(s2.get("/healthz").status, 200)
    finally:
        eq(s2.stop(), 0)
