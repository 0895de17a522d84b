"""harness.py — start the real notebookd binary and speak HTTP to it.

Used by every end-to-end test. A Server runs `notebookd serve` against the
throwaway cluster that scripts/test.sh started (NB_TEST_DATABASE_URL), on a
free loopback port, with extra environment as a test needs. Its stderr (JSON
log lines) is kept in a file so tests can read the access log, and so a
failing test can show it. Stopping sends SIGTERM and checks the exit status
(and, in the ASan build, that no sanitizer report was printed).

Every response Server.request receives is checked against docs/openapi.json
(the document GET /openapi.json serves): the route and method must be in it
(or the answer a 404/405 error for an unknown path/method), the status must
be one the document lists for that operation, and a JSON body must match its
schema (JSON Schema 2020-12, python3-jsonschema). A mismatch fails the test
with the route, the status and the JSON path at fault, e.g.
  openapi: GET /v1/me -> 200: $.pending_email: 'pending_email' is a required property
tests/e2e/test_openapi.py checks the document itself and that every
documented operation is routed (`sh scripts/test.sh release openapi`); set
NB_OPENAPI_CHECK=0 to switch the response checks off while debugging
something else (CI never does).
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

BIN = os.environ.get("NOTEBOOKD_BIN", "build/release/notebookd")
DB_URL = os.environ.get("NB_TEST_DATABASE_URL", "")
ADMIN_URL = os.environ.get("NB_TEST_ADMIN_URL", "")
TMP = os.environ.get("NB_TEST_TMP", tempfile.gettempdir())
PG_SOCKET = os.environ.get("NB_TEST_PG_SOCKET", "")
PG_PORT = os.environ.get("NB_TEST_PG_PORT", "5432")
ASAN = os.environ.get("NB_MODE") == "asan"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENAPI_PATH = os.path.join(ROOT, "docs", "openapi.json")
OPENAPI_CHECK = os.environ.get("NB_OPENAPI_CHECK", "1") != "0"



class OpenAPI:
    """docs/openapi.json, with every "#/..." reference inlined, for checking responses."""

    def __init__(self, path=OPENAPI_PATH):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.routes = []  # (regex, template, path item)
        for template, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "$"
            self.routes.append((re.compile(rx), template, item))
        self._validators = {}

    def resolve(self, node, depth=0):
        if depth > 50:
            raise ValueError("openapi: reference cycle")
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/"):
                target = self.doc
                for part in node["$ref"][2:].split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                merged = dict(target)
                merged.update({k: v for k, v in node.items() if k != "$ref"})
                return self.resolve(merged, depth + 1)
            return {k: self.resolve(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v, depth + 1) for v in node]
        return node

    def match(self, path):
        path = path.split("?", 1)[0]
        for rx, template, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def problems(self, method, path, status, headers, body):
        """Returns a list of messages (empty when the response fits the document)."""
        where = "openapi: %s %s -> %d" % (method, path.split("?", 1)[0], status)
        template, item = self.match(path)
        m = method.lower()
        if m == "head":
            m = "get"
        if template is None or m not in item:
            want = 404 if template is None else 405
            if status != want:
                why = "an undocumented route" if template is None else "a method the document lacks for %s" % template
                return ["%s: %s (only %d not_found/method_not_allowed may answer it)" % (where, why, want)]
            return self.check_body(where, {"$ref": "#/components/schemas/Error"}, body, headers)
        op = item[m]
        where = "openapi: %s %s -> %d" % (method, template, status)
        resp = op["responses"].get(str(status))
        if resp is None:
            return ["%s: status %d is not documented for %s %s (documented: %s)" %
                    (where, status, method, template, ", ".join(sorted(op["responses"])))]
        resp = self.resolve(resp)
        content = resp.get("content")
        if not content:
            return ["%s: the document says no body, got %d bytes" % (where, len(body))] if body else []
        ctype = (header_of(headers, "Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in content:
            return ["%s: Content-Type %r, the document has %s" % (where, ctype, ", ".join(sorted(content)))]
        if ctype != "application/json" or method.upper() == "HEAD":
            return []
        return self.check_body(where, content[ctype]["schema"], body, headers)

    def check_body(self, where, schema, body, headers):
        import jsonschema
        try:
            instance = json.loads(body)
        except ValueError as e:
            return ["%s: the body is not JSON (%s): %r" % (where, e, body[:200])]
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(self.resolve(schema))
            self._validators[key] = v
        out = []
        for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            jp = "$" + "".join("[%d]" % p if isinstance(p, int) else ".%s" % p for p in e.absolute_path)
            out.append("%s: %s: %s" % (where, jp, e.message[:300]))
            if len(out) >= 5:
                break
        return out


_openapi = None


def openapi():
    global _openapi
    if _openapi is None:
        _openapi = OpenAPI()
    return _openapi


def header_of(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Server:
    """notebookd serve. The first server of a module (primary=True) uses the
    shared test database and runs job workers. Other servers either get a
    database of their own (isolated=True: created from the migrated template,
    dropped on stop) or run no job workers, so that servers with different
    settings never take each other's jobs."""

    def __init__(self, env=None, database_url=None, args=("serve",), primary=False, isolated=False):
        self.port = free_port()
        self.dbname = None
        if isolated and database_url is None:
            self.dbname = "nbt_" + uuid.uuid4().hex[:12]
            psql("CREATE DATABASE %s TEMPLATE notebookd_template" % self.dbname, ADMIN_URL)
            database_url = DB_URL.replace("/notebookd?", "/%s?" % self.dbname)
        self.db_url = database_url if database_url is not None else DB_URL
        self.log_path = os.path.join(TMP, "notebookd-%s.log" % uuid.uuid4().hex[:8])
        self.mail_dir = os.path.join(TMP, "mail-%s" % uuid.uuid4().hex[:8])
        e = dict(os.environ)
        e.update({
            "DATABASE_URL": database_url if database_url is not None else DB_URL,
            "NOTEBOOKD_LISTEN": "127.0.0.1:%d" % self.port,
            "NOTEBOOKD_JWT_SECRET": "test-secret-" + "x" * 40,
            "NOTEBOOKD_MAIL_DIR": self.mail_dir,
            "NOTEBOOKD_EXPOSE_STATEMENT_COUNT": "1",
            "NOTEBOOKD_ALLOW_PRIVATE_URLS": "1",
            "NOTEBOOKD_AUTH_RATE_PER_MIN": "0",
            "NOTEBOOKD_AUTH_IP_RATE_PER_MIN": "0",
            # API-wide limits off for every suite but the one that tests them (test_limits.py)
            "NOTEBOOKD_RATE_READ_PER_MIN": "0",
            "NOTEBOOKD_RATE_WRITE_PER_MIN": "0",
            "NOTEBOOKD_RATE_UPLOAD_PER_MIN": "0",
            "NOTEBOOKD_RATE_GENERATE_PER_MIN": "0",
            "NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS": "3000",
        })
        if not (primary or isolated):
            e["NOTEBOOKD_WORKERS"] = "0"
        e.update(env or {})
        self.env = e
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN] + list(args), env=e, stdout=self.log, stderr=self.log)
        self.wait_up()

    def wait_up(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("notebookd exited with %s:\n%s" % (self.proc.returncode, self.read_log()[-3000:]))
            try:
                r = self._request("GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("notebookd did not come up:\n" + self.read_log()[-3000:])

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        out = []
        for line in self.read_log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def request(self, method, path, body=None, headers=None, token=None, timeout=30, raw=None):
        """One request on a new connection. The response is checked against
        docs/openapi.json (see the module comment) unless the path is under
        /debug/ (test-only routes, not part of the API)."""
        r = self._request(method, path, body, headers, token, timeout, raw)
        if OPENAPI_CHECK and not path.startswith("/debug/"):
            problems = openapi().problems(method, path, r.status, r.headers, r.body)
            if problems:
                raise AssertionError("\n".join(problems) + "\n  body: " + r.body[:500])
        return r

    def _request(self, method, path, body=None, headers=None, token=None, timeout=30, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            data = None
            if raw is not None:
                data = raw
            elif body is not None:
                data = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            if token:
                h["Authorization"] = "Bearer " + token
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            return Response(resp.status, resp.getheaders(), payload.decode("utf-8", "replace"))
        finally:
            conn.close()

    def psql(self, sql):
        return psql(sql, self.db_url)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("notebookd did not stop within %ss" % timeout)
        self.log.close()
        if self.dbname:
            psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.dbname, ADMIN_URL)
            self.dbname = None
        log = self.read_log()
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            raise AssertionError("sanitizer report:\n" + log[-6000:])
        return self.proc.returncode


class Worker:
    """`notebookd worker --concurrency N` on database db_url with extra env,
    its output in a log file; stop() checks the log for sanitizer reports."""

    def __init__(self, db_url, env=None, concurrency=2, name="worker"):
        self.log_path = os.path.join(TMP, "%s-%s.log" % (name, uuid.uuid4().hex[:8]))
        self.log = open(self.log_path, "wb")
        e = dict(os.environ, DATABASE_URL=db_url, **(env or {}))
        self.proc = subprocess.Popen([BIN, "worker", "--concurrency", str(concurrency)], env=e, stdout=self.log,
                                     stderr=self.log)

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)
        self.log.close()
        log = self.read_log()
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            raise AssertionError("sanitizer report:\n" + log[-6000:])
        return self.proc.returncode


def raw_http(port, data, timeout=5, read_all=True):
    """Sends raw bytes, returns everything the server answers until it closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_all:
                break
        return b"".join(chunks)
    finally:
        s.close()


def psql(sql, url=None):
    """Runs SQL through psql on the test cluster; returns stdout."""
    out = subprocess.run(["psql", url or DB_URL, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError("psql failed: " + out.stderr)
    return out.stdout.strip()


PASSWORD = "long enough pw"


def register(s, prefix="user", password=PASSWORD, email=None, name=None, headers=None):
    """Registers a new account on server s (POST /v1/auth/register, which must
    answer 201) under a fresh address PREFIX-<random>@example.com, or `email`;
    returns the response's JSON (access_token, refresh_token, user, ...)."""
    body = {"email": email or "%s-%s@example.com" % (prefix, uuid.uuid4().hex[:12]), "password": password}
    if name is not None:
        body["display_name"] = name
    r = s.post("/v1/auth/register", body, headers=headers)
    eq(r.status, 201, r.body)
    return r.json


def metric_samples(text):
    """The samples of a Prometheus text page as {series: float}, each series
    as the page writes it (`name` or `name{labels}`); comments skipped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def metrics(s):
    """The samples of server s's /metrics page (see metric_samples)."""
    return metric_samples(s.get("/metrics").body)


def wait_until(fn, timeout=30.0, what="the condition", interval=0.02):
    """Polls fn() until it returns a truthy value and returns that value; fails
    with `what` when timeout seconds pass first. Use it instead of a sleep
    wherever a test waits for a state it can observe."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def skip(reason):
    """Ends the current test (or, from setup_module, the module) as skipped:
    counted and printed "ok - name # SKIP reason"; CI fails on any skip."""
    raise unittest.SkipTest(reason)


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%r != %r %s" % (a, b, msg))
