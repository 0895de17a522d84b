"""Zero-downtime restart (issue 13, point 2).

The test plays systemd: it binds and listens on a loopback socket itself and
starts `notebookd serve` with that socket as fd 3 (LISTEN_FDS=1, LISTEN_PID
set to the server's pid, as socket activation does). Under a steady load of
bounded client loops (a new connection per request, reads and writes, plus
slow requests in flight), a second process is started on the same inherited
socket, the first gets SIGTERM and drains, and then the same again from the
second to a third: not one request fails, is refused or is reset, and each
process served a share of the load.
"""
import json
import os
import socket
import sys
import threading
import uuid

import harness
from harness import Server, check, eq, wait_until

# a tiny launcher: puts the passed socket on fd 3 and execs notebookd with the
# socket-activation variables naming its own pid (execv keeps the pid)
LAUNCH = ("import os, sys\n"
          "os.dup2(int(sys.argv[1]), 3)\n"
          "os.environ['LISTEN_PID'] = str(os.getpid())\n"
          "os.environ['LISTEN_FDS'] = '1'\n"
          "os.execv(sys.argv[2], sys.argv[2:])\n")


class ActivatedServer(Server):
    """A Server whose listening socket is inherited, not bound."""

    def __init__(self, sock, env):
        orig = harness.subprocess.Popen
        fd = sock.fileno()

        def popen(argv, **kw):
            kw["pass_fds"] = (fd,)
            return orig([sys.executable, "-c", LAUNCH, str(fd)] + list(argv), **kw)

        harness.free_port = lambda: sock.getsockname()[1]  # the port is the inherited socket's
        harness.subprocess.Popen = popen
        try:
            # NOTEBOOKD_LISTEN names a port in use: a server that bound instead of inheriting would fail
            Server.__init__(self, env=dict(env, NOTEBOOKD_LISTEN="127.0.0.1:%d" % sock.getsockname()[1]))
        finally:
            harness.subprocess.Popen = orig
            harness.free_port = _free_port

    def served(self):
        return sum(1 for x in self.log_lines() if x.get("msg") == "access")


_free_port = harness.free_port


def _client(port, token, stop, stats, lock, slow):
    """One client loop: a new connection per request; every failure is recorded."""
    n = 0
    while not stop.is_set() and n < 5000:
        n += 1
        try:
            conn = harness.http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            if slow:
                conn.request("GET", "/debug/sleep?ms=300")
            elif n % 3 == 0:
                conn.request("POST", "/v1/notebooks", body=json.dumps({"title": "restart %d" % n}),
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            else:
                conn.request("GET", "/v1/notebooks?limit=5", headers={"Authorization": "Bearer " + token})
            r = conn.getresponse()
            r.read()
            conn.close()
            with lock:
                key = "ok" if r.status in (200, 201) else "status %d" % r.status
                stats[key] = stats.get(key, 0) + 1
        except Exception as e:  # refused, reset, timed out: all failures
            with lock:
                stats.setdefault("errors", []).append(repr(e))


def test_restart_under_load_loses_no_request():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    env = {"NOTEBOOKD_DEBUG_ROUTES": "1", "NOTEBOOKD_WORKERS": "0"}
    a = ActivatedServer(listener, env)
    check("inherited listening socket" in a.read_log(), "the server must say it inherited its socket")
    r = a.post("/v1/auth/register", {"email": "rs-%s@example.com" % uuid.uuid4().hex[:10], "password": "long enough pw"})
    eq(r.status, 201)
    token = r.json["access_token"]

    stop, lock, stats = threading.Event(), threading.Lock(), {}
    threads = [threading.Thread(target=_client, args=(port, token, stop, stats, lock, i == 2)) for i in range(3)]
    for t in threads:
        t.start()
    procs = [a]
    try:
        for _ in range(2):
            old = procs[-1]
            wait_until(lambda: old.served() >= 30, 30, "load on the old process")
            new = ActivatedServer(listener, env)
            procs.append(new)
            old.proc.send_signal(harness.signal.SIGTERM)
            eq(old.proc.wait(30), 0)
            wait_until(lambda: new.served() >= 30, 30, "load on the new process")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    errors = stats.pop("errors", [])
    eq(errors, [], "requests failed during the restarts")
    eq(list(stats), ["ok"], "every answer is a success: %r" % stats)
    check(stats["ok"] >= 90, "the load ran: %r" % stats)
    for p in procs:
        check(p.served() >= 30, "each process served part of the load")
        eq(p.stop(), 0)
    listener.close()


def test_inherited_fd_that_is_not_a_socket_is_refused():
    """LISTEN_FDS pointing at something other than a stream socket is a clear start-up error."""
    r, w = os.pipe()
    try:
        e = dict(os.environ, DATABASE_URL=harness.DB_URL, NOTEBOOKD_JWT_SECRET="test-secret-" + "x" * 40,
                 NOTEBOOKD_WORKERS="0")
        out = harness.subprocess.run([sys.executable, "-c", LAUNCH, str(r), harness.BIN, "serve"], env=e,
                                     pass_fds=(r,), capture_output=True, text=True, timeout=30)
        check(out.returncode != 0, "must refuse to start")
        check("inherited fd 3 is not a stream socket" in out.stderr, out.stderr[-2000:])
    finally:
        os.close(r)
        os.close(w)
