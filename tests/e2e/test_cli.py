"""The command line and the machine-readable answers: `notebookd <command>
--help` lists only the settings that command reads, an unknown flag is an
error with the usage line (exit 2), a bad setting is one line naming it
(exit 2), answers are compact JSON everywhere (lists and export included),
and every /metrics family has # HELP and # TYPE."""
import json
import re
import subprocess
import uuid

from harness import BIN, DB_URL, Server, check, eq, wait_until

srv = None


def setup_module():
    global srv
    srv = Server(primary=True)


def teardown_module():
    eq(srv.stop(), 0)


def run(*args, env=None):
    e = {"PATH": "/usr/bin:/bin", "DATABASE_URL": DB_URL}
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=60, env=e)


def settings_in(text):
    return set(re.findall(r"^  ((?:NOTEBOOKD_[A-Z0-9_]+)|DATABASE_URL) ", text, re.M))


def test_help_lists_only_what_a_command_reads():
    everything = settings_in(run("--help").stdout)
    check(len(everything) > 40, everything)
    helps = {}
    for cmd in ("serve", "worker", "migrate", "verify", "purge"):
        r = run(cmd, "--help")
        eq(r.returncode, 0, cmd)
        check(r.stdout.startswith("notebookd " + cmd), r.stdout[:80])
        helps[cmd] = settings_in(r.stdout)
        check("DATABASE_URL" in helps[cmd], cmd)
    eq(helps["migrate"], {"DATABASE_URL", "NOTEBOOKD_LOG_LEVEL", "NOTEBOOKD_DB_CONNECT_TIMEOUT_S"})
    eq(helps["verify"], helps["migrate"])
    check("NOTEBOOKD_TRASH_RETENTION_DAYS" in helps["purge"] and "NOTEBOOKD_LISTEN" not in helps["purge"])
    check("NOTEBOOKD_JOB_LEASE_S" in helps["worker"] and "NOTEBOOKD_JWT_SECRET" not in helps["worker"])
    # serve and worker run the scheduled retention: they read its settings; purge reads no job setting
    check("NOTEBOOKD_LISTEN" in helps["serve"] and "NOTEBOOKD_RETENTION_INTERVAL_S" in helps["serve"])
    check("NOTEBOOKD_RETENTION_INTERVAL_S" in helps["worker"] and "NOTEBOOKD_RETENTION_INTERVAL_S" not in helps["purge"])
    check("NOTEBOOKD_JOB_RETENTION_DAYS" in helps["purge"] and "NOTEBOOKD_JOB_LEASE_S" not in helps["purge"])
    eq(set().union(*helps.values()), everything)


def test_unknown_flag_is_an_error_with_the_usage_line():
    for args, word in ((("migrate", "--bogus"), "flag"), (("serve", "--port", "1"), "flag"),
                       (("verify", "extra"), "argument"), (("worker", "--frobnicate"), "flag")):
        r = run(*args)
        eq(r.returncode, 2, args)
        lines = r.stderr.strip().splitlines()
        eq(len(lines), 2, r.stderr)
        check(lines[0].startswith("notebookd %s: unknown %s \"%s\"" % (args[0], word, args[1])), r.stderr)
        check(lines[1].startswith("usage: notebookd " + args[0]), r.stderr)
    # the worker's own flag is still accepted (its value checked by the worker)
    r = run("worker", "--concurrency", "0")
    eq(r.returncode, 2)
    check("--concurrency must be" in r.stderr, r.stderr)
    r = run("nonsense")
    eq(r.returncode, 2)


def test_bad_setting_is_one_line_naming_it():
    r = run("migrate", env={"NOTEBOOKD_WORKERS": "lots"})
    eq(r.returncode, 2)
    eq(r.stderr, 'notebookd: NOTEBOOKD_WORKERS: must be an integer from 0 to 256, got "lots"\n')
    r = run("serve", env={"NOTEBOOKD_ACCESS_LOG": "maybe"})
    eq(r.returncode, 2)
    check(r.stderr.startswith("notebookd: NOTEBOOKD_ACCESS_LOG: must be 0 or 1") and r.stderr.count("\n") == 1,
          r.stderr)


def compact(body):
    """Valid JSON with no whitespace outside strings."""
    json.loads(body)
    in_str = esc = False
    for ch in body:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in " \t\r\n":
            return False
    return True


def test_answers_are_compact_json():
    tok = srv.post("/v1/auth/register", {"email": "cli-%s@example.com" % uuid.uuid4().hex[:8],
                                         "password": "long enough pw"}).json["access_token"]
    nb = srv.post("/v1/notebooks", {"title": "Compact", "description": "a b : c"}, token=tok).json
    s = srv.post("/v1/notebooks/%s/sources" % nb["id"], {"kind": "text", "content": "Words \" : , with spaces."},
                 token=tok).json["source"]
    wait_until(lambda: srv.get("/v1/sources/" + s["id"], token=tok).json["status"] == "ready", 30, "the source ready")
    for path in ("/v1/me", "/v1/notebooks", "/v1/notebooks/" + nb["id"], "/v1/notebooks/%s/sources" % nb["id"],
                 "/v1/sources/%s/chunks" % s["id"], "/v1/jobs", "/v1/notebooks/%s/search?q=words" % nb["id"],
                 "/v1/me/export"):
        r = srv.get(path, token=tok)
        eq(r.status, 200, path)
        check(compact(r.body), "%s is not compact: %s" % (path, r.body[:300]))
    # the text inside strings is untouched
    eq(srv.get("/v1/sources/%s/chunks" % s["id"], token=tok).json["items"][0]["text"], "Words \" : , with spaces.")


def test_every_metrics_family_has_help_and_type():
    srv.get("/healthz")
    r = srv.get("/metrics")
    eq(r.status, 200)
    helps, types, seen = {}, {}, []
    for line in r.body.splitlines():
        m = re.match(r"# (HELP|TYPE) (\S+) (.+)", line)
        if m:
            (helps if m.group(1) == "HELP" else types)[m.group(2)] = m.group(3)
            continue
        check(not line.startswith("#"), line)
        name = re.match(r"[a-z_:][a-z0-9_:]*", line).group(0)
        for suffix in ("_bucket", "_sum", "_count"):  # a histogram's samples belong to its family
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                name = name[:-len(suffix)]
        check(name in helps and name in types, "%s has no # HELP or # TYPE" % name)
        if not seen or seen[-1] != name:
            check(name not in seen, "the samples of %s are not together" % name)
            seen.append(name)
        check(types[name] in ("counter", "gauge", "histogram"), line)
        check(not name.endswith("_total") or types[name] == "counter", name)
    check(len(seen) >= 20, seen)
    eq(sorted(helps), sorted(types))
    eq(sorted(seen), sorted(types))
